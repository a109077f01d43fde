r"""Mode-arrival claims, shared by seeds 000 and 002: which singular values of a
factorized model reach their targets, when, and in which order.

Spectral steps (Muon, SpecGD, SpecGF), once the factors are aligned, add the same amount
to every singular value of each factor, so σ_i(product) = (ηt)² for every mode until it
reaches its target: mode i arrives (σ_i ≥ 0.9·σ*_i) at

    t_i = sqrt(0.9·σ*_i)/η     (τ_i = sqrt(0.9·σ*_i) for the flow, η = Δτ),

all modes at one rate, hence the smallest first (seed 000 §3, seed 002 claim (a));
gradient descent learns the largest first. Arrival times come from the
``mode_progress`` trajectories (σ_i/σ*_i per step).

Every claim here is judged per seed (:func:`muonlab.claims.base.decide`): the statement
is evaluated on each seed's run(s), and the claim passes when it holds in every seed.
Medians over seeds or over modes only describe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from muonlab.claims.base import Claim, Outcome, decide, seed_label
from muonlab.config.run import step_clock
from muonlab.errors import MuonlabError

__all__ = ["FRACTION", "RANK_CORR", "SQRT_LAW_TOL", "STATISTICS", "RunArrival", "arrival_data", "arrivals",
           "by_seed", "largest_first_claim", "law_claim", "law_errors", "listing", "missing_modes", "spearman",
           "target_values"]

#: A mode has "arrived" when σ_i(product) ≥ FRACTION·σ*_i.
FRACTION = 0.9
#: Smallest-first / largest-first: Spearman correlation between σ*_i and arrival time
#: beyond ±0.9 (a strict order would give ±1; 0.9 allows a few swaps among nearly equal
#: tail values, e.g. 10/31 and 10/32, and ties of one step).
RANK_CORR = 0.9
#: Equal-rate law: the largest (or 90th-percentile, per claim) relative arrival error
#: |t_i − law_i|/law_i over modes at most 15 %. The law ignores the init scale (the
#: factors start at singular values ~α, which moves sqrt(σ_i) = ηt + O(α) earlier by
#: α/η ≤ 1 step for seed 002's α = η = 5e-3, and by ≤ γ·√n/η ≈ 1 step for seed 000's
#: γ = 1e-3, η = 0.01), the first alignment steps (a few steps before the growth is
#: aligned) and the arrival's rounding to a logged step (1 step): a shift of at most
#: ~5–7 steps. The shortest arrival in the seeds' settings is 47 steps (seed 000,
#: σ* = 0.25, η = 0.01: sqrt(0.225)/0.01) and 106 steps (seed 002, σ* = 0.3125,
#: η = 5e-3), so 7/47 = 15 % bounds every mode's error; a mode arriving 115 % late fails.
SQRT_LAW_TOL = 0.15
#: The statistic over modes that the equal-rate law is judged on: ``max`` (every mode)
#: or ``q90`` (the 90th percentile, the upper order statistic: with 32 modes the 3 worst
#: are not judged, with ≤ 9 modes it is the max).
STATISTICS = ("max", "q90")



@dataclass(frozen=True)
class RunArrival:
    """One run's modes: σ* descending, arrival steps t (nan: never), the law, and the
    run's seed label and id."""

    seed: str
    sigma: np.ndarray
    t: np.ndarray
    law: np.ndarray
    run_id: str = ""


def target_values(row: pd.Series) -> np.ndarray:
    """The run's target singular values (``problem.values``), descending."""
    values = row.get("problem.values")
    if isinstance(values, str):  # the store keeps list-valued config fields as JSON text
        values = json.loads(values)
    if values is None or (isinstance(values, float) and math.isnan(values)):
        raise MuonlabError.about("problem.values", "the claim needs explicit target values")
    return np.sort(np.asarray(list(values), dtype=float))[::-1]


def arrivals(traj: pd.DataFrame, run_id: str) -> np.ndarray:
    """First logged step at which each mode's progress σ_i/σ*_i reaches FRACTION (nan: never)."""
    t = traj[(traj["run_id"] == run_id) & (traj["metric"] == "mode_progress")]
    wide = t.pivot_table(index="step", columns="index", values="value", aggfunc="last").sort_index()
    hit = wide.to_numpy() >= FRACTION
    steps = wide.index.to_numpy()
    return np.array([steps[np.argmax(hit[:, j])] if hit[:, j].any() else np.nan for j in range(hit.shape[1])])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation over the pairs where both are finite (nan if fewer than
    3, or if either side is constant: the correlation is undefined)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(spearmanr(x[ok], y[ok]).statistic)


