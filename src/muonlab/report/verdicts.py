"""A claim's per-replicate verdict as the report shows it: ``k/n`` with its unit, the 95 %
Clopper–Pearson interval, the rule it was judged by, the scale, and the strip of
replicates (one square each, failing ones marked).

The input is one entry of ``claims.json`` (:meth:`muonlab.claims.base.Claim.to_dict`).
Files written before per-replicate verdicts lack ``n_pass``, ``n_total``, ``ci_low``,
``ci_high``, ``required``, ``unit``, ``failing_seeds``, ``seeds`` and ``scale``; any of
them may be missing or malformed, and each piece of the verdict is shown only when its
fields are there (:func:`verdict_of` is None when none is). Everything returned is plain
text; the templates escape it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ScaleCount", "Square", "Verdict", "scale_counts", "verdict_of"]


@dataclass(frozen=True)
class Square:
    """One replicate in the strip."""

    label: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    """The pieces of a claim's verdict the report shows; None where the field is absent."""

    count: str | None  # "7/10 seeds"
    interval: str | None  # "95% CI 0.35–0.93"
    rule: str | None  # "need all", "need ≥ 0.8 lower bound"
    scale: str | None  # "quick", "paper", "custom"
    squares: tuple[Square, ...]  # every replicate in order, then failing labels not among them
    summary: str  # the strip in words (its aria-label): "3 of 5 seeds hold; failing: 1, 4"


@dataclass(frozen=True)
class ScaleCount:
    """Claims of one scale: how many, how many passed."""

    scale: str
    n_pass: int
    n_total: int


def _count(value: Any) -> int | None:
    """A non-negative integer count (``7`` or ``7.0``); None otherwise (bool included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    n = int(value)
    return n if n >= 0 else None


def _fraction(value: Any) -> float | None:
    """A finite number in [0, 1] (None, NaN, strings and bools are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) and 0.0 <= x <= 1.0 else None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _labels(value: Any) -> list[str]:
    """A list of replicate labels (JSON numbers are shown as written: 3, not 3.0)."""
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for v in value:
        if v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        out.append(str(v))
    return out


def _plural(unit: str, n: int) -> str:
    if n == 1 or unit.endswith("s"):
        return unit
    return f"{unit}s"


def _squares(seeds: list[str], failing: list[str]) -> tuple[Square, ...]:
    """Each replicate of ``seeds`` in order, failing when its label is in ``failing``
    (counted: a label listed once as failing marks one of its replicates); then any
    failing label that ``seeds`` lacks, so that no failure goes unshown."""
    left = Counter(failing)
    out = []
    for label in seeds:
        fails = left[label] > 0
        if fails:
            left[label] -= 1
        out.append(Square(label, not fails))
    for label in failing:
        if left[label] > 0:
            left[label] -= 1
            out.append(Square(label, False))
    return tuple(out)


def verdict_of(claim: Mapping[str, Any]) -> Verdict | None:
    """The verdict pieces of one claims.json entry; None when it has none of the fields."""
    n_total, n_pass = _count(claim.get("n_total")), _count(claim.get("n_pass"))
    unit = _text(claim.get("unit")) or "seed"
    count = None
    if n_total == 0:
        count = f"0 {_plural(unit, 0)}"
    elif n_total is not None and n_pass is not None and n_pass <= n_total:
        count = f"{n_pass}/{n_total} {_plural(unit, n_total)}"
    elif n_total is not None:
        count = f"{n_total} {_plural(unit, n_total)}"

    lo, hi = _fraction(claim.get("ci_low")), _fraction(claim.get("ci_high"))
    interval = f"95% CI {lo:.2f}–{hi:.2f}" if lo is not None and hi is not None and lo <= hi else None
    if interval is None and n_total == 0:
        interval = "no interval"

    required = _fraction(claim.get("required"))
    rule = None
    if required is not None and required > 0:
        rule = "need all" if required >= 1.0 else f"need ≥ {required:g} lower bound"

    squares = _squares(_labels(claim.get("seeds")), _labels(claim.get("failing_seeds")))
    scale = _text(claim.get("scale"))
    if count is None and interval is None and rule is None and scale is None and not squares:
        return None
    failing = [s.label for s in squares if not s.passed]
    held = len(squares) - len(failing)
    summary = f"{held} of {len(squares)} {_plural(unit, len(squares))} hold"
    if failing:
        summary += "; failing: " + ", ".join(failing)
    return Verdict(count=count, interval=interval, rule=rule, scale=scale, squares=squares, summary=summary)


def scale_counts(claims: Iterable[Mapping[str, Any]]) -> list[ScaleCount]:
    """Per scale (in order of first appearance), the claims of that scale and how many
    passed; claims without a scale are left out."""
    totals: dict[str, list[int]] = {}
    for c in claims:
        scale = _text(c.get("scale"))
        if scale is None:
            continue
        t = totals.setdefault(scale, [0, 0])
        t[0] += c.get("passed") is True
        t[1] += 1
    return [ScaleCount(s, k, n) for s, (k, n) in totals.items()]
