r"""Issue 15, item 3 — beyond the papers: is Muon κ-free on **matrix linear regression**
(seed 003, open question 1) and on **non-symmetric two-factor MF** (seed 003, next check 1)?
Experiments ``beyond_regression`` and ``beyond_nonsymmetric_mf``; the math and the numbers
are in ``docs/beyond_regression.md``.

**Regression.** f(W) = ½‖WX − Y‖²_F/N = f* + ½tr(ΔSΔᵀ), Δ = W − W_opt, S = XXᵀ/N with
eigenvalues log-spaced from 1 to 1/κ; ∇f = ΔS and Muon's step is W ← W − η_t·msign(ΔS).

* *The line.* From W_0 = 0 with d_out ≥ d_in and a teacher with equal singular values
  (W*ᵀW* = I, noise 0): W*S = (W*Q)ΛQᵀ is an SVD, so msign(W*S) = W*; the iterate stays
  at Δ_t = −a_t·W* with a_{t+1} = |a_t − η_t|·sign(…) — the same scalar path at every κ.
* *Full column rank* (rank ΔS = d_in: d_out ≥ d_in and W_opt − W_0 of full rank): msign(ΔS)
  = ΔS(SΔᵀΔS)^{−1/2} and the right factor can undo S on every input direction; along the
  flow d‖ΔS‖_*/dt = −tr(S) exactly (the nuclear norm's gradient is msign). We predicted a
  κ-dependence far below GD's.
* *Rank deficit* (rank Δ < d_in: wide W, or a rank-deficient teacher from W_0 = 0, whose
  error keeps its column space): msign only normalizes the d_out (or r) output
  directions; along the input side the step is still S-weighted, so a low-curvature input
  direction mixed with a high-curvature one is corrected at a rate ∝ its curvature. For
  d_out = 1, msign(g) = g/‖g‖: Muon is normalized GD, ∝ κ.

**Measurement.** Muon runs the geometric schedule η_t = c·lr·q^t over a grid of q; a run at
a q Muon cannot follow freezes above the level (Σ η_t is finite), so Muon's cost at (seed,
κ) is its fewest steps to the level over the q grid (:func:`muon_best_steps`; ∞ when no q
reached it), and its κ-exponent the log-log slope of that cost over κ
(:func:`~muonlab.claims.base.kappa_exponent`: ≥ 3 κ spanning ≥ 2 decades; +∞ when some κ
has no q). GD at η = 1/λ_max is judged by its contraction rate (steps per e-fold 1/ρ,
:func:`~muonlab.claims.seed001.contraction_rate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from muonlab.claims.base import (
    Claim,
    Outcome,
    claim,
    decide,
    kappa_exponent,
    level_for,
    seed_label,
    steps_column,
)
from muonlab.claims.seed001 import (
    GD_SLOPE_MIN,
    MUON_SLOPE_MAX,
    RATIO_MAX,
    _frozen,
    contraction_rate,
)

__all__ = [
    "DEFICIT_MARGIN",
    "SQRT_KAPPA",
    "TRIVIAL_KAPPA",
    "gd_cost_per_efold",
    "muon_best_steps",
    "nonsymmetric_mf_muon_kappa_free",
    "nonsymmetric_mf_muon_kappa_free_ours",
    "regression_full_rank_weak_kappa",
    "regression_gd_kappa_linear",
    "regression_line_kappa_free",
    "regression_rank_deficit_kappa_dependent",
    "regression_variant",
    "variant_kind",
]

SEED = "beyond"

#: The exponent of √κ: Nesterov's lower bound for any first-order (Krylov) method on an
#: ill-conditioned quadratic is ∝ √κ·ln(1/ε) iterations, and GD's cost is ∝ κ (exponent 1).
#: A full-rank Muon exponent below ½ means a κ-dependence weaker than the best accelerated
#: gradient method's — the boundary between "weakly" and "GD-like" κ-dependent.
SQRT_KAPPA = 0.5
#: A rank-deficient variant's exponent must exceed the same seed's largest full-rank one by
#: more than the width of the κ-free band (:data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`,
#: 0.1: a count that moves by ≤ 1.5× over 2 decades), i.e. by more than what a κ-free
#: count's scatter could produce.
DEFICIT_MARGIN = MUON_SLOPE_MAX
#: GD at η = 1/λ_max with S = I (κ = 1) is exact after one step: no rate to fit.
TRIVIAL_KAPPA = 1.0


# --- classifying a run's problem ----------------------------------------------------------

def _opt(row: pd.Series, key: str) -> float | None:
    v = row.get(f"problem.{key}")
    if v is None or pd.isna(v):
        return None
    return float(v)


def variant_kind(row: pd.Series) -> str:
    """``line`` (W_0 = 0, d_out ≥ d_in, W* with equal singular values, noise 0),
    ``full_rank`` (rank(W_opt − W_0) = d_in, off the line), ``rank_deficit`` (d_out < d_in:
    rank Δ ≤ d_out < d_in whatever the teacher or init), or ``deficit_teacher`` (d_out ≥
    d_in, a rank-deficient noiseless teacher from W_0 = 0: rank Δ < d_in in exact
    arithmetic, but msign amplifies the rounding-level components outside the teacher's
    column space once the error has shrunk below ~1e-15/tol of them, so in float64 it
    drifts toward the full-rank behaviour — reported, not judged)."""
    d_out, d_in = int(row["problem.d_out"]), int(row["problem.d_in"])
    rank = _opt(row, "rank")
    tk = _opt(row, "teacher_kappa")
    noise = _opt(row, "noise") or 0.0
    init = _opt(row, "init_scale") or 0.0
    full_teacher = rank is None or int(rank) >= min(d_out, d_in)
    if d_out < d_in:
        return "rank_deficit"
    if full_teacher and (tk is None or tk == 1.0) and noise == 0.0 and init == 0.0:
        return "line"
    if full_teacher or noise > 0.0 or init > 0.0:
        return "full_rank"
    return "deficit_teacher"


def regression_variant(row: pd.Series) -> str:
    """A short label of the run's problem: shape, teacher rank/spread, noise, init."""
    d_out, d_in = int(row["problem.d_out"]), int(row["problem.d_in"])
    parts = [f"{d_out}×{d_in}"]
    rank, tk = _opt(row, "rank"), _opt(row, "teacher_kappa")
    noise, init = _opt(row, "noise") or 0.0, _opt(row, "init_scale") or 0.0
    if rank is not None:
        parts.append(f"rank {int(rank)}")
    if tk is not None and tk != 1.0:
        parts.append(f"κ_W={tk:g}")
    if noise:
        parts.append(f"noise {noise:g}")
    if init:
        parts.append(f"W₀~{init:g}")
    return ", ".join(parts)


