"""Beyond the papers (issue 15, item 4; seed 003's Open Question 2): Muon from a larger
initialization on symmetric MF (P1, experiment ``beyond_large_init``) and two-factor MF
(P3, ``beyond_large_init_mf``). Derivations and results: ``docs/beyond_large_init.md``.

Seed 001's Theorem 1 assumes a small random init X_0 = α·N(0,1)/√n; its proof uses the
small scale to make the first steps align X with M*'s eigenspace. The experiments run α
from 1e-6 to 100 (P1) or 30 (P3) and ask three things, one claim each:

* :func:`large_init_kappa_free` (P1): under the plateau rule, wherever Muon converges at
  every κ its steps to the finest common level have |κ-slope| < :data:`SLOPE_MAX`
  (seed 001's rule), per seed and per α; and it does converge at every κ at some α ≥ :data:`ALPHA_LARGE`.
* :func:`large_init_aligns_after_shrinking` (P1): a large init does not align while it
  shrinks. Muon moves each singular value of X by at most η_t per step, so X's smallest
  singular value stays ≥ σ_min(X_0) − η_max·t; while it is ≥ 2 (XXᵀ ≥ 4 ≥ 4‖M*‖ on X's
  column space) the gradient (XXᵀ − M*)X is dominated by XXᵀX, whose polar factor is X's
  own, so X keeps its random column space: the misalignment
  m_t = 1 − ‖UᵀX_t‖²_F/‖X_t‖²_F (U: M*'s eigenvectors) stays ≥ m_0/2 for
  t ≤ t_keep = (σ_min(X_0) − 2)/η_max. A small init (σ_max(X_0) ≤ η_0/10) aligns
  (m < :data:`ALIGNED`) within :data:`ALIGN_FAST` steps.
* :func:`geometric_reach_rule` (P1): under Theorem 1's schedule η_t = lr·c·q^t the total
  travel is S = lr·c/(1−q). If S < σ_max(X_0) − 1 the run can never converge: then
  ‖X_t‖ ≥ σ_max(X_0) − S and ‖X_tX_tᵀ − M*‖_F ≥ (σ_max(X_0) − S)² − λ_1, so
  rel_err_t ≥ ((σ_max(X_0) − S)² − 1)/√r* at every t (λ_1 = 1, ‖M*‖_F ≤ √r*) — checked
  with S = lr·c_hi/(1−q). If lr·c_lo/(1−q) ≥ σ_max(X_0) + :data:`THEOREM1_TRAVEL` (the
  shrink leaves Theorem 1's own small-init budget), Muon reaches 1e-12 and is κ-free.
* :func:`large_init_kappa_dependent_mf` (P3): what we found there. The geometric schedule
  sized to reach the init (lr = 10) is κ-free at every α below the grid's largest, but at
  α = 30 (σ_max(W_k(0)) ≈ 60) it reaches 1e-12 at κ = 10 and freezes above 1e-8 at
  κ = 1e4: beyond the small init, P3 loses κ-freeness (the plateau rule stalls earlier).

The replicate is a seed (its runs across κ, α and the variants). An empty store, too few
κ, or a store without a large α fails with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from muonlab.accuracy import EPSILONS
from muonlab.claims.base import (
    Claim,
    Outcome,
    claim,
    decide,
    level_for,
    loglog_slope,
    seed_label,
    steps_column,
)

__all__ = [
    "geometric_reach_rule",
    "large_init_aligns_after_shrinking",
    "large_init_kappa_dependent_mf",
    "large_init_kappa_free",
    "misalignment_paths",
]

SEED = "beyond"

#: |κ-slope| of log(steps) vs log κ below which Muon counts as κ-free: seed 001's rule
#: (``muon_kappa_free``): a factor of at most 1.5 over >= 2 decades of κ has
#: |slope| <= log 1.5 / log 100 = 0.088 < 0.1.
SLOPE_MAX = 0.1
#: A "large" init: α >= 10, i.e. σ_max(X_0) ≈ α(1 + √(r/n)) >= 10× the target's scale
#: √λ_1 = 1, where the small-init proof's first-step alignment cannot apply.
ALPHA_LARGE = 10.0
#: Misalignment below which X counts as aligned: 1 % of ‖X‖²_F outside M*'s eigenspace,
#: against 1 − r/n ≈ 0.9 for a random init.
ALIGNED = 0.01
#: A small init aligns within this many steps: a fifth of the ≈ 500 steps plateau Muon
#: needs to 1e-12 at α = 1e-3 (seed 001's setting), i.e. alignment is a short first phase.
ALIGN_FAST = 100
#: A small init is one the first step dominates: σ_max(X_0) <= η_0/10.
SMALL_INIT_RATIO = 0.1
#: Theorem 1's schedule as run by seed 001 (p1_geometric_thm1: lr = 1, c_lo = 0.5,
#: q = 0.97) travels at least 0.5/0.03 = 16.7 and converges from a small init; a large
#: init must leave that much after shrinking from σ_max(X_0) to the target's scale 1.
THEOREM1_TRAVEL = 1.0 * 0.5 / (1 - 0.97)


# --- selecting and fitting -------------------------------------------------------------------

def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] != "failed"] if "status" in runs else runs


def _sched(runs: pd.DataFrame) -> pd.Series:
    return runs["schedule.name"] if "schedule.name" in runs else pd.Series("", index=runs.index)


def _variant(row: pd.Series) -> str:
    return f"{row.get('schedule.name', '?')} lr={float(row.get('optimizer.lr', math.nan)):g}"


def _kappa_reasons(kappas: list[float]) -> list[str]:
    if len(kappas) < 3:
        return [f"need >= 3 values of κ, got {len(kappas)}"]
    if kappas[-1] / kappas[0] < 100:
        return [f"κ must span >= 2 decades, got {kappas[0]:g}..{kappas[-1]:g}"]
    return []


@dataclass
class _Fit:
    """One seed's steps across κ at one α for one variant."""

    status: str  # "ok" (a slope), "none" (no κ reached a level), "partial" (some did)
    slope: float = math.nan
    eps: float = math.nan
    values: dict[float, float] | None = None
    missed: tuple[float, ...] = ()


