"""Validation of problem constructor fields (shared by P1–P5).

Every error is a ``ValueError`` whose message starts with the field's config name
(``"r: must be <= n (10), got 20"``), so the engine can point at the bad YAML key.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from muonlab.errors import MuonlabError

__all__ = ["choice", "integer", "per_run", "real", "seeds", "values_list"]


def seeds(seed: Any) -> tuple[int, ...]:
    """One int (R = 1) or a non-empty sequence of ints (R = its length)."""
    items = [seed] if _is_scalar(seed) else seed
    try:
        items = list(items)
    except TypeError:
        raise MuonlabError(f"seed: expected an int or a sequence of ints, got {seed!r}", field="seed") from None
    if not items:
        raise MuonlabError("seed: need at least one seed, got an empty sequence", field="seed")
    out = []
    for s in map(_unwrap, items):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise MuonlabError(f"seed: expected integers, got {s!r}", field="seed")
        if int(s) < 0:
            raise MuonlabError(f"seed: must be >= 0, got {s}", field="seed")
        out.append(int(s))
    return tuple(out)


def per_run(
    name: str, value: Any, n_runs: int, *, lower: float | None = None, strict: bool = False
) -> tuple[float, ...]:
    """A batchable field: a scalar (broadcast to all runs) or one value per run.

    ``lower`` bounds each value (``strict``: value > lower, else value >= lower).
    """
    if _is_scalar(value):
        items = [value] * n_runs
    else:
        try:
            items = list(value)
        except TypeError:
            raise MuonlabError(
                f"{name}: expected a number or a sequence of numbers, got {value!r}", field=name
            ) from None
        if len(items) != n_runs:
            raise MuonlabError(
                f"{name}: expected a scalar or {n_runs} values (one per seed), got {len(items)}", field=name
            )
    return tuple(real(name, v, lower=lower, strict=strict) for v in items)


def real(name: str, value: Any, *, lower: float | None = None, strict: bool = False) -> float:
    """A finite real number, optionally bounded below."""
    value = _unwrap(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise MuonlabError(f"{name}: expected a finite number, got {value!r}", field=name)
    v = float(value)
    if lower is not None and (v <= lower if strict else v < lower):
        raise MuonlabError(f"{name}: must be {'>' if strict else '>='} {lower:g}, got {v:g}", field=name)
    return v


def integer(name: str, value: Any, *, lower: int = 1, upper: int | None = None, upper_name: str | None = None) -> int:
    """An integer in [lower, upper]; ``upper_name`` names the bound in the message (``"n"``)."""
    value = _unwrap(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MuonlabError(f"{name}: expected an integer, got {value!r}", field=name)
    v = int(value)
    if v < lower:
        raise MuonlabError(f"{name}: must be >= {lower}, got {v}", field=name)
    if upper is not None and v > upper:
        bound = f"{upper_name} ({upper})" if upper_name else str(upper)
        raise MuonlabError(f"{name}: must be <= {bound}, got {v}", field=name)
    return v


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise MuonlabError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}", field=name)
    return str(value)


def values_list(name: str, values: Any) -> tuple[float, ...]:
    """A non-empty list of positive finite numbers (explicit target singular values)."""
    if values is None or _is_scalar(values):
        raise MuonlabError(f"{name}: expected a non-empty list of positive numbers, got {values!r}", field=name)
    items = list(values)
    if not items:
        raise MuonlabError(f"{name}: expected a non-empty list of positive numbers, got []", field=name)
    return tuple(real(name, v, lower=0.0, strict=True) for v in items)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (numbers.Number, str, bytes)) or (hasattr(value, "ndim") and value.ndim == 0)


def _unwrap(value: Any) -> Any:
    # 0-d tensors / arrays become Python numbers
    return value.item() if hasattr(value, "ndim") and value.ndim == 0 and hasattr(value, "item") else value
