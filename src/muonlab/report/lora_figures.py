"""Figures of a ``muonlab finetune`` store: each LoRA adapter's spectrum, Muon vs AdamW.

Seed 000 §3 (Kang et al., arXiv 2602.06385): under Muon the singular values of every
LoRA update ΔW grow near-uniformly (effective rank ≈ r); under AdamW a few directions
dominate. Three figures, optimizers side by side, each from the store's
``<module>:<quantity>`` trajectories (:mod:`muonlab.lora.monitor`):

* ``effective_rank`` — exp(H(σ/‖σ‖₁)) of every adapter over training, and their mean;
* ``singular_values`` — σ_1 … σ_r of a few adapters (first to last layer) over training;
* ``final_spectrum`` — σ_i/σ_1 of every adapter at the last recorded step.

:func:`lora_figures` returns them as (name, figure, caption); the report saves each with
:func:`muonlab.report.figures.save_figure`.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from muonlab.engine.store import ResultStore
from muonlab.report.figures import NothingToPlot, new_figure, styled

__all__ = ["ADAPTER_METRIC", "adapter_table", "is_lora_store", "lora_figures"]

#: Trajectory metric names written by the spectral monitor: "<module name>:<quantity>".
ADAPTER_METRIC = re.compile(r"^(?P<module>.+):(?P<quantity>singular_values|effective_rank|norm_A|norm_B|norm_delta)$")
_OPT_LABEL = {"muon": "Muon", "adamw": "AdamW"}


def is_lora_store(runs: pd.DataFrame) -> bool:
    """Whether a runs table comes from ``muonlab finetune`` (it has LoRA config columns)."""
    return {"optimizer", "rank", "target_modules"} <= set(runs.columns)


def adapter_table(traj: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """Long table (run_id, step, module, index, value) of one monitor quantity, from a
    store's trajectories."""
    if not len(traj):
        return pd.DataFrame(columns=["run_id", "step", "module", "index", "value"])
    parts = traj["metric"].str.extract(ADAPTER_METRIC)
    sel = parts["quantity"] == quantity
    out = traj.loc[sel, ["run_id", "step", "index", "value"]].copy()
    out["module"] = parts.loc[sel, "module"].to_numpy()
    return out


def _short(module: str) -> str:
    """``base_model.model.bert.encoder.layer.3.attention.self.query`` → ``layer 3 query``."""
    m = re.search(r"(?:layers?|h|blocks?)\.(\d+)\..*?([A-Za-z_]+)$", module)
    return f"layer {m.group(1)} {m.group(2)}" if m else module.rsplit(".", 2)[-1]


def _layer_index(module: str) -> int:
    m = re.search(r"(?:layers?|h|blocks?)\.(\d+)\.", module)
    return int(m.group(1)) if m else 0


def _ordered_runs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    ok = runs[runs["status"] == "ok"]
    order = {"muon": 0, "adamw": 1}
    rows = sorted(ok[["run_id", "optimizer"]].itertuples(index=False), key=lambda r: (order.get(r[1], 9), r[0]))
    return [(str(r[0]), str(r[1])) for r in rows]


