r"""Seed 002 (Rhee, Simon, Karkada, arXiv 2606.30509), claim (b), second half: **annealing
without κ**. Muon "remains stable even when the learning rate exceeds the critical
threshold set by the local loss sharpness. This frees the learning rate from the
condition number of the problem, enabling rapid convergence via exponential learning
rate annealing" — judged on a κ sweep of M* (experiment ``s002_anneal_kappa``).

The statement is the seed's; the settings, the per-seed rules and every threshold below
are ours, derived in the docstrings (and in ``docs/annealing_and_levels.md``).

Two-factor MF f = ½‖W2W1 − M*‖²_F with M*'s singular values σ*_1 ≥ … ≥ σ*_N. At the
balanced minimizer W2 = U√Σ*, W1 = √Σ* Vᵀ the Hessian has, per mode i, the 2×2 block
σ*_i·[[1, 1], [1, 1]] (eigenvalues 2σ*_i and 0, the rescaling symmetry) and, per pair
i ≠ j, curvatures σ*_i + σ*_j. So

* λ_max = 2σ*_1 and GD's critical step is η_crit = 2/λ_max = 1/σ*_1 — for M* log-spaced
  from σ*_1 = 1 to 1/κ it is 1 at every κ;
* the smallest non-zero curvature is 2σ*_N = 2σ*_1/κ, so GD at a stable step η < η_crit
  contracts the slowest direction by 1 − 2ησ*_N per step: its rate is
  ρ ≤ −ln(1 − 2ησ*_N) ≈ 2/κ — the condition number enters through the step size that
  the sharpness allows;
* Muon moves every singular value of each factor by η_t per step whatever its
  curvature, so under η_t = c·η_0·q^t its error follows η_t (error ≈ C·η_t, C ≈
  2‖√σ*‖/‖σ*‖ of :func:`muonlab.claims.seed002.muon_error_bound`), and its steps to ε
  are ≈ ln(C·c·η_0/ε)/ln(1/q): no κ, only the constant C, which moves by < 30 % over
  κ ∈ [1, 10⁴] at N ≤ 32, i.e. by < ln 1.3/ln(1/q) = 2.5 steps at q = 0.9.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from muonlab.accuracy import EPSILONS
from muonlab.claims.base import (
    Claim,
    Outcome,
    claim,
    decide,
    kappa_exponent,
    level_for,
    loglog_slope,
    seed_label,
    steps_column,
)
from muonlab.claims.modes import target_values
from muonlab.claims.seed001 import BUDGET_FACTOR, GD_SLOPE_MIN, MUON_SLOPE_MAX, contraction_rate
from muonlab.claims.seed002 import EDGE_MARGIN, anneal_reach_min

__all__ = ["cost_per_efold", "gd_rate_bound", "local_level", "muon_anneal_kappa_free", "target_spectrum",
           "top_mode_error"]

SEED = "002"

#: GD counts as *stable* at η when it did not diverge and either reached the target level
#: or its top mode ended within 1 % of σ*_1: |σ_1(W2W1)/σ*_1 − 1| ≤ TOP_TOL at its last log. Below the edge the top mode
#: converges at |1 − 2ησ*_1| per step (0.8 at η = 0.9·η_crit: 1e-2 within 21 steps of
#: its arrival), so a stable run is far below 1e-2 by the end of any budget ≥ 10× Muon's
#: (~200 steps). Above the edge the balanced minimizer is unstable in the top mode: the
#: scalar reduction x, y ← x − η(xy − σ)y, y − η(xy − σ)x settles on a 2-cycle whose
#: product misses σ by 19 % already at η = 1.05·η_crit (25–34 % at 1.1·η_crit in the
#: 8×8 problem), or diverges. 1e-2 sits between the two by an order of magnitude or more.
TOP_TOL = 1e-2
#: GD's rate is measured in its local regime only: where the relative error is below
#: LOCAL_FRACTION·σ*_N/‖σ*‖_F, every mode (the smallest included) is within 10 % of its
#: target, so the linearization at the minimizer — whose slowest curvature is 2σ*_N —
#: governs. Above it the error is still dominated by modes being learned
#: (saddle-to-saddle), whose rate is not the local one.
LOCAL_FRACTION = 0.1
#: A tail fit needs at least this many logged points in the local window.
MIN_TAIL_POINTS = 3
#: GD's measured rate at its best stable step may exceed the sharpness-limited bound
#: ρ_max(κ) = −ln(1 − 2·EDGE_MARGIN·σ*_N/σ*_1) (:func:`gd_rate_bound`: the fastest the
#: slowest direction can contract at any step GD survives) by this factor: a tail fitted
#: in the window still carries the decay of faster modes (measured: up to 1.29× the
#: run's own linear rate at κ = 1000, η = 0.5), and EDGE_MARGIN already allows 20 % of
#: step size above the edge.
RATE_SLACK = 1.25
#: κ = 1 is trivial for GD's κ-exponent: all curvatures are equal, the rate is set by η
#: alone (−ln|1 − 2η|, one step at η = ½), there is no condition number to degrade with;
#: GD's exponent is fitted over κ > 1 (theory 1 once 2ησ*_N ≪ 1).
TRIVIAL_KAPPA = 1.0


def target_spectrum(row: pd.Series) -> np.ndarray:
    """The run's target singular values, descending: ``problem.values`` for list/diag
    spectra, else the generator's log- or lin-spaced values from ``problem.kappa``."""
    from muonlab.problems.targets import spectrum

    kind = str(row.get("problem.spectrum", "logspace"))
    if kind in ("list", "diag"):
        return target_values(row)
    rank: Any = row.get("problem.rank")
    if rank is None or (isinstance(rank, float) and math.isnan(rank)):
        rank = row.get("problem.r_star")
    return spectrum(int(rank), kind, float(row["problem.kappa"])).numpy()


