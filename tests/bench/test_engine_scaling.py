"""muonlab.bench.engine_scaling on tiny sizes: what the points say (never how fast), and the figure."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from muonlab.bench.common import as_json
from muonlab.bench.engine_scaling import QUICK, ScalingPoint, _spread, engine_scaling, main, plot_engine_scaling

SIZES = {"ns": (8, 16), "runs": (1, 3), "fixed_runs": 3, "fixed_n": 8, "rank": 2, "steps": 3, "repeats": 1,
         "baseline_runs": 2, "baseline_steps": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: tiny kernels on a shared 2-core machine spend far longer in thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def points() -> list[ScalingPoint]:
    return engine_scaling(methods=("svd", "gram"), **SIZES)


def test_both_sweeps_per_method_in_order(points):
    keys = [(p.method, p.sweep, p.runs, p.n) for p in points]
    assert keys == [(m, sweep, R, n) for m in ("svd", "gram")
                    for sweep, R, n in (("n", 3, 8), ("n", 3, 16), ("runs", 1, 8), ("runs", 3, 8))]
    assert all((p.rank, p.steps, p.device) == (2, 3, "cpu") for p in points)


def test_a_point_on_both_sweeps_is_measured_once(points):
    for method in ("svd", "gram"):
        shared = [p for p in points if p.method == method and (p.runs, p.n) == (3, 8)]
        assert [p.sweep for p in shared] == ["n", "runs"]
        assert dataclasses.replace(shared[0], sweep="runs") == shared[1]


def test_times_are_finite_positive_and_the_ratio_is_loop_over_engine_per_run_step(points):
    for p in points:
        for t in (p.engine_step_s, p.engine_run_step_s, p.baseline_run_step_s, p.baseline_step_s):
            assert t is not None and math.isfinite(t) and t > 0, p
        assert p.engine_run_step_s == p.engine_step_s / p.runs
        assert p.baseline_step_s == p.baseline_run_step_s * p.runs
        assert p.ratio == p.baseline_run_step_s / p.engine_run_step_s
        assert p.ratio == pytest.approx(p.baseline_step_s / p.engine_step_s)
        # The loop is timed on at most baseline_runs of the point's runs, baseline_steps steps each.
        assert p.baseline_runs == min(p.runs, 2) and p.baseline_steps == 2


def test_the_baseline_subset_spans_the_kappa_range():
    assert _spread(list(range(10)), 3) == [0, 4, 9]  # round(4.5) = 4: banker's rounding, still spread
    assert _spread(list(range(10)), 1) == [0]
    assert _spread([1, 2], 5) == [1, 2]


def test_no_baseline():
    (p,) = engine_scaling(methods=("gram",), ns=(8,), runs=(), fixed_runs=2, fixed_n=8, rank=2, steps=2,
                          repeats=1, baseline=False)
    assert p.baseline_runs is p.baseline_step_s is p.ratio is None and p.engine_step_s > 0


@pytest.mark.parametrize(("kw", "match"), [
    ({"methods": ["qr"]}, "^methods: unknown 'qr'"),
    ({"steps": 0}, "^steps: must be >= 1"),
    ({"ns": (1,), "rank": 2}, r"^ns, runs: need n >= rank \(2\)"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        engine_scaling(**{**SIZES, **kw})


def test_the_figure_files_exist_and_are_not_empty(points, tmp_path):
    paths = plot_engine_scaling(points, tmp_path / "figs")
    assert [p.name for p in paths] == ["bench_engine_scaling.png", "bench_engine_scaling.svg"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:2000]


def test_points_are_json_serializable(points):
    data = json.loads(as_json(points))
    assert data[0]["ratio"] == points[0].ratio and data[0]["engine_run_step_s"] == points[0].engine_run_step_s


def test_quick_sizes_are_small():
    assert max(QUICK["ns"]) <= 32 and max(QUICK["runs"]) <= 8 and QUICK["steps"] <= 10


def test_main_json(capsys):
    out = main(["--quick", "--method", "gram", "--no-baseline", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert {p.method for p in out} == {"gram"} and len(data["engine_scaling"]) == len(out)
    assert data["engine_scaling"][0]["ratio"] is None and data["figures"] == []
    assert data["machine"]["cpu_model"]
