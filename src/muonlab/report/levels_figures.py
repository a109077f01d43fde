"""Seed 001, Table 1 as a figure: steps to ε against log10(1/ε), one curve per κ
(``log_eps_levels``; the claims are :mod:`muonlab.claims.levels`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["log_eps_levels"]

#: The decades drawn: 1e-1 … 1e-12 (the claims judge the local window, 1e-4 or below).
DECADES = list(range(1, 13))


def _median_steps(rows: pd.DataFrame, paths: dict[str, tuple[np.ndarray, np.ndarray]], levels: list[float]
                  ) -> np.ndarray:
    """Per level, the median over seeds of the first-hit steps (unreached counts as +∞;
    nan where the median run did not get there)."""
    from muonlab.claims.levels import level_steps

    table = np.array([level_steps(r, paths.get(str(r["run_id"])), levels) for _, r in rows.iterrows()], float)
    table = np.where(np.isnan(table), np.inf, table)
    med = np.median(table, axis=0)
    return np.where(np.isinf(med), np.nan, med)


@extra_figure("log_eps_levels")
def log_eps_levels(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.engine.store import ResultStore

    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics="rel_err")
    if not len(runs) or not len(traj) or "problem.kappa" not in runs:
        raise NothingToPlot(f"{Path(store_dir).name}: no rel_err trajectories of a κ sweep")
    runs = runs[runs["status"] != "failed"]
    traj = traj.sort_values("step", kind="stable")
    paths = {str(r): (g["step"].to_numpy(), g["value"].to_numpy(float)) for r, g in traj.groupby("run_id", sort=False)}
    levels = [10.0 ** -k for k in DECADES]
    panels: list[tuple[str, pd.DataFrame]] = []
    mu = runs[runs["optimizer.name"] == "muon"]
    if "schedule.threshold" in mu and mu["schedule.threshold"].notna().any():
        for th, g in mu.groupby("schedule.threshold"):
            t = float(str(th))
            tag = "the paper's rule" if t == 0 else "ours"
            panels.append((f"Muon, plateau threshold {t:g} ({tag})", g))
    elif len(mu):
        panels.append(("Muon", mu))
    gd = runs[runs["optimizer.name"] == "gd"]
    if len(gd):
        if "schedule.threshold" in gd and (gd["schedule.threshold"].astype(float) == 0).any():
            gd = gd[gd["schedule.threshold"].astype(float) == 0]
        panels.append(("GD (threshold 0)", gd))
    if not panels:
        raise NothingToPlot(f"{Path(store_dir).name}: no Muon or GD runs")
    kappas = sorted(float(k) for k in runs["problem.kappa"].unique())
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray"]
    cmap = dict(zip(kappas, colors, strict=False))
    with styled():
        fig = new_figure((4.0 * len(panels), 3.6))
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, g) in zip(axes, panels, strict=True):
            for k in kappas:
                rows = g[g["problem.kappa"] == k]
                if rows.empty:
                    continue
                med = _median_steps(rows, paths, levels)
                ax.plot(DECADES, med, "o-", color=cmap.get(k, "0.3"), markersize=3.5, linewidth=1.2,
                        label=f"κ = {k:g}")
            ax.axvspan(4, DECADES[-1], color="0.93", zorder=0)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("log10(1/ε)")
            ax.set_ylabel("steps to relative error ε (median over seeds)")
            if title.startswith("GD"):
                ax.set_yscale("log")
            ax.legend(frameon=False, fontsize=7.5, loc="upper left")
    return fig, ("Seed 001, Table 1: steps to ε against log10(1/ε), one curve per κ (median over seeds; a point is "
                 "missing where the median run never got there). Shaded: the levels the claims judge (1e-4 and below, "
                 "lower where 0.1·λ_min/‖M*‖ is smaller). Muon's curves are straight lines with one slope for every κ "
                 "(O(log 1/ε), κ-free) — under the strict plateau rule (threshold 0) with stalls, under threshold "
                 "1e-3 without; GD's (log scale) are lines whose slope grows ∝ κ (O(κ·log 1/ε)).")
