"""Figures of issue 15, item 3 (docs/beyond_regression.md).

* ``regression_kappa_slopes`` — matrix regression: Muon's steps to the level at the fastest
  geometric decay it can follow, against κ, one colour per variant (shape, teacher rank
  and spread, noise, init), with GD's steps at η = 1/λ_max for comparison.
* ``nonsymmetric_mf_kappa`` — non-symmetric two-factor MF: Muon's steps to the finest
  common level against κ at each plateau threshold, and GD's steps per e-fold.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["nonsymmetric_mf_kappa", "regression_kappa_slopes"]

_KIND_STYLE = {"line": "-", "full_rank": "-", "deficit_teacher": "--", "rank_deficit": ":"}


def _logaxes(ax: object) -> None:
    ax.set_xscale("log")  # type: ignore[attr-defined]
    ax.set_yscale("log")  # type: ignore[attr-defined]
    for axis in (ax.xaxis, ax.yaxis):  # type: ignore[attr-defined]
        axis.set_minor_formatter(NullFormatter())


@extra_figure("regression_kappa_slopes")
def regression_kappa_slopes(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.base import level_for, steps_column
    from muonlab.claims.beyond_regression import (
        _paths,
        gd_cost_per_efold,
        muon_best_steps,
        regression_variant,
        variant_kind,
    )
    from muonlab.engine.store import ResultStore

    store = ResultStore(store_dir)
    runs = store.runs()
    if not len(runs) or "problem.d_out" not in runs:
        raise NothingToPlot(f"{Path(store_dir).name}: no regression runs")
    runs = runs[runs["status"] != "failed"].copy()
    runs["variant"] = runs.apply(regression_variant, axis=1)
    runs["kind"] = runs.apply(variant_kind, axis=1)
    eps = level_for(runs)
    col = steps_column(eps)
    with styled():
        fig = new_figure((10.0, 4.0))
        ax, ax2 = fig.subplots(1, 2)
        mu = runs[runs["optimizer.name"] == "muon"]
        top = 0.0
        unreached: list[tuple[float, str]] = []
        for j, (variant, g) in enumerate(mu.groupby("variant", sort=True)):
            kind = str(g["kind"].iloc[0])
            per_seed = [muon_best_steps(gs, col) for _, gs in g.groupby("seed")]
            kappas = sorted(per_seed[0])
            med = [float(np.median([p[k] for p in per_seed])) for k in kappas]
            shown = [(k, m) for k, m in zip(kappas, med, strict=True) if math.isfinite(m)]
            color = f"C{j % 10}"
            for p in per_seed:
                fin = [(k, v) for k, v in p.items() if math.isfinite(v)]
                if fin:
                    ax.plot(*zip(*fin, strict=True), "o", color=color, markersize=2.5, alpha=0.35)
            if shown:
                ax.plot(*zip(*shown, strict=True), _KIND_STYLE.get(kind, "-"), color=color, linewidth=1.4,
                        marker="o", markersize=4, label=f"{variant} ({kind.replace('_', ' ')})")
                top = max(top, max(m for _, m in shown))
            missing = [k for k, m in zip(kappas, med, strict=True) if not math.isfinite(m)]
            unreached += [(k, color) for k in missing]
        for k, color in unreached:  # no q in the grid reached the level: ▲ above every Muon point
            ax.plot([k], [1.6 * max(top, 1.0)], "^", color=color, markersize=7)
        paths = _paths(store.trajectories(metrics="rel_err"))
        gd = runs[runs["optimizer.name"] == "gd"]
        if len(gd):
            pts = pd.DataFrame([(float(r["problem.kappa"]), gd_cost_per_efold(paths.get(str(r["run_id"]))))
                                for _, r in gd.iterrows()], columns=["kappa", "cost"])
            pts = pts[np.isfinite(pts["cost"])]
            if len(pts):
                m = pts.groupby("kappa")["cost"].median() * math.log(1 / eps)
                ax.plot(m.index, m.to_numpy(), "k--", linewidth=1.2, marker="s", markersize=4,
                        label=f"GD, η = 1/λ_max: (steps per e-fold)·ln(1/{eps:g})")
        _logaxes(ax)
        ax.set_xlabel("κ(XXᵀ)")
        ax.set_ylabel(f"steps to rel. err {eps:g} (Muon: best q)")
        ax.legend(frameon=False, fontsize=6.5, loc="upper left")
        # right: the fastest decay Muon followed, 1/(1 − q*) = its e-fold time
        for j, (_, g) in enumerate(mu.groupby("variant", sort=True)):
            rows = []
            for _, gk in g.groupby(["seed", "problem.kappa"]):
                ok = gk[gk[col].notna()] if col in gk else gk.iloc[:0]
                k = float(gk["problem.kappa"].iloc[0])
                rows.append((k, 1 / (1 - float(ok["schedule.q"].min())) if len(ok) else math.inf))
            t = pd.DataFrame(rows, columns=["kappa", "efold"]).groupby("kappa")["efold"].median()
            fin = t[np.isfinite(t)]
            ax2.plot(fin.index, fin.to_numpy(), _KIND_STYLE.get(str(g["kind"].iloc[0]), "-"), color=f"C{j % 10}",
                     marker="o", markersize=4 + 2 * (j % 2))
            inf = t[~np.isfinite(t)]
            if len(inf):
                ax2.plot(inf.index, [1.5 * float(t[np.isfinite(t)].max() if np.isfinite(t).any() else 10)] * len(inf),
                         "^", color=f"C{j % 10}", markersize=7)
        _logaxes(ax2)
        ax2.set_xlabel("κ(XXᵀ)")
        ax2.set_ylabel("Muon: 1/(1 − q*), q* = fastest q followed")
    return fig, (f"Matrix regression, Muon under η_t = c·lr·q^t. Left: per variant, the fewest steps to {eps:g} "
                 "over the q grid against κ (line: median over seeds; dots: seeds; ▲: no q in the grid reached it "
                 "at that κ); GD at η = 1/λ_max for comparison (dashed black, ∝ κ). Solid: full column rank (the "
                 "line is flat: κ-free exactly); dotted: wide W (rank < d_in), steeper; one output (Muon = "
                 "normalized GD) steepest. Right: the e-fold time of the fastest decay Muon could follow.")


@extra_figure("nonsymmetric_mf_kappa")
def nonsymmetric_mf_kappa(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.accuracy import EPSILONS
    from muonlab.claims.base import steps_column
    from muonlab.claims.beyond_regression import _paths, gd_cost_per_efold
    from muonlab.engine.store import ResultStore

    store = ResultStore(store_dir)
    runs = store.runs()
    if not len(runs) or "problem.kappa" not in runs:
        raise NothingToPlot(f"{Path(store_dir).name}: no κ sweep")
    runs = runs[runs["status"] != "failed"]
    eps = min(EPSILONS)
    col = steps_column(eps)
    with styled():
        fig = new_figure((6.0, 4.0))
        ax = fig.subplots()
        mu = runs[runs["optimizer.name"] == "muon"]
        for j, (thr, g) in enumerate(mu.groupby("schedule.threshold")):
            vals = g.groupby("problem.kappa")[col].median() if col in g else pd.Series(dtype=float)
            ax.plot(g["problem.kappa"], g[col], "o", color=f"C{j}", markersize=3, alpha=0.5)
            ax.plot(vals.index, vals.to_numpy(), "-", color=f"C{j}", marker="o",
                    label=f"Muon, plateau threshold {thr:g}: steps to {eps:g} (median; dots: seeds)")
        paths = _paths(store.trajectories(metrics="rel_err"))
        gd = runs[runs["optimizer.name"] == "gd"]
        # GD's tail rate is its local one only once it has left the small init's saddles: a run
        # that reached 1e-4 (filled squares); the others (hollow) are still escaping.
        lvl = steps_column(max(EPSILONS))
        pts = [(float(r["problem.kappa"]), gd_cost_per_efold(paths.get(str(r["run_id"]))),
                bool(lvl in r and pd.notna(r[lvl]))) for _, r in gd.iterrows()]
        pts = [p for p in pts if math.isfinite(p[1])]
        if pts:
            t = pd.DataFrame(pts, columns=["kappa", "cost", "local"])
            loc = t[t["local"]].groupby("kappa")["cost"].min()
            esc = t[~t["local"]].groupby("kappa")["cost"].min()
            esc = esc[~esc.index.isin(loc.index)]
            ax.plot(loc.index, loc.to_numpy(), "k--", marker="s", markersize=4,
                    label="GD: steps per e-fold of its tail (best threshold; reached 1e-4)")
            if len(esc):
                ax.plot(esc.index, esc.to_numpy(), "s", markerfacecolor="none", markeredgecolor="k", markersize=5,
                        label="GD: still escaping the small init (tail rate not local)")
        _logaxes(ax)
        ax.set_xlabel("κ(M*)")
        ax.set_ylabel("steps")
        ax.legend(frameon=False, fontsize=7)
    return fig, ("Non-symmetric two-factor MF from small init: Muon's steps to 1e-12 against κ for each plateau "
                 "threshold (flat = κ-free; threshold 0 stalls in some seeds, docs/schedules.md), and GD's steps "
                 "per e-fold (∝ κ where it has reached its local regime; at the largest κ it is still escaping "
                 "saddles).")
