r"""Claims of seed 002: Rhee, Simon, Karkada, *Muon dynamics in matrix factorization*
(arXiv 2606.30509), on the asymmetric two-factor problem f = ½‖W2 W1 − M*‖²_F (P3).

The seed's text lost its numbers; the settings are the ones SPEC §4 restates (M* =
diag(10/i), N = d = 32) and every threshold below is derived in its docstring from the
dynamics it tests, not fitted to a run.

* :func:`muon_equal_rate` and :func:`muon_smallest_first` — claim (a): from a small
  init, aligned Muon grows every singular value of each factor by η per step, so
  σ_i(W2W1) ≈ (ηt)² for every mode until it reaches σ*_i: mode i arrives at
  t_i ≈ sqrt(σ*_i)/η — all modes at the same rate, hence the smallest first.
* :func:`gd_largest_first` — claim (a), the contrast: GD is saddle-to-saddle, largest
  mode first.
* :func:`muon_stable_above_gd_edge` — claim (b): Muon stays stable far above GD's
  critical step 2/λ_max(∇²f), and converges under exponential annealing.
* :func:`conservation_laws` — claim (c): GD conserves W2ᵀW2 − W1W1ᵀ, Muon conserves
  sqrt(W2ᵀW2) − sqrt(W1W1ᵀ); each visibly breaks the other's invariant.
* :func:`two_step_alignment` — claim (e): the ``spike_anneal`` schedule aligns the two
  factors in two steps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from muonlab.claims.base import Claim, claim, verdict
from muonlab.claims.modes import (
    RANK_CORR,
    SQRT_LAW_TOL,
    arrival_data,
    largest_first_claim,
    law_claim,
    listing,
    missing_modes,
    spearman,
    target_values,
)

__all__ = ["conservation_laws", "gd_largest_first", "muon_equal_rate", "muon_smallest_first",
           "muon_stable_above_gd_edge", "two_step_alignment"]

SEED = "002"

# The mode-arrival thresholds (FRACTION, RANK_CORR, SQRT_LAW_TOL) and their reasons are
# in muonlab.claims.modes, shared with seed 000.
#: Conservation: the conserved invariant's norm may drift by ≤ 10 % of its value at
#: t* (discrete steps of size η ≪ 1 conserve the flows' invariants up to O(η) per unit
#: time), while the other optimizer's invariant must change by ≥ 50 %.
CONSERVED_DRIFT = 0.10
BROKEN_CHANGE = 0.50
T_STAR = 80  # the seed's reference time for the invariants
#: Stability sweep: GD must fail (diverge or not reach ε) at every η ≥ 1.2·η_crit, and
#: the sweep must reach ≥ 10·η_crit for Muon's stability to say anything.
EDGE_MARGIN = 1.2
SWEEP_SPAN = 10.0
#: Annealed Muon: max/min of its steps to ε over all η_0 ≥ η_crit at most this
#: ("fast, without dependence on the initial step": η_0 only adds log(η_0) steps).
ANNEAL_RATIO_MAX = 1.5


@claim(reads=("runs", "trajectories"))
def muon_equal_rate(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), Muon: every mode grows at the same rate.

    Aligned Muon adds η to every singular value of each factor per step, so
    σ_i(W2W1) = (ηt)² for every mode until it reaches σ*_i, and mode i arrives
    (σ_i ≥ 0.9·σ*_i) at t_i = sqrt(0.9·σ*_i)/η. Passes when, in the median constant-step
    Muon run, at least 3/4 of the modes arrived and the median over modes of
    |t_i − law_i|/law_i is at most 15 % (:func:`muonlab.claims.modes.law_claim`).
    """
    name = "muon_equal_rate"
    missing = missing_modes(runs, trajectories, name, SEED)
    if missing is not None:
        return missing
    data = arrival_data(runs, trajectories, "muon", constant_only=True)
    return law_claim(name, SEED, "Muon (constant step)", data, need_order=False)



