"""Figures of issue 15, item 7 (T_β's growth rate against β; claims/beyond_t_beta.py).

* ``t_beta_rate_curve`` — every mode's fitted growth slope d√c_i/dτ against
  u = β/σ*_i³, with the scalar model's universal curve S(u) (η → 0), the equal-rate
  tolerance 1/1.05 and u*; right: the smallest mode's arrival delay against β.
* ``t_beta_beta_star`` — per run, the max/min slope ratio − 1 against β, one colour per
  target scale, with the predicted β* of that scale and the rule's 0.05.
* ``t_beta_floor`` — the final gap against β, with the 2-cycle floor F(β) of each scale
  and the step's stability edge β = (ησ*_1)².
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from muonlab.config.run import step_clock
from muonlab.engine.store import ResultStore
from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["t_beta_beta_star", "t_beta_floor", "t_beta_rate_curve"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _load(store_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics=["target_mode_values", "eigen_coordinates"])
    if not len(runs) or not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no mode-value trajectories")
    return runs[runs["status"] == "ok"], traj


def _slope_rows(runs: pd.DataFrame, traj: pd.DataFrame) -> pd.DataFrame:
    from muonlab.claims.beyond_t_beta import _scale, aligned_init, beta_of, mode_slopes, per_run, targets_of
    from muonlab.claims.seed000_dynamics import _matrix

    rows = []
    by_run = per_run(traj)
    for _, row in runs.iterrows():
        sigma, k, metric = targets_of(row)
        fits, _ = mode_slopes(row, by_run)
        c = _matrix(by_run[str(row["run_id"])], row["run_id"], metric)
        eta = step_clock(row)
        for i, (s, _n) in enumerate(fits):
            hit = np.nonzero(c[i].to_numpy() >= 0.8 * sigma[i])[0]
            arrival = float(c.index[hit[0]]) * eta if hit.size else math.nan
            rows.append((_scale(row), bool(aligned_init(row)), int(row["seed"]), beta_of(row), i, k,
                         float(sigma[i]), s, arrival))
    return pd.DataFrame(rows, columns=["scale", "aligning", "seed", "beta", "mode", "k", "sigma", "slope", "arrival"])


@extra_figure("t_beta_rate_curve")
def t_beta_rate_curve(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.beyond_t_beta import RATE_RATIO_TOL, universal_slope

    runs, traj = _load(store_dir)
    df = _slope_rows(runs, traj)
    if df.empty:
        raise NothingToPlot(f"{Path(store_dir).name}: no runs")
    pos = df[(df["beta"] > 0) & np.isfinite(df["slope"])]
    us = np.logspace(math.log10(max(pos["beta"].min() / pos["sigma"].max() ** 3, 1e-8)) if len(pos) else -6,
                     math.log10(max(pos["beta"].max() / pos["sigma"].min() ** 3, 1e-2)) if len(pos) else 1, 40)
    curve = np.array([universal_slope(float(u), dt=1e-3) for u in us])
    target = 1.0 / RATE_RATIO_TOL
    u_star = float(np.interp(-target, -curve, us))
    scales = sorted(df["scale"].unique())
    with styled():
        fig = new_figure((9.0, 3.4))
        a1, a2 = fig.subplots(1, 2)
        for j, scale in enumerate(scales):
            g = pos[pos["scale"] == scale]
            col = _COLORS[j % len(_COLORS)]
            al = g[g["aligning"]]
            ge = g[~g["aligning"]]
            if len(al):
                a1.plot(al["beta"] / al["sigma"] ** 3, al["slope"], "o", ms=3, color=col, alpha=0.6, label=scale)
            if len(ge):
                a1.plot(ge["beta"] / ge["sigma"] ** 3, ge["slope"], "x", ms=3, color=col, alpha=0.6,
                        label=None if len(al) else scale)
            last = df[(df["scale"] == scale) & (df["mode"] == df["k"] - 1)]
            for aligning, style in ((True, "-"), (False, "--")):
                s = last[last["aligning"] == aligning]
                if s.empty:
                    continue
                base = s[s["beta"] == 0].groupby("seed")["arrival"].first()
                ratio = s[s["beta"] > 0].assign(base=s["seed"].map(base))
                ratio = ratio.assign(delay=ratio["arrival"] / ratio["base"]).groupby("beta")["delay"].median()
                a2.plot(ratio.index, ratio.to_numpy(), style, marker="o", ms=3, color=col)
        a1.plot(us, curve, "k-", lw=1.2, label="scalar law S(u)")
        a1.axhline(target, color="k", ls=":", lw=0.8)
        a1.axvline(u_star, color="k", ls=":", lw=0.8)
        a1.annotate(f"u* ≈ {u_star:.3g}", (u_star, target), xytext=(4, -12), textcoords="offset points", fontsize=7)
        a1.set_xscale("log")
        a1.set_xlabel("u = β / σ*_i³")
        a1.set_ylabel("growth slope d√σ_i/dτ (10–80 % window)")
        a1.legend(fontsize=6, loc="lower left")
        a2.set_xscale("log")
        a2.set_yscale("log")
        a2.set_xlabel("β")
        a2.set_ylabel("arrival at 80 % of σ*_min: τ(β)/τ(msign)")
        a2.set_title("smallest mode's delay (median over seeds)", fontsize=8)
    caption = ("Left: the fitted slope of √σ_i over each mode's 10–80 % window against u = β/σ*_i³, for every mode, "
               "target scale (colour) and seed (dots: P1's aligned init; crosses: generic inits, P1's gaussian and "
               "P4's LoRA init), with the aligned "
               "scalar T_β law S(u) (η → 0). The modes of every scale collapse onto one curve; the equal-rate rule "
               "(dotted, 1/1.05) is crossed at u*, so β* = u*·σ*_min³. Crosses below the curve: a generic init is "
               "slower. Right: the smallest mode's arrival time at 80 % of its target relative to msign (β = 0), "
               "median over seeds (solid: aligned init, dashed: generic).")
    return fig, caption


@extra_figure("t_beta_beta_star")
def t_beta_beta_star(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.beyond_t_beta import (
        RATE_RATIO_TOL,
        aligned_init,
        beta_star_table,
        measured_beta_star,
    )
    from muonlab.claims.beyond_t_beta import _scale as scale_of

    runs, traj = _load(store_dir)
    groups, meta = beta_star_table(runs, traj)
    if not groups:
        raise NothingToPlot(f"{Path(store_dir).name}: no runs")
    aligning = {scale_of(r): bool(aligned_init(r)) for _, r in runs.iterrows()}
    scales = sorted(meta)
    with styled():
        fig = new_figure((6.0, 3.6))
        ax = fig.subplots(1, 1)
        for j, scale in enumerate(scales):
            col = _COLORS[j % len(_COLORS)]
            style = "-" if aligning.get(scale, True) else "--"
            first = True
            for (_seed, sc), pts in sorted(groups.items()):
                if sc != scale:
                    continue
                p = sorted((b, r) for b, _, r in pts if b > 0 and math.isfinite(r))
                if not p:
                    continue
                ax.plot([b for b, _ in p], [max(r - 1.0, 1e-6) for _, r in p], style, marker="o", ms=2.5, lw=0.8,
                        color=col, alpha=0.7, label=scale if first else None)
                m = measured_beta_star(pts)
                if math.isfinite(m) and m > 0:
                    ax.plot([m], [RATE_RATIO_TOL - 1.0], "|", ms=9, color=col)
                first = False
            ax.axvline(meta[scale][0], color=col, ls=":", lw=1.0)
        ax.axhline(RATE_RATIO_TOL - 1.0, color="k", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel("max/min growth slope − 1")
        ax.legend(fontsize=6, loc="upper left")
    caption = ("Per run, the spread of the modes' growth slopes (max/min − 1) against β, one colour per target scale "
               "(solid: P1's aligned init, dashed: generic inits). The equal-rate rule allows 0.05 (horizontal dotted "
               "line); ticks mark "
               "each seed's measured crossing β*, vertical dotted lines the scalar model's β* = u*·σ*_min³ of that "
               "scale. β* moves by ×8 per doubling of the targets (∝ σ*³).")
    return fig, caption


@extra_figure("t_beta_floor")
def t_beta_floor(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.beyond_t_beta import _scale as scale_of
    from muonlab.claims.beyond_t_beta import beta_of, targets_of, two_cycle_floor

    store = ResultStore(store_dir)
    runs = store.runs()
    traj = store.trajectories(metrics="dist_to_opt")
    if not len(runs) or not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no dist_to_opt trajectories")
    last = traj.sort_values("step").groupby("run_id")["value"].last()
    runs = runs[(runs["status"] == "ok") & runs["run_id"].isin(last.index)]
    scales = sorted({scale_of(r) for _, r in runs.iterrows()})
    with styled():
        fig = new_figure((6.0, 3.6))
        ax = fig.subplots(1, 1)
        for j, scale in enumerate(scales):
            col = _COLORS[j % len(_COLORS)]
            sub = runs[[scale_of(r) == scale for _, r in runs.iterrows()]]
            row = sub.iloc[0]
            sigma, k, _ = targets_of(row)
            eta = step_clock(row)
            betas = np.array([beta_of(r) for _, r in sub.iterrows()])
            finals = np.array([max(float(last[r["run_id"]]), 1e-32) for _, r in sub.iterrows()])
            pos = betas > 0
            ax.plot(betas[pos], finals[pos], "o", ms=3, color=col, alpha=0.6, label=scale)
            grid = np.logspace(math.log10(max(betas[pos].min(), 1e-8)), math.log10(betas[pos].max()), 200)
            curve = np.array([two_cycle_floor(sigma, k, float(b), eta, str(row["problem.kind"])) for b in grid])
            ok = curve > 0
            ax.plot(grid[ok], curve[ok], "-", lw=1.0, color=col)
            ax.axvline((eta * float(sigma[0])) ** 2, color=col, ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-32, None)
        ax.set_xlabel("β")
        ax.set_ylabel("final gap f − f*")
        ax.legend(fontsize=6, loc="lower left")
    caption = ("Final gap of every T_β run against β, one colour per target scale; lines: the 2-cycle floor "
               "F(β) = Σ max(η²σ*_i² − β, 0)/(2σ*_i) (P1: half), which vanishes at β = (ησ*_1)² (dotted). Below "
               "that β the runs stall exactly on F(β) (unless too little time was left to settle on the cycle, "
               "smallest β); above it they converge, down to float64's resolution when the growth finished in time.")
    return fig, caption
