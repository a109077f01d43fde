"""Seed 001, App. D: Muon's Monte-Carlo floor against the number of prompts (``mc_floor``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from muonlab.engine.store import ResultStore
from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled


@extra_figure("mc_floor")
def mc_floor(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.transformer import FLOOR_SLOPE_THEORY, LEVEL, _muon_lr_kappa, _schedule_floor

    runs = ResultStore(store_dir).runs()
    mu = _muon_lr_kappa(runs)
    if not len(mu):
        raise NothingToPlot(f"{Path(store_dir).name}: no Muon runs with lr = κ and problem.prompts")
    kappas = sorted(mu["problem.kappa"].unique())
    cmap = matplotlib.colormaps["viridis"]
    with styled():
        fig = new_figure((6.0, 4.0))
        ax = fig.subplots()
        for i, kappa in enumerate(kappas):
            c = cmap(i / max(len(kappas) - 1, 1))
            g = mu[mu["problem.kappa"] == kappa]
            ax.scatter(g["problem.prompts"], g["final_rel_err"], color=c, s=12, alpha=0.5)
            med = g.groupby("problem.prompts")["final_rel_err"].median()
            ax.plot(med.index, med.to_numpy(), color=c, linewidth=1.6, label=f"κ = {kappa:g}")
        ps = np.array(sorted(mu["problem.prompts"].unique()), float)
        first = mu[mu["problem.prompts"] == ps[0]].groupby("problem.kappa")["final_rel_err"].median()
        ref = float(first.max())  # the additive-noise law through the highest floor at the smallest P
        ax.plot(ps, ref * (ps / ps[0]) ** FLOOR_SLOPE_THEORY, color="gray", linestyle="--", linewidth=1.0,
                label="additive-noise law ∝ P^(−1/2)")
        ax.axhline(_schedule_floor(mu), color="gray", linestyle="-.", linewidth=0.8,
                   label="schedule floor q^T")
        ax.axhline(LEVEL, color="black", linestyle=":", linewidth=0.8, label=f"level {LEVEL:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("prompts per step P")
        ax.set_ylabel("Muon's final ‖Γ − Σ⁻¹‖/‖Σ⁻¹‖")
        ax.legend(fontsize=8)
    return fig, ("Muon (lr = κ, geometric schedule) trained on P fresh prompts per step: the population error it "
                 "ends at (dots: seeds, line: median) against P, per κ. The floor falls with P, and the P needed "
                 "to get below the dotted level grows with κ. The fall is a threshold, far steeper than the "
                 "additive-noise law (dashed): the noise here vanishes at Γ* "
                 "(docs/preconditioners_and_transformer.md).")
