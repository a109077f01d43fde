"""orthogonalize at its edges (issue 14, item 6): empty shapes, zeros, extreme magnitudes, bad options.

References are the float64 SVD polar factor U Vᵀ of matrices built with a known,
well-conditioned spectrum (singular values in [0.5, 1] times a scale), so the exact
methods must match it and the polynomial ones must match themselves on the same
matrix scaled by an exact power of two.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab import orthogonalize
from muonlab.linalg import METHODS, resolve_coefficients
from muonlab.linalg.orthogonalize import orthogonalize_many

EXACT = ("svd", "gram", "symmetric", "beta")
POLYNOMIAL = ("newton_schulz", "polar_express", "gram_newton_schulz", "auto")
DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
# Max |entry| error of an exact method against the float64 polar factor, per input dtype
# (half precision runs in float32 and is rounded back on output).
EXACT_TOL = {torch.float64: 1e-9, torch.float32: 5e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}


def _args(method: str, shape) -> tuple[str, tuple[int, ...]]:
    """``symmetric`` needs square matrices: make the last two dims equal."""
    if method == "symmetric":
        shape = (*shape[:-1], shape[-2])
    return method, tuple(shape)


def well_conditioned(batch, m, n, *, scale=1.0, seed=0, symmetric=False):
    """G (float64) = scale · U diag(s) Vᵀ with s in [0.5, 1], and its polar factor U Vᵀ."""
    g = torch.Generator().manual_seed(seed)
    k = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=torch.float64))
    if symmetric:
        V = U
        s = 0.5 + 0.5 * torch.rand(*batch, k, generator=g, dtype=torch.float64)
    else:
        V, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=torch.float64))
        s = 0.5 + 0.5 * torch.rand(*batch, k, generator=g, dtype=torch.float64)
    G = (U * (s * scale).unsqueeze(-2)) @ V.mT
    return G, U @ V.mT


shapes = st.tuples(
    st.lists(st.integers(0, 3), min_size=0, max_size=2),  # batch dims, 0 allowed
    st.integers(0, 5),
    st.integers(0, 5),
).map(lambda t: (*t[0], t[1], t[2]))


@settings(max_examples=150, deadline=None)
@given(shape=shapes.filter(lambda s: 0 in s), method=st.sampled_from(METHODS), dtype=st.sampled_from(DTYPES))
def test_empty_input_returns_empty_of_the_same_shape_and_dtype(shape, method, dtype):
    method, shape = _args(method, shape)
    out = orthogonalize(torch.zeros(shape, dtype=dtype), method)
    assert out.shape == shape and out.dtype == dtype


@pytest.mark.parametrize("method", METHODS)
def test_empty_batch_of_3x3(method):
    out = orthogonalize(torch.randn(0, 3, 3), method)
    assert out.shape == (0, 3, 3)
    assert orthogonalize_many([torch.randn(0, 3, 3), torch.randn(0, 3, 3)], method=method)[1].shape == (0, 3, 3)


@settings(max_examples=150, deadline=None)
@given(shape=shapes, method=st.sampled_from(METHODS), dtype=st.sampled_from(DTYPES))
def test_zeros_map_to_zeros(shape, method, dtype):
    method, shape = _args(method, shape)
    out = orthogonalize(torch.zeros(shape, dtype=dtype), method)
    assert out.shape == shape and out.dtype == dtype
    assert torch.equal(out, torch.zeros_like(out))


@settings(max_examples=120, deadline=None)
@given(
    batch=st.lists(st.integers(1, 2), max_size=1),
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    method=st.sampled_from(EXACT),
    dtype=st.sampled_from(DTYPES),
    log2_scale=st.sampled_from([0, -100, 60, 100, 125]),
    seed=st.integers(0, 10_000),
)
def test_exact_methods_match_the_float64_polar_factor_at_any_scale(batch, m, n, method, dtype, log2_scale, seed):
    """Huge (2^125 ≈ 4e37) and tiny (2^-100) entries included; the float16 range is kept."""
    if method == "symmetric":
        n = m
    if dtype == torch.float16:
        log2_scale = max(min(log2_scale, 8), -8)
    G64, polar = well_conditioned(batch, m, n, scale=2.0**log2_scale, seed=seed, symmetric=method == "symmetric")
    G = G64.to(dtype)
    if not torch.isfinite(G).all() or (G == 0).all():
        return
    out = orthogonalize(G, method)
    assert out.shape == G.shape and out.dtype == dtype
    # Reference from the rounded input (the rounding moves the polar factor in half precision).
    ref = orthogonalize(G.double(), "svd") if method != "symmetric" else polar
    err = (out.double() - ref).abs().max().item()
    assert err <= EXACT_TOL[dtype], (method, dtype, log2_scale, err)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("entry", [1e38, 3e38, 1e19, 1e-30])
def test_gram_handles_extreme_float32_entries(dtype, entry):
    G64, _ = well_conditioned((), 7, 3, seed=1)
    G = (G64 / G64.abs().max() * entry).to(dtype)
    ref = orthogonalize(G.double(), "svd")
    out = orthogonalize(G, "gram")
    assert torch.isfinite(out).all()
    assert (out.double() - ref).abs().max().item() < (1e-4 if dtype == torch.float32 else 1e-10)


def test_gram_on_float32_entries_near_1e38_with_a_random_sign_matrix():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(4, 3, generator=g).sign() * 1e38
    out = orthogonalize(G, "gram")
    ref = orthogonalize(G.double(), "svd")
    assert (out.double() - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("method", POLYNOMIAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_polynomial_methods_do_not_return_zero_when_the_norm_would_overflow(method, dtype):
    """‖G‖_F overflowed (float32 entries above ~1.8e19, float16 norms above 65504) and the result was 0."""
    G64, _ = well_conditioned((2,), 6, 4, seed=3)
    big = {torch.float16: 60000.0, torch.float32: 2.0**120, torch.bfloat16: 2.0**120}[dtype]
    unit = G64 / G64.abs().amax(dim=(-2, -1), keepdim=True)
    G = (unit * big).to(dtype)
    assert torch.isfinite(G).all()
    out = orthogonalize(G, method)
    # msign is invariant to a positive scale: the same as the method on the rescaled input.
    ref = orthogonalize((G.double() / big).to(dtype), method)
    assert torch.isfinite(out).all() and out.abs().max() > 0.1
    assert (out.double() - ref.double()).abs().max().item() < (1e-5 if dtype == torch.float32 else 5e-2)


@pytest.mark.parametrize("method", POLYNOMIAL)
def test_ordinary_inputs_are_unchanged_bit_for_bit_by_the_overflow_guard(method):
    from muonlab.linalg.orthogonalize import orthogonalize_unchecked

    G = torch.randn(3, 8, 5, generator=torch.Generator().manual_seed(4)) * 1e3
    table = resolve_coefficients("polar_express" if method == "polar_express" else "keller", None)
    assert torch.equal(orthogonalize(G, method), orthogonalize_unchecked(G, method, table=table))


@pytest.mark.parametrize("eps", [0.0, -1e-7, math.nan, math.inf, "1e-7", None])
def test_eps_must_be_finite_and_positive(eps):
    with pytest.raises(ValueError) as info:
        orthogonalize(torch.zeros(3, 3), eps=eps)
    assert str(info.value).startswith("eps: must be a finite number > 0, got ")
    assert info.value.field == "eps"


@pytest.mark.parametrize(
    "coefficients",
    [(math.nan, 1.0, 1.0), (3.4, math.inf, 2.0), [(3.4, -4.7, 2.0), (1.5, -0.5, -math.inf)]],
)
@pytest.mark.parametrize("method", ["newton_schulz", "gram_newton_schulz", "auto"])
def test_non_finite_coefficients_are_refused(coefficients, method):
    with pytest.raises(ValueError, match=r"^coefficients: must be finite numbers, got the row"):
        orthogonalize(torch.randn(4, 3), method, coefficients=coefficients)


def test_non_numeric_coefficients_are_one_line():
    with pytest.raises(ValueError, match=r"^coefficients: each row must be an \(a, b, c\) triple"):
        resolve_coefficients([("a", 1, 2)], None)


@pytest.mark.parametrize("beta", [math.nan, math.inf, -1.0])
def test_beta_must_be_finite_and_nonnegative(beta):
    with pytest.raises(ValueError, match=r"^beta: must be a finite number >= 0"):
        orthogonalize(torch.randn(3, 3), "beta", beta=beta)


def test_symmetric_refuses_non_square_even_when_empty():
    with pytest.raises(ValueError, match="^method: 'symmetric' needs square matrices"):
        orthogonalize(torch.zeros(0, 3, 4), "symmetric")


@pytest.mark.parametrize("method", ["svd", "symmetric", "gram", *POLYNOMIAL])
def test_singular_values_beyond_float32_do_not_give_zero(method):
    """σ_max of a 4×4 float32 matrix with entries near 3e38 exceeds float32's range: the SVD
    gave inf singular values and a zero result."""
    g = torch.Generator().manual_seed(6)
    A = torch.rand(4, 4, generator=g, dtype=torch.float64)
    G = (3e38 * (0.5 + 0.5 * (A + A.T) / 2)).float()  # symmetric, positive, full rank
    ref = orthogonalize(G.double(), "svd")
    out = orthogonalize(G, method)
    tol = 1e-4 if method in EXACT else 0.35  # Newton–Schulz (keller, 5 steps) is only ~msign
    assert torch.isfinite(out).all() and (out.double() - ref).abs().max().item() < tol