@claim(reads=("runs", "trajectories"))
def muon_smallest_first(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), Muon: the smallest modes converge first.

    Passes when, in the median constant-step Muon run, Spearman(σ*_i, t_i) ≥ 0.9 over all
    modes that arrived (larger targets arrive later; a strict order gives 1, and 0.9
    allows a few swaps among nearly equal tail values), with at least 3/4 arrived. All
    modes count: the claim is about the order of the whole spectrum.
    """
    name = "muon_smallest_first"
    missing = missing_modes(runs, trajectories, name, SEED)
    if missing is not None:
        return missing
    data = arrival_data(runs, trajectories, "muon", constant_only=True)
    if not data:
        return Claim(name, SEED, False, "no successful constant-step Muon runs")
    corr = [spearman(sigma, t) for sigma, t, _ in data]
    frac = float(np.median([np.isfinite(t).mean() for _, t, _ in data]))
    c = float(np.median(corr))
    sigma, t, pred = data[int(np.argsort(corr)[len(corr) // 2])]
    late = [f"σ*={sigma[i]:.3g} at t={t[i]:g} (law {pred[i]:.0f})" for i in range(len(sigma))
            if np.isfinite(t[i]) and t[i] > (1 + SQRT_LAW_TOL) * pred[i]]
    reasons = []
    if not frac >= 0.75:
        reasons.append(f"only {frac:.0%} of the modes arrived")
    if not c >= RANK_CORR:
        reasons.append(f"Spearman(σ*, t) {c:.3f} < {RANK_CORR}")
    detail = (f"Muon, {len(data)} runs: {listing(sigma, t)}; Spearman(σ*, t) = {c:.3f} over all modes "
              f"(need >= {RANK_CORR}). Modes arriving later than the equal-rate law: "
              f"{'; '.join(late) if late else 'none'}.")
    return verdict(name, SEED, detail, reasons, see="see docs/findings.md F4")



@claim(reads=("runs", "trajectories"))
def gd_largest_first(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), GD: saddle-to-saddle learning, the largest modes first.

    Passes when, in the median GD run, Spearman(σ*_i, t_i) ≤ −0.9 over the modes that
    arrived (at least 5 of them: GD does not finish the small modes in the seed's 1000
    steps, which is part of the claim).
    """
    name = "gd_largest_first"
    missing = missing_modes(runs, trajectories, name, SEED)
    if missing is not None:
        return missing
    return largest_first_claim(name, SEED, "GD", arrival_data(runs, trajectories, "gd"), min_arrived=5)



@claim(reads=("runs",))
def muon_stable_above_gd_edge(runs: pd.DataFrame) -> Claim:
    """Claim (b): Muon is stable far above GD's edge and converges under annealing.

    η_crit = 2/λ_max(∇²f) at the balanced minimizer W2 = U√Σ*, W1 = √Σ* Vᵀ, whose top
    Hessian eigenvalue is σ1(W1)² + σ1(W2)² = 2σ*_1, so η_crit = 1/σ*_1 (0.1 for
    M* = diag(10/i)). Passes when, over the sweep (which must reach ≥ 10·η_crit):

    * constant-step GD reaches ε at some η < η_crit and at no η ≥ 1.2·η_crit;
    * constant-step Muon never diverges and ends below its initial error at every η;
    * annealed Muon (η_t = c·η_0·q^t) reaches ε from every η_0 ≥ η_crit, with max/min of
      its step counts ≤ 1.5.
    """
    name = "muon_stable_above_gd_edge"
    if runs.empty or "optimizer.name" not in runs:
        return Claim(name, SEED, False, "no runs in the store")
    from muonlab.claims.base import level_for, steps_column

    eps = level_for(runs)
    col = steps_column(eps)
    eta_crit = 1.0 / float(target_values(runs.iloc[0])[0])
    sched = runs["schedule.name"] if "schedule.name" in runs else pd.Series("constant", index=runs.index)
    gd = runs[(runs["optimizer.name"] == "gd") & (sched == "constant")].sort_values("optimizer.lr")
    mu = runs[(runs["optimizer.name"] == "muon") & (sched == "constant")].sort_values("optimizer.lr")
    mu_ann = runs[(runs["optimizer.name"] == "muon") & (sched == "geometric")].sort_values("optimizer.lr")
    reasons = []
    top = float(runs["optimizer.lr"].max()) if len(runs) else 0.0
    if top < SWEEP_SPAN * eta_crit:
        reasons.append(f"the sweep stops at η = {top:g} < {SWEEP_SPAN:g}·η_crit")
    gd_ok = gd[gd[col].notna()]
    below = gd_ok[gd_ok["optimizer.lr"] < eta_crit]
    above_ok = gd_ok[gd_ok["optimizer.lr"] >= EDGE_MARGIN * eta_crit]
    if gd.empty or below.empty:
        reasons.append(f"GD never reached {eps:g} below η_crit (no baseline)")
    if not above_ok.empty:
        reasons.append(f"GD reached {eps:g} at η = {above_ok['optimizer.lr'].min():g} ≥ {EDGE_MARGIN}·η_crit")
    gd_div = gd[gd["status"] == "diverged"]
    mu_div = mu[mu["status"] != "ok"]
    if mu.empty:
        reasons.append("no constant-step Muon runs")
    if not mu_div.empty:
        reasons.append(f"Muon {mu_div['status'].iloc[0]} at η = {mu_div['optimizer.lr'].min():g}")
    bad = mu[~(mu["final_rel_err"] < 1.0)]
    if not bad.empty:
        reasons.append(f"Muon ended above its initial error at η = {bad['optimizer.lr'].min():g}")
    ann = mu_ann[mu_ann["optimizer.lr"] >= eta_crit]
    ratio = float("nan")
    if ann.empty:
        reasons.append("no annealed Muon runs from η_0 ≥ η_crit")
    else:
        missed = ann[ann[col].isna()]
        if not missed.empty:
            reasons.append(f"annealed Muon missed {eps:g} from η_0 = {missed['optimizer.lr'].min():g}")
        else:
            ratio = float(ann[col].max() / ann[col].min())
            if not ratio <= ANNEAL_RATIO_MAX:
                reasons.append(f"annealed Muon max/min steps {ratio:.2f} > {ANNEAL_RATIO_MAX}")
    detail = (
        f"η_crit = 2/λ_max = 1/σ*_1 = {eta_crit:g}; sweep η ∈ [{runs['optimizer.lr'].min():g}, {top:g}]. "
        f"GD (constant) reaches {eps:g} up to η = "
        f"{below['optimizer.lr'].max() if not below.empty else float('nan'):g}, diverges from η = "
        f"{gd_div['optimizer.lr'].min() if not gd_div.empty else float('nan'):g} "
        f"({len(gd_div)}/{len(gd)} runs diverged). Muon (constant): {len(mu) - len(mu_div)}/{len(mu)} runs stable, "
        f"final rel. err {mu['final_rel_err'].min():.3g}–{mu['final_rel_err'].max():.3g} (∝ η). "
        f"Muon annealed from η_0 ≥ η_crit: {len(ann) - int(ann[col].isna().sum())}/{len(ann)} reached {eps:g} in "
        f"{ann[col].min() if len(ann) else float('nan')}–{ann[col].max() if len(ann) else float('nan')} steps "
        f"(max/min {ratio:.2f}, need <= {ANNEAL_RATIO_MAX})."
    )
    return verdict(name, SEED, detail, reasons)


