"""Extra figures for seed 000's dynamics experiments (claims/seed000_dynamics.py).

* ``sqrt_mode_growth`` — s000_rates: √c_i(τ) of every target mode (c_i = u_iᵀ(AB)v_i)
  against τ = η·step for seed 0's SpecGD run in each setting, with the unit-slope line
  τ: equal rates mean parallel lines of slope 1 until each mode saturates at √σ*_i.
* ``basin_returns`` — s000_stability: for the perturbed minima, the excursion
  max_τ ‖θ − θ*‖/‖θ(0) − θ*‖ and the final gap against the perturbation size ε.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from muonlab.config.run import step_clock
from muonlab.engine.store import ResultStore
from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["basin_returns", "sqrt_mode_growth"]


@extra_figure("sqrt_mode_growth")
def sqrt_mode_growth(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.modes import target_values
    from muonlab.claims.seed000_dynamics import _kept, _setting

    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics="target_mode_values")
    if not len(runs) or not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no target_mode_values trajectories")
    runs = runs[runs["optimizer.name"] == "specgd"]
    first = runs[runs["seed"] == runs["seed"].min()].sort_values(["problem.m", "problem.r"])
    if first.empty:
        raise NothingToPlot(f"{Path(store_dir).name}: no specgd runs")
    with styled():
        fig = new_figure((3.2 * len(first), 3.0))
        axes = fig.subplots(1, len(first), squeeze=False)[0]
        for ax, (_, row) in zip(axes, first.iterrows()):
            t = traj[traj["run_id"] == row["run_id"]].pivot(index="step", columns="index", values="value")
            tau = t.index.to_numpy() * step_clock(row)
            sigma = target_values(row)
            for i in range(_kept(row)):
                ax.plot(tau, np.sqrt(np.clip(t[i].to_numpy(), 0, None)), lw=1.2, label=f"σ*={sigma[i]:.3g}")
            top = float(np.sqrt(sigma[0])) * 1.1
            ax.plot([0, top], [0, top], "k:", lw=0.8, label="slope 1")
            ax.set_xlim(0, top * 1.1)
            ax.set_title(_setting(row), fontsize=8)
            ax.set_xlabel("τ = η·step")
            ax.set_ylabel("√(u_iᵀ AB v_i)")
            ax.legend(fontsize=6)
    caption = ("√σ_i of each target mode (σ_i read as u_iᵀABv_i) under SpecGD from A_0 = 0, seed 0 of each setting: "
               "the modes grow along parallel lines of slope 1 (dotted) — equal rates — and stop at √σ*_i, so the "
               "smallest arrive first.")
    return fig, caption


@extra_figure("basin_returns")
def basin_returns(store_dir: str | Path) -> tuple[Figure, str]:
    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics=["dist_to_minimizer", "dist_to_opt"])
    if not len(runs) or not len(traj) or "problem.init" not in runs:
        raise NothingToPlot(f"{Path(store_dir).name}: no perturbed-minimum runs")
    sub = runs[runs["problem.init"] == "minimum"]
    if sub.empty:
        raise NothingToPlot(f"{Path(store_dir).name}: no perturbed-minimum runs")
    rows = []
    for _, row in sub.iterrows():
        t = traj[traj["run_id"] == row["run_id"]]
        d = t[t["metric"] == "dist_to_minimizer"].sort_values("step")["value"].to_numpy()
        g = t[t["metric"] == "dist_to_opt"].sort_values("step")["value"].to_numpy()
        if len(d) and len(g) and g[0] > 0:
            rows.append((float(row["problem.gamma"]), int(row["seed"]), d.max() / d[0], max(g[-1], 0.0) / g[0]))
    if not rows:
        raise NothingToPlot(f"{Path(store_dir).name}: no dist_to_minimizer trajectories")
    df = pd.DataFrame(rows, columns=["eps", "seed", "excursion", "gap"])
    with styled():
        fig = new_figure((7.0, 3.0))
        a1, a2 = fig.subplots(1, 2)
        for seed, g in df.groupby("seed"):
            g = g.sort_values("eps")
            a1.plot(g["eps"], g["excursion"], "o-", ms=3, lw=0.8, label=f"seed {seed}")
            a2.plot(g["eps"], np.clip(g["gap"], 1e-32, None), "o-", ms=3, lw=0.8)
        a1.axhline(2.0, color="k", ls=":", lw=0.8)
        a1.set_xscale("log")
        a1.set_xlabel("perturbation ε = ‖θ(0) − θ*‖/‖θ*‖")
        a1.set_ylabel("max‖θ − θ*‖ / ‖θ(0) − θ*‖")
        a1.legend(fontsize=6)
        a2.axhline(1e-10, color="k", ls=":", lw=0.8)
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("perturbation ε")
        a2.set_ylabel("final (f − f*)/(f(0) − f*)")
    caption = ("Perturbed global minima under T_β-SpecGD: left, the largest distance from the minimizer relative to "
               "the starting one (≤ 2, dotted, counts as staying near: Lyapunov stability); right, the final gap "
               "(≤ 1e-10, dotted, counts as returning). The largest ε meeting both is the basin's measured edge.")
    return fig, caption
