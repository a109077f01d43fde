"""Seed 000's dynamics claims (muonlab.claims.seed000_dynamics): each passes on small real
runs where the property holds and fails on tables where it does not."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from muonlab.claims.seed000_dynamics import (
    converges_from_almost_all_inits,
    equal_growth_rates,
    escape_rate_prediction,
    finite_time_vs_exponential,
    growth_slopes,
    minimum_lyapunov_stable,
    msign_floor,
    saddle_escape,
    tail_rate_band,
)
from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.engine.store import ResultStore

VALUES = [2.0, 1.0, 0.5]
SMALL = {"kind": "lora_mf", "m": 12, "n": 14, "r": 3, "spectrum": "list", "values": VALUES}


def _run(tmp_path, **cfg):
    base = {"name": "t", "problem": SMALL, "steps": 300, "seeds": 2, "stop": {"target": 0.0},
            "optimizer": {"name": "specgd_beta", "lr": 0.02, "beta": 1e-2}}
    base.update(cfg)
    run(ExperimentConfig.model_validate(base), tmp_path)
    store = ResultStore(tmp_path)
    return store.runs(), store.trajectories()


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def rates_store(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("rates"), problem={**SMALL, "gamma": 1e-3, "init": "zero_a"},
                grid={"optimizer": [{"name": "specgd", "lr": 0.02},
                                    {"name": "specgd_beta", "lr": 0.02, "beta": 1e-2}]},
                metrics=["dist_to_opt", "target_mode_values"])


def test_rates_and_finite_time_hold_on_real_runs(rates_store):
    c = equal_growth_rates(*rates_store)
    assert c.passed and (c.n_pass, c.n_total) == (2, 2), c.detail
    f = finite_time_vs_exponential(*rates_store)
    assert f.passed and f.n_total == 2, f.detail


def test_rates_fail_when_one_mode_grows_slower(rates_store):
    runs, traj = rates_store
    traj = traj.copy()
    sel = (traj["metric"] == "target_mode_values") & (traj["index"] == 2)
    traj.loc[sel, "value"] *= 0.8**2 * np.clip(traj.loc[sel, "step"] / 100.0, 0, 1.0)  # slope of √c ≠ 1
    c = equal_growth_rates(runs, traj)
    assert not c.passed and "slope" in c.detail


def test_finite_time_fails_when_msign_leaves_its_floor(rates_store):
    runs, traj = rates_store
    traj = traj.copy()
    msign = set(runs.loc[runs["optimizer.name"] == "specgd", "run_id"])
    sel = traj["run_id"].isin(msign) & (traj["metric"] == "dist_to_opt") & (traj["step"] > 250)
    traj.loc[sel, "value"] = 1.0
    c = finite_time_vs_exponential(runs, traj)
    assert not c.passed and "leaves the floor" in c.detail


def test_stability_claims_on_real_runs(tmp_path):
    base = {**SMALL}
    runs, traj = _run(tmp_path, grid={"problem": [
        {**base, "init": "saddle", "saddle_mode": 0, "gamma": 1e-6},
        {**base, "init": "minimum", "gamma": 1e-3},
        {**base, "init": "minimum", "gamma": 1e-2},
        {**base, "init": "minimum", "gamma": 1.0}]},
        metrics=["dist_to_opt", "dist_to_minimizer"])
    s = saddle_escape(runs, traj)
    assert s.passed and s.n_total == 2, s.detail
    m = minimum_lyapunov_stable(runs, traj)
    assert m.passed and m.n_total == 2, m.detail
    assert "Basin edge" in m.detail
    # the same store read as a saddle that escapes too fast fails
    fast = traj.copy()
    sad = set(runs.loc[runs["problem.init"] == "saddle", "run_id"])
    for rid in sad:
        sel = (fast["run_id"] == rid) & (fast["metric"] == "dist_to_opt")
        f0 = fast.loc[sel & (fast["step"] == 0), "value"].iloc[0]
        drop = ((f0 - fast.loc[sel, "value"]) / f0).clip(lower=0.0)
        fast.loc[sel, "value"] = f0 * (1 - drop**0.5)  # halves the fitted rate
    assert not saddle_escape(runs, fast).passed


def test_inits_claim_on_real_runs(tmp_path):
    runs, traj = _run(tmp_path, problem={**SMALL, "init": "random", "gamma": 1e-3},
                      grid={"problem.gamma": [1e-3, 0.3]}, steps=500,
                      metrics=["dist_to_opt", "factor_norms"])
    c = converges_from_almost_all_inits(runs, traj)
    assert c.passed and c.n_total == 4, c.detail
    assert "γ=0.3: 2/2 converge" in c.detail


# ----------------------------------------------------------------------------- synthetic tables


def _row(rid, seed, **over):
    row = {"run_id": rid, "seed": seed, "status": "ok", "optimizer.name": "specgd_beta", "optimizer.lr": 0.02,
           "optimizer.beta": 1e-2, "problem.values": json.dumps(VALUES), "problem.m": 12, "problem.n": 14,
           "problem.r": 3, "problem.l2": 0.0, "problem.gamma": 1e-3, "problem.init": "random", "max_steps": 500}
    row.update(over)
    return row


def _long(rid, metric, steps, values, index=0):
    return pd.DataFrame({"run_id": rid, "step": steps, "metric": metric, "index": index, "value": values})


def test_inits_claim_fails_on_a_stuck_run_or_growing_norms():
    steps = np.arange(0, 501, 10)
    rows, parts = [], []
    for seed, (end, peak) in enumerate([(1e-20, 1.8), (1e-5, 1.8), (1e-20, 9.0)]):
        rid = f"r{seed}"
        rows.append(_row(rid, seed))
        gap = np.geomspace(1.0, end, len(steps))
        parts += [_long(rid, "dist_to_opt", steps, gap), _long(rid, "loss", steps, gap),
                  _long(rid, "factor_norms", steps, np.linspace(0.01, peak, len(steps)), 0),
                  _long(rid, "factor_norms", steps, np.linspace(0.01, 1.8, len(steps)), 1)]
    c = converges_from_almost_all_inits(pd.DataFrame(rows), pd.concat(parts, ignore_index=True))
    assert not c.passed and (c.n_pass, c.n_total) == (1, 3)
    assert "ends at gap 1e-05" in c.detail and "factor norms reach 9" in c.detail


def test_lyapunov_fails_on_an_excursion_and_reports_the_basin():
    steps = np.arange(0, 501, 10)
    rows, parts = [], []
    for seed in (0, 1):
        for eps in (1e-3, 1e-2, 1.0):
            rid = f"s{seed}-{eps}"
            rows.append(_row(rid, seed, **{"problem.init": "minimum", "problem.gamma": eps}))
            gap = np.geomspace(1.0, 1e-20, len(steps))
            away = 3.0 if (seed == 1 and eps == 1e-2) else 1.0  # seed 1 wanders at ε = 1e-2
            dist = eps * np.concatenate([[1.0], np.full(len(steps) - 1, away if away > 1 else 0.5)])
            parts += [_long(rid, "dist_to_opt", steps, gap), _long(rid, "loss", steps, gap),
                      _long(rid, "dist_to_minimizer", steps, dist)]
    c = minimum_lyapunov_stable(pd.DataFrame(rows), pd.concat(parts, ignore_index=True))
    assert not c.passed and (c.n_pass, c.n_total) == (1, 2)
    assert "excursion 3×" in c.detail
    assert "0: 1 (all tried)" in c.detail and "1: 0.001" in c.detail


def test_empty_stores_fail_with_a_reason():
    empty = pd.DataFrame()
    for fn in (equal_growth_rates, finite_time_vs_exponential, converges_from_almost_all_inits, saddle_escape,
               minimum_lyapunov_stable):
        c = fn(empty, empty)
        assert not c.passed and "no runs" in c.detail


# ----------------------------------------------------------------------------- helpers


def test_growth_slopes_window_and_predictions():
    tau = np.arange(0, 200) * 0.01
    sigma = np.array([1.0, 0.25])
    c = pd.DataFrame({0: np.minimum(tau**2, 1.0), 1: np.minimum((0.5 * tau) ** 2, 0.25)}, index=np.arange(200))
    fits = growth_slopes(c, sigma, 2, 0.01)
    assert fits[0][0] == pytest.approx(1.0) and fits[1][0] == pytest.approx(0.5)
    # window 10 %–80 % of σ*=0.25 at slope 0.5: √c from 0.158 to 0.447 → τ 0.32…0.89
    assert 56 <= fits[1][1] <= 59
    assert msign_floor(sigma, 2, 0.01) == pytest.approx(0.5 * ((0.02 + 1e-4) ** 2 + (0.01 + 1e-4) ** 2))
    lo, hi = tail_rate_band(np.array([2.0, 1.0, 0.5]), 3, 0.02, 1e-2)
    assert lo == pytest.approx(-2 * math.log(1 - 0.2 * 0.5) / 0.02)
    assert hi == pytest.approx(-2 * math.log(1 - 0.2 * 1.0) / 0.02)
    lo_u, _ = tail_rate_band(np.array([2.0, 1.0, 0.9]), 2, 0.02, 1e-2)  # r < r*: mixing gap σ2 − σ3 = 0.1
    assert lo_u == pytest.approx(-2 * math.log(1 - 0.2 * 0.1) / 0.02)
    assert escape_rate_prediction(0.25, 0.01, 1e-2) == pytest.approx(2 * math.log(1.025) / 0.01)