def local_level(sigma: np.ndarray) -> float:
    """The relative error below which a run is in its local regime (:data:`LOCAL_FRACTION`)."""
    s = np.asarray(sigma, float)
    return float(LOCAL_FRACTION * s.min() / np.linalg.norm(s))


def gd_rate_bound(sigma: np.ndarray) -> float:
    r"""ρ_max = −ln(1 − 2·EDGE_MARGIN·σ*_N/σ*_1): the per-step contraction of the slowest
    direction (curvature 2σ*_N) at the largest step GD survives (EDGE_MARGIN·η_crit,
    η_crit = 1/σ*_1). ∞ when 2·EDGE_MARGIN·σ*_N/σ*_1 ≥ 1 (near κ = 1 the top curvature,
    not the bottom one, limits GD)."""
    s = np.asarray(sigma, float)
    x = 2 * EDGE_MARGIN * float(s.min()) / float(s.max())
    return -math.log(1 - x) if x < 1 else math.inf


def cost_per_efold(row: pd.Series, path: tuple[np.ndarray, np.ndarray] | None, sigma: np.ndarray
                   ) -> tuple[float, str]:
    """Steps per e-fold of the relative error (1/ρ) in the run's local regime, and how it
    was measured.

    ``levels``: two stored levels ε_a > ε_b inside the local window (≤ :func:`local_level`)
    were reached; 1/ρ = (T(ε_b) − T(ε_a))/ln(ε_a/ε_b) (the slope of steps against ln(1/ε)).
    ``tail``: else, the least-squares contraction of ln(rel_err) over the logged points
    inside the window (≥ :data:`MIN_TAIL_POINTS`); a non-contracting tail costs ∞.
    nan with the reason when the run never entered the window.
    """
    window = local_level(sigma)
    hits = []
    for eps in sorted(EPSILONS, reverse=True):
        col = steps_column(eps)
        if eps <= window and col in row and pd.notna(row[col]):
            hits.append((eps, float(row[col])))
    if len(hits) >= 2:
        (ea, ta), (eb, tb) = hits[0], hits[-1]
        return (tb - ta) / math.log(ea / eb), "levels"
    if path is None:
        return math.nan, "no rel_err trajectory"
    s, v = np.asarray(path[0], float), np.asarray(path[1], float)
    keep = np.isfinite(v) & (v > 0) & (v <= window)
    if keep.sum() < MIN_TAIL_POINTS:
        return math.nan, f"never below the local level {window:.2g}"
    rho = contraction_rate(s[keep], v[keep], tail=1.0)
    if math.isnan(rho):
        return math.nan, "no usable tail"
    return (1.0 / rho if rho > 0 else math.inf), "tail"


