"""gram_newton_schulz, method="auto" (choose_method) and orthogonalize_many.

The reference for the Gram route is the same as for Newton–Schulz: U φ(s/‖G‖_F) Vᵀ
with φ = ``polynomial_map`` of the coefficient table, on matrices whose SVD is known
by construction.  Tolerances are the ones measured in docs/orthogonalize.md.
"""

from __future__ import annotations

import importlib
import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab.linalg import (
    GRAM_MIN_ASPECT,
    METHODS,
    choose_method,
    orthogonalize,
    orthogonalize_many,
    polynomial_map,
    resolve_coefficients,
)

ortho_module = importlib.import_module("muonlab.linalg.orthogonalize")
F64 = torch.float64


def known_svd(batch, m, n, s, seed=0):
    """G = U diag(s) Vᵀ (…, m, n) with random orthonormal U, V; returns G, U, V."""
    g = torch.Generator().manual_seed(seed)
    k = len(s)
    U, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=F64))
    V, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=F64))
    s = torch.as_tensor(s, dtype=F64)
    return (U * s) @ V.mT, U, V


def spec_norm(X):
    return torch.linalg.matrix_norm(X, ord=2).max().item()


def polynomial_target(U, V, s, preset):
    phi = polynomial_map(s / torch.linalg.vector_norm(s), resolve_coefficients(preset, None))
    return (U * phi) @ V.mT


@pytest.fixture
def gram_calls(monkeypatch):
    """Count the calls of the Gram-side kernel (to tell it from the fallback)."""
    calls = []
    original = ortho_module._gram_core

    def spy(X, *args, **kwargs):
        calls.append(tuple(X.shape))
        return original(X, *args, **kwargs)

    monkeypatch.setattr(ortho_module, "_gram_core", spy)
    return calls


def test_new_methods_are_listed():
    assert "gram_newton_schulz" in METHODS and "auto" in METHODS


@settings(max_examples=40, deadline=None)
@given(
    batch=st.lists(st.integers(1, 2), max_size=1),
    n=st.integers(1, 10),
    aspect=st.sampled_from([2, 3, 4, 8]),
    wide=st.booleans(),
    preset=st.sampled_from(["keller", "dion", "polar_express"]),
    log_kappa=st.floats(0.0, 8.0),
    seed=st.integers(0, 2**16),
)
def test_float64_equals_polynomial_map_of_singular_values(batch, n, aspect, wide, preset, log_kappa, seed):
    m = aspect * n
    s = torch.logspace(0.0, -log_kappa, n, dtype=F64)
    G, U, V = known_svd(tuple(batch), m, n, s, seed)
    if wide:
        G, U, V = G.mT, V, U
    O = orthogonalize(G, "gram_newton_schulz", coefficients=preset)
    assert O.shape == G.shape and O.dtype == F64
    # Measured ≤ 1e-12 (docs/orthogonalize.md); 1e-10 leaves room for other shapes.
    assert spec_norm(O - polynomial_target(U, V, s, preset)) <= 1e-10


@pytest.mark.parametrize("m,n,expected", [(20, 10, 1), (10, 20, 1), (19, 10, 0), (10, 10, 0), (80, 10, 1)])
def test_gram_side_is_used_from_aspect_ratio_two(gram_calls, m, n, expected):
    G = torch.randn(m, n, dtype=F64)
    O = orthogonalize(G, "gram_newton_schulz")
    assert len(gram_calls) == expected
    if expected:
        assert gram_calls == [(max(m, n), min(m, n))]  # iterated on the tall side
    else:  # below the ratio it is newton_schulz itself
        assert torch.equal(O, orthogonalize(G, "newton_schulz"))
    assert max(m, n) / min(m, n) >= GRAM_MIN_ASPECT or expected == 0


