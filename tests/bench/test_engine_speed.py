"""muonlab.bench.engine: the batched engine and the loop of single runs do the same work."""

from __future__ import annotations

import json
import math

import pytest

from muonlab.bench.engine import (
    EngineResult,
    engine_speed,
    experiment,
    loop_of_single_runs,
    main,
)
from muonlab.config import expand


@pytest.fixture(scope="module")
def results() -> list[EngineResult]:
    return engine_speed(methods=("svd", "gram"), runs=3, n=12, rank=2, steps=15)


def test_one_result_per_method_with_its_workload(results):
    assert [(r.method, r.runs, r.n, r.rank, r.steps) for r in results] == [
        ("svd", 3, 12, 2, 15), ("gram", 3, 12, 2, 15)]


def test_both_sides_reach_the_same_final_errors(results):
    for r in results:
        assert 0.0 <= r.max_log10_gap_final_rel_err < 1e-6, r


def test_times_are_finite_positive_and_the_ratio_is_baseline_over_engine(results):
    for r in results:
        assert math.isfinite(r.baseline_s) and r.baseline_s > 0
        assert math.isfinite(r.muonlab_s) and r.muonlab_s > 0
        assert r.ratio == r.baseline_s / r.muonlab_s


def test_the_workload_sweeps_kappa_and_the_baseline_really_optimizes():
    runs = expand(experiment(runs=3, n=12, rank=2, steps=15, method="svd"))
    assert [r.problem.kappa for r in runs] == [1.0, 100.0, 10000.0]
    assert {r.seed for r in runs} == {0} and all(r.optimizer.method == "svd" for r in runs)
    start = loop_of_single_runs([r.model_copy(update={"steps": 0}) for r in runs], "svd")
    end = loop_of_single_runs(runs, "svd")
    assert all(e < 0.5 * s for s, e in zip(start, end, strict=True)), (start, end)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="^methods: unknown 'qr'; allowed: svd, gram"):
        engine_speed(methods=["qr"])


def test_main_json(capsys):
    out = main(["--runs", "2", "--n", "8", "--rank", "2", "--steps", "5", "--method", "gram", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert [r.method for r in out] == ["gram"]
    assert data["engine"][0]["ratio"] == out[0].ratio and data["engine"][0]["runs"] == 2
    assert data["machine"]["cpu_model"]