def top_mode_error(progress: np.ndarray | None) -> float:
    """|σ_1(W2W1)/σ*_1 − 1| at the last log (``mode_progress`` index 0); nan if none."""
    if progress is None or not len(progress):
        return math.nan
    v = np.asarray(progress, float)
    v = v[np.isfinite(v)]
    return float(abs(v[-1] - 1.0)) if len(v) else math.inf


def _nz(x: float, fmt: str) -> str:
    """``x`` formatted without a negative zero (−0.0004 → +0.000)."""
    if not math.isfinite(x):
        return f"{x}"
    digits = int(fmt.rstrip("f").split(".")[-1])
    return f"{round(x, digits) + 0.0:{fmt}}"


def metric_paths(trajectories: pd.DataFrame | None, metric: str, index: int | None = None
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """run id → (steps, values) of ``metric`` (entry ``index`` of a vector metric), sorted by step."""
    if trajectories is None or trajectories.empty or "metric" not in trajectories:
        return {}
    t = trajectories[trajectories["metric"] == metric]
    if index is not None and "index" in t:
        t = t[t["index"] == index]
    t = t.sort_values("step", kind="stable")
    return {str(rid): (g["step"].to_numpy(), g["value"].to_numpy(float)) for rid, g in t.groupby("run_id", sort=False)}


def _schedule(runs: pd.DataFrame) -> pd.Series:
    return runs["schedule.name"] if "schedule.name" in runs else pd.Series("constant", index=runs.index)


@claim(reads=("runs", "trajectories"))
def muon_anneal_kappa_free(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    r"""Claim (b), annealing without κ: started above GD's edge and annealed
    exponentially, Muon's steps to ε do not grow with κ; GD's stable step stays at the
    edge 2/λ_max, so its rate falls with κ.

    η_crit = 1/σ*_1 (module docstring). Per seed, over the κ sweep (≥ 3 values spanning
    ≥ 2 decades):

    * **Muon, annealed** (geometric η_t = c·η_0·q^t from every η_0 ≥ η_crit whose schedule
      can travel √σ*_1 − α, :func:`~muonlab.claims.seed002.anneal_reach_min`): it reaches a
      common level at every κ (the target, or the finest recorded level all κ reached),
      and the least-squares slope of log(steps) against log κ is within ±0.1
      (:data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`, derived there: a count that moves
      by ≤ 1.5× over 2 decades has |slope| ≤ 0.088; theory 0, the constant C moves the
      count by < 3 steps of ~180). The store's budget must be ≥ 10× Muon's largest step
      count (:data:`~muonlab.claims.seed001.BUDGET_FACTOR`), so GD had room to show a
      rate.
    * **GD's edge** (constant steps): GD is stable (:data:`TOP_TOL`: not diverged, top
      mode within 1 %) at some η < η_crit at every κ, and unstable at every η ≥
      EDGE_MARGIN·η_crit = 1.2·η_crit (the sweep must have such an η): its largest
      stable step is ≤ (1 + 0.2)·2/λ_max.
    * **GD's rate** at its best stable step, per κ: steps per e-fold 1/ρ in its local
      regime (:func:`cost_per_efold`; a κ where GD never got there within the budget is
      reported, not judged). ρ ≤ 1.25·ρ_max(κ) (:func:`gd_rate_bound`, :data:`RATE_SLACK`):
      the sharpness bounds the step, the step bounds the rate. And the κ-exponent of 1/ρ,
      fitted over κ > 1 (:data:`TRIVIAL_KAPPA`) at ≥ 3 measured κ spanning ≥ 2 decades,
      is > 0.5 (:data:`~muonlab.claims.seed001.GD_SLOPE_MIN`: theory 1, as 1/ρ →
      κ/(2ησ*_1) once 2ησ*_N ≪ 1; half of it allows the curvature of −ln(1 − x) near the
      smallest κ).

    Every seed must hold. Muon at a constant step above the edge and GD annealed (the
    grid's other corners) are described, not judged.
    """
    name = "muon_anneal_kappa_free"
    if runs.empty or "optimizer.name" not in runs or "problem.kappa" not in runs:
        return decide(name, SEED, "κ sweep with annealing.", [], reasons=["no runs in the store"])
    runs = runs[runs["status"] != "failed"] if "status" in runs else runs
    eps_max = level_for(runs)
    col_max = steps_column(eps_max)
    sched = _schedule(runs)
    paths = metric_paths(trajectories, "rel_err")
    tops = {rid: v for rid, (_, v) in metric_paths(trajectories, "mode_progress", 0).items()}
    reasons: list[str] = []
    kappas = sorted(float(k) for k in runs["problem.kappa"].unique())
    if len(kappas) < 3 or kappas[-1] / kappas[0] < 100:
        reasons.append(f"need >= 3 κ spanning >= 2 decades, got {', '.join(f'{k:g}' for k in kappas)}")
    if not tops:
        reasons.append("the store has no mode_progress trajectories (GD's top mode)")
    sigma_of = {k: target_spectrum(runs[runs["problem.kappa"] == k].iloc[0]) for k in kappas}
    eta_crit = {k: 1.0 / float(s[0]) for k, s in sigma_of.items()}
    mu_all = runs[(runs["optimizer.name"] == "muon") & (sched == "geometric")]
    gd_all = runs[(runs["optimizer.name"] == "gd") & (sched == "constant")]
    if mu_all.empty:
        reasons.append("no annealed (geometric) Muon runs")
    if gd_all.empty:
        reasons.append("no constant-step GD runs")
    elif not (gd_all["optimizer.lr"].astype(float) >= EDGE_MARGIN * min(eta_crit.values())).any():
        reasons.append(f"no GD step >= {EDGE_MARGIN}·η_crit in the sweep")
    budget = int(runs["max_steps"].max()) if "max_steps" in runs else 0
    # Muon's η_0 must start above the edge and be able to travel √σ*_1 − α.
    if not mu_all.empty:
        above = mu_all.apply(lambda r: float(r["optimizer.lr"]) >= eta_crit[float(r["problem.kappa"])]
                             and float(r["optimizer.lr"]) >= anneal_reach_min(sigma_of[float(r["problem.kappa"])], r),
                             axis=1)
        skipped = int((~above).sum())
        mu_all = mu_all[above]
        if mu_all.empty:
            reasons.append("no annealed Muon run starts above the edge with a schedule that can reach σ*_1")
    else:
        skipped = 0
    mu_max = 0.0
    outcomes: list[Outcome] = []
    mu_slopes: list[float] = []
    gd_slopes: list[float] = []
    per_seed: list[str] = []
    unmeasured = 0
    seeds = sorted(set(runs["seed"])) if "seed" in runs else [0]
    for sd in seeds:
        why: list[str] = []
        text: list[str] = []
        mu = mu_all[mu_all["seed"] == sd] if "seed" in mu_all else mu_all
        for eta0, g in mu.groupby("optimizer.lr"):
            ks = sorted(float(k) for k in g["problem.kappa"].unique())
            eps = None
            for e in sorted(EPSILONS):
                if e >= eps_max * (1 - 1e-9) and all(g.loc[g["problem.kappa"] == k, steps_column(e)].notna().any()
                                                     for k in ks):
                    eps = e
                    break
            if eps is None or ks != kappas:
                missed = [k for k in kappas if k not in ks
                          or g.loc[g["problem.kappa"] == k, steps_column(max(EPSILONS))].isna().all()]
                why.append(f"Muon from η_0 = {eta0:g} missed every level at κ = {', '.join(f'{k:g}' for k in missed)}")
                continue
            steps = {k: float(g.loc[g["problem.kappa"] == k, steps_column(eps)].min()) for k in ks}
            mu_max = max(mu_max, *steps.values())
            slope = loglog_slope(list(steps), list(steps.values()))
            mu_slopes.append(slope)
            text.append(f"Muon η_0={eta0:g} steps to {eps:g} " + ", ".join(f"{k:g}: {v:g}" for k, v in steps.items())
                        + f" (κ-slope {_nz(slope, '+.3f')})")
            if not abs(slope) <= MUON_SLOPE_MAX:
                why.append(f"Muon from η_0 = {eta0:g}: κ-slope {_nz(slope, '+.3f')} (need |.| <= {MUON_SLOPE_MAX})")
        gd = gd_all[gd_all["seed"] == sd] if "seed" in gd_all else gd_all
        costs: dict[float, float] = {}
        edges: list[str] = []
        for k in kappas:
            gk = gd[gd["problem.kappa"] == k]
            crit = eta_crit[k]
            stable: list[pd.Series] = []
            for _, r in gk.iterrows():
                # Reaching the level needs the top mode within ε·‖σ*‖/σ*_1 of its target; a run
                # that stopped there between two logs may have logged nothing after step 0.
                reached = col_max in r and pd.notna(r[col_max])
                top = top_mode_error(tops.get(str(r["run_id"])))
                if r.get("status", "ok") == "ok" and (reached or top <= TOP_TOL):
                    stable.append(r)
            etas = [float(r["optimizer.lr"]) for r in stable]
            largest = max(etas, default=math.nan)
            edges.append(f"{k:g}: {largest:g}" if etas else f"{k:g}: none")
            if not any(e < crit for e in etas):
                why.append(f"GD stable at no η < η_crit = {crit:g} at κ = {k:g}")
            if etas and largest >= EDGE_MARGIN * crit:
                why.append(f"GD stable at η = {largest:g} >= {EDGE_MARGIN}·η_crit at κ = {k:g}")
            best = math.nan
            for r in stable:
                c, _how = cost_per_efold(r, paths.get(str(r["run_id"])), sigma_of[k])
                if not math.isnan(c) and (math.isnan(best) or c < best):
                    best = c
            if math.isnan(best):
                unmeasured += 1
                continue
            costs[k] = best
            bound = gd_rate_bound(sigma_of[k])
            if math.isfinite(bound) and not 1.0 / best <= RATE_SLACK * bound:
                why.append(f"GD's rate {1 / best:.3g} at κ = {k:g} > {RATE_SLACK}·ρ_max = {RATE_SLACK * bound:.3g}")
        fit = {k: v for k, v in costs.items() if k != TRIVIAL_KAPPA}
        text.append("GD largest stable η " + ", ".join(edges) + "; GD steps per e-fold "
                    + (", ".join(f"{k:g}: {v:.3g}" for k, v in costs.items()) or "none measured"))
        gslope, unjudged = kappa_exponent(fit, "GD's rate (κ > 1)")
        if unjudged is not None:
            why.append(unjudged)
        else:
            gd_slopes.append(gslope)
            text[-1] += f" (κ-exponent {_nz(gslope, '.2f')})"
            if not gslope > GD_SLOPE_MIN:
                why.append(f"GD's cost per e-fold ∝ κ^{_nz(gslope, '.2f')} (need > {GD_SLOPE_MIN})")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
        per_seed.append(f"[{seed_label(sd)}] " + "; ".join(text))
    if mu_max and budget < BUDGET_FACTOR * mu_max:
        reasons.append(f"budget {budget} < {BUDGET_FACTOR}× Muon's largest step count {mu_max:g}")

    def rng(v: list[float], f: str = "+.3f") -> str:
        return f"[{_nz(min(v), f)}, {_nz(max(v), f)}]" if v else "none"

    detail = (
        f"two-factor MF, σ* log-spaced from 1 to 1/κ, κ = {', '.join(f'{k:g}' for k in kappas)}; η_crit = 2/λ_max = "
        f"1/σ*_1 = {min(eta_crit.values()):g}. Per seed: annealed Muon from every η_0 >= η_crit reaches a common "
        f"level at every κ with |κ-slope of steps| <= {MUON_SLOPE_MAX} (slopes {rng(mu_slopes)}); GD stable "
        f"(not diverged, top mode within {TOP_TOL:g}) below η_crit and at no η >= {EDGE_MARGIN}·η_crit; its steps "
        f"per e-fold in the local regime (rel. err <= {LOCAL_FRACTION:g}·σ*_N/‖σ*‖) at its best stable step have "
        f"rate <= {RATE_SLACK}·(−ln(1 − 2·{EDGE_MARGIN}/κ)) and κ-exponent over κ > 1 > {GD_SLOPE_MIN} (theory 1; "
        f"exponents {rng(gd_slopes, '.2f')}). Budget {budget} >= {BUDGET_FACTOR}× Muon's steps ({mu_max:g}). "
        f"{unmeasured} (seed, κ) points where GD never reached its local regime: reported, not judged; "
        f"{skipped} annealed Muon runs below the edge or the reach: not judged. " + " ".join(per_seed) + "."
    )
    return decide(name, SEED, detail, outcomes, reasons=reasons)
