"""Figures of a ``muonlab finetune`` store: each LoRA adapter's spectrum, Muon vs AdamW.

Seed 000 §3 (Kang et al., arXiv 2602.06385): under Muon the singular values of every
LoRA update ΔW grow near-uniformly (effective rank ≈ r); under AdamW a few directions
dominate. Three figures, optimizers side by side, each from the store's
``<module>:<quantity>`` trajectories (:mod:`muonlab.lora.monitor`):

* ``figure1`` — the seed's Figure 1: σ_1 … σ_r of the first layer's query adapter over
  training, Muon and AdamW side by side (first seed);
* ``effective_rank`` — exp(H(σ/‖σ‖₁)) of every adapter over training, and their mean
  (every seed's mean when the store holds several seeds);
* ``singular_values`` — σ_1 … σ_r of a few adapters (first to last layer) over training;
* ``final_spectrum`` — σ_i/σ_1 of every adapter at the last recorded step.

A store with several seeds per optimizer (``muonlab reproduce lora``) draws the
per-adapter figures for each optimizer's first seed (the smallest), and the effective
rank of every seed.

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

__all__ = ["ADAPTER_METRIC", "adapter_table", "first_query_adapter", "is_lora_store", "lora_figures"]

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


def _ordered_runs(runs: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(run_id, optimizer, seed) of the successful runs: Muon first, then by seed."""
    ok = runs[runs["status"] == "ok"]
    order = {"muon": 0, "adamw": 1}
    seeds = ok["seed"].fillna(0).astype(int) if "seed" in ok else pd.Series(0, index=ok.index)
    rows = sorted(zip(ok["run_id"].astype(str), ok["optimizer"].astype(str), seeds),
                  key=lambda r: (order.get(r[1], 9), r[2], r[0]))
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def _first_per_optimizer(order: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Each optimizer's first run (smallest seed), in ``order``'s order."""
    seen: set[str] = set()
    out = []
    for rid, opt, seed in order:
        if opt not in seen:
            seen.add(opt)
            out.append((rid, opt, seed))
    return out


def first_query_adapter(modules: list[str]) -> str | None:
    """The first layer's query adapter (``…layer.0…query``, ``…layers.0…q_proj``), the
    adapter of the seed's Figure 1; None if no module looks like a query projection."""
    queries = [m for m in modules if re.search(r"(?:^|[._])(?:query|q_proj|q|q_lin)$", m)]
    return min(queries, key=lambda m: (_layer_index(m), m)) if queries else None


def _label(opt: str, seed: int, several: bool) -> str:
    return f"{_OPT_LABEL.get(opt, opt)}, seed {seed}" if several else _OPT_LABEL.get(opt, opt)


def lora_figures(store_dir: str | Path) -> list[tuple[str, Figure, str]]:
    """The figures as (name, figure, caption), in the page's order (Figure 1 first, when
    there is a query adapter).

    Raises:
        NothingToPlot: no successful run with monitor records.
    """
    store = ResultStore(store_dir)
    runs = store.runs()
    every = _ordered_runs(runs) if len(runs) else []
    traj = store.trajectories()  # read once: both tables come from it
    erank = adapter_table(traj, "effective_rank")
    svals = adapter_table(traj, "singular_values")
    every = [(rid, opt, seed) for rid, opt, seed in every if (erank["run_id"] == rid).any()]
    if not every:
        raise NothingToPlot(f"{Path(store_dir).name}: no successful run with spectral-monitor records")
    several = len(every) > len({opt for _, opt, _ in every})  # more than one seed per optimizer
    order = _first_per_optimizer(every)
    modules = sorted(erank["module"].unique(), key=lambda m: (_layer_index(m), m))
    depth = {m: _layer_index(m) for m in modules}
    dmax = max(depth.values()) or 1
    r = int(svals["index"].max()) + 1 if len(svals) else 0
    cmap = matplotlib.colormaps["viridis"]
    figs: list[tuple[str, Figure, str]] = []

    with styled():
        # 0. the seed's Figure 1: the first layer's query adapter, both optimizers
        query = first_query_adapter(modules)
        if query is not None:
            fig = new_figure((1.0 + 3.8 * len(order), 3.2))
            axes = fig.subplots(1, len(order), squeeze=False)
            colors = matplotlib.colormaps["plasma"]
            for ax, (rid, opt, seed) in zip(axes[0], order):
                sub = svals[(svals["run_id"] == rid) & (svals["module"] == query)]
                wide = sub.pivot_table(index="step", columns="index", values="value", aggfunc="last").sort_index()
                for k in wide.columns:
                    ax.plot(wide.index, wide[k].to_numpy(dtype=float), linewidth=1.2,
                            color=colors(0.1 + 0.8 * int(k) / max(r - 1, 1)), label=f"σ{int(k) + 1}")
                ax.set_title(_label(opt, seed, several))
                ax.set_xlabel("step")
                ax.set_ylim(bottom=0)
            axes[0][0].set_ylabel(f"singular values of ΔW, {_short(query)}")
            if r <= 16:
                axes[0][-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
            figs.append(("figure1", fig, (
                f"Seed 000, Figure 1 redrawn: singular values σ₁…σᵣ of ΔW = (α/r)·BA for the LoRA adapter on "
                f"the first layer's query ({_short(query)}), over training (linear scale). Under Muon they grow "
                "in parallel; under AdamW the largest ones pull away.")))

        # 1. effective rank over training
        fig = new_figure((1.0 + 3.8 * len(order), 3.2))
        axes = fig.subplots(1, len(order), sharey=True, squeeze=False)
        for ax, (rid, opt, seed) in zip(axes[0], order):
            sub = erank[erank["run_id"] == rid]
            wide = sub.pivot_table(index="step", columns="module", values="value", aggfunc="last").sort_index()
            for m in wide.columns:
                ax.plot(wide.index, wide[m], color=cmap(0.15 + 0.7 * depth[m] / dmax), linewidth=0.8, alpha=0.8)
            ax.plot(wide.index, wide.mean(axis=1), color="black", linewidth=2.0,
                    label=f"mean over adapters{f', seed {seed}' if several else ''}")
            others = [rid2 for rid2, opt2, _ in every if opt2 == opt and rid2 != rid]
            for i, rid2 in enumerate(others):
                sub2 = erank[erank["run_id"] == rid2]
                mean2 = sub2.pivot_table(index="step", columns="module", values="value", aggfunc="last").mean(axis=1)
                ax.plot(mean2.index, mean2.to_numpy(), color="0.35", linewidth=1.0, linestyle="--",
                        label="mean, other seeds" if i == 0 else None)
            if r:
                ax.axhline(r, color="0.4", linestyle=":", linewidth=1.0, label=f"r = {r}")
            ax.set_title(_OPT_LABEL.get(opt, opt))
            ax.set_xlabel("step")
            ax.set_ylim(bottom=0)
        axes[0][0].set_ylabel("effective rank of ΔW")
        axes[0][-1].legend(frameon=False, loc="lower right", fontsize=7)
        figs.append(("effective_rank", fig, (
            "Effective rank exp(H(σ/‖σ‖₁)) of every adapter's ΔW during training "
            "(thin lines: adapters, lighter = deeper layer; black: mean"
            + ("; dashed: the mean of each other seed)." if several else ")."))))

        # 2. singular values of a few adapters
        pick = [modules[i] for i in sorted({0, len(modules) // 3, (2 * len(modules)) // 3, len(modules) - 1})]
        fig = new_figure((1.0 + 3.8 * len(order), 0.4 + 2.3 * len(pick)))
        axes = fig.subplots(len(pick), len(order), sharex=True, squeeze=False)
        colors = matplotlib.colormaps["plasma"]
        for i, m in enumerate(pick):
            for j, (rid, opt, seed) in enumerate(order):
                ax = axes[i][j]
                sub = svals[(svals["run_id"] == rid) & (svals["module"] == m)]
                wide = sub.pivot_table(index="step", columns="index", values="value", aggfunc="last").sort_index()
                for k in wide.columns:
                    v = wide[k].to_numpy(dtype=float)
                    ax.plot(wide.index, np.where(v > 0, v, np.nan), color=colors(0.1 + 0.8 * k / max(r - 1, 1)),
                            linewidth=1.0, label=f"σ{int(k) + 1}")
                ax.set_yscale("log")
                if i == 0:
                    ax.set_title(_label(opt, seed, several))
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
        for ax, (rid, opt, seed) in zip(axes[0], order):
            sub = svals[svals["run_id"] == rid]
            last = sub[sub["step"] == sub["step"].max()]
            for m, g in last.groupby("module"):
                v = g.sort_values("index")["value"].to_numpy(dtype=float)
                if v.size and v[0] > 0:
                    ax.plot(np.arange(1, v.size + 1), v / v[0], color=cmap(0.15 + 0.7 * depth.get(m, 0) / dmax),
                            marker="o", markersize=2.5, linewidth=0.8)
            ax.set_title(f"{_label(opt, seed, several)} (step {int(sub['step'].max()) if len(sub) else 0})")
            ax.set_xlabel("i")
            ax.set_ylim(0, 1.05)
        axes[0][0].set_ylabel("σᵢ / σ₁ at the end")
        figs.append(("final_spectrum", fig, (
            "Normalized spectrum σᵢ/σ₁ of every adapter at the last recorded step: flat "
            "means uniform growth of all r directions (seed 000 §3).")))
    return figs
