"""The :class:`Claim` result, the claim registry (:func:`claim`) and helpers shared by the
claim modules."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from muonlab.accuracy import EPSILONS, eps_column
from muonlab.errors import MuonlabError


@dataclass(frozen=True)
class Claim:
    """The outcome of one claim on one store."""

    name: str
    seed: str
    passed: bool
    detail: str
    experiment: str = ""

    def with_experiment(self, experiment: str) -> Claim:
        return dataclasses.replace(self, experiment=experiment)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "passed": bool(self.passed),
                "detail": self.detail, "experiment": self.experiment}


#: What a claim may read from its experiment's store, passed positionally in the order
#: the claim lists them: ``runs`` (:meth:`ResultStore.runs`), ``trajectories``
#: (:meth:`ResultStore.trajectories`, long form).
READABLE = ("runs", "trajectories")

F = TypeVar("F", bound=Callable[..., Claim])


@dataclass(frozen=True)
class ClaimDef:
    """A registered claim: its name (what experiment YAMLs list), the function, and what
    it reads from the store."""

    name: str
    fn: Callable[..., Claim]
    reads: tuple[str, ...]
    seed: str  # for a claim that raised (a working claim states its own seed)

    def __call__(self, tables: dict[str, pd.DataFrame]) -> Claim:
        """Evaluate over ``tables`` (``{"runs": …, "trajectories": …}``, what it reads)."""
        return self.fn(*(tables[t] for t in self.reads))


_REGISTRY: dict[str, ClaimDef] = {}


def claim(*, reads: Sequence[str] = ("runs",), name: str | None = None, seed: str | None = None) -> Callable[[F], F]:
    """Register the decorated function as a claim; it is returned unchanged.

    Args:
        reads: the store tables it takes, in argument order (from :data:`READABLE`).
        name: the name experiment YAMLs use (default: the function's name).
        seed: the paper seed (default: the defining module's ``SEED``, else ``"beyond"``).

    Raises:
        ValueError: an unknown table in ``reads``, or a name taken by another function.
    """
    reads = tuple(reads)
    if not reads or any(r not in READABLE for r in reads) or len(set(reads)) != len(reads):
        raise MuonlabError.about("reads", f"expected distinct names from {', '.join(READABLE)}, got {reads!r}")

    def register(fn: F) -> F:
        key = name or fn.__name__
        old = _REGISTRY.get(key)
        # Re-registering the same function (a module reload) is fine; a second one is not.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise MuonlabError.about(
                "name", f"claim {key!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}"
            )
        module_seed = getattr(sys.modules.get(fn.__module__), "SEED", None)
        _REGISTRY[key] = ClaimDef(key, fn, reads, seed or (module_seed if isinstance(module_seed, str) else "beyond"))
        return fn

    return register


def registered_claims() -> dict[str, ClaimDef]:
    """Every registered claim by name (the shipped ones are registered when
    :mod:`muonlab.claims` is imported)."""
    return dict(_REGISTRY)


def verdict(name: str, seed: str, detail: str, reasons: list[str], *, most: int | None = None,
            see: str | None = None) -> Claim:
    """The claim: passed iff ``reasons`` is empty; otherwise ``detail`` gets
    `` FAIL: reason; reason.`` (at most ``most`` reasons, then ``(+k more)``; ``see`` adds a
    pointer such as ``(see docs/findings.md F4)``)."""
    if reasons:
        shown = reasons if most is None else reasons[:most]
        more = "" if len(shown) == len(reasons) else f" (+{len(reasons) - len(shown)} more)"
        detail += " FAIL: " + "; ".join(shown) + more + ("" if see is None else f" ({see})") + "."
    return Claim(name, seed, not reasons, detail)


def level_for(runs: pd.DataFrame) -> float:
    """The finest recorded level ε (1e-12, 1e-8, 1e-4) that every run was asked to reach.

    That is the smallest ε ≥ the largest ``stop.target`` in the store (a run stopped at
    1e-10 has no steps to 1e-12); 1e-4 if none qualifies.
    """
    target = None
    if "stop.target" in runs and runs["stop.target"].notna().any():
        target = float(runs["stop.target"].max())
    finest_first = sorted(EPSILONS)
    if target is None or target <= finest_first[0]:
        return finest_first[0]
    for eps in finest_first:
        if eps >= target * (1 - 1e-9):
            return eps
    return finest_first[-1]


def steps_column(eps: float) -> str:
    """The store column of steps to ``eps`` (:func:`muonlab.accuracy.eps_column`)."""
    return eps_column(eps)


def median_steps(group: pd.DataFrame, col: str) -> float | None:
    """Median over seeds of the steps to the level; None (not reached) if the median
    run did not reach it — unreached runs count as +∞, so half the seeds failing fails."""
    values = [math.inf if pd.isna(v) else float(v) for v in group[col]]
    if not values:
        return None
    med = float(np.median(values))
    return None if math.isinf(med) else med


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (needs two distinct x)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    if len(set(lx.tolist())) < 2:
        return float("nan")
    return float(np.polyfit(lx, ly, 1)[0])


def fmt_steps(v: float | None, budget: int | None = None) -> str:
    if v is None:
        return f"not reached (>{budget})" if budget else "not reached"
    return f"{v:g}"


def fmt_num(x: float) -> str:
    return f"{x:g}"


def schedule_label(row: pd.Series) -> str:
    name = row.get("schedule.name", "?")
    if name == "plateau":
        return f"plateau(thr={row.get('schedule.threshold', 0):g})"
    if name == "geometric":
        return f"geometric(q={row.get('schedule.q'):g})"
    return str(name)