# Agreement with newton_schulz, ‖O_gram − O_ns‖₂ on κ = 1e3 inputs (measured ≤ 1e-12,
# 1.6e-5 and 0.31: in bfloat16 this is Newton–Schulz's own rounding, see the table in docs).
AGREE_TOL = {torch.float64: 1e-11, torch.float32: 5e-5, torch.bfloat16: 0.4}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("preset", ["keller", "polar_express"])
@pytest.mark.parametrize("m,n", [(96, 48), (48, 192), (256, 32)])
def test_agrees_with_newton_schulz(dtype, preset, m, n):
    k = min(m, n)
    s = torch.logspace(0.0, -3.0, k, dtype=F64)
    G, _, _ = known_svd((2,), m, n, s, seed=m + n)
    Gd = G.to(dtype)
    O = orthogonalize(Gd, "gram_newton_schulz", coefficients=preset)
    N = orthogonalize(Gd, "newton_schulz", coefficients=preset)
    assert O.dtype == dtype and O.shape == G.shape
    assert spec_norm(O.double() - N.double()) <= AGREE_TOL[dtype]
    # Distance of the output's singular values from the exact iteration's φ(σ/‖G‖_F).
    # Below float64 the n×n side runs one size wider: float32 stays at the output's
    # rounding (measured ≤ 2e-6, Newton–Schulz ≤ 1.2e-5), bfloat16 is ~100× closer than
    # Newton–Schulz (≤ 8e-4 against ≤ 6e-2).  In float64 (no wider dtype) the Gram side
    # amplifies rounding ~100×, to ≤ 1e-12 measured.
    sx = torch.linalg.svdvals(Gd.double())
    phi = polynomial_map(sx / torch.linalg.vector_norm(sx, dim=-1, keepdim=True), resolve_coefficients(preset, None))
    phi = phi.sort(dim=-1, descending=True).values
    err_gram = (torch.linalg.svdvals(O.double()) - phi).abs().max().item()
    err_ns = (torch.linalg.svdvals(N.double()) - phi).abs().max().item()
    if dtype == torch.float64:
        assert err_ns <= 1e-13 and err_gram <= 1e-11
    elif dtype == torch.float32:
        assert err_gram <= 5e-6 and err_ns <= 5e-5
    else:
        assert err_gram <= 2e-3 and err_gram <= err_ns / 10


BANDS = {"keller": (1e-2, 0.68, 1.14), "polar_express": (1e-3, 0.84, 1.15)}  # ℓ, documented band
NS_SLACK = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 0.08}  # as for newton_schulz
EXACT_SLACK = {torch.float64: 1e-9, torch.float32: 1e-5, torch.bfloat16: 3e-3}  # measured ≤ 1e-12, 1e-6, 8e-4


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("preset", ["keller", "polar_express"])
@pytest.mark.parametrize("aspect", [2, 4, 8])
def test_output_singular_values_in_the_newton_schulz_band(dtype, preset, aspect):
    lower, lo, hi = BANDS[preset]
    n = 32
    s = torch.logspace(0.0, -1.0, n, dtype=F64)
    s[-1] = lower * torch.linalg.vector_norm(s).item() * 1.0001
    G, _, _ = known_svd((2,), aspect * n, n, s, seed=aspect)
    Gd = G.to(dtype)
    sv = torch.linalg.svdvals(orthogonalize(Gd, "gram_newton_schulz", coefficients=preset).double())
    # the band documented for newton_schulz, with the slack its own test allows
    assert sv.min().item() >= lo - NS_SLACK[dtype]
    assert sv.max().item() <= hi + NS_SLACK[dtype]
    # and, tighter, the exact range φ takes on the input actually given (bf16 rounding of
    # G moves its smallest σ/‖G‖_F, where φ is steep)
    sx = torch.linalg.svdvals(Gd.double())
    phi = polynomial_map(sx / torch.linalg.vector_norm(sx, dim=-1, keepdim=True), resolve_coefficients(preset, None))
    assert sv.min().item() >= phi.min().item() - EXACT_SLACK[dtype]
    assert sv.max().item() <= phi.max().item() + EXACT_SLACK[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 12, 3), (3, 40), (6, 6)])
