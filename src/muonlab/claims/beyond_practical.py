r"""Issue 15 [beyond], item 1: practical Muon instead of the exact msign.

Seed 001's theorems are proved for simplified Muon, W ← W − η·msign(∇f). Practical Muon
replaces msign by a polynomial orthogonalizer (Newton–Schulz with the ``keller`` or
``dion`` coefficients, Polar Express, Gram Newton–Schulz), iterates it in float32 or
bfloat16 and adds Nesterov momentum. The experiments ``beyond_practical_muon`` (symmetric
MF, P1) and ``beyond_practical_muon_icl`` (ICL, P2) run each variant over κ next to the
exact msign (the *reference*: ``svd`` on P1, ``symmetric`` on P2, see findings F1).

**The band and its knee.** A polynomial orthogonalizer maps each singular value of its
input independently: orth(G) = U φ(S/‖G‖_F) Vᵀ with φ = p_k∘…∘p_1, p(x) = ax + bx³ + cx⁵
(docs/orthogonalize.md). On [ℓ, 1] its output lies in a band [lo, hi] around 1; below,
φ(x) ≈ φ'(0)·x = (∏ a_j)·x is linear, i.e. a *GD* step on that direction. We summarize the
band by its **knee**

    knee_v = inf{ x : φ_v(y) ≥ ½ for every y ∈ [x, 1] }

(:func:`knee`): a gradient direction whose normalized singular value is ≥ knee_v is moved
at least half as far as msign moves it; below the knee it is moved ∝ its gradient, as GD
would. keller: 1 step 0.15, 2 steps 0.044, 3 steps 0.013, 5 steps 1.1e-3, 8 steps 2.6e-5;
dion 1.1e-3; Polar Express 5.4e-4 (its 1.02·‖G‖_F normalization included). The width of
the band above the knee (1 − lo: dion 0.02, keller 0.32) is a different property.

**Why the knee should set the floor.** Exact Muon converges to 1e-12 at every κ under the
plateau rule because every direction moves by η_t whatever its gradient, so the weak
modes (λ = 1/κ) are learned at the strong modes' pace. A variant moves a direction like
msign only while its normalized gradient x_i = σ_i(∇f)/‖∇f‖_F ≥ knee_v; the weak modes'
x_i shrink with κ (P1: ∝ λ_i near the start, ∇f ≈ −M*X; P2: the first gradient is −Σ²,
x_min = λ_min²/‖λ²‖ ∝ κ⁻²). Below the knee a weak mode grows only at GD's rate
φ'(0)·λ_i, while the plateau rule, seeing the strong modes' zigzag stall the loss, halves
η; once Σ η_t is spent the weak mode freezes: the run's **floor**. Two variants under the
same schedule, seed and κ differ in which directions they move like msign, and the set of
such directions only grows as the knee moves down. So the floor should be non-increasing
in the knee. The *width* of the band plays no part in this argument: a band [lo, hi] with
lo ≥ ½ is just a bounded per-direction step size, which the plateau rule absorbs (a
"floor ∝ (1 − lo)" would make dion's floor 15× lower than keller's; the detail reports
the measured ratio).

Claims (replicate = a seed; its runs across κ and variants):

* :func:`practical_muon_kappa_free` — (a) every variant's steps to ε_c are κ-free
  (|κ-slope| < 0.1, seed 001's rule), where ε_c is the finest recorded level every
  variant reaches at every κ in that seed;
* :func:`practical_muon_reaches_reference` — (c) every variant reaches the reference's
  level (the finest level the exact Muon reaches at every κ) at every κ within
  10× the reference's steps, or by extrapolating its tail contraction; the detail gives
  each variant's stall κ (the first κ where it misses) and floor;
* :func:`practical_muon_floor_tracks_knee` — (b) among the float64 polynomial variants
  without momentum, the floor at every κ is ordered by the knee: knee_v ≤ knee_w/3 ⇒
  floor_v ≤ 3·floor_w;
* :func:`practical_muon_icl_stall_at_first_gradient` — (c) on ICL the stall κ is
  predicted from the band alone: a float64 polynomial variant reaches the reference's
  level iff its knee ≤ x_0(κ) = λ_min²/‖λ²‖₂, the smallest normalized singular value of
  the first gradient −Σ² (derivation in its docstring).

An empty store, a missing reference, < 3 κ over < 2 decades, or a budget below 10× the
reference's steps fail with the reason.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from muonlab.accuracy import EPSILONS
from muonlab.claims.base import Claim, Outcome, claim, decide, level_for, loglog_slope, seed_label, steps_column
from muonlab.claims.seed001 import BUDGET_FACTOR, MUON_SLOPE_MAX, contraction_rate
from muonlab.linalg.orthogonalize import polynomial_map
from muonlab.optim.updates import coefficient_table

__all__ = [
    "FLOOR_TOL",
    "KNEE_PHI",
    "KNEE_SEPARATION",
    "first_gradient_fraction",
    "floors",
    "knee",
    "practical_muon_floor_tracks_knee",
    "practical_muon_icl_stall_at_first_gradient",
    "practical_muon_kappa_free",
    "practical_muon_reaches_reference",
    "reference_runs",
    "variant_knee",
    "variant_label",
]

SEED = "beyond"

#: The knee is where φ_v first stays ≥ this fraction of msign's unit step: at ½ a
#: direction moves at least half as far as under msign (a factor the plateau rule's
#: halving makes up in one cut), below it φ ≈ φ'(0)·x is a GD step.
KNEE_PHI = 0.5
#: Floors are compared to half a decade (√10 ≈ 3): they span 1e-12…1 (twelve decades),
#: and half a decade is the resolution asked of the ordering (one plateau cut, a factor 2,
#: moves a frozen floor by less).
FLOOR_TOL = 3.0
#: Pairs are compared only when their knees differ by more than the same half decade.
KNEE_SEPARATION = 3.0
#: Exact orthogonalizers (the reference candidates), in order of preference: on ICL the
#: SVD's msign loses the iterates' symmetry and stalls (findings F1), so ``symmetric`` is
#: the reference where it was run.
EXACT = ("symmetric", "svd", "gram")


def _num(row: pd.Series, col: str, default: float = 0.0) -> float:
    v = row.get(col, default)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(f) else f


def _str(row: pd.Series, col: str) -> str | None:
    v = row.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return str(v)


def _steps(row: pd.Series) -> int | None:
    v = row.get("optimizer.ns_steps")
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(v)


def variant_label(row: pd.Series) -> str:
    """A short name of one run's orthogonalizer: ``svd``, ``NS keller×5``, ``PE×5 bf16``,
    ``NS keller×5 +N0.95`` (Nesterov momentum 0.95)."""
    method = str(row.get("optimizer.method", "?"))
    if method in EXACT or method == "beta":
        name = method
    else:
        table = variant_table(row)
        k = len(table) if table else (_steps(row) or 5)
        coeff = _str(row, "optimizer.coefficients") or "keller"
        name = {"newton_schulz": f"NS {coeff}×{k}", "gram_newton_schulz": f"Gram NS {coeff}×{k}",
                "polar_express": f"PE×{k}"}.get(method, f"{method}×{k}")
    dtype = _str(row, "optimizer.ns_dtype")
    if dtype is not None and dtype != str(row.get("dtype", "float64")):
        name += " " + {"bfloat16": "bf16", "float32": "f32", "float64": "f64"}.get(dtype, dtype)
    mom = _num(row, "optimizer.momentum")
    if mom > 0:
        nesterov = str(row.get("optimizer.nesterov", False)).lower() in ("true", "1", "1.0")
        name += f" +{'N' if nesterov else 'M'}{mom:g}"
    return name


def variant_table(row: pd.Series) -> list[tuple[float, float, float]]:
    """The polynomial table one run's Muon used (empty for an exact method)."""
    method = str(row.get("optimizer.method", ""))
    if method not in ("newton_schulz", "gram_newton_schulz", "polar_express", "auto"):
        return []
    coeff = _str(row, "optimizer.coefficients") or "keller"
    return coefficient_table(method, coeff, _steps(row))


