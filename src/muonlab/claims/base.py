"""The :class:`Claim` result and helpers shared by the claim modules."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

EPS_LEVELS = (1e-12, 1e-8, 1e-4)


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


def eps_key(eps: float) -> str:
    return f"{eps:.0e}".replace("e-0", "e-")


def level_for(runs: pd.DataFrame) -> float:
    """The finest recorded level ε (1e-12, 1e-8, 1e-4) that every run was asked to reach.

    That is the smallest ε ≥ the largest ``stop.target`` in the store (a run stopped at
    1e-10 has no steps to 1e-12); 1e-4 if none qualifies.
    """
    target = None
    if "stop.target" in runs and runs["stop.target"].notna().any():
        target = float(runs["stop.target"].max())
    if target is None or target <= EPS_LEVELS[0]:
        return EPS_LEVELS[0]
    for eps in EPS_LEVELS:
        if eps >= target * (1 - 1e-9):
            return eps
    return EPS_LEVELS[-1]


def steps_column(eps: float) -> str:
    return f"steps_to_{eps_key(eps)}"


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