def test_zero_input_gives_zero(dtype, shape):
    G = torch.zeros(*shape, dtype=dtype)
    for method in ("gram_newton_schulz", "auto"):
        O = orthogonalize(G, method)
        assert O.dtype == dtype and torch.equal(O, torch.zeros_like(G))


@pytest.mark.parametrize("shape", [(0, 12, 3), (2, 0, 8, 4), (5, 0), (0, 7)])
def test_empty_input_gives_empty_result(shape):
    G = torch.zeros(*shape, dtype=torch.float32)
    for method in ("gram_newton_schulz", "newton_schulz", "auto"):
        O = orthogonalize(G, method)
        assert O.shape == G.shape and O.dtype == G.dtype


def test_bad_coefficients_name_the_field():
    with pytest.raises(ValueError, match="^coefficients:"):
        orthogonalize(torch.randn(8, 2), "gram_newton_schulz", coefficients="jordan")
    with pytest.raises(ValueError, match="^steps:"):
        orthogonalize(torch.randn(8, 2), "auto", steps=0)


def test_custom_table_and_steps_are_honoured():
    G = torch.randn(40, 8, dtype=F64)
    table = [(1.5, -0.5, 0.0)]  # classic cubic: converges to msign with enough steps
    O = orthogonalize(G, "gram_newton_schulz", coefficients=table, steps=40)
    assert spec_norm(O - orthogonalize(G, "svd")) <= 1e-10
    one = orthogonalize(G, "gram_newton_schulz", coefficients=(3.4445, -4.7750, 2.0315), steps=1)
    s = torch.linalg.svdvals(G)
    assert torch.allclose(torch.linalg.svdvals(one), polynomial_map(s / s.norm(), [(3.4445, -4.7750, 2.0315)]),
                          atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------- choose_method


@pytest.mark.parametrize(
    "shape,dtype,device,expected",
    [
        ((1024, 1024), torch.bfloat16, "cuda", "newton_schulz"),
        ((1024, 768), torch.float32, "cuda", "newton_schulz"),  # ratio 1.33
        ((2048, 1024), torch.float32, "cuda", "gram_newton_schulz"),  # ratio 2 exactly
        ((8, 1024, 4096), torch.bfloat16, "cuda", "gram_newton_schulz"),  # wide, batched
        ((4097, 2048), torch.float32, "mps", "gram_newton_schulz"),  # any accelerator
        ((512, 256), torch.float64, "cpu", "gram_newton_schulz"),
        ((300, 256), torch.float64, "cpu", "newton_schulz"),
        ((1024, 256), torch.float32, "cpu", "newton_schulz"),  # ratio 4 < 8 in float32
        ((2048, 256), torch.float32, "cpu", "gram_newton_schulz"),
        ((128, 4096), torch.float32, "cpu", "gram_newton_schulz"),
        ((1024, 256), torch.bfloat16, "cpu", "newton_schulz"),
        ((4, 4096, 128), torch.bfloat16, "cpu", "gram_newton_schulz"),
        ((256, 256), torch.float32, "cpu", "newton_schulz"),
        ((0, 5), torch.float32, "cpu", "newton_schulz"),  # empty: nothing to save
    ],
)
def test_choose_method_rules(shape, dtype, device, expected):
    assert choose_method(shape, dtype, device) == expected
    # the batch never changes the choice
    assert choose_method((3, *shape), dtype, device) == expected


def test_choose_method_never_returns_an_exact_method():
    shapes = [(a, b) for a in (1, 7, 64, 512, 4096) for b in (1, 7, 64, 512, 4096)]
    for shape in shapes:
        for dtype in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
            for device in ("cpu", "cuda"):
                assert choose_method(shape, dtype, device) in ("newton_schulz", "gram_newton_schulz")
    with pytest.raises(ValueError, match="^shape:"):
        choose_method((5,), torch.float32, "cpu")


@pytest.mark.parametrize("shape,dtype", [((2, 64, 8), torch.float32), ((2, 24, 12), torch.float64),
                                         ((16, 16), torch.float32), ((3, 10, 40), torch.bfloat16)])
def test_auto_dispatches_through_choose_method_on_cpu(shape, dtype):
    G = torch.randn(*shape, dtype=F64).to(dtype)
    chosen = choose_method(G.shape, G.dtype, "cpu")
    assert torch.equal(orthogonalize(G, "auto"), orthogonalize(G, chosen))
    assert torch.equal(orthogonalize(G, "auto", coefficients="dion"), orthogonalize(G, chosen, coefficients="dion"))


# ---------------------------------------------------------------------------- orthogonalize_many


@settings(max_examples=15, deadline=None)
@given(
    shapes=st.lists(st.sampled_from([(6, 3), (3, 6), (8, 8), (2, 9, 3), (24, 4)]), min_size=0, max_size=7),
    dtypes=st.lists(st.sampled_from([torch.float64, torch.float32, torch.bfloat16]), min_size=7, max_size=7),
    method=st.sampled_from(["newton_schulz", "gram_newton_schulz", "polar_express", "svd", "auto"]),
    seed=st.integers(0, 2**16),
)
def test_orthogonalize_many_equals_per_tensor_calls(shapes, dtypes, method, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(*s, generator=g, dtype=F64).to(d) for s, d in zip(shapes, dtypes)]
    results = orthogonalize_many(tensors, method=method)
    assert len(results) == len(tensors)
    for t, r in zip(tensors, results):
        assert r.shape == t.shape and r.dtype == t.dtype
        alone = orthogonalize(t, method)
        if method == "svd" and t.dtype != F64:
            # LAPACK's float32 SVD is not batch-invariant in the last bits (measured: a
            # (2, 9, 3) pair alone vs inside a (4, 9, 3) stack); float64 is.
            torch.testing.assert_close(r, alone, rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(r, alone)  # bit for bit, in input order


def test_orthogonalize_many_groups_equal_shapes_into_one_call(monkeypatch):
    seen = []
    original = ortho_module.orthogonalize

    def spy(G, *args, **kwargs):
        seen.append(tuple(G.shape))
        return original(G, *args, **kwargs)

    monkeypatch.setattr(ortho_module, "orthogonalize", spy)
    a, b, c = (torch.randn(6, 3, dtype=F64) for _ in range(3))
    d = torch.randn(3, 6, dtype=F64)
    e = torch.randn(6, 3, dtype=torch.float32)
    results = orthogonalize_many([a, d, b, e, c], method="newton_schulz", coefficients="dion")
    assert sorted(seen) == sorted([(3, 6, 3), (3, 6), (6, 3)])  # a, b, c stacked; d and e alone
    for t, r in zip([a, d, b, e, c], results):
        assert torch.equal(r, original(t, "newton_schulz", coefficients="dion"))
    assert orthogonalize_many([]) == []
    with pytest.raises(ValueError, match=r"^tensors\[1\]:"):
        orthogonalize_many([a, [[1.0]]])


def test_polar_express_preset_matches_its_own_reference_across_aspects():
    # Gram NS with the polar_express table normalizes by ‖G‖_F, as newton_schulz does.
    for m, n in [(64, 32), (32, 128)]:
        s = torch.logspace(0.0, -2.0, min(m, n), dtype=F64)
        G, U, V = known_svd((), m, n, s, seed=5)
        O = orthogonalize(G, "gram_newton_schulz", coefficients="polar_express")
        assert spec_norm(O - polynomial_target(U, V, s, "polar_express")) <= 1e-11
        assert not math.isnan(O.sum().item())
