"""Extra figures for seed 002's dynamics claims (:mod:`muonlab.claims.seed002_dynamics`).

* ``alignment_rate`` — planted signal: Muon's block misalignment μ(t) (η = 0.2α) on
  log–log axes, one colour per width d, with the predicted power law of the
  :func:`~muonlab.claims.seed002_dynamics.muon_slope_interval` regime drawn through
  the measured μ(T1); GD's μ(t) against the linear-phase theory.
* ``loss_plateaus`` — loss curves of one seed per optimizer, the plateaus found by
  :func:`~muonlab.claims.seed002_dynamics.count_plateaus` shaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from muonlab.report.extra_figures import _runs_and_metric, extra_figure
from muonlab.report.figures import new_figure, styled

__all__ = ["alignment_rate", "loss_plateaus"]


@extra_figure("alignment_rate")
def alignment_rate(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.seed002_dynamics import (
        ETA_OVER_ALPHA,
        T1,
        T2,
        _planted_spectrum,
        gd_linear_misalignment,
        muon_slope_interval,
    )

    runs, traj = _runs_and_metric(store_dir, "block_misalignment")
    runs = runs[(runs["status"] == "ok") & (runs["seed"] == runs["seed"].min())]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    with styled():
        fig = new_figure((9.0, 3.6))
        ax_m, ax_g = fig.subplots(1, 2)
        mu_runs = runs[(runs["optimizer.name"] == "muon")
                       & np.isclose(runs["optimizer.lr"], ETA_OVER_ALPHA * runs["problem.alpha"], rtol=1e-9)]
        s = _planted_spectrum(runs.iloc[0]) if len(runs) else None
        for c, (d, g) in enumerate(mu_runs.groupby("problem.d")):
            for j, (_, r) in enumerate(g.sort_values("problem.alpha").iterrows()):
                t = traj[traj["run_id"] == r["run_id"]].sort_values("step")
                t = t[t["step"] >= 1]
                ax_m.plot(t["step"], t["value"], color=colors[c % 4], linewidth=1.2 if j == 0 else 0.8,
                          linestyle=["-", "--", ":"][j % 3], label=f"d={d}, α={r['problem.alpha']:g}")
                if j == 0 and s is not None:
                    pred = muon_slope_interval(s, int(r["problem.n_out"]), int(d), int(r["problem.rank"]))
                    mu1 = t.set_index("step")["value"].get(T1)
                    if pred is not None and mu1:
                        x = np.array([T1, T2], float)
                        for k in pred[:2]:
                            ax_m.plot(x, mu1 * (x / T1) ** k, color="0.2", linewidth=0.7)
        ax_m.set_xscale("log")
        ax_m.set_yscale("log")
        ax_m.set_xlabel("step")
        ax_m.set_ylabel("block misalignment μ")
        ax_m.set_title("Muon, η = 0.2α", fontsize=9)
        ax_m.legend(frameon=False, fontsize=6)
        for c, (d, g) in enumerate(runs[runs["optimizer.name"] == "gd"].groupby("problem.d")):
            for j, (_, r) in enumerate(g.sort_values("problem.alpha").iterrows()):
                t = traj[traj["run_id"] == r["run_id"]].sort_values("step")
                ax_g.plot(t["step"], t["value"], color=colors[c % 4], linestyle=["-", "--", ":"][j % 3],
                          linewidth=1.0, label=f"d={d}, α={r['problem.alpha']:g}")
                if j == 0 and s is not None:
                    steps = np.arange(0, 61)
                    ax_g.plot(steps, gd_linear_misalignment(s, steps, float(r["optimizer.lr"]), int(d),
                                                            int(r["problem.n_out"]), float(r["problem.alpha"])),
                              color="0.2", linewidth=0.7)
        ax_g.set_yscale("log")
        ax_g.set_xlabel("step")
        ax_g.set_ylabel("block misalignment μ")
        ax_g.set_title(f"GD (thin: linear theory, α = {runs['problem.alpha'].min():g})", fontsize=9)
        ax_g.legend(frameon=False, fontsize=6)
    return fig, (f"Planted signal, first seed. Left: Muon's misalignment (log–log); curves of different α coincide "
                 f"(η/α fixed); thin lines: the predicted slopes' interval over steps {T1}–{T2}, drawn from the "
                 f"measured μ({T1}). Right: GD against the linear-phase theory (valid while W2W1 ≪ M*). "
                 "Our predictions; see docs/seed002_dynamics.md.")


@extra_figure("loss_plateaus")
def loss_plateaus(store_dir: str | Path) -> tuple[Figure, str]:
    from muonlab.claims.seed002_dynamics import count_plateaus

    runs, traj = _runs_and_metric(store_dir, "loss")
    runs = runs[(runs["status"] == "ok") & (runs["seed"] == runs["seed"].min())]
    with styled():
        fig = new_figure((5.6, 3.6))
        ax = fig.subplots()
        for color, (opt, g) in zip(("tab:blue", "tab:orange"), runs.groupby("optimizer.name")):
            r = g.iloc[0]
            t = traj[traj["run_id"] == r["run_id"]].sort_values("step")
            loss = t["value"].to_numpy(float)
            plats = count_plateaus(loss)
            ax.plot(t["step"], loss, color=color, label=f"{opt} (η = {r['optimizer.lr']:g}): {len(plats)} plateaus")
            for a, b in plats:
                ax.axvspan(a, b, color=color, alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss ½‖W2W1 − M*‖²")
        ax.legend(frameon=False, fontsize=8)
    return fig, ("Loss from small init, first seed; shaded: the plateaus counted by the rule (loss falls < 1 % in 10 "
                 "steps for ≥ 20 steps, before convergence). GD: one plateau per mode (saddle-to-saddle); Muon: only "
                 "the initial slow start.")
