"""Issue 15 [beyond], item 1: practical Muon's error curves per variant and κ
(``practical_curves``), its floors (``practical_floors``) and the floor against the band's
knee (``practical_knee``); see :mod:`muonlab.claims.beyond_practical`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from muonlab.claims.base import level_for
from muonlab.engine.store import ResultStore
from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["practical_curves", "practical_floors", "practical_knee"]


def _load(store_dir: str | Path) -> tuple[pd.DataFrame, str | None, float, dict[str, float]]:
    from muonlab.claims.beyond_practical import _finest, _with_labels, floors, reference_runs, variant_knee

    runs = ResultStore(store_dir).runs()
    if not len(runs) or "optimizer.name" not in runs:
        raise NothingToPlot(f"{Path(store_dir).name}: no runs")
    runs = _with_labels(runs)
    ref, rg = reference_runs(runs)
    eps = _finest(rg, level_for(runs)) if len(rg) else None
    eps = level_for(runs) if eps is None else eps
    runs["floor"] = floors(runs, eps).to_numpy()
    first = runs.drop_duplicates("variant").set_index("variant")
    knees = {v: variant_knee(first.loc[v]) for v in first.index}
    return runs, ref, eps, knees


def _style(label: str, ref: str | None, i: int) -> dict:
    """Colour by family, line style by precision/momentum."""
    colors = ["tab:red", "tab:orange", "tab:olive", "tab:green", "tab:cyan", "tab:blue", "tab:purple", "tab:brown",
              "tab:pink", "0.45", "gold", "navy", "lime", "teal"]
    if label == ref:
        return {"color": "k", "linestyle": "-", "marker": "s", "linewidth": 2.0}
    ls = "--" if "bf16" in label or "f32" in label else ":" if "+N" in label or "+M" in label else "-"
    return {"color": colors[i % len(colors)], "linestyle": ls, "marker": "o", "linewidth": 1.3}


@extra_figure("practical_floors")
def practical_floors(store_dir: str | Path) -> tuple[Figure, str]:
    runs, ref, eps, knees = _load(store_dir)
    order = ([ref] if ref else []) + sorted((v for v in knees if v != ref), key=lambda v: (-knees[v], v))
    with styled():
        fig = new_figure((6.4, 4.2))
        ax = fig.subplots()
        for i, v in enumerate(order):
            g = runs[runs["variant"] == v].groupby("problem.kappa")["floor"]
            k = np.asarray(g.median().index, float)
            med, lo, hi = g.median().to_numpy(), g.min().to_numpy(), g.max().to_numpy()
            st = _style(v, ref, i)
            ax.plot(k, med, markersize=4, label=v + (f" (knee {knees[v]:.1g})" if knees[v] > 0 else ""), **st)
            ax.fill_between(k, lo, hi, color=st["color"], alpha=0.07, linewidth=0)
        ax.axhline(eps, color="0.5", linewidth=0.8, linestyle="-.")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("condition number κ")
        ax.set_ylabel("floor (final rel. error, or level reached)")
        ax.legend(fontsize=6.5, ncol=2, loc="upper left")
        ax.set_title(f"{Path(store_dir).name}: where each orthogonalizer stalls")
    caption = (f"Floor of each Muon variant against κ: the final relative error, or the reference's level "
               f"{eps:g} (dash-dotted) where the run reached it; median over seeds, band min–max. Black: the exact "
               f"msign ({ref}). Solid: float64 polynomial orthogonalizers, legend sorted by their knee (the lowest "
               "normalized singular value above which φ ≥ ½); dashed: lower-precision iteration; dotted: Nesterov "
               "momentum 0.95. A curve leaving the dash-dotted line is a variant that stalls at that κ.")
    return fig, caption


@extra_figure("practical_knee")
def practical_knee(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.beyond_practical import _polynomial_f64

    runs, _ref, eps, knees = _load(store_dir)
    poly = runs[[_polynomial_f64(r) for _, r in runs.iterrows()]]
    if poly.empty:
        raise NothingToPlot(f"{Path(store_dir).name}: no float64 polynomial variants")
    kappas = sorted(float(k) for k in poly["problem.kappa"].unique())
    cmap = ["tab:green", "tab:blue", "tab:orange", "tab:red", "tab:purple"]
    with styled():
        fig = new_figure((5.4, 3.8))
        ax = fig.subplots()
        rng = np.random.default_rng(0)
        for j, k in enumerate(kappas):
            g = poly[poly["problem.kappa"] == k]
            x = np.array([knees[v] for v in g["variant"]]) * np.exp(rng.uniform(-0.08, 0.08, len(g)))
            ax.plot(x, g["floor"], "o", color=cmap[j % len(cmap)], markersize=3.5, alpha=0.7, label=f"κ = {k:g}")
        names: dict[float, list[str]] = {}
        for v in sorted(set(poly["variant"])):
            names.setdefault(round(float(np.log10(knees[v])), 1), []).append(v.replace("NS ", ""))
        for lk, vs in names.items():
            ax.annotate(" / ".join(vs), (10 ** lk, eps), textcoords="offset points", xytext=(-4, 6),
                        fontsize=6, rotation=90, ha="right", va="bottom", color="0.3")
        ax.axhline(eps, color="0.5", linewidth=0.8, linestyle="-.")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("knee of the band (smallest x with φ ≥ ½ on [x, 1])")
        ax.set_ylabel("floor")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"{Path(store_dir).name}: floor against the band's knee")
    caption = ("Each float64 polynomial variant's floor (one point per seed) against its knee, coloured by κ. "
               "The claim practical_muon_floor_tracks_knee: a lower knee never has a floor more than 3× higher "
               f"(knees at least 3× apart). Dash-dotted: the reference's level {eps:g}.")
    return fig, caption


@extra_figure("practical_curves")
def practical_curves(store_dir: str | Path) -> tuple[Figure, str]:
    runs, ref, eps, knees = _load(store_dir)
    traj = ResultStore(store_dir).trajectories(metrics="rel_err")
    if not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no rel_err trajectories")
    order = ([ref] if ref else []) + sorted((v for v in knees if v != ref), key=lambda v: (-knees[v], v))
    kappas = sorted(float(k) for k in runs["problem.kappa"].unique())
    by_run = {str(r): g for r, g in traj.groupby("run_id")}
    with styled():
        fig = new_figure((3.0 * len(kappas) + 1.8, 3.4))
        axes = np.atleast_1d(fig.subplots(1, len(kappas), sharey=True))
        for ax, k in zip(axes, kappas, strict=True):
            for i, v in enumerate(order):
                g = runs[(runs["variant"] == v) & (runs["problem.kappa"] == k)]
                paths = [by_run[str(r)] for r in g["run_id"] if str(r) in by_run]
                if not paths:
                    continue
                table = pd.concat([p.set_index("step")["value"].rename(j) for j, p in enumerate(paths)], axis=1)
                st = _style(v, ref, i)
                ax.plot(table.index, table.median(axis=1), color=st["color"], linestyle=st["linestyle"],
                        linewidth=st["linewidth"] * 0.8, label=v if k == kappas[0] else None)
            ax.axhline(eps, color="0.5", linewidth=0.8, linestyle="-.")
            ax.set_yscale("log")
            ax.set_xscale("symlog", linthresh=100)
            ax.set_xlim(left=0)
            ax.set_title(f"κ = {k:g}")
            ax.set_xlabel("iteration")
        axes[0].set_ylabel("relative error (median over seeds)")
        fig.legend(fontsize=6.5, loc="outside right center")
    caption = ("Relative error against iteration (symlog: linear to 100, then log), median over seeds, one panel "
               f"per κ. Black: the exact msign ({ref}); colours: the variants, ordered by their band's knee; dashed: "
               f"lower-precision iteration; dotted: Nesterov momentum 0.95. Dash-dotted: the reference's level "
               f"{eps:g}.")
    return fig, caption
