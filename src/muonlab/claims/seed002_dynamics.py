r"""Seed 002 (Rhee, Simon, Karkada, *Muon dynamics in matrix factorization*, arXiv
2606.30509): early alignment and its rate, the balanced solution, matrix-form
conservation, and the absence of saddle-to-saddle plateaus under Muon — on P3,
f = ½‖W2 W1 − M*‖²_F. The derivations of every prediction and threshold are in
``docs/seed002_dynamics.md``; each constant below says where it comes from.

* :func:`muon_alignment_rate` — planted signal, Muon with η = 0.2α: the block
  misalignment μ(t) decays as a power law whose exponent our linearization predicts
  (2 when d ≥ n; a spectrum-weighted mixture of 2(1 ∓ σ_j/σ_i) when d ≤ rank), and μ(t)
  does not depend on α at fixed η/α.
* :func:`gd_alignment_linear_theory` — GD on the same targets: μ(t) follows the exact
  linear-phase prediction from the target's spectrum while W2W1 ≪ M*.
* :func:`balanced_solution` — both optimizers end balanced (‖W1W1ᵀ − W2ᵀW2‖ ≤ 1 % of
  ‖M*‖) from the smallest init, and no less balanced than from the largest.
* :func:`conservation_matrix_form` — ⟨Δ(t), Δ(t*)⟩/‖Δ(t*)‖² stays at 1 and
  ‖Δ(t) − Δ(t*)‖/‖Δ(t*)‖ stays small for each optimizer's own invariant.
* :func:`gd_one_plateau_per_mode`, :func:`muon_no_saddle_to_saddle` — the count of loss
  plateaus (rule: :func:`count_plateaus`) is the number of target modes for GD and at
  most one (the initial one) for Muon.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from muonlab.claims.base import Claim, Outcome, claim, decide, run_metric, seed_label
from muonlab.claims.modes import target_values
from muonlab.engine.dynamics_metrics import singular_blocks
from muonlab.problems.targets import generator, planted_target

__all__ = ["balanced_solution", "conservation_matrix_form", "count_plateaus", "gd_alignment_linear_theory",
           "gd_linear_misalignment", "gd_linear_prediction", "gd_one_plateau_per_mode", "gd_tolerance",
           "muon_alignment_rate", "muon_mixture", "muon_no_saddle_to_saddle", "muon_slope_interval"]

SEED = "002"

# --- item 1: alignment rate ------------------------------------------------------------
#: The step size the seed uses for the planted experiment: Muon η = 0.2α (SPEC §4).
ETA_OVER_ALPHA = 0.2
#: Fit window (steps) of the log–log slope of μ(t): from well after the first steps (the
#: factors' init, of operator norm ≈ t0·η with t0 ≤ 10, no longer dominates) to the seed's
#: 100 steps.
T1, T2 = 30, 100
#: Slope tolerance around the predicted interval: the linearization drops relative
#: O(μ) terms in log μ at each end of the window; with μ(T1) ≤ 0.1 (measured and
#: predicted for d ≤ rank; far smaller for d ≥ n) two ends over ln(T2/T1) = 1.20 give
#: 2·0.1/1.2 ≈ 0.2.
SLOPE_TOL = 0.2
#: α-independence at fixed η/α: the dropped term is the product W2W1 against M*, of
#: relative size ≤ ((T2·η + 2α)²)/σ_r ≈ (22α)²/3.6 ≤ 2e-4 at α = 1e-3, so the curves for
#: different α agree to far better than 1 % (|Δ ln μ| ≤ 0.01).
ALPHA_TOL = 0.01
#: GD: μ(t) within gd_tolerance (3 standard deviations of the off-block mass, from the
#: effective number of pairs that carry it) of the linear theory, judged at every logged
#: step ≥ 1 of the linear phase, rel. err ≥ LINEAR_PHASE.
LINEAR_PHASE = 0.99
MIN_LINEAR_POINTS = 5


def _planted_spectrum(row: pd.Series) -> np.ndarray:
    n, rank, snr = int(row["problem.n_out"]), int(row["problem.rank"]), float(row["problem.snr"])
    M = planted_target(n, rank, snr, generator(int(row["seed"]), "target"))
    return torch.linalg.svdvals(M).numpy()


def muon_mixture(s: np.ndarray, rank: int, tau: np.ndarray) -> np.ndarray:
    """Our linear-theory prediction (up to a constant) of Muon's misalignment when the
    factors have d ≤ rank columns: Σ_{i ≤ rank < j} [τ^{−2(1−k_ij)} + τ^{−2(1+k_ij)}],
    k_ij = σ_j/σ_i (the sum and difference modes of each signal–noise tilt)."""
    sig, noi = s[:rank], s[rank:]
    k = noi[None, :] / sig[:, None]
    tau = np.asarray(tau, dtype=float)[..., None, None]
    return (tau ** (-2 * (1 - k)) + tau ** (-2 * (1 + k))).sum((-2, -1))


def muon_slope_interval(s: np.ndarray, n: int, d: int, rank: int) -> tuple[float, float, str] | None:
    """Predicted log–log slope of μ over steps [T1, T2] as an interval (lo, hi), and the
    regime, for τ = t + t0 with t0 ∈ [0, t0max], t0max = ‖W(0)‖/η ≈ 5(√n + √d)/√max(n, d)
    (the init's top singular value in units of the step). None: no prediction (rank < d < n)."""
    t0max = (math.sqrt(n) + math.sqrt(d)) / math.sqrt(max(n, d)) / ETA_OVER_ALPHA
    lw = math.log(T2 / T1)
    if d >= n:
        vals = [-2.0 * math.log((T2 + t0) / (T1 + t0)) / lw for t0 in (0.0, t0max)]
        regime = "d ≥ n: every off-block pair ∝ τ⁻²"
    elif d <= rank:
        vals = [math.log(float(muon_mixture(s, rank, np.array(T2 + t0)) / muon_mixture(s, rank, np.array(T1 + t0))))
                / lw for t0 in (0.0, t0max)]
        k = s[rank] / s[rank - 1]
        regime = f"d ≤ rank: mixture of τ^−2(1∓σ_j/σ_i), slowest exponent {2 * (1 - k):.2f}"
    else:
        return None
    return min(vals), max(vals), regime


def _slope(mu: pd.Series) -> float:
    a, b = mu.get(T1), mu.get(T2)
    if a is None or b is None or not (a > 0 and b > 0):
        return float("nan")
    return math.log(b / a) / math.log(T2 / T1)


@claim(reads=("runs", "trajectories"))
def muon_alignment_rate(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 1 (seed 002: "we derive the alignment rates in simple settings and show that
    they predict the empirical alignment rates in general"): planted signal, Muon with
    η = 0.2α, from small random init.

    Per seed: for every (d, α) Muon run with η = 0.2α, the log–log slope of the block
    misalignment μ between steps T1 = 30 and T2 = 100 lies within SLOPE_TOL of our
    predicted interval (:func:`muon_slope_interval`), and for every d the curves of
    different α agree to |Δ ln μ| ≤ ALPHA_TOL at T1 and T2 (the early dynamics depend on
    η/α only). Widths with rank < d < n have no prediction and are reported, not judged.
    """
    name = "muon_alignment_rate"
    stmt = "Muon's alignment rate (planted signal, η = 0.2α)."
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, stmt, [], reasons=["no runs or no trajectories in the store"])
    if "block_misalignment" not in set(trajectories["metric"]):
        return decide(name, SEED, stmt, [], reasons=["the store lacks block_misalignment"])
    mu_runs = runs[(runs["optimizer.name"] == "muon")
                   & np.isclose(runs["optimizer.lr"], ETA_OVER_ALPHA * runs["problem.alpha"], rtol=1e-9)]
    if mu_runs.empty:
        return decide(name, SEED, stmt, [], reasons=["no Muon run with η = 0.2α"])
    reasons = []
    if mu_runs["problem.d"].nunique() < 2 or mu_runs["problem.alpha"].nunique() < 2:
        reasons.append("needs >= 2 widths d and >= 2 init scales α")
    outcomes: list[Outcome] = []
    per_d: dict[int, list[tuple[float, float, float]]] = {}
    unpredicted: dict[int, list[float]] = {}
    regimes: dict[int, str] = {}
    for sd, g in mu_runs.groupby("seed"):
        why = []
        s = _planted_spectrum(g.iloc[0])
        for d, gd in g.groupby("problem.d"):
            first = gd.iloc[0]
            dd = int(str(d))
            n, rank = int(first["problem.n_out"]), int(first["problem.rank"])
            pred = muon_slope_interval(s, n, dd, rank)
            curves = {}
            for _, r in gd.iterrows():
                if r["status"] != "ok":
                    why.append(f"d={dd} α={r['problem.alpha']:g} run {r['status']}")
                    continue
                mu = run_metric(trajectories, r["run_id"], "block_misalignment")
                curves[float(r["problem.alpha"])] = mu
                k = _slope(mu)
                if pred is None:
                    unpredicted.setdefault(dd, []).append(k)
                    continue
                lo, hi, regime = pred
                regimes[dd] = regime.split(",")[0]
                per_d.setdefault(dd, []).append((k, lo, hi))
                if not (lo - SLOPE_TOL <= k <= hi + SLOPE_TOL):
                    why.append(f"d={dd} α={r['problem.alpha']:g}: slope {k:.2f}, predicted [{lo:.2f}, {hi:.2f}] "
                               f"± {SLOPE_TOL} ({regime})")
            alphas = sorted(curves)
            for a in alphas[1:]:
                for t in (T1, T2):
                    x, y = curves[alphas[0]].get(t), curves[a].get(t)
                    dev = abs(math.log(y / x)) if x and y and x > 0 and y > 0 else float("inf")
                    if not dev <= ALPHA_TOL:
                        why.append(f"d={dd}: μ({t}) differs between α={alphas[0]:g} and α={a:g} by {dev:.3g} in ln")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
    parts = []
    for dd in sorted(per_d):
        v = np.array(per_d[dd])
        inside = int(((v[:, 0] >= v[:, 1] - SLOPE_TOL) & (v[:, 0] <= v[:, 2] + SLOPE_TOL)).sum())
        parts.append(f"d={dd} ({regimes[dd]}): measured {v[:, 0].min():.2f}…{v[:, 0].max():.2f}, predicted "
                     f"[{v[:, 1].min():.2f}, {v[:, 2].max():.2f}], {inside}/{len(v)} runs within ±{SLOPE_TOL}")
    for dd in sorted(unpredicted):
        parts.append(f"d={dd}: measured {min(unpredicted[dd]):.2f}…{max(unpredicted[dd]):.2f} (no prediction)")
    detail = (f"Log–log slope of the block misalignment over steps {T1}–{T2}, measured vs our predicted interval "
              f"(t0 ∈ [0, ‖W(0)‖/η]) ± {SLOPE_TOL}; the curves of different α must agree within {ALPHA_TOL} "
              f"in ln μ. " + "; ".join(parts) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


def gd_linear_prediction(s: np.ndarray, t: np.ndarray, eta: float, d: int, n: int,
                         alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Our exact linear-phase prediction of GD's block misalignment (expectation of the
    off-block and total masses over the Gaussian init), and the effective number of
    off-block pairs carrying that mass, n_eff = (Σ w)²/Σ w² over their expected weights w.

    While W2W1 ≪ M*, each singular pair i evolves as a_i ← a_i + ησ_i b_i,
    b_i ← b_i + ησ_i a_i (a_i = W2ᵀu_i, b_i = W1v_i ∈ R^d), so a_i = (p_i G_i + q_i H_i)/2,
    b_i = (p_i G_i − q_i H_i)/2 with G = (1+ησ)^t, H = (1−ησ)^t and p, q iid N(0, 2s²I_d),
    s² = α²/max(n, d). Then (W2W1)_ij = a_iᵀb_j, E(a_iᵀb_j)² = d(2s²)²(G_i²+H_i²)(G_j²+H_j²)/16
    (i ≠ j) and E(a_iᵀb_i)² = 4s⁴[(G_i⁴+H_i⁴)(d²+2d) − 2G_i²H_i²d²]/16."""
    lab = singular_blocks(torch.as_tensor(s)).numpy()
    same = lab[:, None] == lab[None, :]
    s2 = alpha ** 2 / max(n, d)
    mu, neff = [], []
    for tt in np.atleast_1d(t):
        G, H = (1 + eta * s) ** tt, (1 - eta * s) ** tt
        E = d * (2 * s2) ** 2 * np.outer(G ** 2 + H ** 2, G ** 2 + H ** 2) / 16
        np.fill_diagonal(E, 4 * s2 ** 2 * ((G ** 4 + H ** 4) * (d * d + 2 * d) - 2 * G ** 2 * H ** 2 * d * d) / 16)
        off = E[~same]
        mu.append(1.0 - E[same].sum() / E.sum())
        neff.append(off.sum() ** 2 / np.square(off).sum() if off.size else np.inf)
    return np.array(mu), np.array(neff)


def gd_linear_misalignment(s: np.ndarray, t: np.ndarray, eta: float, d: int, n: int, alpha: float) -> np.ndarray:
    """μ_pred(t) of :func:`gd_linear_prediction`."""
    return gd_linear_prediction(s, t, eta, d, n, alpha)[0]


def gd_tolerance(neff: np.ndarray, d: int) -> np.ndarray:
    """|ln(μ/μ_pred)| allowed: 3 standard deviations of the off-block mass around its
    expectation. Each pair's (a_iᵀb_j)² has relative variance ≈ 2 (a product of two
    Gaussian d-vectors, 2 + 6/d), n_eff pairs carry the mass (2/n_eff), and pairs that
    share a vector are correlated through its squared norm (χ²_d: 2/d)."""
    return 3.0 * np.sqrt(2.0 / neff + 2.0 / d)


@claim(reads=("runs", "trajectories"))
def gd_alignment_linear_theory(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 1, GD: the planted-signal misalignment follows our linear-phase theory
    (:func:`gd_linear_prediction`, exponential decay at rate ≈ 2 ln((1+ησ_r)/(1+ησ_{r+1}))
    late in the phase) within :func:`gd_tolerance` (3 s.d. of the off-block mass), at every
    logged step ≥ 1 with rel. err ≥ 0.99 (at least 5 such steps per run). Per seed, every
    (d, α) GD run."""
    name = "gd_alignment_linear_theory"
    stmt = "GD's misalignment follows the linear-phase theory."
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, stmt, [], reasons=["no runs or no trajectories in the store"])
    need = {"block_misalignment", "rel_err"}
    if not need <= set(trajectories["metric"]):
        return decide(name, SEED, stmt, [], reasons=[f"the store lacks {sorted(need - set(trajectories['metric']))}"])
    gd = runs[runs["optimizer.name"] == "gd"]
    if gd.empty:
        return decide(name, SEED, stmt, [], reasons=["no GD run"])
    outcomes, worst = [], []
    for sd, g in gd.groupby("seed"):
        why = []
        s = _planted_spectrum(g.iloc[0])
        for _, r in g.iterrows():
            if r["status"] != "ok":
                why.append(f"run {r['status']}")
                continue
            d, n = int(r["problem.d"]), int(r["problem.n_out"])
            mu = run_metric(trajectories, r["run_id"], "block_misalignment")
            rel = run_metric(trajectories, r["run_id"], "rel_err")
            steps = [t for t in mu.index if t >= 1 and rel.get(t, 0.0) >= LINEAR_PHASE]
            if len(steps) < MIN_LINEAR_POINTS:
                why.append(f"d={d} α={r['problem.alpha']:g}: only {len(steps)} logged steps in the linear phase")
                continue
            pred, neff = gd_linear_prediction(s, np.array(steps, float), float(r["optimizer.lr"]), d, n,
                                              float(r["problem.alpha"]))
            dev = np.abs(np.log(mu.loc[steps].to_numpy(float) / pred))
            tol = gd_tolerance(neff, d)
            i = int(np.argmax(dev / tol))
            worst.append(f"d={d} α={r['problem.alpha']:g}: {dev[i]:.2f} (tol {tol[i]:.2f} at step {steps[i]})")
            if not (dev <= tol).all():
                why.append(f"d={d} α={r['problem.alpha']:g}: |ln(μ/μ_pred)| = {dev[i]:.2f} > {tol[i]:.2f} at step "
                           f"{steps[i]}")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
    detail = ("Largest |ln(μ_measured/μ_linear theory)| over the linear phase (rel. err ≥ 0.99), first seed: "
              + ", ".join(worst[:9]) + ".")
    return decide(name, SEED, detail, outcomes)


# --- item 2: balance and matrix-form conservation ------------------------------------------
#: Balanced: ‖W1W1ᵀ − W2ᵀW2‖_F ≤ 1 % of ‖M*‖_F at the end. For W2 = cU√S, W1 = √S Vᵀ/c
#: (a factorization off balance by c) the metric is |c² − c⁻²|·‖S‖/‖M*‖ = |c² − c⁻²|, so
#: 1 % means |c − 1| ≲ 0.25 % — well below the O(1) imbalance of a generic factorization.
BALANCE_TOL = 0.01


def _final(trajectories: pd.DataFrame, rid: str, metric: str) -> float:
    s = run_metric(trajectories, rid, metric)
    return float(s.iloc[-1]) if len(s) else float("nan")


@claim(reads=("runs", "trajectories"))
def balanced_solution(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 2 (seed 002: "both optimizers find the balanced solution from vanishing
    initialization"): per seed and optimizer, the final balance ‖W1W1ᵀ − W2ᵀW2‖/‖M*‖ at the
    smallest α is ≤ BALANCE_TOL and ≤ its value at the largest α, and the run converged
    (final rel. err ≤ 1e-2: it reached a solution at all)."""
    name = "balanced_solution"
    stmt = "Both optimizers end balanced from vanishing init."
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, stmt, [], reasons=["no runs or no trajectories in the store"])
    if "balance" not in set(trajectories["metric"]):
        return decide(name, SEED, stmt, [], reasons=["the store lacks balance"])
    reasons = []
    if runs["problem.alpha"].nunique() < 2:
        reasons.append("needs >= 2 init scales α")
    opts = sorted(runs["optimizer.name"].unique())
    if not {"gd", "muon"} <= set(opts):
        reasons.append(f"needs GD and Muon runs, has {opts}")
    outcomes: list[Outcome] = []
    seen: dict[str, list[tuple[float, float]]] = {}
    for sd, g in runs.groupby("seed"):
        why = []
        for opt, go in g.groupby("optimizer.name"):
            bad = go[go["status"] != "ok"]
            if len(bad):
                why.append(f"{opt}: {len(bad)} run(s) not ok")
                continue
            b = {float(r["problem.alpha"]): _final(trajectories, r["run_id"], "balance") for _, r in go.iterrows()}
            e = {float(r["problem.alpha"]): float(r["final_rel_err"]) for _, r in go.iterrows()}
            lo, hi = min(b), max(b)
            seen.setdefault(str(opt), []).append((b[lo], b[hi]))
            if not e[lo] <= 1e-2:
                why.append(f"{opt} at α={lo:g} ends at rel. err {e[lo]:.3g} (not a solution)")
            if not b[lo] <= BALANCE_TOL:
                why.append(f"{opt} at α={lo:g}: balance {b[lo]:.3g} > {BALANCE_TOL}")
            if not b[lo] <= b[hi]:
                why.append(f"{opt}: balance {b[lo]:.3g} at α={lo:g} exceeds {b[hi]:.3g} at α={hi:g}")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
    parts = []
    for opt, v in seen.items():
        a = np.array(v)
        parts.append(f"{opt}: {a[:, 0].min():.2g}–{a[:, 0].max():.2g} at the smallest α, "
                     f"{a[:, 1].min():.2g}–{a[:, 1].max():.2g} at the largest")
    detail = f"Final ‖W1W1ᵀ − W2ᵀW2‖/‖M*‖ (need ≤ {BALANCE_TOL} at the smallest α): " + "; ".join(parts) + "."
    return decide(name, SEED, detail, outcomes, reasons=reasons)


#: Matrix-form conservation: the same thresholds as the norm check (claims.seed002),
#: applied to the matrices: own invariant max_t ‖Δ(t) − Δ(t*)‖/‖Δ(t*)‖ ≤ 0.10 (hence
#: |⟨Δ(t),Δ(t*)⟩/‖Δ(t*)‖² − 1| ≤ 0.10 too), the other optimizer's ≥ 0.50.
from muonlab.claims.seed002 import BROKEN_CHANGE, CONSERVED_DRIFT, T_STAR  # noqa: E402


def _matrix_path(trajectories: pd.DataFrame, rid: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    t = trajectories[(trajectories["run_id"] == rid) & (trajectories["metric"] == metric)]
    if t.empty:
        return None
    wide = t.pivot_table(index="step", columns="index", values="value", aggfunc="last").sort_index()
    return wide.index.to_numpy(), wide.to_numpy(float)


def conservation_profile(steps: np.ndarray, X: np.ndarray, t_star: int = T_STAR) -> tuple[np.ndarray, np.ndarray]:
    """For logged packed invariants X (T, k): the seed's ratio ⟨Δ(t),Δ(t*)⟩/‖Δ(t*)‖² and the
    relative distance ‖Δ(t) − Δ(t*)‖/‖Δ(t*)‖, for the logged t ≥ t*."""
    i = int(np.searchsorted(steps, t_star))
    ref = X[i]
    den = float(ref @ ref)
    Y = X[i:]
    return (Y @ ref) / den, np.linalg.norm(Y - ref, axis=1) / math.sqrt(den)


@claim(reads=("runs", "trajectories"))
def conservation_matrix_form(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 2, conservation as matrices (SPEC §4's ⟨Δ(t), Δ(t*)⟩/‖Δ(t*)‖², t* = 80): per
    seed, GD's W2ᵀW2 − W1W1ᵀ and Muon's sqrt(W2ᵀW2) − sqrt(W1W1ᵀ) each stay within
    CONSERVED_DRIFT of their t* value in Frobenius distance (relative), so the ratio stays
    within 1 ± CONSERVED_DRIFT; and each optimizer moves the other's invariant by
    ≥ BROKEN_CHANGE."""
    name = "conservation_matrix_form"
    stmt = "Invariants conserved as matrices."
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, stmt, [], reasons=["no runs or no trajectories in the store"])
    need = {"gf_invariant_entries", "muon_invariant_entries"}
    if not need <= set(trajectories["metric"]):
        return decide(name, SEED, stmt, [], reasons=[f"the store lacks {sorted(need - set(trajectories['metric']))}"])
    outcomes: list[Outcome] = []
    seen: dict[str, list[tuple[float, float, float]]] = {"gd": [], "muon": []}
    for sd, g in runs.groupby("seed"):
        why = []
        for opt, own, other in (("gd", "gf_invariant_entries", "muon_invariant_entries"),
                                ("muon", "muon_invariant_entries", "gf_invariant_entries")):
            rows = g[g["optimizer.name"] == opt]
            if rows.empty:
                why.append(f"no {opt} run")
            for _, r in rows.iterrows():
                if r["status"] != "ok":
                    why.append(f"{opt} run {r['status']}")
                    continue
                mine = _matrix_path(trajectories, r["run_id"], own)
                theirs = _matrix_path(trajectories, r["run_id"], other)
                if mine is None or theirs is None or mine[0].max() <= T_STAR:
                    why.append(f"{opt}: invariants not logged past t* = {T_STAR}")
                    continue
                ratio, dist = conservation_profile(*mine)
                _, dist_other = conservation_profile(*theirs)
                seen[opt].append((np.abs(ratio - 1).max(), dist.max(), dist_other.max()))
                if not dist.max() <= CONSERVED_DRIFT:
                    why.append(f"{opt}'s own invariant moves {dist.max():.3f} "
                               f"(ratio off 1 by {np.abs(ratio - 1).max():.3f})")
                if not dist_other.max() >= BROKEN_CHANGE:
                    why.append(f"{opt} moves the other invariant by only {dist_other.max():.3f}")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
    parts = []
    for opt, v in seen.items():
        if v:
            a = np.array(v)
            parts.append(f"{opt}: own ratio within 1 ± {a[:, 0].max():.3g}, own relative move {a[:, 1].min():.3g}–"
                         f"{a[:, 1].max():.3g} (need ≤ {CONSERVED_DRIFT}), other's {a[:, 2].min():.3g}–"
                         f"{a[:, 2].max():.3g} (need ≥ {BROKEN_CHANGE})")
    return decide(name, SEED, f"From t* = {T_STAR} on: " + "; ".join(parts) + ".", outcomes)


# --- item 3: plateaus -----------------------------------------------------------------------
#: Plateau rule (ours): step t is flat when the loss falls by less than PLATEAU_DROP of
#: itself over the next PLATEAU_WINDOW steps; a plateau is a maximal run of ≥ PLATEAU_MIN
#: flat steps that ends (a non-flat step follows) while the loss is still above
#: CONVERGED·L(0) — the converged tail is not a plateau. 1 % per 10 steps is an e-fold
#: every ≥ 1000 steps, a hundred times slower than a GD drop (rate ~2ησ_k ≥ 0.04/step
#: here); PLATEAU_MIN = 2 windows so one slow window is not a plateau.
PLATEAU_WINDOW = 10
PLATEAU_DROP = 0.01
PLATEAU_MIN = 20
CONVERGED = 1e-3


def count_plateaus(loss: np.ndarray, window: int = PLATEAU_WINDOW, drop: float = PLATEAU_DROP,
                   min_len: int = PLATEAU_MIN, converged: float = CONVERGED) -> list[tuple[int, int]]:
    """Plateaus (start, end) of a loss curve logged every step, by the rule above."""
    L = np.asarray(loss, dtype=float)
    T = len(L) - window
    if T <= 0:
        return []
    flat = (L[:T] - L[window:]) < drop * L[:T]
    out, t = [], 0
    while t < T:
        if not flat[t]:
            t += 1
            continue
        s = t
        while t < T and flat[t]:
            t += 1
        if t - s >= min_len and t < T and L[t] > converged * L[0]:
            out.append((s, t))
    return out


def _plateau_claim(runs: pd.DataFrame, trajectories: pd.DataFrame, opt: str, name: str,
                   ok: Callable[[int, int], bool], rule: str) -> Claim:
    stmt = f"{opt} plateau count."
    if runs.empty or trajectories is None or trajectories.empty:
        return decide(name, SEED, stmt, [], reasons=["no runs or no trajectories in the store"])
    if "loss" not in set(trajectories["metric"]):
        return decide(name, SEED, stmt, [], reasons=["the store lacks loss"])
    rows = runs[runs["optimizer.name"] == opt]
    if rows.empty:
        return decide(name, SEED, stmt, [], reasons=[f"no {opt} run"])
    outcomes, counts = [], []
    for sd, g in rows.groupby("seed"):
        why = []
        for _, r in g.iterrows():
            k = len(target_values(r))
            if r["status"] != "ok":
                why.append(f"run {r['status']}")
                continue
            loss = run_metric(trajectories, r["run_id"], "loss")
            if len(loss) < 2 or np.diff(loss.index.to_numpy()).max() != 1:
                why.append("loss not logged every step")
                continue
            p = count_plateaus(loss.to_numpy(float))
            counts.append(len(p))
            if not ok(len(p), k):
                why.append(f"{len(p)} plateaus {p[:6]} with {k} modes")
        outcomes.append(Outcome(seed_label(sd), not why, "; ".join(why)))
    k = len(target_values(rows.iloc[0]))
    detail = (f"{rule}; {k} target modes; plateaus counted per run (flat: loss falls < {PLATEAU_DROP:g} of itself in "
              f"{PLATEAU_WINDOW} steps; ≥ {PLATEAU_MIN} flat steps; converged tail excluded): counts "
              f"{min(counts) if counts else 'n/a'}–{max(counts) if counts else 'n/a'}.")
    return decide(name, SEED, detail, outcomes)


@claim(reads=("runs", "trajectories"))
def gd_one_plateau_per_mode(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 3: GD from small init is saddle-to-saddle — its loss shows exactly one plateau
    per target mode (:func:`count_plateaus`), every seed."""
    return _plateau_claim(runs, trajectories, "gd", "gd_one_plateau_per_mode", lambda c, k: c == k,
                          "GD: need exactly one plateau per mode")


@claim(reads=("runs", "trajectories"))
def muon_no_saddle_to_saddle(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Item 3 (seed 002: "Muon avoids the slow saddle-to-saddle dynamics"): Muon's loss shows
    at most one plateau (the initial slow start, when (ηt)² ≪ σ*), never one per mode
    (the target has ≥ 2 modes), every seed."""
    return _plateau_claim(runs, trajectories, "muon", "muon_no_saddle_to_saddle", lambda c, k: c <= 1 < k,
                          "Muon: need at most one plateau")
