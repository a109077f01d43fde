r"""Seed 001, Appendix A / Figure 3: Muon's and ScaledGD's preconditioners along a Muon run.

Experiment ``p1_preconditioners`` (symmetric MF, small init, the plateau schedule of the
κ sweep) logs the metrics of :mod:`muonlab.engine.preconditioner_metrics`. The seed shows
heatmaps and says both preconditioners share a block-diagonal, non-diagonal pattern; we
state it with measures (derivations in ``docs/preconditioners_and_transformer.md``):

* :func:`muon_scaledgd_similar` — in the local phase (rel. error ≤ :data:`LOCAL_LEVEL`,
  App. A's "local region"), the median over logged steps of cos∠(msign(G), G(XᵀX)⁻¹)
  is ≥ :data:`COS_MIN` per seed; the early (growth) phase is reported, not required.
* :func:`preconditioners_not_diagonal` — in the local phase both preconditioners are
  ≥ :data:`OFFDIAG_MIN` away from the nearest diagonal one (normalized), and Muon's
  direction is closer to ScaledGD's than to SignGD's (Adam-like) by ≥ :data:`COS_MARGIN`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from muonlab.claims.base import Claim, Outcome, claim, decide, seed_label

SEED = "001"

#: App. A's local region: the iterate is close to the target. Rel. error 0.1 is the
#: end of the growth phase from small init (every mode within 10 % in norm).
LOCAL_LEVEL = 0.1

#: cos² ≥ 1/2: more than half of Muon's (unit-singular-value) update, in squared norm,
#: lies along ScaledGD's direction. Random directions in R^{n r} have cos ≈ 1/√(nr)
#: (0.08 at n = 40, r = 4), so this is far from chance.
COS_MIN = 1.0 / math.sqrt(2.0)

#: ‖offdiag(P)‖_F/‖P‖_F ≥ 1/4: the best diagonal (Adam-like) preconditioner misses at
#: least a quarter of P in Frobenius norm (1/16 of its squared norm); 0 for a diagonal P.
OFFDIAG_MIN = 0.25

#: Muon's direction must be closer to ScaledGD's than to sign(G): cosines apart by ≥ 0.1
#: (an angle difference of several degrees, beyond the step-to-step spread of either).
COS_MARGIN = 0.1

_METRICS = ("precond_cos_update", "precond_cos_matrix", "precond_offdiag_muon", "precond_offdiag_scaledgd",
            "precond_cos_sign")


def _phases(runs: pd.DataFrame, trajectories: pd.DataFrame | None) -> pd.DataFrame:
    """Wide per (run_id, step) table of rel_err and the precond metrics, with the runs' seed and κ."""
    if trajectories is None or not len(trajectories) or not len(runs):
        return pd.DataFrame()
    t = trajectories[trajectories["metric"].isin(("rel_err", *_METRICS))]
    if not len(t):
        return pd.DataFrame()
    w = t.pivot_table(index=["run_id", "step"], columns="metric", values="value").reset_index()
    if not set(_METRICS) <= set(w.columns) or "rel_err" not in w:
        return pd.DataFrame()
    mu = runs[(runs["optimizer.name"] == "muon") & (runs["status"] == "ok")]
    return w.merge(mu[["run_id", "seed", "problem.kappa"]], on="run_id")


def _missing(name: str, detail: str) -> Claim:
    return decide(name, SEED, detail, [], reasons=["no Muon runs with the precond_* metrics in the store"])


@claim(reads=("runs", "trajectories"))
def muon_scaledgd_similar(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Local phase: median cos∠(msign(G), G(XᵀX)⁻¹) ≥ :data:`COS_MIN` for every κ of the seed."""
    detail = (f"cos∠(Muon's msign(∇f), ScaledGD's ∇f(XᵀX)⁻¹), median over logged steps with rel. err ≤ "
              f"{LOCAL_LEVEL:g}: ≥ {COS_MIN:.3f} (cos² ≥ 1/2).")
    w = _phases(runs, trajectories)
    if not len(w):
        return _missing("muon_scaledgd_similar", detail)
    outcomes, local_all, early_all = [], [], []
    for seed, g in w.groupby("seed"):
        ok, parts = True, []
        for kappa, gk in g.groupby("problem.kappa"):
            loc = gk[gk["rel_err"] <= LOCAL_LEVEL]["precond_cos_update"].dropna()
            early = gk[gk["rel_err"] > LOCAL_LEVEL]["precond_cos_update"].dropna()
            if not len(loc):
                ok = False
                parts.append(f"κ={kappa:g}: never reaches the local phase")
                continue
            m = float(np.median(loc))
            local_all.append(m)
            e = float(np.median(early)) if len(early) else float("nan")
            early_all.append(e)
            ok &= m >= COS_MIN
            parts.append(f"κ={kappa:g}: local {m:.3f}, early {e:.3f}")
        outcomes.append(Outcome(seed_label(seed), ok, "; ".join(parts)))
    if local_all:
        detail += (f" Local medians {min(local_all):.3f}…{max(local_all):.3f}; early (growth) phase, not required: "
                   f"{np.nanmin(early_all):.3f}…{np.nanmax(early_all):.3f}.")
    return decide("muon_scaledgd_similar", SEED, detail, outcomes)


@claim(reads=("runs", "trajectories"))
def preconditioners_not_diagonal(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Local phase: both preconditioners are ≥ :data:`OFFDIAG_MIN` from the nearest diagonal one
    (medians over steps), and median cos(Muon, ScaledGD) − median cos(Muon, sign) ≥ :data:`COS_MARGIN`."""
    detail = (f"Rel. err ≤ {LOCAL_LEVEL:g}: ‖offdiag(P)‖/‖P‖ ≥ {OFFDIAG_MIN} for P = (GᵀG)^(-1/2) and (XᵀX)⁻¹, "
              f"and Muon's direction closer to ScaledGD's than to sign(∇f) by ≥ {COS_MARGIN} in cosine.")
    w = _phases(runs, trajectories)
    if not len(w):
        return _missing("preconditioners_not_diagonal", detail)
    outcomes, offs, gaps = [], [], []
    for seed, g in w.groupby("seed"):
        ok, parts = True, []
        for kappa, gk in g.groupby("problem.kappa"):
            loc = gk[gk["rel_err"] <= LOCAL_LEVEL]
            if not len(loc):
                ok = False
                parts.append(f"κ={kappa:g}: never reaches the local phase")
                continue
            om = float(loc["precond_offdiag_muon"].median())
            os_ = float(loc["precond_offdiag_scaledgd"].median())
            gap = float(loc["precond_cos_update"].median() - loc["precond_cos_sign"].median())
            offs += [om, os_]
            gaps.append(gap)
            ok &= om >= OFFDIAG_MIN and os_ >= OFFDIAG_MIN and gap >= COS_MARGIN
            parts.append(f"κ={kappa:g}: offdiag Muon {om:.2f}, ScaledGD {os_:.2f}; cos gap {gap:.2f}")
        outcomes.append(Outcome(seed_label(seed), ok, "; ".join(parts)))
    if offs:
        detail += (f" Off-diagonal fractions {min(offs):.2f}…{max(offs):.2f}; "
                   f"cosine gaps {min(gaps):.2f}…{max(gaps):.2f}.")
    return decide("preconditioners_not_diagonal", SEED, detail, outcomes)
