"""Seed 001, Figure 3: heatmaps of Muon's and ScaledGD's preconditioners (``preconditioner_heatmaps``).

The matrices are not stored: the figure rebuilds one run (the largest κ, the first seed)
from its config and reruns simplified Muon (exact msign, the plateau rule as the engine
applies it: step with η_t, then η halves after ``patience`` steps without a relative
decrease ``threshold``). Alone rather than in its batch, so the steps at which levels
are reached can differ by a few from the stored run (checked: 0–15 steps of ~310).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from muonlab.engine.store import ResultStore
from muonlab.report.extra_figures import extra_figure
from muonlab.report.figures import NothingToPlot, new_figure, styled

#: Relative errors at which the heatmaps are drawn (first step at or below each).
SNAP_LEVELS = (1.0, 1e-1, 1e-4, 1e-8)


def muon_snapshots(row: dict, levels: tuple[float, ...] = SNAP_LEVELS, max_steps: int = 5000
                   ) -> list[tuple[int, float, np.ndarray, np.ndarray]]:
    """(step, rel_err, P_Muon, P_ScaledGD) at the first step reaching each level, for one run's config."""
    from muonlab.engine.preconditioner_metrics import muon_preconditioner, scaledgd_preconditioner
    from muonlab.linalg.orthogonalize import orthogonalize
    from muonlab.problems.symmetric_mf import SymmetricMF

    prob = SymmetricMF(n=int(row["problem.n"]), r=int(row["problem.r"]), r_star=int(row["problem.r_star"]),
                       kappa=float(row["problem.kappa"]), alpha=float(row["problem.alpha"]),
                       init=str(row["problem.init"]), spectrum=str(row.get("problem.spectrum", "logspace")),
                       basis=str(row.get("problem.basis", "haar")), seed=[int(row["seed"])])
    (X,) = prob.init_params()
    lr, best, bad = float(row["optimizer.lr"]), float("inf"), 0
    factor, patience = float(row["schedule.factor"]), int(row["schedule.patience"])
    thr = float(row["schedule.threshold"])
    out, todo = [], list(levels)
    for t in range(max_steps):
        loss, (G,) = prob.loss_and_grad([X])
        rel = float(prob.rel_err([X])[0])
        while todo and rel <= todo[0]:
            todo.pop(0)
            out.append((t, rel, muon_preconditioner(G)[0].numpy(), scaledgd_preconditioner(X)[0].numpy()))
        if not todo or not np.isfinite(rel):
            break
        X = X - lr * orthogonalize(G, method="svd")  # step with η_t, then the rule sets η_{t+1}
        L = float(loss[0])
        if L < best * (1 - thr):
            best, bad = L, 0
        else:
            bad += 1
            if bad >= patience:
                lr, bad = lr * factor, 0
    return out


@extra_figure("preconditioner_heatmaps")
def preconditioner_heatmaps(store_dir: str | Path) -> tuple[Figure, str]:
    runs = ResultStore(store_dir).runs()
    runs = runs[(runs["status"] == "ok") & (runs["optimizer.name"] == "muon")]
    if not len(runs):
        raise NothingToPlot(f"{Path(store_dir).name}: no Muon runs")
    row = runs.sort_values(["problem.kappa", "seed"], ascending=[False, True]).iloc[0].to_dict()
    with torch.no_grad():
        snaps = muon_snapshots(row)
    if not snaps:
        raise NothingToPlot(f"{Path(store_dir).name}: the rerun reached no snapshot level")
    with styled():
        fig = new_figure((2.4 * len(snaps) + 0.6, 4.6))
        axes = fig.subplots(2, len(snaps), squeeze=False)
        for j, (t, rel, pm, ps) in enumerate(snaps):
            for i, (P, label) in enumerate(((pm, "Muon (GᵀG)^(-1/2)"), (ps, "ScaledGD (XᵀX)⁻¹"))):
                Q = P / np.abs(P).max()
                im = axes[i, j].imshow(Q, cmap="RdBu_r", vmin=-1, vmax=1)
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
                if j == 0:
                    axes[i, j].set_ylabel(label, fontsize=8)
                if i == 0:
                    axes[i, j].set_title(f"step {t}, rel. err {rel:.0e}", fontsize=8)
        fig.colorbar(im, ax=axes, shrink=0.7, label="entry / max |entry|")
    caption = (
        "Muon's right preconditioner (GᵀG)^(-1/2) (top) and ScaledGD's (XᵀX)⁻¹ (bottom) along one Muon run "
        "(κ = {kappa:g}, seed {seed}, rerun alone from its config: its steps can differ by a few from the "
        "stored batched run's, as the plateau rule's comparisons amplify rounding), each scaled to max "
        "|entry| = 1, at the first step reaching each relative error. Compare the patterns (sign and "
        "off-diagonal mass), not the scales; the claims measure the same by cosines."
    )
    return fig, caption.format(kappa=float(row["problem.kappa"]), seed=int(row["seed"]))
