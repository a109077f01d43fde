r"""Mode-arrival claims, shared by seeds 000 and 002: which singular values of a
factorized model reach their targets, when, and in which order.

Spectral steps (Muon, SpecGD, SpecGF), once the factors are aligned, add the same amount
to every singular value of each factor, so σ_i(product) = (ηt)² for every mode until it
reaches its target: mode i arrives (σ_i ≥ 0.9·σ*_i) at

    t_i = sqrt(0.9·σ*_i)/η     (τ_i = sqrt(0.9·σ*_i) for the flow, η = Δτ),

all modes at one rate, hence the smallest first (seed 000 §3, seed 002 claim (a));
gradient descent learns the largest first. Arrival times come from the
``mode_progress`` trajectories (σ_i/σ*_i per step).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from muonlab.claims.base import Claim, verdict
from muonlab.config.run import step_clock
from muonlab.errors import MuonlabError

__all__ = ["FRACTION", "RANK_CORR", "SQRT_LAW_TOL", "arrival_data", "arrivals", "largest_first_claim",
           "law_claim", "listing", "missing_modes", "spearman", "target_values"]

#: A mode has "arrived" when σ_i(product) ≥ FRACTION·σ*_i.
FRACTION = 0.9
#: Smallest-first / largest-first: Spearman correlation between σ*_i and arrival time
#: beyond ±0.9 (a strict order would give ±1; 0.9 allows a few swaps among nearly equal
#: tail values, e.g. 10/31 and 10/32, and ties of one step).
RANK_CORR = 0.9
#: Equal-rate law: median relative error over modes at most 15 % (the law ignores the
#: init scale and the first alignment steps, which shift every t_i by a few steps, i.e.
#: < 5 % of the 50–600-step arrival times of the seeds' settings).
SQRT_LAW_TOL = 0.15

Arrival = tuple[np.ndarray, np.ndarray, np.ndarray]  # (σ* descending, arrival steps t, law)


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
        return Claim(name, seed, False, "no runs or no trajectories in the store")
    if "mode_progress" not in set(trajectories["metric"]):
        return Claim(name, seed, False, "the store has no mode_progress trajectories")
    return None


def _ok_runs(runs: pd.DataFrame, optimizer: str) -> Iterator[pd.Series]:
    for _, row in runs[(runs["optimizer.name"] == optimizer) & (runs["status"] == "ok")].iterrows():
        yield row


def arrival_data(
    runs: pd.DataFrame,
    trajectories: pd.DataFrame,
    optimizer: str,
    *,
    constant_only: bool = False,
    exact: bool | None = None,
) -> list[Arrival]:
    """(σ*, arrival steps, law sqrt(0.9σ*)/lr) per successful run of ``optimizer``.

    ``constant_only``: skip runs with a non-constant schedule (the law assumes a fixed
    step). ``exact``: True keeps r ≥ r* runs only, False r < r* only, None all (the
    problems without ``problem.r``/``r_star`` count as exact). Only the modes that both
    the target and the trajectory have are kept (the top r when r < r*).
    """
    out = []
    for row in _ok_runs(runs, optimizer):
        if constant_only and row.get("schedule.name") not in (None, "constant"):
            continue
        if exact is not None and "problem.r" in row:
            r = int(row["problem.r"])
            if exact != (r >= int(row.get("problem.r_star") or r)):
                continue
        sigma, t = target_values(row), arrivals(trajectories, row["run_id"])
        k = min(len(sigma), len(t))
        out.append((sigma[:k], t[:k], np.sqrt(FRACTION * sigma[:k]) / step_clock(row)))
    return out


def law_claim(name: str, seed: str, what: str, data: list[Arrival], *, need_order: bool) -> Claim:
    """The equal-rate law: in the median run, ≥ 3/4 of the modes arrived and the median
    |t_i − law_i|/law_i is ≤ 15 %; with ``need_order``, also Spearman(σ*, t) ≥ 0.9
    (smallest first)."""
    if not data:
        return Claim(name, seed, False, f"no successful {what} runs")
    errs, corr, frac = [], [], []
    for sigma, t, pred in data:
        ok = np.isfinite(t)
        errs.append(float(np.median(np.abs(t[ok] - pred[ok]) / pred[ok])) if ok.any() else float("nan"))
        corr.append(spearman(sigma, t))
        frac.append(float(ok.mean()))
    e, c, f = float(np.median(errs)), float(np.median(corr)), float(np.median(frac))
    sigma, t, pred = data[int(np.argsort(errs)[len(errs) // 2])]
    within = float(np.mean(np.abs(t - pred) / pred <= SQRT_LAW_TOL))
    reasons = []
    if not f >= 0.75:
        reasons.append(f"only {f:.0%} of the modes arrived")
    if not e <= SQRT_LAW_TOL:
        reasons.append(f"median error to the law {e:.3f} > {SQRT_LAW_TOL}")
    if need_order and not c >= RANK_CORR:
        reasons.append(f"Spearman(σ*, t) {c:.3f} < {RANK_CORR}")
    detail = (f"{what}, {len(data)} runs, arrival at {FRACTION:g}·σ*_i against the equal-rate law "
              f"t = sqrt({FRACTION:g}σ*)/η: {listing(sigma, t, pred)}; median relative error {e:.3f} "
              f"(need <= {SQRT_LAW_TOL}); {within:.0%} of the modes within {SQRT_LAW_TOL:.0%} of the law; "
              f"Spearman(σ*, t) = {c:.3f}" + (f" (need >= {RANK_CORR}: smallest first)" if need_order else "")
              + f"; {f:.0%} of the modes arrived.")
    return verdict(name, seed, detail, reasons)


def largest_first_claim(name: str, seed: str, what: str, data: list[Arrival], *, min_arrived: int) -> Claim:
    """Gradient descent's order: in the median run, Spearman(σ*, t) ≤ −0.9 over the modes
    that arrived, with at least ``min_arrived`` of them."""
    if not data:
        return Claim(name, seed, False, f"no successful {what} runs")
    c = float(np.median([spearman(sigma, t) for sigma, t, _ in data]))
    n = int(np.median([np.isfinite(t).sum() for _, t, _ in data]))
    sigma, t, _ = data[0]
    reasons = []
    if n < min_arrived:
        reasons.append(f"only {n} modes arrived")
    if not c <= -RANK_CORR:
        reasons.append(f"Spearman(σ*, t) {c:.3f} > −{RANK_CORR}")
    detail = (f"{what}, {len(data)} runs: {listing(sigma, t)}; {n}/{len(sigma)} modes arrived; "
              f"Spearman(σ*, t) = {c:.3f} (need <= −{RANK_CORR}: largest first).")
    return verdict(name, seed, detail, reasons)