def lora_figures(store_dir: str | Path) -> list[tuple[str, Figure, str]]:
    """The three figures as (name, figure, caption), in the page's order.

    Raises:
        NothingToPlot: no successful run with monitor records.
    """
    store = ResultStore(store_dir)
    runs = store.runs()
    order = _ordered_runs(runs) if len(runs) else []
    traj = store.trajectories()  # read once: both tables come from it
    erank = adapter_table(traj, "effective_rank")
    svals = adapter_table(traj, "singular_values")
    order = [(rid, opt) for rid, opt in order if (erank["run_id"] == rid).any()]
    if not order:
        raise NothingToPlot(f"{Path(store_dir).name}: no successful run with spectral-monitor records")
    modules = sorted(erank["module"].unique(), key=lambda m: (_layer_index(m), m))
    depth = {m: _layer_index(m) for m in modules}
    dmax = max(depth.values()) or 1
    r = int(svals["index"].max()) + 1 if len(svals) else 0
    cmap = matplotlib.colormaps["viridis"]
    figs: list[tuple[str, Figure, str]] = []

    with styled():
        # 1. effective rank over training
        fig = new_figure((1.0 + 3.8 * len(order), 3.2))
        axes = fig.subplots(1, len(order), sharey=True, squeeze=False)
        for ax, (rid, opt) in zip(axes[0], order):
            sub = erank[erank["run_id"] == rid]
            wide = sub.pivot_table(index="step", columns="module", values="value", aggfunc="last").sort_index()
            for m in wide.columns:
                ax.plot(wide.index, wide[m], color=cmap(0.15 + 0.7 * depth[m] / dmax), linewidth=0.8, alpha=0.8)
            ax.plot(wide.index, wide.mean(axis=1), color="black", linewidth=2.0, label="mean over adapters")
            if r:
                ax.axhline(r, color="0.4", linestyle=":", linewidth=1.0, label=f"r = {r}")
            ax.set_title(_OPT_LABEL.get(opt, opt))
            ax.set_xlabel("step")
            ax.set_ylim(bottom=0)
        axes[0][0].set_ylabel("effective rank of ΔW")
        axes[0][-1].legend(frameon=False, loc="lower right")
        figs.append(("effective_rank", fig, (
            "Effective rank exp(H(σ/‖σ‖₁)) of every adapter's ΔW during training "
            "(thin lines: adapters, lighter = deeper layer; black: mean).")))

        # 2. singular values of a few adapters
        pick = [modules[i] for i in sorted({0, len(modules) // 3, (2 * len(modules)) // 3, len(modules) - 1})]
        fig = new_figure((1.0 + 3.8 * len(order), 0.4 + 2.3 * len(pick)))
        axes = fig.subplots(len(pick), len(order), sharex=True, squeeze=False)
        colors = matplotlib.colormaps["plasma"]
        for i, m in enumerate(pick):
            for j, (rid, opt) in enumerate(order):
                ax = axes[i][j]
                sub = svals[(svals["run_id"] == rid) & (svals["module"] == m)]
                wide = sub.pivot_table(index="step", columns="index", values="value", aggfunc="last").sort_index()
                for k in wide.columns:
                    v = wide[k].to_numpy(dtype=float)
                    ax.plot(wide.index, np.where(v > 0, v, np.nan), color=colors(0.1 + 0.8 * k / max(r - 1, 1)),
                            linewidth=1.0, label=f"σ{int(k) + 1}")
                ax.set_yscale("log")
                if i == 0:
                    ax.set_title(_OPT_LABEL.get(opt, opt))
                if j == 0:
                    ax.set_ylabel(_short(m))
                if i == len(pick) - 1:
                    ax.set_xlabel("step")
        if r <= 16:
            axes[0][-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
        figs.append(("singular_values", fig, (
            "Singular values σ₁…σᵣ of ΔW = (α/r)·BA over training for adapters from "
            "the first to the last layer (log scale).")))

        # 3. final normalized spectrum
        fig = new_figure((1.0 + 3.8 * len(order), 3.0))
        axes = fig.subplots(1, len(order), sharey=True, squeeze=False)
        for ax, (rid, opt) in zip(axes[0], order):
            sub = svals[svals["run_id"] == rid]
            last = sub[sub["step"] == sub["step"].max()]
            for m, g in last.groupby("module"):
                v = g.sort_values("index")["value"].to_numpy(dtype=float)
                if v.size and v[0] > 0:
                    ax.plot(np.arange(1, v.size + 1), v / v[0], color=cmap(0.15 + 0.7 * depth.get(m, 0) / dmax),
                            marker="o", markersize=2.5, linewidth=0.8)
            ax.set_title(f"{_OPT_LABEL.get(opt, opt)} (step {int(sub['step'].max()) if len(sub) else 0})")
            ax.set_xlabel("i")
            ax.set_ylim(0, 1.05)
        axes[0][0].set_ylabel("σᵢ / σ₁ at the end")
        figs.append(("final_spectrum", fig, (
            "Normalized spectrum σᵢ/σ₁ of every adapter at the last recorded step: flat "
            "means uniform growth of all r directions (seed 000 §3).")))
    return figs
