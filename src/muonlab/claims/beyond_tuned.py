r"""Issue 15, item 6 (seed "beyond"): **does Muon's κ-advantage survive tuned baselines?**

A later paper (arXiv 2607.13246, *Reassessing Muon for Matrix Factorization*) reports
that a tuned AdamW is not consistently beaten on matrix factorization, which challenges
the seeds' comparisons at one fixed step size per optimizer. The experiments
``beyond_tuned_p1_kappa`` (P1, symmetric MF), ``beyond_tuned_p2_icl`` (P2, the ICL quadratic) and
``beyond_tuned_p3_two_factor`` (P3, two-factor MF) repeat the κ sweeps with every optimizer
run on a stated grid, and these claims judge the *tuned* comparison per seed.

**The tuning grid** (the YAMLs list it). Per optimizer a log-spaced grid of initial step
sizes, two per decade, bracketing its useful range: Muon {0.03, 0.1, 0.3, 1} (ICL: {10,
100, 1000}, scaled with ‖Γ*‖ = κ); GD {0.1, 0.3, 1} (ICL: {0.5, 1, 1.9}, below the edge
2/λ_max = 2); ScaledGD {0.1, 0.3, 1} (1 is its Gauss–Newton step); Adam {0.03, 0.1, 0.3}
(ICL: {0.1, 1, 10, 100}) × β ∈ {(0.9, 0.999), (0.9, 0.99)}. Adam with weight decay 0 is
AdamW (a decoupled decay of 0 is no decay), so "Adam" here is AdamW as well. Schedules:
the plateau rule (halve η when the loss has not fallen by the threshold's fraction for
10 steps), threshold 1e-3 for Muon, ScaledGD and Adam, and threshold 0 (the paper's rule,
which never halves a monotone descent: constant-step GD in effect) for GD and Adam.
Muon at threshold 0 stalls (findings F2, F7); GD at 1e-3 freezes in its saddle phase
from small init (the loss falls by < 0.1 % per 10 steps), so neither is run. ScaledGD
is run on the factorized problems only (ICL has one matrix, nothing to precondition).

**The cost of a run** at the level ε (:func:`~muonlab.claims.base.level_for`: the stop
target, 1e-8): its steps to ε where it reached ε; otherwise ("rates, not budgets")
t_last + ln(e_last/ε)/ρ, its logged steps plus the steps its fitted tail contraction ρ
(:func:`muonlab.claims.seed001.contraction_rate`, last half of the log) needs from its
last error to ε; ∞ for a diverged run or a tail that does not contract.

**Tuned, two ways** (per κ and optimizer family, over the family's grid variants):

* *held-out* (no peeking): seed s is judged at the variant with the lowest median cost
  over the **other** seeds at that κ (leave-one-out), a rule that never looks at seed
  s's own outcome;
* *oracle*: seed s's own best variant — an upper bound on what tuning can do for that
  optimizer.

A claim that one optimizer A beats another B judges A held-out and B by its oracle:
the side the claim favours never peeks, the other side is given the best it could do.
The detail lists both ratios (held-out/held-out as well).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
from muonlab.claims.seed001 import BUDGET_FACTOR, FROZEN_TOL, contraction_rate

__all__ = [
    "ADV_MIN",
    "SCALEDGD_SLOPE_MAX",
    "TunedTable",
    "muon_beats_tuned_adam",
    "muon_beats_tuned_gd",
    "run_costs",
    "tuned_scaledgd_beats_muon",
    "tuned_table",
]

SEED = "beyond"

#: "A is faster than B" means B's cost at the largest κ is at least ADV_MIN × A's. Derived
#: from the schedule's own resolution: every run uses the plateau rule, which halves η,
#: and below the stability edge a first-order method's rate is ∝ η, so one halving
#: changes a cost by 2×. A ratio below 2 is within what one step of the schedule (or one
#: coarser grid point) can move; ≥ 2 is not. Not fitted to any run.
ADV_MIN = 2.0
#: Theory κ-exponent of GD's cost: P1 and P3 ∝ κ (rate η·λ_min with η fixed by λ_max),
#: P2 ∝ κ³ (Hessian Γ ↦ ΣΓΣ², condition number κ³). The claim needs more than half of it
#: (as seed 001's claims: the κ-free escape phase flattens a fit from small κ).
GD_EXPONENT = {"symmetric_mf": 1.0, "two_factor_mf": 1.0, "icl": 3.0}
#: "Does not grow with κ" for a tuned optimizer's cost: κ-exponent < 0.1, seed 001's
#: MUON_SLOPE_MAX (a cost growing by ≤ 1.5× over ≥ 2 decades has slope ≤ log 1.5/log 100
#: = 0.088). One-sided: ScaledGD's cost at κ = 1 depends on the seed's init (tens to
#: thousands of steps on P3), and a cost that falls with κ is no κ-dependence.
SCALEDGD_SLOPE_MAX = 0.1
#: The optimizer families judged, and how a run is named within its family.
FAMILIES = ("muon", "gd", "adam", "scaledgd")


def _variant(row: pd.Series) -> str:
    """The grid variant of a run inside its family: lr, Adam's β's, the plateau threshold."""
    parts = [f"lr={float(row['optimizer.lr']):g}"]
    betas = row.get("optimizer.betas")
    if row.get("optimizer.name") == "adam" and betas is not None and not (isinstance(betas, float)
                                                                         and math.isnan(betas)):
        b = [float(x) for x in (betas if not isinstance(betas, str) else betas.strip("[]()").split(","))]
        parts.append(f"β=({b[0]:g},{b[1]:g})")
    thr = row.get("schedule.threshold")
    if thr is not None and not (isinstance(thr, float) and math.isnan(thr)):
        parts.append(f"thr={float(thr):g}")
    return ", ".join(parts)


def run_costs(runs: pd.DataFrame, trajectories: pd.DataFrame | None, eps: float) -> pd.DataFrame:
    """One row per run: seed, κ, family, variant, ``cost`` (steps to ``eps``, or the
    rate extrapolation t_last + ln(e_last/ε)/ρ, or ∞) and ``how`` (``steps``, ``rate``,
    ``diverged``, ``no contraction``, ``no trajectory``). A tail whose ln(error) moves by
    ≤ FROZEN_TOL (seed 001: the schedule has spent its step size) has rate 0 and cost ∞."""
    col = steps_column(eps)
    paths: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if trajectories is not None and not trajectories.empty and "metric" in trajectories:
        t = trajectories[trajectories["metric"] == "rel_err"].sort_values("step", kind="stable")
        paths = {str(rid): (g["step"].to_numpy(float), g["value"].to_numpy(float))
                 for rid, g in t.groupby("run_id", sort=False)}
    rows = []
    for _, r in runs.iterrows():
        cost, how = math.inf, "no trajectory"
        if r.get("status") == "diverged":
            how = "diverged"
        elif col in r and pd.notna(r[col]):
            cost, how = float(r[col]), "steps"
        elif str(r["run_id"]) in paths:
            s, v = paths[str(r["run_id"])]
            keep = np.isfinite(v) & (v > 0)
            s, v = s[keep], v[keep]
            rho = contraction_rate(s, v) if len(s) >= 2 else math.nan
            tail = np.log(v[-max(3, math.ceil(0.5 * len(v))):]) if len(v) else np.zeros(0)
            frozen = len(tail) >= 2 and float(np.ptp(tail)) <= FROZEN_TOL  # schedule spent: rate 0
            if len(s) and not frozen and math.isfinite(rho) and rho > 0:
                cost, how = float(s[-1]) + max(0.0, math.log(float(v[-1]) / eps)) / rho, "rate"
            else:
                how = "no contraction"
        rows.append({"seed": r["seed"], "kappa": float(r["problem.kappa"]), "family": r["optimizer.name"],
                     "variant": _variant(r), "cost": cost, "how": how})
    return pd.DataFrame(rows, columns=["seed", "kappa", "family", "variant", "cost", "how"])


@dataclass
class TunedTable:
    """Tuned costs per (family, κ, seed): ``held_out`` (the variant chosen on the other
    seeds) and ``oracle`` (the seed's own best), with the variant and how it was costed."""

    eps: float
    kappas: list[float]
    seeds: list[object]
    held_out: dict[tuple[str, float, object], tuple[float, str, str]] = field(default_factory=dict)
    oracle: dict[tuple[str, float, object], tuple[float, str, str]] = field(default_factory=dict)

    def families(self) -> list[str]:
        return sorted({k[0] for k in self.oracle}, key=lambda f: FAMILIES.index(f) if f in FAMILIES else 99)

    def cost(self, family: str, kappa: float, seed: object, how: str) -> float:
        table = self.held_out if how == "held_out" else self.oracle
        return table.get((family, kappa, seed), (math.nan, "", ""))[0]

    def exponent(self, family: str, seed: object, how: str) -> tuple[float, str | None]:
        costs = {k: self.cost(family, k, seed, how) for k in self.kappas}
        costs = {k: v for k, v in costs.items() if not math.isnan(v)}
        return kappa_exponent(costs, f"{family} cost")


def tuned_table(runs: pd.DataFrame, trajectories: pd.DataFrame | None) -> TunedTable:
    """Held-out and oracle tuned costs of every family at every κ and seed of the store."""
    runs = runs[runs["status"] != "failed"] if "status" in runs else runs
    eps = level_for(runs)
    costs = run_costs(runs, trajectories, eps)
    kappas = sorted(costs["kappa"].unique().tolist()) if len(costs) else []
    seeds = sorted(costs["seed"].unique().tolist()) if len(costs) else []
    table = TunedTable(eps, [float(k) for k in kappas], seeds)
    for _, g in costs.groupby(["family", "kappa"]):
        fam, kappa = str(g["family"].iloc[0]), float(g["kappa"].iloc[0])
        wide = g.pivot_table(index="seed", columns="variant", values="cost", aggfunc="min")
        hows = g.set_index(["seed", "variant"])["how"]
        for s in wide.index:
            own = wide.loc[s]
            best = own.idxmin() if np.isfinite(own.to_numpy(float)).any() else own.index[0]
            table.oracle[(fam, kappa, s)] = (float(own[best]), str(best), str(hows.get((s, best), "")))
            others = wide.drop(index=s)
            if others.empty:
                continue
            med = others.apply(lambda c: float(np.median(c.to_numpy(float))), axis=0)
            pick = med.idxmin() if np.isfinite(med.to_numpy(float)).any() else med.index[0]
            table.held_out[(fam, kappa, s)] = (float(own[pick]), str(pick),
                                                             str(hows.get((s, pick), "")))
    return table


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "∞"
    if math.isnan(x):
        return "-"
    return f"{x:.3g}" if x < 1e4 else f"{x:.2e}"


def _comparison(runs: pd.DataFrame, trajectories: pd.DataFrame, *, name: str, fast: str, slow: str,
                exponent_of: str | None, exponent_min: float | None, exponent_max: float | None,
                what: str) -> Claim:
    """Per seed: at the largest κ, ``slow`` (oracle-tuned) costs ≥ ADV_MIN × ``fast``
    (held-out tuned); optionally ``exponent_of``'s κ-exponent (oracle) > ``exponent_min``
    or |·| < ``exponent_max``."""
    if runs.empty or "optimizer.name" not in runs or "problem.kappa" not in runs:
        return decide(name, SEED, "no runs in the store.", [])
    t = tuned_table(runs, trajectories)
    reasons: list[str] = []
    fams = t.families()
    for f in (fast, slow):
        if f not in fams:
            reasons.append(f"no {f} runs")
    if len(t.kappas) < 3 or t.kappas[-1] / t.kappas[0] < 100:
        reasons.append(f"need >= 3 κ spanning >= 2 decades, got {', '.join(f'{k:g}' for k in t.kappas)}")
    if len(t.seeds) < 2:
        reasons.append("held-out tuning needs >= 2 seeds")
    budget = int(runs["max_steps"].max()) if "max_steps" in runs else 0
    # the budget must be >= 10× what tuned Muon needs (its per-seed best: a held-out pick that
    # misses for one seed still reaches the level, by steps, and is judged as it is)
    mu_max = max((v[0] for k, v in t.oracle.items() if k[0] == "muon" and v[2] == "steps"), default=0.0)
    if mu_max and budget < BUDGET_FACTOR * mu_max:
        reasons.append(f"step budget {budget} < {BUDGET_FACTOR}× Muon's largest step count {mu_max:g}")
    kind = str(runs["problem.kind"].iloc[0]) if "problem.kind" in runs else ""
    outcomes: list[Outcome] = []
    per_seed: list[str] = []
    k_top = t.kappas[-1] if t.kappas else math.nan
    exps: list[float] = []
    ratios: list[float] = []
    for s in t.seeds if not reasons else []:
        label = seed_label(s)
        problems: list[str] = []
        a = t.cost(fast, k_top, s, "held_out")
        b = t.cost(slow, k_top, s, "oracle")
        ratio = b / a if a > 0 else math.nan
        ratios.append(ratio)
        if not ratio >= ADV_MIN:
            problems.append(f"{slow}/{fast} at κ={k_top:g} = {_fmt(ratio)} < {ADV_MIN:g}")
        by_k = []
        for k in t.kappas:
            ah, bo = t.cost(fast, k, s, "held_out"), t.cost(slow, k, s, "oracle")
            bh = t.cost(slow, k, s, "held_out")
            by_k.append(f"κ={k:g}: {_fmt(bo)}/{_fmt(ah)} = {_fmt(bo / ah if ah > 0 else math.nan)}"
                        f" (held-out {_fmt(bh / ah if ah > 0 else math.nan)})")
        txt = f"[{label}] {slow}/{fast} " + "; ".join(by_k)
        # where the advantage starts (descriptive): the smallest κ from which every ratio is >= ADV_MIN
        start = next((k for i, k in enumerate(t.kappas)
                      if all(t.cost(slow, q, s, "oracle") >= ADV_MIN * t.cost(fast, q, s, "held_out")
                             for q in t.kappas[i:])), None)
        txt += f"; >= {ADV_MIN:g}× from κ = {start:g} on" if start is not None else f"; < {ADV_MIN:g}× at the top κ"
        if exponent_of is not None:
            e, why = t.exponent(exponent_of, s, "oracle")
            if why:
                problems.append(why)
            else:
                exps.append(e)
                if exponent_min is not None and not e > exponent_min:
                    problems.append(f"{exponent_of} κ-exponent {_fmt(e)} <= {exponent_min:g}")
                if exponent_max is not None and not e < exponent_max:
                    problems.append(f"{exponent_of} κ-exponent {_fmt(e)} >= {exponent_max:g}")
            txt += f"; {exponent_of} κ-exponent {e:.3f}"
        em, _ = t.exponent("muon", s, "held_out")
        txt += f"; muon κ-exponent {em:.3f}"
        outcomes.append(Outcome(label, not problems, "; ".join(problems)))
        per_seed.append(txt)
    exp_rule = ""
    if exponent_of is not None and exponent_min is not None:
        exp_rule = f", and tuned {exponent_of}'s κ-exponent > {exponent_min:g}"
    elif exponent_of is not None and exponent_max is not None:
        exp_rule = f", and tuned {exponent_of}'s cost does not grow with κ (κ-exponent < {exponent_max:g})"
    fin = [r for r in ratios if math.isfinite(r)]
    summary = (f"ratios at κ={k_top:g}: {_fmt(min(ratios))}–{_fmt(max(ratios))}" if ratios else "no ratios")
    if fin and len(fin) < len(ratios):
        summary += " (∞: the slower one never contracts)"
    if exps:
        summary += f"; κ-exponents {min(exps):.3f}…{max(exps):.3f}"
    detail = (f"{what} ({kind}, level {t.eps:g}; costs are steps, or steps extrapolated from the tail rate where "
              f"the level was missed). Per seed: {slow} tuned by its oracle (the seed's best grid variant) "
              f"needs >= {ADV_MIN:g}× the steps of {fast} tuned held-out (variant chosen on the other seeds) "
              f"at the largest κ{exp_rule}. {summary}. Cost ratios {slow}/{fast}, oracle/held-out "
              f"(held-out/held-out in parentheses): " + " ".join(per_seed) + ".")
    return decide(name, SEED, detail, outcomes, reasons=reasons)


@claim(reads=("runs", "trajectories"))
def muon_beats_tuned_gd(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Muon's advantage over GD survives tuning: per seed, GD at its own best grid
    variant (oracle) needs ≥ ADV_MIN = 2× the steps of held-out-tuned Muon at the
    largest κ, and tuned GD's κ-exponent exceeds half the theory's (P1, P3: 1 → 0.5;
    P2: 3 → 1.5). Tuning GD cannot remove its κ-dependence: its step is capped by the
    edge 2/λ_max, which does not move with κ, while its slowest rate is η·λ_min."""
    kind = str(runs["problem.kind"].iloc[0]) if len(runs) and "problem.kind" in runs else "symmetric_mf"
    theory = GD_EXPONENT.get(kind, 1.0)
    return _comparison(runs, trajectories, name="muon_beats_tuned_gd", fast="muon", slow="gd",
                       exponent_of="gd", exponent_min=theory / 2, exponent_max=None,
                       what=f"Tuned GD vs tuned Muon (GD's κ-exponent theory {theory:g})")


@claim(reads=("runs", "trajectories"))
def muon_beats_tuned_adam(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Muon's advantage over Adam (= AdamW at weight decay 0) survives tuning lr, β's
    and schedule: per seed, Adam at its own best grid variant (oracle) needs ≥ ADV_MIN
    = 2× the steps of held-out-tuned Muon at the largest κ. Adam's κ-exponent is
    reported, not judged (there is no theory for it here: a diagonal preconditioner
    equalizes curvature only along coordinate axes, which these targets' random
    eigenbases are not)."""
    return _comparison(runs, trajectories, name="muon_beats_tuned_adam", fast="muon", slow="adam",
                       exponent_of="adam", exponent_min=None, exponent_max=None,
                       what="Tuned Adam/AdamW vs tuned Muon")


@claim(reads=("runs", "trajectories"))
def tuned_scaledgd_beats_muon(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim:
    """Muon has no advantage over tuned ScaledGD; the reverse holds: per seed, Muon at
    its own best grid variant (oracle) needs ≥ ADV_MIN = 2× the steps of held-out-tuned
    ScaledGD at the largest κ, and tuned ScaledGD is κ-free (|κ-exponent| < 0.1, as
    Muon is held to in seed 001). ScaledGD's preconditioner (XᵀX)⁻¹ undoes the
    factor's conditioning exactly (Tong, Ma, Chi 2021: a κ-free linear rate), so at a
    step near 1 it is a Gauss–Newton step, while Muon's msign step has a fixed length η
    and needs the plateau schedule to shrink it to reach ε."""
    return _comparison(runs, trajectories, name="tuned_scaledgd_beats_muon", fast="scaledgd", slow="muon",
                       exponent_of="scaledgd", exponent_min=None, exponent_max=SCALEDGD_SLOPE_MAX,
                       what="Tuned Muon vs tuned ScaledGD")
