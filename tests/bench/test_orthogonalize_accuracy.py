"""muonlab.bench.orthogonalize_accuracy: the errors it reports are the errors that are there."""

from __future__ import annotations

import json
import math

import pytest
import torch

from muonlab.bench.orthogonalize_accuracy import (
    METHODS,
    AccuracyResult,
    known_svd,
    main,
    markdown,
    orthogonalize_accuracy,
)

SHAPES = [(7, 5), (5, 7), (6, 6)]
KAPPAS = [1.0, 100.0]


@pytest.fixture(scope="module")
def results() -> list[AccuracyResult]:
    return orthogonalize_accuracy(kappas=KAPPAS, shapes=SHAPES, batch=2)


def by(results, method, dtype):
    return [r for r in results if r.method == method and r.dtype == dtype]


def test_known_svd_has_the_stated_spectrum_and_polar_factor():
    G, U, s, V = known_svd(7, 5, 1e3, 2, torch.Generator().manual_seed(1))
    assert G.shape == (2, 7, 5) and G.dtype == torch.float64
    torch.testing.assert_close(torch.linalg.svdvals(G), s.expand(2, 5), rtol=1e-12, atol=0)
    assert s[0] == 1.0 and s[-1] == pytest.approx(1e-3, rel=1e-12)
    # U Vᵀ is the orthogonal polar factor: G = (U Vᵀ)(V diag(s) Vᵀ) with the second factor PSD.
    P = U @ V.mT
    torch.testing.assert_close(P.mT @ P, torch.eye(5, dtype=torch.float64).expand(2, 5, 5), rtol=0, atol=1e-13)
    torch.testing.assert_close(P @ (V * s) @ V.mT, G, rtol=0, atol=1e-13)


def test_svd_in_float64_is_the_exact_polar_factor(results):
    rows = by(results, "svd", "float64")
    assert [r.kappa for r in rows] == KAPPAS
    for r in rows:
        assert r.error_to_target < 1e-12, r
        assert r.error_to_msign == r.error_to_target  # svd's target is msign itself


def test_float32_is_coarser_than_float64(results):
    for method in ("svd", "gram", "newton_schulz/keller"):
        for r64, r32 in zip(by(results, method, "float64"), by(results, method, "float32"), strict=True):
            assert 1e-9 < r32.error_to_target < 1e-2, r32  # float32 rounding, amplified by κ² for gram
            assert r32.error_to_target > 100 * r64.error_to_target, (r64, r32)


def test_polynomial_methods_hit_their_own_target_not_msign(results):
    """In float64 Newton–Schulz computes U φ(S/‖G‖_F) Vᵀ to rounding; φ is far from 1."""
    for method in ("newton_schulz/keller", "newton_schulz/dion", "polar_express"):
        for r in by(results, method, "float64"):
            assert r.error_to_target < 1e-12, r
            assert r.error_to_msign > 1e-3, r


def test_rows_cover_every_method_dtype_and_kappa(results):
    keys = {(r.method, r.dtype, r.kappa) for r in results}
    expected = {(m, d, k) for m in METHODS for d in ("float64", "float32", "bfloat16") for k in KAPPAS
                if not (m in ("svd", "gram") and d == "bfloat16")}  # exact methods have no bf16 path
    assert keys == expected and len(results) == len(expected)
    for r in results:
        assert math.isfinite(r.error_to_target) and math.isfinite(r.error_to_msign) and r.error_to_target >= 0


def test_same_inputs_for_every_method_and_a_fixed_seed(results):
    again = orthogonalize_accuracy(methods=["svd"], dtypes=[torch.float64], kappas=KAPPAS, shapes=SHAPES, batch=2)
    assert again == by(results, "svd", "float64")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="^methods: unknown 'qr'; allowed: svd, gram"):
        orthogonalize_accuracy(methods=["qr"])


def test_markdown_has_one_row_per_method_and_dtype(results):
    lines = markdown(results).splitlines()
    assert lines[0].startswith("| method | dtype | ‖O − target‖₂ (κ=1 / κ=100)")
    assert len(lines) == 2 + len({(r.method, r.dtype) for r in results})
    r = by(results, "svd", "float64")[1]
    assert f"| svd | float64 | {by(results, 'svd', 'float64')[0].error_to_target:.1e} / {r.error_to_target:.1e} |" \
        in lines[2]


def test_main_json(monkeypatch, capsys):
    import muonlab.bench.orthogonalize_accuracy as mod

    real = mod.orthogonalize_accuracy
    monkeypatch.setattr(mod, "orthogonalize_accuracy",
                        lambda: real(methods=["gram"], dtypes=[torch.float64], kappas=[1.0], shapes=[(4, 3)], batch=1))
    out = main(["--json"])
    data = json.loads(capsys.readouterr().out)
    assert data == [{"method": "gram", "dtype": "float64", "kappa": 1.0,
                     "error_to_target": out[0].error_to_target, "error_to_msign": out[0].error_to_msign}]