# --- measurements -------------------------------------------------------------------------

def muon_best_steps(g: pd.DataFrame, col: str) -> dict[float, float]:
    """κ → Muon's fewest steps to the level (column ``col``) over the runs of ``g`` at that κ
    (its q grid); ∞ when none reached it."""
    out: dict[float, float] = {}
    for k, gk in g.groupby("problem.kappa"):
        v = gk[col].dropna() if col in gk else pd.Series(dtype=float)
        out[float(k)] = float(v.astype(float).min()) if len(v) else math.inf  # type: ignore[arg-type]
    return dict(sorted(out.items()))


def gd_cost_per_efold(path: tuple[np.ndarray, np.ndarray] | None) -> float:
    """GD's steps per e-fold of the relative error, 1/ρ over the last half of its logged
    trajectory (∞ for a tail that does not contract or is frozen,
    :data:`~muonlab.claims.seed001.FROZEN_TOL`; nan without a usable trajectory)."""
    if path is None:
        return math.nan
    if _frozen(*path):
        return math.inf
    rho = contraction_rate(*path)
    if math.isnan(rho):
        return math.nan
    return 1.0 / rho if rho > 0 else math.inf


def _paths(trajectories: pd.DataFrame | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if trajectories is None or trajectories.empty or "metric" not in trajectories:
        return {}
    t = trajectories[trajectories["metric"] == "rel_err"].sort_values("step", kind="stable")
    return {str(r): (g["step"].to_numpy(float), g["value"].to_numpy(float))
            for r, g in t.groupby("run_id", sort=False)}


def _prepare(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, list[str]]:
    """Regression runs (not failed) with ``variant``/``kind`` columns, the level's column,
    and the reasons the store cannot support the claims at all."""
    reasons: list[str] = []
    if runs.empty or "problem.kind" not in runs or "optimizer.name" not in runs:
        return runs.iloc[:0], steps_column(1e-8), ["no runs in the store"]
    runs = runs[(runs["problem.kind"] == "regression") & (runs["status"] != "failed")].copy()
    if runs.empty:
        return runs, steps_column(1e-8), ["no regression runs in the store"]
    runs["variant"] = runs.apply(regression_variant, axis=1)
    runs["kind"] = runs.apply(variant_kind, axis=1)
    kappas = sorted(float(k) for k in runs["problem.kappa"].unique())
    if len(kappas) < 3 or kappas[-1] / kappas[0] < 100:
        reasons.append(f"need >= 3 κ spanning >= 2 decades, got {', '.join(f'{k:g}' for k in kappas)}")
    return runs, steps_column(level_for(runs)), reasons


def _muon_exponents(runs: pd.DataFrame, col: str, kinds: Iterable[str]
                    ) -> dict[str, dict[str, tuple[float, dict[float, float], str | None]]]:
    """seed → variant → (κ-exponent, κ → best steps, reason it cannot be judged), for the
    Muon runs of the given kinds."""
    mu = runs[(runs["optimizer.name"] == "muon") & runs["kind"].isin(list(kinds))]
    out: dict[str, dict[str, tuple[float, dict[float, float], str | None]]] = {}
    for (seed, variant), g in mu.groupby(["seed", "variant"], sort=True):
        best = muon_best_steps(g, col)
        e, why = kappa_exponent(best, "Muon's steps")
        out.setdefault(seed_label(seed), {})[str(variant)] = (e, best, why)
    return out


def _steps_text(best: dict[float, float]) -> str:
    return ", ".join("∞" if math.isinf(v) else f"{v:.0f}" for v in best.values())


def _e(x: float) -> str:
    return "+∞" if math.isinf(x) else f"{x:.2f}"


# --- claims ---------------------------------------------------------------------------------

@claim(reads=("runs",))
def regression_line_kappa_free(runs: pd.DataFrame) -> Claim:
    r"""On the line (W_0 = 0, d_out ≥ d_in, teacher with equal singular values, noise 0) Muon's
    steps to the level do not depend on κ at all.

    Theory (module docstring): msign(W*S) = W*, the iterate is Δ_t = −a_t·W* at every κ, so
    the step count is the scalar recursion's, the same at every κ. Per seed and line variant:
    the best steps over the q grid are finite at every κ and max/min ≤ 1.5
    (:data:`~muonlab.claims.seed001.RATIO_MAX`), |κ-exponent| < 0.1
    (:data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`). Every seed must hold.
    """
    name = "regression_line_kappa_free"
    runs, col, reasons = _prepare(runs)
    ex = _muon_exponents(runs, col, ["line"]) if not reasons else {}
    if not reasons and not ex:
        reasons.append("no Muon runs on the line (square/tall W, W* with equal singular values, W_0 = 0)")
    outcomes, shown = [], []
    for seed, per in ex.items():
        bad = []
        for v, (e, best, why) in per.items():
            vals = list(best.values())
            ratio = max(vals) / min(vals) if all(math.isfinite(x) for x in vals) else math.inf
            if why:
                bad.append(f"{v}: {why}")
            elif not (ratio <= RATIO_MAX and abs(e) < MUON_SLOPE_MAX):
                bad.append(f"{v}: steps {_steps_text(best)}, max/min {ratio:.2f}, exponent {_e(e)}")
            if seed == next(iter(ex)):
                shown.append(f"{v}: steps {_steps_text(best)} (exponent {_e(e)})")
        outcomes.append(Outcome(seed, not bad, "; ".join(bad)))
    kappas = ", ".join(f"{k:g}" for k in sorted(runs["problem.kappa"].unique())) if len(runs) else ""
    detail = (f"Muon on the line, best steps to {col.removeprefix('steps_to_')} over the q grid at κ = {kappas} "
              f"(need max/min <= {RATIO_MAX:g} and |exponent| < {MUON_SLOPE_MAX:g}); seed {next(iter(ex), '-')}: "
              + "; ".join(shown) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs",))
def regression_full_rank_weak_kappa(runs: pd.DataFrame) -> Claim:
    r"""Off the line but with full column rank (square or tall W; a spread teacher, label
    noise, or a rank-deficient teacher from a small random W_0), Muon is **not** κ-free but its
    κ-dependence is weak: 0.1 < κ-exponent < ½.

    Lower side: the exponent of the best step count exceeds the κ-free band 0.1
    (:data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`) — what we found, stated so it can fail:
    a κ-free count (≤ 1.5× over 2 decades) would fail it. Upper side: below √κ's exponent ½
    (:data:`SQRT_KAPPA`, the accelerated-gradient lower bound; GD's exponent is 1). Per seed,
    every full-rank variant must satisfy both; every seed must hold.
    """
    name = "regression_full_rank_weak_kappa"
    runs, col, reasons = _prepare(runs)
    ex = _muon_exponents(runs, col, ["full_rank"]) if not reasons else {}
    if not reasons and not ex:
        reasons.append("no full-rank Muon variants off the line")
    outcomes: list[Outcome] = []
    per_variant: dict[str, list[float]] = {}
    for seed, per in ex.items():
        bad = []
        for v, (e, best, why) in per.items():
            per_variant.setdefault(v, []).append(e)
            if why:
                bad.append(f"{v}: {why}")
            elif not (MUON_SLOPE_MAX < e < SQRT_KAPPA):
                bad.append(f"{v}: exponent {_e(e)} (steps {_steps_text(best)})")
        outcomes.append(Outcome(seed, not bad, "; ".join(bad)))
    spans = "; ".join(f"{v}: {_e(min(es))}…{_e(max(es))}" for v, es in per_variant.items())
    detail = (f"Muon's κ-exponent of its best steps to {col.removeprefix('steps_to_')} per full-rank variant "
              f"(need {MUON_SLOPE_MAX:g} < e < {SQRT_KAPPA:g}): {spans}.")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs",))
def regression_rank_deficit_kappa_dependent(runs: pd.DataFrame) -> Claim:
    r"""When the error has rank < d_in because W is wide (d_out < d_in), Muon's κ-dependence
    is stronger than with full column rank; with one output (d_out = 1, Muon = normalized GD)
    it is at least ∝ √κ.

    Per seed: every rank-deficient variant's κ-exponent exceeds the seed's largest full-rank
    exponent by more than 0.1 (:data:`DEFICIT_MARGIN`), and the d_out = 1 variant's (if
    present) is ≥ ½ (:data:`~muonlab.claims.seed001.GD_SLOPE_MIN`: theory 1, normalized GD's
    local rate ∝ 1/κ). +∞ (no q in the grid reached the level at some κ) counts as large.
    Needs full-rank and rank-deficient variants in the store. Every seed must hold.
    """
    name = "regression_rank_deficit_kappa_dependent"
    runs, col, reasons = _prepare(runs)
    full = _muon_exponents(runs, col, ["full_rank", "line"]) if not reasons else {}
    deficit = _muon_exponents(runs, col, ["rank_deficit"]) if not reasons else {}
    if not reasons and not deficit:
        reasons.append("no rank-deficient Muon variants")
    if not reasons and not full:
        reasons.append("no full-rank Muon variants to compare with")
    outcomes: list[Outcome] = []
    per_variant: dict[str, list[float]] = {}
    for seed, per in deficit.items():
        ref = [e for e, _, why in full.get(seed, {}).values() if not why]
        bad = []
        if not ref:
            bad.append("no full-rank exponent for this seed")
        top = max(ref) if ref else math.nan
        for v, (e, _, why) in per.items():
            per_variant.setdefault(v, []).append(e)
            if why:
                bad.append(f"{v}: {why}")
                continue
            one_output = v.startswith("1×")
            if ref and not e > top + DEFICIT_MARGIN:
                bad.append(f"{v}: exponent {_e(e)} <= full-rank {top:.2f} + {DEFICIT_MARGIN:g}")
            if one_output and not e >= GD_SLOPE_MIN:
                bad.append(f"{v}: exponent {_e(e)} < {GD_SLOPE_MIN:g}")
        outcomes.append(Outcome(seed, not bad, "; ".join(bad)))
    fulls = [e for per in full.values() for e, _, why in per.values() if not why]
    spans = "; ".join(f"{v}: {_e(min(es))}…{_e(max(es))}" for v, es in per_variant.items())
    teacher: dict[str, list[float]] = {}
    if not reasons:
        for per in _muon_exponents(runs, col, ["deficit_teacher"]).values():
            for v, (e, _, _) in per.items():
                teacher.setdefault(v, []).append(e)
    told = "; ".join(f"{v}: {_e(min(es))}…{_e(max(es))}" for v, es in teacher.items())
    detail = (f"Muon's κ-exponent, rank-deficient variants (d_out < d_in): {spans}; full-rank (incl. the line): "
              f"{_e(min(fulls)) if fulls else '-'}…{_e(max(fulls)) if fulls else '-'} "
              f"(need deficit > full + {DEFICIT_MARGIN:g}, and >= {GD_SLOPE_MIN:g} for d_out = 1)."
              + (f" Reported, not judged (rank-deficient teacher from W_0 = 0, rounding-sensitive): {told}."
                 if told else ""))
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs", "trajectories"))
def regression_gd_kappa_linear(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    r"""GD at η = 1/λ_max(S) needs ∝ κ steps per e-fold on every variant.

    Theory: the slowest direction of S contracts by 1 − η·λ_min = 1 − 1/κ per step, so
    1/ρ ≈ κ (exponent 1). Per seed and variant, 1/ρ over the last half of the logged
    trajectory (:func:`gd_cost_per_efold`) at ≥ 3 κ > 1 spanning ≥ 2 decades; the exponent
    must exceed ½ (:data:`~muonlab.claims.seed001.GD_SLOPE_MIN`). GD is judged by its rate
    only, never by a step count, so no budget rule applies: a tail that still mixes faster
    modes (large κ, short budget) contracts faster than the slowest mode and makes the
    exponent a lower bound. κ = 1 (:data:`TRIVIAL_KAPPA`) is left out: with S = I the
    step η = 1/λ_max solves the problem in one step (rel. err exactly 0, no rate).
    Every seed must hold.
    """
    name = "regression_gd_kappa_linear"
    runs, _, reasons = _prepare(runs)
    paths = _paths(trajectories)
    gd = runs[runs["optimizer.name"] == "gd"] if not reasons else runs.iloc[:0]
    if not reasons and gd.empty:
        reasons.append("no GD runs")
    if not reasons and not paths:
        reasons.append("no rel_err trajectories")
    gd = gd[gd["problem.kappa"].astype(float) != TRIVIAL_KAPPA]
    outcomes: list[Outcome] = []
    per_variant: dict[str, list[tuple[float, dict[float, float]]]] = {}
    for seed, g in gd.groupby("seed", sort=True):
        bad = []
        for v, gv in g.groupby("variant", sort=True):
            costs = {float(r["problem.kappa"]): gd_cost_per_efold(paths.get(str(r["run_id"])))
                     for _, r in gv.iterrows()}
            if any(math.isnan(c) for c in costs.values()):
                bad.append(f"{v}: no usable trajectory")
                continue
            e, why = kappa_exponent(costs, "GD's 1/ρ")
            per_variant.setdefault(str(v), []).append((e, costs))
            if why or not e > GD_SLOPE_MIN:
                bad.append(f"{v}: {why or f'exponent {_e(e)}'}")
        outcomes.append(Outcome(seed_label(seed), not bad, "; ".join(bad)))
    spans = "; ".join(
        f"{v}: {_e(min(e for e, _ in xs))}…{_e(max(e for e, _ in xs))} (1/ρ = "
        + ", ".join(f"{c:.3g}" for c in xs[0][1].values()) + ")" for v, xs in per_variant.items())
    detail = f"GD at η = 1/λ_max: κ-exponent of steps per e-fold (need > {GD_SLOPE_MIN:g}; theory 1): {spans}."
    return decide(name, SEED, detail, outcomes, reasons=reasons)


# --- non-symmetric two-factor MF (seed 003, next check 1) ---------------------------------

def _as_beyond(c: Claim) -> Claim:
    return dataclasses.replace(c, seed=SEED)


@claim(reads=("runs", "trajectories"))
def nonsymmetric_mf_muon_kappa_free(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    r"""Seed 001's Theorem 1 statement on the non-symmetric two-factor problem (P3, M* ∈
    R^{n_out×n_in} of rank r, log-spaced spectrum, d = r, small init), under the paper's rule
    (plateau threshold 0): Muon's steps to the finest common level do not grow with κ
    (|log-log slope| < 0.1, :data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`); GD's steps, or
    its 1/ρ where it misses the level, grow with exponent > ½ (theory 1: slowest curvature
    2σ*_r = 2/κ). Judged per seed exactly as seed 001's ``muon_kappa_free`` (the same code);
    budget ≥ 10× Muon's steps."""
    from muonlab.claims.seed001 import GD_SLOPE_THEORY, _kappa_claim

    return _as_beyond(_kappa_claim(runs, trajectories, name="nonsymmetric_mf_muon_kappa_free", baseline="gd",
                                   slope_min=GD_SLOPE_MIN, theory=GD_SLOPE_THEORY,
                                   what="non-symmetric two-factor MF, Muon vs GD", ours=False))


@claim(reads=("runs", "trajectories"))
def nonsymmetric_mf_muon_kappa_free_ours(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """:func:`nonsymmetric_mf_muon_kappa_free` with each optimizer at its best plateau
    threshold (1e-3 or 0) per seed and κ (as seed 001's ``muon_kappa_free_ours``)."""
    from muonlab.claims.seed001 import GD_SLOPE_THEORY, _kappa_claim

    return _as_beyond(_kappa_claim(runs, trajectories, name="nonsymmetric_mf_muon_kappa_free_ours", baseline="gd",
                                   slope_min=GD_SLOPE_MIN, theory=GD_SLOPE_THEORY,
                                   what="non-symmetric two-factor MF, Muon vs GD", ours=True))

