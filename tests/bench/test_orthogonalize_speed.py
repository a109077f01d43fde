"""muonlab.bench.orthogonalize_speed on tiny shapes: what the results say, not how fast."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from muonlab.bench.orthogonalize_speed import SpeedResult, main, orthogonalize_speed

SHAPES = [(2, 8, 8), (3, 12, 6)]  # square and tall (the baseline transposes tall inputs)
METHODS = ["newton_schulz", "polar_express", "svd"]
DTYPES = [torch.bfloat16, torch.float32]


@pytest.fixture(scope="module")
def results() -> list[SpeedResult]:
    return orthogonalize_speed(shapes=SHAPES, methods=METHODS, dtypes=DTYPES, repeats=1, device="cpu")


def test_one_result_per_shape_method_dtype_in_order(results):
    keys = [((r.batch, r.m, r.n), r.method, r.dtype) for r in results]
    assert keys == [(s, m, str(d).removeprefix("torch.")) for s in SHAPES for m in METHODS for d in DTYPES]
    assert all(r.device == "cpu" for r in results)


def test_times_are_finite_positive_and_the_ratio_is_baseline_over_muonlab(results):
    for r in results:
        assert math.isfinite(r.baseline_s) and r.baseline_s > 0, r
        assert math.isfinite(r.muonlab_s) and r.muonlab_s > 0, r
        assert r.ratio == r.baseline_s / r.muonlab_s, r
    # The baseline is measured once per shape and shared by that shape's rows.
    for shape in SHAPES:
        assert len({r.baseline_s for r in results if (r.batch, r.m, r.n) == shape}) == 1


def test_bf16_newton_schulz_is_the_baselines_computation(results):
    """Keller × 5 in bf16 on CPU runs torch.optim.Muon's own operations: bit-identical."""
    for r in results:
        if r.method == "newton_schulz" and r.dtype == "bfloat16":
            assert r.max_abs_diff == 0.0, r
        else:  # another method or dtype really is a different computation
            assert r.max_abs_diff > 1e-4, r


def test_matmul_rate_fraction_only_for_the_polynomial_methods(results):
    for r in results:
        if r.method == "svd":
            assert r.matmul_rate_fraction is None
        else:
            assert r.matmul_rate_fraction is not None
            assert math.isfinite(r.matmul_rate_fraction) and r.matmul_rate_fraction > 0


def test_results_are_frozen_and_the_ratio_is_not_an_argument(results):
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].ratio = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        SpeedResult(device="cpu", batch=1, m=2, n=2, method="svd", dtype="float32", baseline_s=1.0,
                    muonlab_s=2.0, max_abs_diff=0.0, matmul_rate_fraction=None, ratio=9.0)  # type: ignore[call-arg]
    assert SpeedResult(device="cpu", batch=1, m=2, n=2, method="svd", dtype="float32", baseline_s=1.0,
                       muonlab_s=4.0, max_abs_diff=0.0, matmul_rate_fraction=None).ratio == 0.25


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"methods": ["qr"]}, "^methods: unknown 'qr'"),
    ({"shapes": [(2, 0, 3)]}, r"^shapes: each shape is \(batch, m, n\)"),
    ({"shapes": [(2, 3)]}, r"^shapes: each shape is \(batch, m, n\)"),
    ({"repeats": 0}, "^repeats: must be >= 1"),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        orthogonalize_speed(**{"shapes": [(1, 4, 4)], "dtypes": [torch.float32], **kwargs})


def test_main_parses_its_options_and_prints_json(capsys):
    import json

    out = main(["--batch", "2", "--size", "6", "--repeats", "1", "--device", "cpu", "--methods", "gram",
                "--dtypes", "float32", "--json"])
    assert [(r.batch, r.m, r.n, r.method, r.dtype) for r in out] == [(2, 6, 6, "gram", "float32")]
    data = json.loads(capsys.readouterr().out)
    assert data["orthogonalize"][0]["ratio"] == out[0].ratio
    assert data["machine"]["cpu_model"] and data["machine"]["logical_cpus"] >= 1
