"""Figures beyond error-vs-iteration, for experiments whose claim is about something else.

:data:`EXTRA_FIGURES` maps a name (an experiment's ``extra_figures`` entry in
:mod:`muonlab.reproduce`) to ``fn(store_dir) -> (figure, caption)``; the report saves
the figure with :func:`muonlab.report.figures.save_figure`.

* ``mode_arrivals`` — seed 002, claim (a): the step at which each mode reaches 0.9 of
  its target against σ*_i (log–log), per optimizer, with Muon's equal-rate law
  t = sqrt(0.9σ*)/η.
* ``lr_sweep`` — seed 002, claim (b): final error against the step size, per optimizer
  and schedule, with GD's edge 2/λ_max marked.
* ``sharpness_edge`` — seed 002, claim (b): the top Hessian eigenvalue at the last
  logged iterate of each constant-step run against η, with GD's edge 2/η.
* ``scalar_recursions`` — seed 001, eqs. (12)–(15): the eigen-coordinates of Muon's
  matrix iterate against the scalar recursions rerun with the same η_t, and the
  alignment residual.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from muonlab.config.run import step_clock
from muonlab.engine.store import ResultStore
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["EXTRA_FIGURES", "ExtraFigure", "extra_figure", "lr_sweep", "mode_arrivals", "scalar_recursions",
           "sharpness_edge"]

#: An extra figure: the store's folder in, the figure and its caption out.
ExtraFigure = Callable[[str | Path], tuple[Figure, str]]


def _runs_and_metric(store_dir: str | Path, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's runs and the trajectories of ``metric``; NothingToPlot if either is empty."""
    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics=metric)
    if not len(runs) or not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no {metric} trajectories")
    return runs, traj


def _gd_edge(runs: pd.DataFrame) -> float:
    """GD's critical step 2/λ_max = 1/σ*_1 at the balanced minimizer (seed 002, claim (b))."""
    from muonlab.claims.modes import target_values

    return 1.0 / float(target_values(runs.iloc[0])[0])