def listing(sigma: np.ndarray, t: np.ndarray, pred: np.ndarray | None = None) -> str:
    """A few modes, first to last: ``σ*=…: t=… (law …)``."""
    idx = [i for i in (0, 1, 3, 8, len(sigma) - 2, len(sigma) - 1) if 0 <= i < len(sigma)]
    parts = []
    for i in dict.fromkeys(idx):
        arrival = "—" if np.isnan(t[i]) else f"{t[i]:g}"
        law = "" if pred is None else f" (law {pred[i]:.0f})"
        parts.append(f"σ*={sigma[i]:.3g}: t={arrival}{law}")
    return ", ".join(parts)


def missing_modes(runs: pd.DataFrame, trajectories: pd.DataFrame | None, name: str, seed: str) -> Claim | None:
    """A failed claim when the store cannot support a mode claim; None when it can."""
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, seed, "Mode arrivals.", [], reasons=["no runs or no trajectories in the store"])
    if "mode_progress" not in set(trajectories["metric"]):
        return decide(name, seed, "Mode arrivals.", [], reasons=["the store has no mode_progress trajectories"])
    return None


def _runs_of(runs: pd.DataFrame, optimizer: str) -> Iterator[pd.Series]:
    for _, row in runs[runs["optimizer.name"] == optimizer].iterrows():
        yield row


def arrival_data(
    runs: pd.DataFrame,
    trajectories: pd.DataFrame,
    optimizer: str,
    *,
    constant_only: bool = False,
    exact: bool | None = None,
) -> tuple[list[RunArrival], list[Outcome]]:
    """(σ*, arrival steps, law sqrt(0.9σ*)/lr) per successful run of ``optimizer``, and a
    failed outcome for each of its runs that did not end ``ok`` (a diverged seed fails
    the statement rather than dropping out of the count).

    ``constant_only``: skip runs with a non-constant schedule (the law assumes a fixed
    step). ``exact``: True keeps r ≥ r* runs only, False r < r* only, None all (the
    problems without ``problem.r``/``r_star`` count as exact). Only the modes that both
    the target and the trajectory have are kept (the top r when r < r*).
    """
    out, bad = [], []
    for row in _runs_of(runs, optimizer):
        if constant_only and row.get("schedule.name") not in (None, "constant"):
            continue
        if exact is not None and "problem.r" in row:
            r = int(row["problem.r"])
            if exact != (r >= int(row.get("problem.r_star") or r)):
                continue
        label = seed_label(row.get("seed", "?"))
        if row["status"] != "ok":
            bad.append(Outcome(label, False, f"run {row['status']}"))
            continue
        sigma, t = target_values(row), arrivals(trajectories, row["run_id"])
        k = min(len(sigma), len(t))
        out.append(RunArrival(label, sigma[:k], t[:k], np.sqrt(FRACTION * sigma[:k]) / step_clock(row),
                              str(row["run_id"])))
    return out, bad


def by_seed(
    data: Sequence[RunArrival], judge: Callable[[RunArrival], str | None], bad: Sequence[Outcome] = ()
) -> list[Outcome]:
    """One outcome per seed: it holds iff ``judge`` (a reason, or None when the statement
    holds) passes on every run of that seed and none of its runs failed to finish."""
    reasons: dict[str, list[str]] = {}
    for o in bad:
        reasons.setdefault(o.unit, []).append(o.reason)
    for d in data:
        why = judge(d)
        reasons.setdefault(d.seed, [])
        if why:
            reasons[d.seed].append(why)
    order = sorted(reasons, key=lambda u: (len(u), u))
    return [Outcome(u, not reasons[u], "; ".join(reasons[u])) for u in order]


def law_errors(d: RunArrival) -> np.ndarray:
    """|t_i − law_i|/law_i per mode (inf for a mode that never arrived)."""
    e = np.abs(d.t - d.law) / d.law
    return np.where(np.isfinite(d.t), e, np.inf)


