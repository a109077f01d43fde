r"""Claims of seed 000: Kang, Yun, Shin, Cho, Yun, *Uniform Spectral Growth and
Convergence of Muon in LoRA-Style Matrix Factorization* (arXiv 2602.06385), on
P4: f = ½‖W* − AB‖²_F from A_0 = 0, B_0 = γ·N(0,1).

The mechanism is the one seed 002's claim (a) uses: after a short alignment phase,
spectral steps add the same amount to every singular value of each factor, so
sqrt(σ_i(AB)) grows at one rate for every i and mode i reaches 0.9·σ*_i at

    t_i = sqrt(0.9·σ*_i)/η   (SpecGD with step η),   τ_i = sqrt(0.9·σ*_i)   (SpecGF),

smallest first; gradient descent reaches the largest first. The arrival times, the
law, its tolerance and the rank correlation are in :mod:`muonlab.claims.modes`
(derivations there), shared with seed 002.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from muonlab.claims.base import Claim, Outcome, claim, decide, seed_label
from muonlab.claims.modes import (
    arrival_data,
    largest_first_claim,
    law_claim,
    missing_modes,
)
from muonlab.config.run import step_clock

__all__ = ["gd_largest_first", "specgd_equal_rate", "specgf_converges_globally", "specgf_equal_rate",
           "underparameterized_top_modes"]

SEED = "000"


def _law_claim(runs, trajectories, name: str, what: str, optimizer: str, exact: bool | None) -> Claim:
    # Every mode is judged (the largest error over modes): seed 000 has 5 (or r = 3) modes,
    # all of which the paper's Theorem states follow the law.
    missing = missing_modes(runs, trajectories, name, SEED)
    if missing is not None:
        return missing
    return law_claim(name, SEED, what, arrival_data(runs, trajectories, optimizer, exact=exact), need_order=True,
                     statistic="max")


@claim(reads=("runs", "trajectories"))
def specgd_equal_rate(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), discrete: SpecGD (r = r*) reaches σ*_i at t_i = sqrt(0.9σ*_i)/η, smallest first.

    Per seed: the largest relative arrival error over the 5 modes, max_i |t_i − law_i|/law_i,
    is ≤ 15 % (every mode arrived; the tolerance bounds the law's neglected init scale
    and alignment steps, ≤ 7 steps against the shortest arrival, 47 steps — derivation in
    :data:`muonlab.claims.modes.SQRT_LAW_TOL`), and Spearman(σ*_i, t_i) ≥ 0.9. Every
    seed must hold.
    """
    return _law_claim(runs, trajectories, "specgd_equal_rate", "SpecGD (r = r*)", "specgd", True)


@claim(reads=("runs", "trajectories"))
def specgf_equal_rate(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), continuous: SpecGF reaches σ*_i at flow time τ_i = sqrt(0.9σ*_i).

    Same rule as :func:`specgd_equal_rate` (largest error over modes ≤ 15 % in every
    seed), with the record interval Δτ as the step: the shortest arrival is
    τ = sqrt(0.225) = 0.47, i.e. 47 records of Δτ = 0.01.
    """
    return _law_claim(runs, trajectories, "specgf_equal_rate", "SpecGF (adaptive ODE)", "specgf", None)


@claim(reads=("runs", "trajectories"))
def underparameterized_top_modes(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (b): with r < r*, SpecGD's top r modes follow the same law: per seed, the
    largest relative arrival error over the top r modes ≤ 15 % and Spearman ≥ 0.9
    (smallest of them first)."""
    return _law_claim(runs, trajectories, "underparameterized_top_modes", "SpecGD (r < r*, top r modes)",
                      "specgd", False)