def _fit(g: pd.DataFrame, kappas: list[float], eps_max: float) -> _Fit:
    """Steps at the finest recorded level (no finer than ``eps_max``) that every κ reached."""
    def steps(k: float, eps: float) -> float | None:
        col = steps_column(eps)
        v = g.loc[g["problem.kappa"].astype(float) == k, col].dropna() if col in g else pd.Series(dtype=float)
        return float(v.min()) if len(v) else None

    for eps in sorted(EPSILONS):
        if eps < eps_max * (1 - 1e-9):
            continue
        vals = {k: steps(k, eps) for k in kappas}
        if all(v is not None for v in vals.values()):
            values = {k: float(v) for k, v in vals.items() if v is not None}
            return _Fit("ok", loglog_slope(list(values), list(values.values())), eps, values)
    coarse = max(EPSILONS)
    missed = tuple(k for k in kappas if steps(k, coarse) is None)
    return _Fit("none" if len(missed) == len(kappas) else "partial", missed=missed)


def _f3(x: float) -> str:
    return f"{round(x, 3) + 0.0:.3f}"


def _kappa_free_by_alpha(runs: pd.DataFrame, *, name: str, what: str, schedule: str,
                         require_all: bool) -> Claim:
    """Per seed and α (runs on ``schedule``): |κ-slope| < SLOPE_MAX wherever every κ reached a
    level. ``require_all``: every α must converge at every κ; else an α where no κ or only
    some κ converged is reported (a stall, not a slope), and some α >= ALPHA_LARGE must
    converge at every κ."""
    if runs.empty or "problem.alpha" not in runs or "problem.kappa" not in runs:
        return decide(name, SEED, f"{what}: no runs of an α × κ sweep in the store.", [])
    runs = _ok(runs)
    eps_max = level_for(runs)
    sel = runs[_sched(runs) == schedule]
    reasons: list[str] = []
    if sel.empty:
        reasons.append(f"no Muon runs on the {schedule} schedule")
    kappas = sorted(float(k) for k in sel["problem.kappa"].unique()) if not sel.empty else []
    alphas = sorted(float(a) for a in sel["problem.alpha"].unique()) if not sel.empty else []
    reasons += _kappa_reasons(kappas)
    if alphas and max(alphas) < ALPHA_LARGE:
        reasons.append(f"largest α {max(alphas):g} < {ALPHA_LARGE:g}: no large init to judge")
    outcomes: list[Outcome] = []
    per_seed: list[str] = []
    slopes: dict[float, list[float]] = {a: [] for a in alphas}
    stalled: dict[float, int] = dict.fromkeys(alphas, 0)
    largest: list[float] = []
    for s in sorted(sel["seed"].unique()) if not sel.empty else []:
        g = sel[sel["seed"] == s]
        problems: list[str] = []
        parts: list[str] = []
        conv: list[float] = []
        for a in alphas:
            fit = _fit(g[g["problem.alpha"].astype(float) == a], kappas, eps_max)
            if fit.status == "ok":
                conv.append(a)
                slopes[a].append(fit.slope)
                parts.append(f"α={a:g}: {'/'.join(f'{v:g}' for v in (fit.values or {}).values())} "
                             f"(slope {_f3(fit.slope)})")
                if not abs(fit.slope) < SLOPE_MAX:
                    problems.append(f"|slope| {_f3(abs(fit.slope))} >= {SLOPE_MAX} at α={a:g}")
            else:
                stalled[a] += 1
                parts.append(f"α={a:g}: no level at κ=" + ",".join(f"{k:g}" for k in fit.missed))
                if require_all:
                    problems.append(f"no level at α={a:g}, κ=" + ",".join(f"{k:g}" for k in fit.missed))
        if not require_all and not any(a >= ALPHA_LARGE for a in conv):
            problems.append(f"converged at every κ at no α >= {ALPHA_LARGE:g}")
        largest.append(max(conv) if conv else math.nan)
        outcomes.append(Outcome(seed_label(s), not problems, "; ".join(problems)))
        per_seed.append(f"[{seed_label(s)}] " + "; ".join(parts))
    summary = ", ".join(
        f"α={a:g}: " + (f"median {_f3(float(np.median(v)))}, max |.| {_f3(max(abs(x) for x in v))}" if v else "-")
        + (f" ({stalled[a]} seed(s) without a level at some κ)" if stalled[a] else "")
        for a, v in slopes.items())
    fin = [x for x in largest if not math.isnan(x)]
    rule = ("every α converges at every κ and" if require_all else
            f"at every α where every κ reached a level (an α where some κ did not is reported as a stall), and "
            f"some α >= {ALPHA_LARGE:g} converges at every κ;")
    detail = (f"{what}, Muon on the {schedule} schedule, κ ∈ {{{', '.join(f'{k:g}' for k in kappas)}}}, "
              f"α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}}. Per seed: {rule} steps to the finest level every κ "
              f"reached have |κ-slope| < {SLOPE_MAX} (seed 001's rule, theory 0). κ-slopes per α: {summary}. "
              f"Largest α converged at every κ: {', '.join(f'{x:g}' for x in fin) or '-'} (per seed). "
              + " ".join(per_seed) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs",))
def large_init_kappa_free(runs: pd.DataFrame) -> Claim:
    """P1: plateau-ruled Muon (η_0 = 0.5, threshold 1e-3) stays κ-free at every α where it
    converges at every κ (|κ-slope| < 0.1 per seed and α), and converges at every κ at some
    α >= 10 (σ_max(X_0) >= 10× the target's scale)."""
    return _kappa_free_by_alpha(runs, name="large_init_kappa_free", what="symmetric MF (P1)",
                                schedule="plateau", require_all=False)


#: The level a run that "does not converge" misses: four decades above the finest level
#: (1e-12) that the same seed reaches at the smallest κ.
MISSED_LEVEL = 1e-8


@claim(reads=("runs",))
def large_init_kappa_dependent_mf(runs: pd.DataFrame) -> Claim:
    """P3, Muon on the geometric schedule sized to reach the init (lr·c_lo/(1−q) above
    σ_max(W_k(0)) at every α): per seed, κ-free (every κ converges, |κ-slope| < 0.1) at
    every α below the grid's largest, and κ-dependent at the largest α (>= 10): it reaches
    the finest level at the smallest κ but misses 1e-8 at the largest κ."""
    name = "large_init_kappa_dependent_mf"
    if runs.empty or "problem.alpha" not in runs or "problem.kappa" not in runs:
        return decide(name, SEED, "two-factor MF (P3): no runs of an α × κ sweep in the store.", [])
    runs = _ok(runs)
    eps_max = level_for(runs)
    sel = runs[_sched(runs) == "geometric"]
    reasons: list[str] = []
    if sel.empty:
        reasons.append("no Muon runs on the geometric schedule")
    kappas = sorted(float(k) for k in sel["problem.kappa"].unique()) if not sel.empty else []
    alphas = sorted(float(a) for a in sel["problem.alpha"].unique()) if not sel.empty else []
    reasons += _kappa_reasons(kappas)
    if len(alphas) < 2 or alphas[-1] < ALPHA_LARGE:
        reasons.append(f"need >= 2 values of α, the largest >= {ALPHA_LARGE:g}; got {alphas}")
    outcomes: list[Outcome] = []
    per_seed: list[str] = []
    slopes: dict[float, list[float]] = {a: [] for a in alphas[:-1]}
    top_small: list[float] = []
    top_large: list[float] = []
    for s in sorted(sel["seed"].unique()) if not sel.empty and kappas and alphas else []:
        g = sel[sel["seed"] == s]
        problems: list[str] = []
        parts: list[str] = []
        for a in alphas[:-1]:
            fit = _fit(g[g["problem.alpha"].astype(float) == a], kappas, eps_max)
            if fit.status != "ok":
                problems.append(f"no level at α={a:g}, κ=" + ",".join(f"{k:g}" for k in fit.missed))
                continue
            slopes[a].append(fit.slope)
            parts.append(f"α={a:g}: {'/'.join(f'{v:g}' for v in (fit.values or {}).values())} (slope {_f3(fit.slope)})")
            if not abs(fit.slope) < SLOPE_MAX:
                problems.append(f"|slope| {_f3(abs(fit.slope))} >= {SLOPE_MAX} at α={a:g}")
        top = g[g["problem.alpha"].astype(float) == alphas[-1]]
        lo = top[top["problem.kappa"].astype(float) == kappas[0]]
        hi = top[top["problem.kappa"].astype(float) == kappas[-1]]
        col, miss = steps_column(eps_max), steps_column(MISSED_LEVEL)
        if lo.empty or hi.empty:
            problems.append(f"no run at α={alphas[-1]:g} and κ={kappas[0]:g} or {kappas[-1]:g}")
        else:
            f_lo, f_hi = float(lo["final_rel_err"].min()), float(hi["final_rel_err"].min())
            top_small.append(f_lo)
            top_large.append(f_hi)
            parts.append(f"α={alphas[-1]:g}: final rel_err {f_lo:.2g} at κ={kappas[0]:g}, "
                         f"{f_hi:.2g} at κ={kappas[-1]:g}")
            if lo[col].isna().all():
                problems.append(f"α={alphas[-1]:g}, κ={kappas[0]:g} misses {eps_max:g} (final {f_lo:.2g})")
            if hi[miss].notna().any():
                problems.append(f"α={alphas[-1]:g}, κ={kappas[-1]:g} reaches {MISSED_LEVEL:g}: not κ-dependent")
        outcomes.append(Outcome(seed_label(s), not problems, "; ".join(problems)))
        per_seed.append(f"[{seed_label(s)}] " + "; ".join(parts))
    summary = ", ".join(
        f"α={a:g}: " + (f"max |.| {_f3(max(abs(x) for x in v))}" if v else "-") for a, v in slopes.items())

    def rng(v: list[float]) -> str:
        return f"{min(v):.2g}–{max(v):.2g}" if v else "-"

    detail = (f"Two-factor MF (P3), Muon on η_t = lr·c·q^t sized to reach the init, κ ∈ "
              f"{{{', '.join(f'{k:g}' for k in kappas)}}}, α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}}. Per seed: "
              f"at every α below the largest every κ reaches a level with |κ-slope| < {SLOPE_MAX} (κ-slopes: "
              f"{summary}); at the largest α the smallest κ reaches {eps_max:g} (final rel_err {rng(top_small)}) and "
              f"the largest κ misses {MISSED_LEVEL:g} (final rel_err {rng(top_large)}). " + " ".join(per_seed) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


# --- trajectories: misalignment and the init's scale ------------------------------------------

def _sum_by_step(traj: pd.DataFrame, metric: str) -> dict[str, pd.Series]:
    t = traj[traj["metric"] == metric]
    return {str(rid): g.groupby("step")["value"].sum().sort_index() for rid, g in t.groupby("run_id", sort=False)}


def init_scale(trajectories: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """run_id → (σ_max(X_0), σ_min(X_0)) from the step-0 singular values of XXᵀ (P1)."""
    if trajectories is None or trajectories.empty:
        return {}
    t = trajectories[(trajectories["metric"] == "singular_values") & (trajectories["step"] == 0)]
    out: dict[str, tuple[float, float]] = {}
    for rid, g in t.groupby("run_id", sort=False):
        v = g["value"].to_numpy(float)
        v = v[np.isfinite(v)]
        if len(v):
            out[str(rid)] = (math.sqrt(max(float(v.max()), 0.0)), math.sqrt(max(float(v.min()), 0.0)))
    return out


def misalignment_paths(trajectories: pd.DataFrame) -> dict[str, pd.Series]:
    """run_id → m_t = 1 − ‖UᵀX_t‖²_F/‖X_t‖²_F by step (P1): Σ eigen_coordinates = ‖UᵀX‖²_F
    (diag of UᵀXXᵀU summed) over Σ singular_values of XXᵀ = tr XXᵀ = ‖X‖²_F."""
    if trajectories is None or trajectories.empty or "metric" not in trajectories:
        return {}
    ec = _sum_by_step(trajectories, "eigen_coordinates")
    sv = _sum_by_step(trajectories, "singular_values")
    out: dict[str, pd.Series] = {}
    for rid in ec.keys() & sv.keys():
        a, b = ec[rid].align(sv[rid], join="inner")
        with np.errstate(divide="ignore", invalid="ignore"):
            out[rid] = (1.0 - a / b).where(b > 0)
    return out


def _eta_max(row: pd.Series) -> float:
    """The largest step the run's schedule takes: lr, times c_hi for the geometric one."""
    lr = float(row["optimizer.lr"])
    if row.get("schedule.name") == "geometric":
        lr *= float(row.get("schedule.c_hi", 1.0))
    return lr


@claim(reads=("runs", "trajectories"))
def large_init_aligns_after_shrinking(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """P1: a large init keeps its random column space while it shrinks — m_t >= m_0/2 at
    every logged t <= t_keep = (σ_min(X_0) − 2)/η_max — and a small init
    (σ_max(X_0) <= η_0/10) aligns (m < 0.01) within 100 steps. Per seed, every run."""
    name = "large_init_aligns_after_shrinking"
    if runs.empty or "problem.alpha" not in runs:
        return decide(name, SEED, "no runs of an α sweep in the store.", [])
    runs = _ok(runs)
    paths = misalignment_paths(trajectories)
    scale = init_scale(trajectories)
    reasons: list[str] = []
    if not paths or not scale:
        reasons.append("no eigen_coordinates and singular_values trajectories (log both)")
    log_every = int(runs["log_every"].max()) if "log_every" in runs else 1
    outcomes: list[Outcome] = []
    n_large = n_small = 0
    t_align: dict[float, list[float]] = {}
    t_shrink: dict[float, list[float]] = {}
    per_seed: list[str] = []
    for s in sorted(runs["seed"].unique()):
        g = runs[runs["seed"] == s]
        problems: list[str] = []
        judged = 0
        for _, r in g.iterrows():
            rid = str(r["run_id"])
            if rid not in paths or rid not in scale:
                problems.append(f"run {rid[:8]} has no misalignment trajectory")
                continue
            m = paths[rid].dropna()
            smax, smin = scale[rid]
            eta = _eta_max(r)
            a = float(r["problem.alpha"])
            aligned = m[m < ALIGNED]
            ta = float(aligned.index.min()) if len(aligned) else math.nan
            if r.get("schedule.name") == "plateau":
                t_align.setdefault(a, []).append(ta)
                t_shrink.setdefault(a, []).append(max(0.0, (smax - 1.0) / eta))
            t_keep = (smin - 2.0) / eta
            if t_keep >= log_every:
                judged += 1
                n_large += 1
                m0 = float(m.iloc[0]) if len(m) and m.index[0] == 0 else math.nan
                window = m[m.index <= t_keep]
                low = window[window < m0 / 2]
                if math.isnan(m0):
                    problems.append(f"run {rid[:8]} has no step-0 misalignment")
                elif len(low):
                    problems.append(f"{_variant(r)}, α={a:g}, κ={float(r['problem.kappa']):g}: "
                                    f"m={float(low.iloc[0]):.3f} < m_0/2={m0 / 2:.3f} at step {int(low.index[0])} "
                                    f"<= t_keep={t_keep:.0f}")
            elif smax <= SMALL_INIT_RATIO * eta:
                judged += 1
                n_small += 1
                if not ta <= ALIGN_FAST:
                    problems.append(f"{_variant(r)}, α={a:g}, κ={float(r['problem.kappa']):g}: small init aligned at "
                                    f"{'never' if math.isnan(ta) else f'step {ta:g}'} > {ALIGN_FAST}")
        if not judged:
            problems.append("no run with a large (t_keep >= one log interval) or small init")
        outcomes.append(Outcome(seed_label(s), not problems, "; ".join(problems)))
    if n_large == 0:
        reasons.append(f"no large init (t_keep = (σ_min(X_0) − 2)/η_max >= log_every = {log_every})")
    if n_small == 0:
        reasons.append(f"no small init (σ_max(X_0) <= {SMALL_INIT_RATIO:g}·η_0)")

    def med(v: list[float]) -> str:
        f = [x for x in v if not math.isnan(x)]
        return f"{float(np.median(f)):g}" if f else "never"

    for a in sorted(t_align):
        per_seed.append(f"α={a:g}: aligned at step {med(t_align[a])} (median), "
                        f"shrink time (σ_max(X_0) − 1)/η_0 = {med(t_shrink[a])}")
    detail = (f"Symmetric MF (P1): misalignment m_t = 1 − ‖UᵀX‖²_F/‖X‖²_F. Per seed: every run with "
              f"t_keep = (σ_min(X_0) − 2)/η_max >= {log_every} keeps m_t >= m_0/2 for logged t <= t_keep "
              f"({n_large} runs), and every run with σ_max(X_0) <= {SMALL_INIT_RATIO:g}·η_max reaches "
              f"m < {ALIGNED:g} by step {ALIGN_FAST} ({n_small} runs). Plateau runs: " + "; ".join(per_seed) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs", "trajectories"))
def geometric_reach_rule(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """P1, Theorem 1's schedule η_t = lr·c·q^t: a run whose total travel lr·c_hi/(1−q) is
    below σ_max(X_0) − 1 stays above rel_err ((σ_max(X_0) − S)² − 1)/√r* (it cannot
    converge), and one whose travel lr·c_lo/(1−q) is >= σ_max(X_0) + 16.7 (Theorem 1's own
    budget left after the shrink) reaches 1e-12, κ-free (|κ-slope| < 0.1 per seed, lr, α)."""
    name = "geometric_reach_rule"
    if runs.empty or "schedule.name" not in runs:
        return decide(name, SEED, "no runs in the store.", [])
    runs = _ok(runs)
    geo = runs[runs["schedule.name"] == "geometric"]
    scale = init_scale(trajectories)
    paths: dict[str, pd.Series] = {}
    if trajectories is not None and not trajectories.empty:
        t = trajectories[trajectories["metric"] == "rel_err"]
        paths = {str(rid): g.set_index("step")["value"].sort_index() for rid, g in t.groupby("run_id", sort=False)}
    reasons: list[str] = []
    if geo.empty:
        reasons.append("no runs on the geometric schedule")
    if not scale:
        reasons.append("no singular_values trajectories (σ_max(X_0))")
    kappas = sorted(float(k) for k in geo["problem.kappa"].unique()) if not geo.empty else []
    reasons += _kappa_reasons(kappas)
    eps = min(EPSILONS)
    col = steps_column(eps)
    outcomes: list[Outcome] = []
    n_out = n_in = n_between = 0
    out_alphas: set[float] = set()
    in_alphas: set[float] = set()
    slopes: list[str] = []
    for s in sorted(geo["seed"].unique()) if not geo.empty else []:
        g = geo[geo["seed"] == s]
        problems: list[str] = []
        within: dict[tuple[float, float], dict[float, float]] = {}
        full: dict[tuple[float, float], int] = {}
        for _, r in g.iterrows():
            rid = str(r["run_id"])
            if rid not in scale:
                problems.append(f"run {rid[:8]} has no step-0 singular values")
                continue
            smax = scale[rid][0]
            q, lr = float(r["schedule.q"]), float(r["optimizer.lr"])
            s_hi = lr * float(r["schedule.c_hi"]) / (1 - q)
            s_lo = lr * float(r["schedule.c_lo"]) / (1 - q)
            a, k = float(r["problem.alpha"]), float(r["problem.kappa"])
            r_star = float(r["problem.r_star"]) if pd.notna(r.get("problem.r_star")) else float(r["problem.r"])
            key = (lr, a)
            full[key] = full.get(key, 0) + 1
            if s_hi < smax - 1:
                n_out += 1
                out_alphas.add(a)
                bound = ((smax - s_hi) ** 2 - 1) / math.sqrt(r_star)
                path = paths.get(rid)
                lowest = float(path.min()) if path is not None and len(path) else float(r["final_rel_err"])
                if not lowest >= bound * (1 - 1e-9):
                    problems.append(f"lr={lr:g}, α={a:g}, κ={k:g}: rel_err {lowest:.3g} < reach bound {bound:.3g}")
            elif s_lo >= smax + THEOREM1_TRAVEL:
                n_in += 1
                in_alphas.add(a)
                if pd.isna(r.get(col)):
                    problems.append(f"lr={lr:g}, α={a:g}, κ={k:g}: within reach but not at {eps:g} "
                                    f"(final {float(r['final_rel_err']):.3g})")
                else:
                    within.setdefault(key, {})[k] = float(r[col])
            else:
                n_between += 1
        for (lr, a), vals in sorted(within.items()):
            if len(vals) == full[(lr, a)] == len(kappas) and len(vals) >= 3:
                sl = loglog_slope(list(vals), list(vals.values()))
                slopes.append(f"[{seed_label(s)}] lr={lr:g}, α={a:g}: {'/'.join(f'{v:g}' for v in vals.values())} "
                              f"(slope {_f3(sl)})")
                if not abs(sl) < SLOPE_MAX:
                    problems.append(f"lr={lr:g}, α={a:g}: |κ-slope| {_f3(abs(sl))} >= {SLOPE_MAX}")
        outcomes.append(Outcome(seed_label(s), not problems, "; ".join(problems)))
    if not geo.empty and not n_out:
        reasons.append("no run out of reach (lr·c_hi/(1−q) < σ_max(X_0) − 1): the bound is not exercised")
    if not geo.empty and not any(a >= ALPHA_LARGE for a in in_alphas):
        reasons.append(f"no run within reach at α >= {ALPHA_LARGE:g}")
    outs = ", ".join(f"{a:g}" for a in sorted(out_alphas))
    ins = ", ".join(f"{a:g}" for a in sorted(in_alphas))
    detail = (f"Symmetric MF (P1), η_t = lr·c·q^t, c ~ U[c_lo, c_hi]. Per seed: runs with lr·c_hi/(1−q) < "
              f"σ_max(X_0) − 1 ({n_out} runs, α ∈ {{{outs}}}) stay above "
              f"((σ_max(X_0) − S)² − 1)/√r* at every logged step (a bound, not a fit); runs with lr·c_lo/(1−q) >= "
              f"σ_max(X_0) + {THEOREM1_TRAVEL:.1f} ({n_in} runs, α ∈ {{{ins}}}) "
              f"reach {eps:g} with |κ-slope| < {SLOPE_MAX} per lr and α; {n_between} runs in between are not judged. "
              + " ".join(slopes) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)