def _stat(e: np.ndarray, statistic: str) -> float:
    if statistic == "max":
        return float(np.max(e))
    # the upper order statistic: an actual mode's error, never interpolated towards inf
    return float(np.quantile(e, 0.9, method="higher"))


def law_claim(name: str, seed: str, what: str, data: tuple[list[RunArrival], list[Outcome]], *, need_order: bool,
              statistic: str = "max", tol: float = SQRT_LAW_TOL) -> Claim:
    """The equal-rate law, per seed: in every run of the seed, the ``statistic`` (``max``
    or ``q90``) over modes of |t_i − law_i|/law_i is ≤ ``tol`` (a mode that never
    arrived counts as ∞); with ``need_order``, also Spearman(σ*, t) ≥ 0.9 over the
    modes that arrived (smallest first). The detail describes the median seed."""
    if statistic not in STATISTICS:
        raise MuonlabError.about("statistic", f"expected one of {', '.join(STATISTICS)}, got {statistic!r}")
    runs, bad = data
    label = "largest" if statistic == "max" else "90th-percentile"

    def judge(d: RunArrival) -> str | None:
        e = law_errors(d)
        s = _stat(e, statistic)
        why = []
        if not s <= tol:
            worst = int(np.argmax(e))
            at = "never" if not np.isfinite(d.t[worst]) else f"t={d.t[worst]:g}"
            why.append(f"{label} error {s:.3f} > {tol} (σ*={d.sigma[worst]:.3g}: {at}, law {d.law[worst]:.0f})")
        if need_order:
            c = spearman(d.sigma, d.t)
            if not c >= RANK_CORR:
                why.append(f"Spearman(σ*, t) {c:.3f} < {RANK_CORR}")
        return "; ".join(why) or None

    outcomes = by_seed(runs, judge, bad)
    if not runs:
        return decide(name, seed, f"{what}: no successful runs.", outcomes,
                      reasons=[] if outcomes else [f"no {what} runs"])
    stats = [_stat(law_errors(d), statistic) for d in runs]
    mid = runs[int(np.argsort(stats)[len(stats) // 2])]
    detail = (f"{what}, {len(runs)} runs, arrival at {FRACTION:g}·σ*_i against the equal-rate law "
              f"t = sqrt({FRACTION:g}σ*)/η; per seed, the {label} relative error over modes must be <= {tol}"
              + (f" and Spearman(σ*, t) >= {RANK_CORR} (smallest first)" if need_order else "")
              + f". Median seed ({mid.seed}): {listing(mid.sigma, mid.t, mid.law)}; {label} error "
              f"{_stat(law_errors(mid), statistic):.3f}; over seeds {min(stats):.3f}–{max(stats):.3f}.")
    return decide(name, seed, detail, outcomes)


def largest_first_claim(name: str, seed: str, what: str, data: tuple[list[RunArrival], list[Outcome]], *,
                        min_arrived: int) -> Claim:
    """Gradient descent's order, per seed: in every run, Spearman(σ*, t) ≤ −0.9 over the
    modes that arrived, with at least ``min_arrived`` of them."""
    runs, bad = data

    def judge(d: RunArrival) -> str | None:
        n, c = int(np.isfinite(d.t).sum()), spearman(d.sigma, d.t)
        why = []
        if n < min_arrived:
            why.append(f"only {n} modes arrived (need {min_arrived})")
        if not c <= -RANK_CORR:
            why.append(f"Spearman(σ*, t) {c:.3f} > −{RANK_CORR}")
        return "; ".join(why) or None

    outcomes = by_seed(runs, judge, bad)
    if not runs:
        return decide(name, seed, f"{what}: no successful runs.", outcomes,
                      reasons=[] if outcomes else [f"no {what} runs"])
    corr = [spearman(d.sigma, d.t) for d in runs]
    mid = runs[int(np.argsort(corr)[len(corr) // 2])]
    detail = (f"{what}, {len(runs)} runs; per seed, Spearman(σ*, t) <= −{RANK_CORR} (largest first) over the "
              f">= {min_arrived} modes that arrived. Median seed ({mid.seed}): {listing(mid.sigma, mid.t)}; "
              f"{int(np.isfinite(mid.t).sum())}/{len(mid.sigma)} arrived; Spearman over seeds "
              f"{min(corr):.3f}–{max(corr):.3f}.")
    return decide(name, seed, detail, outcomes)