@lru_cache(maxsize=256)
def _knee(table: tuple[tuple[float, float, float], ...], scale: float) -> float:
    x = torch.logspace(-12, 0, 120001, dtype=torch.float64)
    y = polynomial_map(x / scale, list(table))
    below = torch.nonzero(y < KNEE_PHI)
    return 0.0 if len(below) == 0 else float(x[int(below.max())])


def knee(table: list[tuple[float, float, float]], *, scale: float = 1.0) -> float:
    """inf{x : φ(y/scale) ≥ :data:`KNEE_PHI` for every y ∈ [x, 1]} on a log grid of
    x ∈ [1e-12, 1] (120001 points, ~1e-4 decades apart); 0 for an empty table (msign)."""
    if not table:
        return 0.0
    rows = tuple((float(a), float(b), float(c)) for a, b, c in table)
    return _knee(rows, float(scale))


def variant_knee(row: pd.Series) -> float:
    """The knee of one run's orthogonalizer (Polar Express normalizes by 1.02·‖G‖_F)."""
    scale = 1.02 if str(row.get("optimizer.method")) == "polar_express" else 1.0
    return knee(variant_table(row), scale=scale)


def _with_labels(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs[runs["status"] != "failed"] if "status" in runs else runs
    runs = runs[runs["optimizer.name"] == "muon"] if "optimizer.name" in runs else runs
    runs = runs.copy()
    runs["variant"] = [variant_label(r) for _, r in runs.iterrows()]
    return runs


def reference_runs(runs: pd.DataFrame) -> tuple[str | None, pd.DataFrame]:
    """The reference (exact msign, no momentum) variant's label and runs: ``symmetric``
    where present, else ``svd``, else ``gram``."""
    labelled = runs if "variant" in runs else _with_labels(runs)
    for method in EXACT:
        sel = labelled[labelled["variant"] == method]
        if len(sel):
            return method, sel
    return None, labelled.iloc[0:0]


def _reached(row: pd.Series, eps: float) -> float | None:
    v = row.get(steps_column(eps))
    return None if v is None or pd.isna(v) else float(v)


def _finest(rows: pd.DataFrame, eps_max: float) -> float | None:
    """The finest recorded level (no finer than ``eps_max``) that every row reached."""
    for eps in sorted(EPSILONS):
        if eps < eps_max * (1 - 1e-9):
            continue
        col = steps_column(eps)
        if col in rows and rows[col].notna().all():
            return eps
    return None


def _paths(trajectories: pd.DataFrame | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if trajectories is None or trajectories.empty or "metric" not in trajectories:
        return {}
    t = trajectories[trajectories["metric"] == "rel_err"]
    return {str(rid): (g["step"].to_numpy(), g["value"].to_numpy()) for rid, g in t.groupby("run_id", sort=False)}


def floors(runs: pd.DataFrame, eps: float) -> pd.Series:
    """Each run's floor: ``eps`` where it reached the level, else its final rel. error."""
    col = steps_column(eps)
    reached = runs[col].notna() if col in runs else pd.Series(False, index=runs.index)
    final = runs["final_rel_err"].astype(float)
    return final.where(~reached, eps).clip(lower=eps)


def _setup(runs: pd.DataFrame, name: str) -> tuple[pd.DataFrame, str | None, list[float], list[str]]:
    """Labelled runs, the reference label, the κ values and what keeps the store from
    supporting the claim."""
    reasons: list[str] = []
    if runs.empty or "optimizer.name" not in runs:
        return runs, None, [], ["no runs in the store"]
    runs = _with_labels(runs)
    ref, _ = reference_runs(runs)
    if ref is None:
        reasons.append(f"no exact-msign reference ({', '.join(EXACT)}) without momentum")
    kappas = sorted(float(k) for k in runs["problem.kappa"].unique())
    if len(kappas) < 3:
        reasons.append(f"need >= 3 values of κ, got {len(kappas)}")
    elif kappas[-1] / kappas[0] < 100:
        reasons.append(f"κ must span >= 2 decades, got {kappas[0]:g}..{kappas[-1]:g}")
    if len(set(runs["variant"])) < 2:
        reasons.append("need at least one variant besides the reference")
    return runs, ref, kappas, reasons


def _order(runs: pd.DataFrame, ref: str | None) -> list[str]:
    """Variants in a stable order: the reference first, then by knee (exact last)."""
    first = runs.drop_duplicates("variant").set_index("variant")
    names = [v for v in first.index if v != ref]
    knees = {v: variant_knee(row) for v, row in first.iterrows()}
    names.sort(key=lambda v: (-knees[v], v))
    return ([ref] if ref is not None else []) + names


# --- (a) κ-free to a common level ------------------------------------------------------

@claim(reads=("runs",))
def practical_muon_kappa_free(runs: pd.DataFrame) -> Claim:
    """Every practical variant (Newton–Schulz presets and steps, Polar Express, Gram NS,
    low precision, Nesterov) keeps Muon's κ-free step count.

    (a) Per seed: ε_c is the finest recorded level (1e-4, 1e-8, 1e-12; no finer than
    the stop target) that every variant reaches at every κ; each variant's steps to ε_c
    have |κ-slope| < 0.1 (seed 001's rule, :data:`~muonlab.claims.seed001.MUON_SLOPE_MAX`:
    at most a factor 1.5 over two decades). A variant that misses 1e-4 at some κ is not
    κ-free at any common level and fails the seed. The detail names each variant's slope."""
    name = "practical_muon_kappa_free"
    runs, ref, kappas, reasons = _setup(runs, name)
    if reasons:
        return decide(name, SEED, "practical Muon, κ-free to a common level.", [], reasons=reasons)
    eps_max = level_for(runs)
    coarsest = max(EPSILONS)
    order = _order(runs, ref)
    outcomes, per_seed = [], []
    slopes: dict[str, list[float]] = {v: [] for v in order}
    for s, g in runs.groupby("seed"):
        problems = []
        stalled = [v for v in order if not g.loc[g["variant"] == v, steps_column(coarsest)].notna().all()]
        for v in stalled:
            gv = g[(g["variant"] == v) & g[steps_column(coarsest)].isna()]
            problems.append(f"{v} misses {coarsest:g} at κ=" + ", ".join(f"{k:g}" for k in gv["problem.kappa"]))
        ok = g[~g["variant"].isin(stalled)]
        eps = _finest(ok, eps_max)
        parts = []
        if eps is not None:
            for v in order:
                if v in stalled:
                    continue
                gv = ok[ok["variant"] == v]
                by_k = gv.groupby("problem.kappa")[steps_column(eps)].min()
                if len(by_k) < len(kappas):
                    problems.append(f"{v} has runs at {len(by_k)} of {len(kappas)} κ")
                    continue
                slope = loglog_slope([float(k) for k in by_k.index], [float(x) for x in by_k.to_numpy()])
                slopes[v].append(slope)
                parts.append(f"{v} {slope:+.3f}")
                if not abs(slope) < MUON_SLOPE_MAX:
                    problems.append(f"{v} |slope| {abs(slope):.3f} >= {MUON_SLOPE_MAX} (steps "
                                    + ", ".join(f"{x:g}" for x in by_k.to_numpy()) + ")")
        label = seed_label(s)
        per_seed.append(f"[{label}] level {eps:g}: " + ", ".join(parts) if eps is not None else f"[{label}] -")
        outcomes.append(Outcome(label, not problems, "; ".join(problems)))
    summary = "; ".join(
        f"{v} [{min(x):+.3f}, {max(x):+.3f}]" for v, x in slopes.items() if x
    )
    detail = (f"Practical Muon vs the exact msign ({ref}), κ = {', '.join(f'{k:g}' for k in kappas)}. Per seed, "
              f"at the finest level every variant reaches at every κ: every variant's |κ-slope of steps| < "
              f"{MUON_SLOPE_MAX} (seed 001's rule). Slopes (range over seeds): {summary}. " + " ".join(per_seed) + ".")
    return decide(name, SEED, detail, outcomes)


# --- (c) the reference's level, and where each variant stalls ---------------------------

@claim(reads=("runs", "trajectories"))
def practical_muon_reaches_reference(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Every practical variant reaches the exact msign's level at every κ, within 10× its steps.

    (c) Per seed: ε_ref is the finest recorded level the exact reference reaches at every
    κ in this seed. Every variant reaches ε_ref at every κ within :data:`BUDGET_FACTOR` ×
    the reference's largest step count in that seed (the store's budget must be at least
    10× the reference's steps in every seed, so a miss is a rate, not a budget). For a run
    that misses, the detail gives its floor and its tail contraction ρ per step
    (:func:`~muonlab.claims.seed001.contraction_rate` over the last half of its rel_err
    path: ≈ 0 is a floor frozen by the spent schedule, > 0 a slow tail), and for each
    variant its stall κ (the smallest κ where it misses, in any seed)."""
    name = "practical_muon_reaches_reference"
    runs, ref, kappas, reasons = _setup(runs, name)
    if reasons:
        return decide(name, SEED, "practical Muon reaches the exact Muon's level.", [], reasons=reasons,
                      )
    paths = _paths(trajectories)
    eps_max = level_for(runs)
    budget = int(runs["max_steps"].max()) if "max_steps" in runs else 0
    order = _order(runs, ref)
    outcomes = []
    ref_max = 0.0
    stall: dict[str, dict[float, list[float]]] = {v: {} for v in order}
    for s, g in runs.groupby("seed"):
        problems = []
        rg = g[g["variant"] == ref]
        eps = _finest(rg, eps_max) if len(rg) else None
        label = seed_label(s)
        if eps is None or rg["problem.kappa"].nunique() < len(kappas):
            outcomes.append(Outcome(label, False, f"the reference {ref} reaches no common level at every κ"))
            continue
        ref_steps = float(rg[steps_column(eps)].max())
        ref_max = max(ref_max, ref_steps)
        allowed = BUDGET_FACTOR * ref_steps
        for _, row in g.iterrows():
            v, k = row["variant"], float(row["problem.kappa"])
            t = _reached(row, eps)
            if t is not None and t <= allowed:
                continue
            final = float(row["final_rel_err"])
            if t is None:
                path = paths.get(str(row["run_id"]))
                rho = contraction_rate(*path) if path is not None else float("nan")
                why = (f"ends at {final:.2g}, tail ρ = {rho:.2g}/step" if path is not None
                       else f"ends at {final:.2g}, no trajectory")
            else:
                why = f"reached in {t:g} steps"
            stall[v].setdefault(k, []).append(final if t is None else eps)
            problems.append(f"{v} at κ={k:g}: {why}" + ("" if t is None else f" > {allowed:g}"))
        outcomes.append(Outcome(label, not problems, "; ".join(problems)))
    if ref_max and budget < BUDGET_FACTOR * ref_max:
        reasons.append(f"step budget {budget} < {BUDGET_FACTOR}× the reference's largest step count {ref_max:g}")
    table = []
    for v in order:
        if not stall[v]:
            table.append(f"{v}: no stall up to κ={kappas[-1]:g}")
            continue
        k0 = min(stall[v])
        fl = stall[v][k0]
        table.append(f"{v}: stalls from κ={k0:g} (floors {min(fl):.2g}..{max(fl):.2g}"
                     + (f"; at κ={kappas[-1]:g}: {min(stall[v][kappas[-1]]):.2g}..{max(stall[v][kappas[-1]]):.2g}"
                        if kappas[-1] in stall[v] and kappas[-1] != k0 else "") + ")")
    detail = (f"Practical Muon vs the exact msign ({ref}), κ = {', '.join(f'{k:g}' for k in kappas)}. Per seed: every "
              f"variant reaches the reference's finest common level at every κ within {BUDGET_FACTOR}× the "
              f"reference's steps; budget {budget}. "
              + "; ".join(table) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


# --- (b) the floor is ordered by the band's knee ------------------------------------------

def _polynomial_f64(row: pd.Series) -> bool:
    dtype = _str(row, "optimizer.ns_dtype")
    return (bool(variant_table(row)) and _num(row, "optimizer.momentum") == 0.0
            and (dtype is None or dtype == "float64") and str(row.get("dtype", "float64")) == "float64")


@claim(reads=("runs",))
def practical_muon_floor_tracks_knee(runs: pd.DataFrame) -> Claim:
    """A variant's error floor is set by its band's knee: a lower knee gives a lower floor.

    (b) Per seed, among the float64 polynomial variants without momentum: at every κ,
    a variant whose knee is lower by more than :data:`KNEE_SEPARATION` has a floor at
    most :data:`FLOOR_TOL` × the other's (floor = the final rel. error, or the level
    reached: ε_ref of the reference). Derivation in the module docstring: the directions a
    variant moves like msign are those above its knee, a set that only grows as the knee
    falls. Needs >= 3 such variants with distinct knees. The detail also reports the
    band-width test: dion (1 − lo ≈ 0.02) against keller×5 (0.32), same knee."""
    name = "practical_muon_floor_tracks_knee"
    runs, ref, kappas, reasons = _setup(runs, name)
    if reasons:
        return decide(name, SEED, "the floor is ordered by the band's knee.", [], reasons=reasons)
    eps_max = level_for(runs)
    poly = runs[[_polynomial_f64(r) for _, r in runs.iterrows()]].copy()
    poly["knee"] = [variant_knee(r) for _, r in poly.iterrows()]
    knees = poly.drop_duplicates("variant").set_index("variant")["knee"].sort_values()
    if len(set(np.round(np.log10(knees.to_numpy()), 2))) < 3:
        reasons.append(f"need >= 3 float64 polynomial variants with distinct knees, got {len(knees)}")
        return decide(name, SEED, "the floor is ordered by the band's knee.", [], reasons=reasons)
    outcomes, per_seed = [], []
    width: list[str] = []
    for s, g in runs.groupby("seed"):
        label = seed_label(s)
        rg = g[g["variant"] == ref]
        eps = _finest(rg, eps_max) if len(rg) else None
        if eps is None:
            outcomes.append(Outcome(label, False, f"the reference {ref} reaches no common level at every κ"))
            continue
        p = poly[poly["seed"] == s].copy()
        p["floor"] = floors(p, eps)
        problems = []
        for kk, gk in p.groupby("problem.kappa"):
            k = float(kk)  # type: ignore[arg-type]
            f = {str(v): float(x) for v, x in gk.groupby("variant")["floor"].max().items()}
            for v in f:
                for w in f:
                    if knees[v] * KNEE_SEPARATION <= knees[w] and not f[v] <= FLOOR_TOL * f[w]:
                        problems.append(f"κ={float(k):g}: {v} (knee {knees[v]:.2g}) floor {f[v]:.2g} > "
                                        f"{FLOOR_TOL:g}× {w} (knee {knees[w]:.2g}) {f[w]:.2g}")
            if "NS dion×5" in f and "NS keller×5" in f and f["NS keller×5"] > eps:
                width.append(f"[{label}] κ={float(k):g}: dion/keller×5 = {f['NS dion×5'] / f['NS keller×5']:.2g}")
        top = p[p["problem.kappa"] == kappas[-1]].groupby("variant")["floor"].max()
        per_seed.append(f"[{label}] κ={kappas[-1]:g}: " + ", ".join(
            f"{v} {top[v]:.2g}" for v in knees.index if v in top.index))
        outcomes.append(Outcome(label, not problems, "; ".join(problems[:3])
                                + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")))
    detail = ("Floors (final rel. error, or the reference's level where reached) of the float64 polynomial "
              "variants, knees " + ", ".join(f"{v} {x:.2g}" for v, x in knees.items())
              + f". Per seed and κ: knee_v <= knee_w/{KNEE_SEPARATION:g} ⇒ floor_v <= {FLOOR_TOL:g}·floor_w. "
              + " ".join(per_seed) + ". Band-width test (a floor ∝ 1 − lo would give dion/keller×5 ≈ 0.07): "
              + ("; ".join(width) if width else "keller×5 reached the level wherever both ran"
                 if {"NS dion×5", "NS keller×5"} <= set(knees.index) else "dion or keller×5 not in this grid") + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


# --- (c) on ICL, the stall κ from the first gradient ---------------------------------------

def first_gradient_fraction(d: int, kappa: float) -> float:
    """x_0 = σ_min(∇f(0))/‖∇f(0)‖_F on ICL: ∇f(Γ_0 = 0) = −Σ² has singular values λ_i² with
    λ log-spaced from 1 to 1/κ over d values (any covariance basis), so x_0 = κ⁻²/‖λ²‖₂."""
    lam = np.logspace(0.0, -math.log10(kappa), int(d)) if kappa > 1 else np.ones(int(d))
    return float(lam[-1] ** 2 / np.sqrt(np.sum(lam ** 4)))


@claim(reads=("runs",))
def practical_muon_icl_stall_at_first_gradient(runs: pd.DataFrame) -> Claim:
    """On ICL a variant stalls exactly where its knee passes the first gradient's smallest normalized singular value.

    (c) ICL: where each polynomial variant stalls, predicted from its band and the first gradient.

    Derivation. From Γ_0 = 0 the iterates commute with Σ (findings F1), so in Σ's
    eigenbasis each coordinate follows a scalar recursion γ_i ← γ_i − η_t φ(x_i) sign(g_i)
    with x_i = |g_i|/‖g‖ and g_i = λ_i²(λ_iγ_i − 1). Coordinate i must travel 1/λ_i: the
    weakest travels κ = ‖Γ*‖, the farthest, and its first x is the smallest,
    x_0 = λ_min²/‖λ²‖₂ (:func:`first_gradient_fraction`). With lr = κ, exact msign moves it
    by κ in the first step. A variant with knee_v ≤ x_0 moves it at least κ/2, as msign
    would (to the knee's ½). With knee_v > x_0 it moves κ·φ(x_0) ≪ κ, while every other
    coordinate jumps by ≈ κ ≫ 1/λ_i. Their gradients λ_i³·κ then dwarf the weak one's
    (≤ κ⁻²), so its x falls further below the knee. The plateau rule halves η on the
    strong coordinates' zigzag, the weak coordinate's travel is never made, and the run
    freezes far from Γ* (relative error ≈ its share, near 1).

    Rule, per seed and κ, for each float64 polynomial variant without momentum: it
    reaches the reference's finest common level within 10× the reference's steps iff
    knee_v ≤ x_0(κ). Judged where knee and x_0 are more than :data:`KNEE_SEPARATION`
    apart (half a decade, as in :func:`practical_muon_floor_tracks_knee`); the pairs
    closer than that are reported, not judged. ICL stores only.
    """
    name = "practical_muon_icl_stall_at_first_gradient"
    what = "ICL: the stall κ predicted from the knee and the first gradient."
    runs, ref, kappas, reasons = _setup(runs, name)
    if not reasons and "problem.kind" in runs and not (runs["problem.kind"] == "icl").all():
        reasons.append("ICL stores only (problem.kind: icl)")
    if reasons:
        return decide(name, SEED, what, [], reasons=reasons)
    eps_max = level_for(runs)
    d = int(runs["problem.d"].iloc[0])
    x0 = {k: first_gradient_fraction(d, k) for k in kappas}
    poly = runs[[_polynomial_f64(r) for _, r in runs.iterrows()]].copy()
    if poly.empty:
        return decide(name, SEED, what, [], reasons=["no float64 polynomial variants"])
    poly["knee"] = [variant_knee(r) for _, r in poly.iterrows()]
    outcomes: list[Outcome] = []
    gray: set[str] = set()
    table: dict[tuple[str, float], dict[float, bool]] = {}
    for s, g in runs.groupby("seed"):
        label = seed_label(s)
        rg = g[g["variant"] == ref]
        eps = _finest(rg, eps_max) if len(rg) else None
        if eps is None:
            outcomes.append(Outcome(label, False, f"the reference {ref} reaches no common level at every κ"))
            continue
        allowed = BUDGET_FACTOR * float(rg[steps_column(eps)].max())
        problems = []
        for _, row in poly[poly["seed"] == s].iterrows():
            v, k, kn = row["variant"], float(row["problem.kappa"]), float(row["knee"])
            t = _reached(row, eps)
            ok = t is not None and t <= allowed
            table.setdefault((v, kn), {})[k] = table.get((v, kn), {}).get(k, True) and ok
            if max(kn, x0[k]) < KNEE_SEPARATION * min(kn, x0[k]):
                gray.add(f"{v} at κ={k:g} (knee {kn:.2g}, x_0 {x0[k]:.2g})")
                continue
            predicted = kn <= x0[k]
            if ok != predicted:
                problems.append(f"{v} at κ={k:g}: {'reached' if ok else 'stalled'} ({row['final_rel_err']:.2g}), "
                                f"predicted {'reach' if predicted else 'stall'} (knee {kn:.2g} vs x_0 {x0[k]:.2g})")
        outcomes.append(Outcome(label, not problems, "; ".join(problems)))
    listing = "; ".join(
        f"{v} (knee {kn:.2g}): " + ", ".join(f"κ={k:g} {'ok' if ok else 'stall'}" for k, ok in sorted(r.items()))
        for (v, kn), r in sorted(table.items(), key=lambda it: -it[0][1]))
    detail = (f"{what} x_0(κ) = λ_min²/‖λ²‖ = " + ", ".join(f"{x:.2g} (κ={k:g})" for k, x in x0.items())
              + f"; per seed: reaches the reference's level iff knee <= x_0, judged where they are > "
              f"{KNEE_SEPARATION:g}× apart. Observed (all seeds): {listing}. Not judged (too close): "
              + (", ".join(sorted(gray)) if gray else "none") + ".")
    return decide(name, SEED, detail, outcomes)
