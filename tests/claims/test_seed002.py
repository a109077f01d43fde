"""Seed 002's claims (muonlab.claims.seed002) on real quick runs and on synthetic tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from muonlab.claims.seed002 import (
    conservation_laws,
    gd_largest_first,
    muon_equal_rate,
    muon_smallest_first,
    muon_stable_above_gd_edge,
)
from muonlab.cli import app
from muonlab.engine.store import ResultStore

runner = CliRunner()
VALUES = [10 / i for i in range(1, 33)]


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    out = tmp_path_factory.mktemp("s002")
    for name in ("s002_mode_order", "s002_conservation"):
        result = runner.invoke(app, ["reproduce", name, "--quick", "--out", str(out), "--set", "seeds=1"])
        assert result.exit_code == 0, result.output
    return out


def _claims(out):
    return {c["name"]: c for c in json.loads((out / "claims.json").read_text())}


def test_mode_order_and_conservation_on_the_seed_settings(repro):
    claims = _claims(repro)
    assert claims["muon_equal_rate"]["passed"], claims["muon_equal_rate"]["detail"]
    assert "σ*=10: t=600 (law 600)" in claims["muon_equal_rate"]["detail"]  # sqrt(0.9·10)/5e-3 = 600
    assert claims["gd_largest_first"]["passed"], claims["gd_largest_first"]["detail"]
    assert claims["conservation_laws"]["passed"], claims["conservation_laws"]["detail"]
    assert all(c["seed"] == "002" for c in claims.values())
    # The seed's square full-rank setting: the smallest mode lags behind the law (findings F4),
    # which the order claim must report rather than hide.
    order = claims["muon_smallest_first"]
    assert "σ*=0.312 at t=" in order["detail"]
    html = (repro / "report" / "index.html").read_text()
    assert "s002_mode_order_mode_arrivals.png" in html
    assert (repro / "report" / "s002_mode_order_mode_arrivals.png").is_file()


def test_smallest_first_holds_when_the_inner_width_exceeds_the_rank(tmp_path):
    result = runner.invoke(app, ["reproduce", "s002_mode_order", "--quick", "--out", str(tmp_path),
                                 "--set", "seeds=1", "--set", "problem.d=40",
                                 "--set", "grid.optimizer=[{name: muon, lr: 0.005, method: svd}]"])
    assert result.exit_code == 0, result.output
    claims = _claims(tmp_path)
    assert claims["muon_smallest_first"]["passed"], claims["muon_smallest_first"]["detail"]
    assert "later than the equal-rate law: none" in claims["muon_smallest_first"]["detail"]
    assert not claims["gd_largest_first"]["passed"]  # no GD runs: no evidence, no pass


def _mode_store(tmp_path, arrivals: dict[str, np.ndarray], eta: dict[str, float]):
    """Runs and mode_progress trajectories whose modes reach 0.9 exactly at the given steps."""
    rows, traj = [], []
    steps = np.arange(0, 1001, 1)
    for opt, t in arrivals.items():
        rid = f"{opt}-run"
        rows.append({"run_id": rid, "optimizer.name": opt, "optimizer.lr": eta[opt], "status": "ok",
                     "schedule.name": "constant", "problem.values": json.dumps(VALUES)})
        for i, ti in enumerate(t):
            prog = np.where(steps >= ti, 1.0, 0.5) if np.isfinite(ti) else np.full(steps.shape, 0.5)
            traj.append(pd.DataFrame({"run_id": rid, "step": steps, "metric": "mode_progress", "index": i,
                                      "value": prog}))
    return pd.DataFrame(rows), pd.concat(traj, ignore_index=True)


def test_mode_claims_on_synthetic_arrivals(tmp_path):
    sigma = np.array(VALUES)
    law = np.round(np.sqrt(0.9 * sigma) / 5e-3)
    runs, traj = _mode_store(tmp_path, {"muon": law, "gd": np.round(50 * sigma.max() / sigma)}, {"muon": 5e-3,
                                                                                              "gd": 1.5e-2})
    assert muon_equal_rate(runs, traj).passed
    assert muon_smallest_first(runs, traj).passed
    assert gd_largest_first(runs, traj).passed
    # all modes at the same time: equal rate is violated (the law spreads them 6×)
    flat = _mode_store(tmp_path, {"muon": np.full(32, 300.0)}, {"muon": 5e-3})
    assert not muon_equal_rate(*flat).passed
    # reversed order: largest first is not Muon's claim
    rev = _mode_store(tmp_path, {"muon": law[::-1].copy()}, {"muon": 5e-3})
    c = muon_smallest_first(*rev)
    assert not c.passed and "Spearman" in c.detail
    # no trajectories: fail, never pass
    assert not muon_equal_rate(runs, traj.iloc[:0]).passed


def _stability_runs(gd_edge: float, muon_diverges_at: float | None = None, anneal_steps=(800, 900)):
    rows = []
    lrs = np.geomspace(0.007, 2.8, 20)
    for lr in lrs:
        gd_ok = lr < gd_edge
        rows.append({"optimizer.name": "gd", "schedule.name": "constant", "optimizer.lr": lr,
                     "status": "ok" if gd_ok or lr < 0.15 else "diverged", "final_rel_err": 1e-9 if gd_ok else 5.0,
                     "steps_to_1e-8": 500 if gd_ok else None})
        bad = muon_diverges_at is not None and lr >= muon_diverges_at
        rows.append({"optimizer.name": "muon", "schedule.name": "constant", "optimizer.lr": lr,
                     "status": "diverged" if bad else "ok", "final_rel_err": min(0.3 * lr, 0.95),
                     "steps_to_1e-8": None})
        rows.append({"optimizer.name": "muon", "schedule.name": "geometric", "optimizer.lr": lr,
                     "status": "ok", "final_rel_err": 1e-9,
                     "steps_to_1e-8": int(np.interp(np.log(lr), [np.log(0.007), np.log(2.8)], anneal_steps))})
    df = pd.DataFrame(rows)
    df["stop.target"] = 1e-8
    df["problem.values"] = json.dumps(VALUES)
    for c in ("steps_to_1e-8",):
        df[c] = df[c].astype("Int64")
    df["steps_to_1e-12"] = pd.array([None] * len(df), dtype="Int64")
    df["steps_to_1e-4"] = pd.array([None] * len(df), dtype="Int64")
    return df


def test_stability_claim_rules():
    c = muon_stable_above_gd_edge(_stability_runs(gd_edge=0.1))
    assert c.passed, c.detail
    assert "η_crit = 2/λ_max = 1/σ*_1 = 0.1" in c.detail
    assert not muon_stable_above_gd_edge(_stability_runs(gd_edge=0.5)).passed  # GD fine above its "edge"
    c = muon_stable_above_gd_edge(_stability_runs(gd_edge=0.1, muon_diverges_at=1.0))
    assert not c.passed and "Muon diverged" in c.detail
    c = muon_stable_above_gd_edge(_stability_runs(gd_edge=0.1, anneal_steps=(300, 1500)))
    assert not c.passed and "max/min" in c.detail.split("FAIL:")[1]
    short = _stability_runs(gd_edge=0.1)
    assert not muon_stable_above_gd_edge(short[short["optimizer.lr"] < 0.5]).passed  # sweep too narrow


def test_conservation_claim_needs_both_halves(repro):
    store = ResultStore(repro / "s002_conservation")
    runs, traj = store.runs(), store.trajectories()
    assert conservation_laws(runs, traj).passed
    # if GD also kept the Muon invariant, "conserved" would not discriminate: fail
    muon_inv = traj["metric"] == "muon_invariant_norm"
    gd_ids = set(runs.loc[runs["optimizer.name"] == "gd", "run_id"])
    flat = traj.copy()
    flat.loc[muon_inv & flat["run_id"].isin(gd_ids), "value"] = 1.0
    c = conservation_laws(runs, flat)
    assert not c.passed and "GD changes the Muon invariant by only" in c.detail


def test_two_step_alignment_on_the_seed_setting(tmp_path):
    from muonlab.claims.seed002 import two_step_alignment

    result = runner.invoke(app, ["reproduce", "s002_two_step", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    claim = _claims(tmp_path)["two_step_alignment"]
    assert claim["passed"], claim["detail"]
    store = ResultStore(tmp_path / "s002_two_step")
    runs, traj = store.runs(), store.trajectories()
    # without the spike runs the claim has no evidence
    assert not two_step_alignment(runs[runs["schedule.name"] == "constant"], traj).passed
    # an alignment that only arrives at step 3 fails
    slow = traj.copy()
    slow.loc[(slow["metric"] == "matched_alignment") & (slow["step"] == 2), "value"] = 0.6
    assert "at step 2" in two_step_alignment(runs, slow).detail


def test_matched_alignment_metric_is_per_direction():
    import torch

    from muonlab.engine.metrics import compute_metrics
    from muonlab.problems import TwoFactorMF

    p = TwoFactorMF(6, 6, 6, seed=[0], spectrum="list", values=[3, 2, 1, 0.5, 0.3, 0.2], alpha=0.1)
    U = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    S1 = torch.diag(torch.tensor([6.0, 5, 4, 3, 2, 1], dtype=torch.float64))
    W2, W1 = (U @ S1)[None], (S1 @ U.T)[None]  # share the inner basis, same order: aligned
    m = compute_metrics(p, [W2, W1], ["matched_alignment", "factor_alignment"])
    assert float(m["matched_alignment"][0]) == pytest.approx(1.0, abs=1e-12)
    W1_swapped = (torch.diag(torch.tensor([1.0, 2, 3, 4, 5, 6], dtype=torch.float64)) @ U.T)[None]
    m = compute_metrics(p, [W2, W1_swapped], ["matched_alignment", "factor_alignment"])
    assert float(m["factor_alignment"][0]) == pytest.approx(1.0)  # full-d subspace score: trivially 1
    assert float(m["matched_alignment"][0]) < 0.5  # the per-direction score sees the mismatch


def test_lr_sweep_figure_from_a_small_store(tmp_path):
    from muonlab.report.extra_figures import lr_sweep
    from muonlab.report.figures import save_figure

    result = runner.invoke(app, ["reproduce", "s002_lr_stability", "--quick", "--out", str(tmp_path),
                                 "--set", "grid.optimizer.lr=[0.05,0.3]", "--set", "steps=300"])
    assert result.exit_code == 0, result.output
    png = tmp_path / "fig.png"
    fig, caption = lr_sweep(tmp_path / "s002_lr_stability")
    save_figure(fig, png)
    assert png.is_file() and png.with_suffix(".svg").is_file() and "2/λ_max" in caption
    assert "s002_lr_stability_lr_sweep.png" in (tmp_path / "report" / "index.html").read_text()