@claim(reads=("runs", "trajectories"))
def conservation_laws(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (c): each optimizer conserves its own invariant and breaks the other's.

    With N(t) the Frobenius norm of an invariant, drift = max_{t ≥ t*} |N(t) − N(t*)| /
    N(t*) with t* = 80 (the seed's reference time). Passes when, in the median run:
    GD's drift of ‖W2ᵀW2 − W1W1ᵀ‖ ≤ 10 % and Muon's drift of
    ‖sqrt(W2ᵀW2) − sqrt(W1W1ᵀ)‖ ≤ 10 % (the flows conserve them exactly; steps of size η
    ≪ 1 up to O(η)), while GD changes the Muon invariant and Muon changes the GD
    invariant by ≥ 50 % each (so "conserved" is not just "nothing moves").
    """
    name = "conservation_laws"
    if runs.empty or trajectories is None or trajectories.empty:
        return Claim(name, SEED, False, "no runs or no trajectories in the store")
    need = {"gf_invariant_norm", "muon_invariant_norm"}
    if not need <= set(trajectories["metric"]):
        return Claim(name, SEED, False, f"the store lacks {sorted(need - set(trajectories['metric']))}")

    def drift(opt: str, metric: str) -> float:
        vals = []
        for rid in runs[(runs["optimizer.name"] == opt) & (runs["status"] == "ok")]["run_id"]:
            s = trajectories[(trajectories["run_id"] == rid) & (trajectories["metric"] == metric)]
            s = s.set_index("step")["value"].sort_index()
            s = s[s.index >= T_STAR]
            if len(s) < 2 or not s.iloc[0] > 0:
                continue
            vals.append(float((s - s.iloc[0]).abs().max() / s.iloc[0]))
        return float(np.median(vals)) if vals else float("nan")

    gd_own, gd_other = drift("gd", "gf_invariant_norm"), drift("gd", "muon_invariant_norm")
    mu_own, mu_other = drift("muon", "muon_invariant_norm"), drift("muon", "gf_invariant_norm")
    reasons = []
    if not gd_own <= CONSERVED_DRIFT:
        reasons.append(f"GD's own invariant drifts {gd_own:.3f}")
    if not mu_own <= CONSERVED_DRIFT:
        reasons.append(f"Muon's own invariant drifts {mu_own:.3f}")
    if not gd_other >= BROKEN_CHANGE:
        reasons.append(f"GD changes the Muon invariant by only {gd_other:.3f}")
    if not mu_other >= BROKEN_CHANGE:
        reasons.append(f"Muon changes the GD invariant by only {mu_other:.3f}")
    detail = (f"relative change after t* = {T_STAR}: GD keeps ‖W2ᵀW2 − W1W1ᵀ‖ within {gd_own:.3g} "
              f"(need <= {CONSERVED_DRIFT}) and changes ‖√(W2ᵀW2) − √(W1W1ᵀ)‖ by {gd_other:.3g}; Muon keeps "
              f"‖√(W2ᵀW2) − √(W1W1ᵀ)‖ within {mu_own:.3g} (need <= {CONSERVED_DRIFT}) and changes "
              f"‖W2ᵀW2 − W1W1ᵀ‖ by {mu_other:.3g} (both need >= {BROKEN_CHANGE}).")
    return verdict(name, SEED, detail, reasons)



#: Two-step alignment: near-perfect means a per-direction alignment ≥ 0.99 at step 2,
#: from a start ≤ 0.5 (a random orthogonal pair scores ≈ 1/d; 0.5 only rules out a
#: start that is already aligned), and the schedule must then converge: rel. err ≤ 1e-3
#: by the last step (the seed's 16).
ALIGNED = 0.99
START_MAX = 0.5
TWO_STEP_ERR = 1e-3


@claim(reads=("runs", "trajectories"))
def two_step_alignment(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (e): ``spike_anneal`` (η_0 = α, η_1 = sqrt(σ_max(M*)), then halving) aligns
    the factors in two steps.

    Uses the runs with the spike schedule and lr = sqrt(σ*_1) (the seed's η_1). Passes
    when, over seeds (median), the direction-by-direction alignment of W2's right and
    W1's left singular vectors is ≤ 0.5 at step 0 and ≥ 0.99 at step 2, and the final
    relative error is ≤ 1e-3. A constant small step is reported for contrast.
    """
    name = "two_step_alignment"
    if runs.empty or trajectories is None or trajectories.empty:
        return Claim(name, SEED, False, "no runs or no trajectories in the store")
    if "matched_alignment" not in set(trajectories["metric"]):
        return Claim(name, SEED, False, "the store has no matched_alignment trajectories")
    peak = math.sqrt(float(target_values(runs.iloc[0])[0]))
    ok = runs[runs["status"] == "ok"]
    spike = ok[(ok["schedule.name"] == "spike_anneal") & np.isclose(ok["optimizer.lr"], peak)]
    const = ok[ok["schedule.name"] == "constant"].sort_values("optimizer.lr")
    const = const[const["optimizer.lr"] == const["optimizer.lr"].min()] if len(const) else const
    al = trajectories[trajectories["metric"] == "matched_alignment"]

    def at(group: pd.DataFrame, step: int) -> float:
        v = al[al["run_id"].isin(group["run_id"]) & (al["step"] == step)]["value"]
        return float(v.median()) if len(v) else float("nan")

    reasons = []
    if spike.empty:
        reasons.append(f"no spike_anneal runs with lr = sqrt(σ*_1) = {peak:g}")
    a0, a1, a2 = at(spike, 0), at(spike, 1), at(spike, 2)
    err = float(spike["final_rel_err"].median()) if len(spike) else float("nan")
    if not a0 <= START_MAX:
        reasons.append(f"already aligned at step 0 ({a0:.3f})")
    if not a2 >= ALIGNED:
        reasons.append(f"alignment {a2:.3f} < {ALIGNED} at step 2")
    if not err <= TWO_STEP_ERR:
        reasons.append(f"final rel. err {err:.3g} > {TWO_STEP_ERR:g}")
    steps = int(spike["steps"].max()) if len(spike) else 0
    contrast = (f" Constant η = {const['optimizer.lr'].iloc[0]:g} for contrast: alignment {at(const, 2):.3f} at "
                f"step 2, final rel. err {float(const['final_rel_err'].median()):.3g}." if len(const) else "")
    detail = (f"spike_anneal (η_0 = α, η_1 = {peak:g}, halving), {len(spike)} runs: per-direction alignment "
              f"{a0:.3f} → {a1:.3f} → {a2:.3f} at steps 0, 1, 2 (need <= {START_MAX} then >= {ALIGNED}); "
              f"rel. err {err:.3g} after {steps} steps (need <= {TWO_STEP_ERR:g}).{contrast}")
    return verdict(name, SEED, detail, reasons)