@claim(reads=("runs", "trajectories"), name="gd_largest_first_lora")
def gd_largest_first(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (a), the contrast: gradient descent (r = r*) reaches the largest σ*_i first.

    Per seed: Spearman(σ*_i, t_i) ≤ −0.9 over the modes that arrived, with at least 3
    arrived (GD reaches mode i after ~log(σ*_i/γ²)/(ησ*_i) steps: the two smallest
    need 280 and 550 steps at η = 0.05, so 3 is what a short budget guarantees). Every
    seed must hold.
    """
    name = "gd_largest_first_lora"
    missing = missing_modes(runs, trajectories, name, SEED)
    if missing is not None:
        return missing
    data = arrival_data(runs, trajectories, "gd", exact=True)
    return largest_first_claim(name, SEED, "GD (r = r*)", data, min_arrived=3)



#: Global convergence: the loss gap f − f* at the end of the flow must be ≤ 1e-10 of the
#: initial loss in every run (float64 resolves f to ~1e-16 relative; 1e-10 leaves room
#: for the solver's tolerances), i.e. a global minimum, from every random init tried.
GAP_END = 1e-10
#: Exponential local rate: over the tail where 1e-12 < gap/f(0) < 1e-3, log(gap) against
#: τ must fit a line with negative slope and R² ≥ 0.95 (exponential decay; a power law
#: would bend on the log scale over those nine decades).
R2_MIN = 0.95


@claim(reads=("runs", "trajectories"))
def specgf_converges_globally(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Claim (c) and Prop. 6.7: SpecGF reaches a global minimum from every init tried,
    with and without ℓ2, and the gap f − f* decays exponentially near the minimum.

    Judged per run (each run is one random init at one ℓ2; the claim is "from every
    init"): a run holds when it ends with gap ≤ 1e-10·f(0) and log(gap) over the window
    1e-12 < gap/f(0) < 1e-3 fits a line in τ with negative slope and R² ≥ 0.95. Every
    run must hold.
    """
    name = "specgf_converges_globally"
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, "SpecGF.", [], unit="run", reasons=["no runs or no trajectories in the store"])
    if "dist_to_opt" not in set(trajectories["metric"]):
        return decide(name, SEED, "SpecGF.", [], unit="run", reasons=["the store has no dist_to_opt trajectories"])
    sub = runs[runs["optimizer.name"] == "specgf"]
    outcomes, rates, ends, r2s = [], [], [], []
    for _, row in sub.sort_values([c for c in ("problem.l2", "seed") if c in sub]).iterrows():
        l2 = float(row["problem.l2"]) if "problem.l2" in row else 0.0
        unit = f"ℓ2={l2:g}/seed {seed_label(row.get('seed', '?'))}"
        if row["status"] != "ok":
            outcomes.append(Outcome(unit, False, f"run {row['status']}"))
            continue
        g = trajectories[(trajectories["run_id"] == row["run_id"]) & (trajectories["metric"] == "dist_to_opt")]
        g = g.set_index("step")["value"].sort_index()
        f0 = trajectories[(trajectories["run_id"] == row["run_id"]) & (trajectories["metric"] == "loss")
                          & (trajectories["step"] == 0)]["value"]
        f0 = float(f0.iloc[0]) if len(f0) else float(g.iloc[0])
        rel = g.clip(lower=0.0) / f0
        end = float(rel.iloc[-1])
        ends.append(end)
        why = []
        if not end <= GAP_END:
            why.append(f"ends at gap {end:.2g} of f(0)")
        tau = rel.index.to_numpy() * step_clock(row)
        win = (rel > 1e-12) & (rel < 1e-3)
        if win.sum() < 4:
            why.append("fewer than 4 points in the exponential window")
        else:
            x, y = tau[win.to_numpy()], np.log(rel[win].to_numpy())
            slope, icpt = np.polyfit(x, y, 1)
            resid = y - (slope * x + icpt)
            r2 = 1.0 - float(resid @ resid) / float(((y - y.mean()) @ (y - y.mean())) or 1.0)
            rates.append(-slope)
            r2s.append(r2)
            if not (slope < 0 and r2 >= R2_MIN):
                why.append(f"tail not exponential (slope {slope:.3g}, R² {r2:.3f})")
        outcomes.append(Outcome(unit, not why, "; ".join(why)))
    reasons = [] if len(sub) else ["no specgf runs"]
    l2s = ", ".join(f"{v:g}" for v in sorted(sub["problem.l2"].unique())) if "problem.l2" in sub else "?"
    betas = ", ".join(f"{b:g}" for b in sorted(sub["optimizer.beta"].unique())) if "optimizer.beta" in sub else "?"
    detail = (f"SpecGF (β = {betas}), {len(sub)} runs, ℓ2 ∈ {{{l2s}}}; per run, final gap (f − f*)/f(0) <= "
              f"{GAP_END:g} and an exponential tail (R² >= {R2_MIN}). Final gaps <= "
              f"{max(ends, default=float('nan')):.2g}; local rate −d log(gap)/dτ = "
              f"{min(rates, default=float('nan')):.3g}–{max(rates, default=float('nan')):.3g}, "
              f"R² >= {min(r2s, default=float('nan')):.3f}.")
    return decide(name, SEED, detail, outcomes, unit="run", reasons=reasons, most=4)