def mode_arrivals(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.modes import FRACTION, arrivals, target_values

    runs, traj = _runs_and_metric(store_dir, "mode_progress")
    colors = {"muon": "tab:blue", "specgd": "tab:blue", "specgf": "tab:green", "gd": "tab:orange"}
    spectral = ("muon", "specgd", "specgf")
    with styled():
        fig = new_figure((5.2, 3.6))
        ax = fig.subplots()
        for name, g in runs[runs["status"] == "ok"].groupby("optimizer.name"):
            opt = str(name)
            for j, (_, row) in enumerate(g.iterrows()):
                sigma, t = target_values(row), arrivals(traj, row["run_id"])
                k = min(len(sigma), len(t))
                step = "Δτ" if opt == "specgf" else "η"
                ax.plot(sigma[:k], t[:k], "o", color=colors.get(opt, "0.3"), markersize=3.5, alpha=0.75,
                        label=f"{opt} ({step} = {step_clock(row):g})" if j == 0 else None)
                if opt in spectral and j == 0:
                    s = np.geomspace(sigma.min(), sigma.max(), 50)
                    ax.plot(s, np.sqrt(FRACTION * s) / step_clock(row), "-", color=colors[opt],
                            linewidth=1.0, label=f"law sqrt({FRACTION:g}σ*)/η")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # minor log labels collide on short ranges
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("target singular value σ*ᵢ")
        ax.set_ylabel(f"steps to σᵢ ≥ {FRACTION:g}·σ*ᵢ")
        ax.legend(frameon=False, fontsize=8)
    return fig, ("Arrival step of every mode against its target (log–log). Spectral methods: all modes on one "
            "equal-rate law, smallest first; GD: largest first (modes not reached are not plotted).")


def scalar_recursions(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.seed001 import _scalar_paths
    from muonlab.problems.targets import spectrum

    store = ResultStore(store_dir)
    runs = store.runs()
    runs = runs[runs["status"] == "ok"]
    if not len(runs):
        raise NothingToPlot(f"{Path(store_dir).name}: no successful runs")
    row = runs.sort_values(["problem.kappa", "problem.r"]).iloc[len(runs) // 2]
    traj = store.trajectories(run_ids=row["run_id"])
    coords = traj[traj["metric"] == "eigen_coordinates"].pivot(index="step", columns="index", values="value")
    res = traj[traj["metric"] == "alignment_residual"].set_index("step")["value"].sort_index()
    lr = traj[traj["metric"] == "lr"].set_index("step")["value"].sort_index().to_numpy()
    if coords.empty or not len(lr):
        raise NothingToPlot(f"{Path(store_dir).name}: eigen_coordinates/lr were not logged")
    lam = spectrum(int(row["problem.r_star"]), str(row["problem.spectrum"]), float(row["problem.kappa"])).numpy()
    x = np.abs(_scalar_paths(lam, float(row["problem.alpha"]), lr))
    y = np.sqrt(np.clip(coords.to_numpy(), 0, None))
    steps = coords.index.to_numpy()
    n = min(len(steps), len(x), 160)
    with styled():
        fig = new_figure((9.5, 3.4))
        a0, a1 = fig.subplots(1, 2)
        cmap = matplotlib.colormaps["viridis"]
        for i in range(len(lam)):
            c = cmap(i / max(len(lam) - 1, 1))
            a0.plot(steps[:n], y[:n, i], color=c, linewidth=1.6, alpha=0.6)
            a0.plot(steps[:n], x[:n, i], color=c, linewidth=0.8, linestyle="--")
            a0.axhline(np.sqrt(lam[i]), color=c, linewidth=0.5, linestyle=":")
        a0.set_yscale("log")
        a0.set_xlabel("iteration")
        a0.set_ylabel("|x_i|: matrix (solid) vs scalar (dashed)")
        a0.set_title(f"κ = {float(row['problem.kappa']):g}, r = {int(row['problem.r'])}")
        a1.plot(res.index, np.maximum(res.to_numpy(), 1e-18), color="black", linewidth=1.0)
        a1.set_yscale("log")
        a1.set_xlabel("iteration")
        a1.set_ylabel("alignment residual")
    return fig, ("Left: X's eigen-coordinates √diag(UᵀXXᵀU) (solid) and the scalar recursions rerun with the same η_t "
            "(dashed), dotted: √λᵢ. Right: distance from the aligned form — rounding-size until the misalignment "
            "is amplified near the fixed points (findings F3).")


def lr_sweep(store_dir: str | Path) -> tuple[Figure, str]:
    runs = ResultStore(store_dir).runs()
    if not len(runs):
        raise NothingToPlot(f"{Path(store_dir).name}: no runs")
    eta_crit = _gd_edge(runs)
    styles = {("gd", "constant"): ("tab:orange", "o"), ("gd", "geometric"): ("tab:orange", "^"),
              ("muon", "constant"): ("tab:blue", "o"), ("muon", "geometric"): ("tab:blue", "^")}
    with styled():
        fig = new_figure((6.0, 3.6))
        ax = fig.subplots()
        top = 1.0
        for (opt, sched), g in runs.groupby(["optimizer.name", "schedule.name"]):
            color, marker = styles.get((str(opt), str(sched)), ("0.4", "s"))
            g = g.sort_values("optimizer.lr")
            ok = g[g["status"] == "ok"]
            err = ok["final_rel_err"].clip(lower=1e-12)
            top = max(top, float(err.max()) if len(err) else 1.0)
            ax.plot(ok["optimizer.lr"], err, marker=marker, color=color, markersize=3.5, linewidth=0.8,
                    linestyle="-" if sched == "constant" else "--", label=f"{opt}, {sched}")
            bad = g[g["status"] != "ok"]
            if len(bad):
                ax.plot(bad["optimizer.lr"], np.full(len(bad), 3 * top), "x", color=color, markersize=5)
        ax.axvline(eta_crit, color="0.3", linestyle=":", linewidth=1.0, label=f"GD edge 2/λ_max = {eta_crit:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step size η (η₀ when annealed)")
        ax.set_ylabel("final relative error")
        ax.legend(frameon=False, fontsize=7.5, loc="center left")
    return fig, ("Final relative error against the step size (× at the top: diverged). GD fails beyond its edge "
            "2/λ_max; constant-step Muon stays bounded (error ∝ η) far beyond it, and annealed Muon converges.")


def sharpness_edge(store_dir: str | Path) -> tuple[Figure, str]:
    runs, traj = _runs_and_metric(store_dir, "sharpness")
    runs = runs[runs["schedule.name"] == "constant"] if "schedule.name" in runs else runs
    sharp = traj.dropna(subset=["value"]).sort_values("step").groupby("run_id")["value"].last()
    eta_crit = _gd_edge(runs)
    colors = {"gd": "tab:orange", "muon": "tab:blue"}
    with styled():
        fig = new_figure((6.0, 3.6))
        ax = fig.subplots()
        for opt, g in runs.groupby("optimizer.name"):
            g = g[g["run_id"].isin(sharp.index)]
            ok, bad = g[g["status"] == "ok"], g[g["status"] != "ok"]
            color = colors.get(str(opt), "0.4")
            ax.plot(ok["optimizer.lr"], sharp[ok["run_id"]].to_numpy(), "o", color=color, markersize=3.5,
                    alpha=0.7, label=f"{opt}: last logged λ_max")
            if len(bad):  # diverged: the last finite value before the blow-up
                ax.plot(bad["optimizer.lr"], sharp[bad["run_id"]].to_numpy(), "x", color=color, markersize=5,
                        label=f"{opt}: diverged")
        lrs = np.geomspace(float(runs["optimizer.lr"].min()), float(runs["optimizer.lr"].max()), 100)
        ax.plot(lrs, 2.0 / lrs, "-", color="0.2", linewidth=1.0, label="2/η (GD's stability edge)")
        ax.axvline(eta_crit, color="0.3", linestyle=":", linewidth=1.0, label=f"η_crit = 1/σ*₁ = {eta_crit:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step size η (constant)")
        ax.set_ylabel("sharpness λ_max(∇²f) at the end")
        ax.legend(frameon=False, fontsize=7.5, loc="lower left")
    return fig, ("Top Hessian eigenvalue at each constant-step run's last logged iterate against η, with GD's "
            "edge 2/η. GD converges only where the minimum's sharpness 2σ*₁ lies below 2/η; Muon sits above the "
            "edge (λ_max > 2/η) and stays bounded.")


EXTRA_FIGURES: dict[str, ExtraFigure] = {
    "lr_sweep": lr_sweep,
    "sharpness_edge": sharpness_edge,
    "mode_arrivals": mode_arrivals,
    "scalar_recursions": scalar_recursions,
}


def extra_figure(name: str | None = None) -> Callable[[ExtraFigure], ExtraFigure]:
    """Register the decorated ``fn(store_dir) -> (figure, caption)`` in
    :data:`EXTRA_FIGURES` under ``name`` (default: the function's name); returned
    unchanged. Modules ``muonlab.report.*_figures`` are imported with this one, so the
    figures they register are available to the report."""

    def register(fn: ExtraFigure) -> ExtraFigure:
        key: str = name or str(getattr(fn, "__name__", ""))
        old = EXTRA_FIGURES.get(key)
        if old is not None and old is not fn and getattr(old, "__module__", None) != getattr(fn, "__module__", None):
            raise ValueError(f"extra figure {key!r} is already registered by {old.__module__}")
        EXTRA_FIGURES[key] = fn
        return fn

    return register


def _load_figure_modules() -> None:
    import importlib
    import pkgutil
    from pathlib import Path

    package = __name__.rpartition(".")[0]  # the package itself is not imported: no cycle through its __init__
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.endswith("_figures") and info.name != "extra_figures":
            importlib.import_module(f"{package}.{info.name}")


_load_figure_modules()
