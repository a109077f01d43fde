"""worker_scaling: a reproduction per (backend, workers), timed against local × 1; the stores must agree."""

from __future__ import annotations

import json
import math
import textwrap

import pandas as pd
import pytest

import muonlab.bench.scaling as scaling_mod
from muonlab.bench.scaling import ScalingResult, rows, stores_equal, worker_scaling
from muonlab.config import ExperimentConfig


def tiny() -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": "tiny_scaling",
        "problem": {"kind": "symmetric_mf", "n": 8, "r": 2, "alpha": 1e-2},
        "optimizer": {"name": "muon", "lr": 0.3, "method": "svd"},
        "steps": 30,
        "seeds": 2,
        "grid": {"problem.kappa": [1.0, 10.0], "optimizer": [{"name": "muon", "lr": 0.3, "method": "svd"},
                                                            {"name": "gd", "lr": 0.2}]},
        "metrics": ["loss", "rel_err", "singular_values"],
        "log_every": 3,
    })


def test_local_workers_give_the_baselines_store_and_a_speedup():
    results = worker_scaling(tiny(), workers=(1, 2), backends=("local",))
    assert [(r.backend, r.workers) for r in results] == [("local", 1), ("local", 2)]
    base, two = results
    assert base.wall_s == base.baseline_s and base.speedup == 1.0 and base.stores_equal is True
    assert two.baseline_s == base.baseline_s
    assert two.wall_s is not None and two.wall_s > 0 and two.skipped is None
    assert two.speedup == two.baseline_s / two.wall_s and two.efficiency == two.speedup / 2
    assert two.stores_equal is True  # the process pool stores exactly what this process stored
    assert (base.runs, two.runs) == (8, 8)  # 2 seeds × 2 κ × 2 optimizers
    assert base.batches == 2 and two.batches == 4  # split so that each of 2 workers gets two
    assert all(r.experiment == "tiny_scaling" and r.scale == "config" for r in results)
    data = json.loads(scaling_mod.as_json(results))
    assert data[1]["speedup"] == two.speedup and data[1]["stores_equal"] is True
    assert rows(results)[1][-1] == "yes" and "8 runs in 4 batches" in rows(results)[1][0]


NAMED = textwrap.dedent("""\
    name: tiny_named
    problem: {kind: symmetric_mf, n: 6, r: 2, kappa: 2.0, alpha: 0.1}
    optimizer: {name: gd, lr: 0.3}
    steps: 40
    dtype: float64
    seeds: 3
    metrics: [loss, rel_err]
    log_every: 5
    reproduce:
      seed: "test"
      title: "tiny"
      description: "GD on a tiny symmetric MF."
      figure: {curve_by: [seed], panel_by: null}
      claims: []
      scales:
        quick: ["seeds=2"]
        paper: []
""")


def test_a_named_experiment_runs_through_reproduce_at_its_scale(tmp_path, monkeypatch):
    (tmp_path / "tiny_named.yaml").write_text(NAMED, encoding="utf-8")
    monkeypatch.setattr(scaling_mod, "_ray_missing", lambda backends: "Ray is not installed (test)")
    results = worker_scaling("tiny_named", "quick", workers=(1,), backends=("local", "ray"), root=tmp_path,
                             overrides=["steps=20"])
    (base, ray) = results
    assert (base.experiment, base.scale, base.runs, base.stores_equal) == ("tiny_named", "quick", 2, True)
    assert base.run_s is not None and 0 < base.run_s <= base.wall_s  # type: ignore[operator]
    assert ray.skipped == "Ray is not installed (test)" and ray.wall_s is None and ray.speedup is None
    assert ray.efficiency is None and ray.stores_equal is None and "skipped" in rows(results)[1][0]


def test_stores_equal_is_exact():
    runs = pd.DataFrame({"run_id": ["a", "b"], "final_loss": [1.0, float("nan")]})
    traj = pd.DataFrame({"run_id": ["a"], "metric": ["loss"], "step": [0], "index": [0], "value": [0.5]})
    assert stores_equal((runs, traj), (runs.copy(), traj.copy()))
    nudged = traj.assign(value=[math.nextafter(0.5, 1.0)])
    assert not stores_equal((runs, traj), (runs, nudged))


def test_bad_arguments_are_refused_before_running():
    with pytest.raises(ValueError, match="backends: unknown 'dask'"):
        worker_scaling(tiny(), backends=("dask",))
    with pytest.raises(ValueError, match="workers"):
        worker_scaling(tiny(), workers=(0,))
    with pytest.raises(ValueError, match="overrides"):
        worker_scaling(tiny(), overrides=["steps=3"])


def test_result_derives_speedup_and_efficiency():
    r = ScalingResult("e", "paper", "ray", 4, baseline_s=40.0, wall_s=12.5, run_s=11.0, runs=64, batches=8,
                      stores_equal=True)
    assert r.speedup == 40.0 / 12.5 and r.efficiency == r.speedup / 4
