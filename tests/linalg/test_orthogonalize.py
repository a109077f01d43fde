"""Orthogonalizers against matrices whose SVD is known by construction (float64).

The reference for the exact methods is msign(G) = U Vᵀ with U, V, s chosen first and
G = U diag(s) Vᵀ formed from them, so the check does not rely on the SVD being tested.
The reference for the polynomial methods is U φ(s / ‖G‖_F) Vᵀ with φ the composed
scalar polynomial (``polynomial_map``): the iteration acts on each singular value.
Error bounds are the ones documented in docs/orthogonalize.md.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab import orthogonalize
from muonlab.linalg import polynomial_map, resolve_coefficients

F64_EPS = torch.finfo(torch.float64).eps
POLY = [  # (method, coefficients preset, normalization safety factor)
    ("newton_schulz", "keller", 1.0),
    ("newton_schulz", "dion", 1.0),
    ("polar_express", "polar_express", 1.02),
]
# Documented max error of ‖O − U φ(s/‖G‖_F) Vᵀ‖₂ per iteration dtype (docs/orthogonalize.md).
POLY_TOL = {torch.float64: 1e-12, torch.float32: 1e-4}


def known_svd(batch, m, n, s, seed=0):
    """G = U diag(s) Vᵀ with random orthonormal U (m×k), V (n×k); returns G, U, V, s."""
    g = torch.Generator().manual_seed(seed)
    k = len(s)
    U, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=torch.float64))
    s = torch.as_tensor(s, dtype=torch.float64)
    return (U * s) @ V.mT, U, V, s


def log_spectrum(k, kappa):
    return torch.logspace(0.0, -math.log10(kappa), k, dtype=torch.float64)


def spec_norm(X):
    return torch.linalg.matrix_norm(X, ord=2).max().item()


SHAPES = [(60, 40), (40, 60), (50, 50)]


@pytest.mark.parametrize("kappa", [1.0, 1e4, 1e8])
@pytest.mark.parametrize("m,n", SHAPES)
def test_svd_matches_known_polar_factor(kappa, m, n):
    G, U, V, _ = known_svd((3,), m, n, log_spectrum(min(m, n), kappa))
    O = orthogonalize(G, "svd")
    # Perturbation theory: rounding G (ε‖G‖) moves singular vectors by ≈ ε‖G‖/gap ≤ ε·κ·const.
    assert spec_norm(O - U @ V.mT) <= 50 * kappa * F64_EPS
    assert O.shape == G.shape and O.dtype == G.dtype


@pytest.mark.parametrize("kappa", [1.0, 1e2, 1e4])
@pytest.mark.parametrize("m,n", [(200, 8), (8, 200), (30, 30)])
def test_gram_msign_matches_known_polar_factor(kappa, m, n):
    """The Gram route squares the condition number: error bound ε·κ² (docs/orthogonalize.md)."""
    G, U, V, _ = known_svd((3,), m, n, log_spectrum(min(m, n), kappa))
    O = orthogonalize(G, "gram")
    assert spec_norm(O - U @ V.mT) <= 50 * kappa**2 * F64_EPS
    r = 3  # rank-deficient input: the null directions are dropped, not inverted
    s = torch.cat([log_spectrum(r, kappa), torch.zeros(min(m, n) - r, dtype=torch.float64)])
    G, U, V, _ = known_svd((2,), m, n, s)
    assert spec_norm(orthogonalize(G, "gram") - U[..., :r] @ V[..., :r].mT) <= 50 * kappa**2 * F64_EPS


@pytest.mark.parametrize("kappa", [1.0, 1e4, 1e8])
def test_symmetric_msign_is_exact_and_exactly_symmetric(kappa):
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(4, 12, 12, generator=g, dtype=torch.float64))
    mags = log_spectrum(12, kappa)
    signs = torch.tensor([1.0, -1.0] * 6, dtype=torch.float64)
    G = (Q * (signs * mags)) @ Q.mT
    O = orthogonalize(G, "symmetric")
    assert torch.equal(O, O.mT)  # symmetric to the last bit
    assert spec_norm(O - (Q * signs) @ Q.mT) <= 50 * kappa * F64_EPS
    # For symmetric input it is the same msign as the SVD route.
    assert spec_norm(O - orthogonalize(G, "svd")) <= 100 * kappa * F64_EPS
    with pytest.raises(ValueError, match="^method: 'symmetric' needs square matrices"):
        orthogonalize(torch.randn(3, 4, dtype=torch.float64), "symmetric")


@pytest.mark.parametrize("m,n", SHAPES)
def test_svd_rank_deficient_keeps_only_the_range(m, n):
    r = 7
    s = torch.cat([log_spectrum(r, 100.0), torch.zeros(min(m, n) - r, dtype=torch.float64)])
    G, U, V, _ = known_svd((2,), m, n, s)
    O = orthogonalize(G, "svd")
    truth = U[..., :r] @ V[..., :r].mT
    assert spec_norm(O - truth) <= 1e-12
    sv = torch.linalg.svdvals(O)
    assert torch.allclose(sv[..., :r], torch.ones_like(sv[..., :r]), atol=1e-12)
    assert sv[..., r:].abs().max() <= 1e-12


@pytest.mark.parametrize("beta", [1e-4, 1e-2, 1.0])
def test_beta_matches_closed_form(beta):
    s = torch.tensor([3.0, 1.0, 0.1, 0.01, 0.0], dtype=torch.float64)
    G, U, V, s = known_svd((4,), 30, 20, s)
    O = orthogonalize(G, "beta", beta=beta)
    truth = (U * (s / torch.sqrt(s * s + beta))) @ V.mT
    assert spec_norm(O - truth) <= 1e-12
    # T_β(G) = G (GᵀG + βI)^(-1/2), evaluated independently through eigh of the Gram matrix.
    evals, evecs = torch.linalg.eigh(G.mT @ G + beta * torch.eye(20, dtype=torch.float64))
    inv_sqrt = (evecs * evals.rsqrt().unsqueeze(-2)) @ evecs.mT
    assert spec_norm(O - G @ inv_sqrt) <= 1e-10


def test_beta_zero_is_msign():
    G, *_ = known_svd((), 25, 15, log_spectrum(15, 1e3))
    assert torch.equal(orthogonalize(G, "beta", beta=0.0), orthogonalize(G, "svd"))


@pytest.mark.parametrize("method,preset,safety", POLY)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kappa", [1.0, 1e2, 1e8])
@pytest.mark.parametrize("m,n", SHAPES)
def test_polynomial_methods_act_on_singular_values(method, preset, safety, dtype, kappa, m, n):
    G, U, V, s = known_svd((2,), m, n, log_spectrum(min(m, n), kappa))
    kw = {"coefficients": preset} if method == "newton_schulz" else {}
    O = orthogonalize(G.to(dtype), method, **kw)
    assert O.dtype == dtype and O.shape == G.shape
    fro = torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True)[..., 0]
    eps = 1e-7 if safety != 1.0 else 0.0
    phi = polynomial_map(s / (fro * safety + eps), resolve_coefficients(preset, None))
    assert spec_norm(O.double() - (U * phi.unsqueeze(-2)) @ V.mT) <= POLY_TOL[dtype]


def band(preset, lower, safety):
    """Range of φ over normalized singular values in [lower, 1] (dense log grid)."""
    x = torch.logspace(math.log10(lower), 0.0, 100_001, dtype=torch.float64) / safety
    y = polynomial_map(x, resolve_coefficients(preset, None))
    return y.min().item(), y.max().item()


# Documented bands (docs/orthogonalize.md) for σ_i/‖G‖_F ≥ lower.
DOCUMENTED_BANDS = {
    ("keller", 1e-2): (0.68, 1.14),
    ("dion", 1e-2): (0.97, 1.04),
    ("polar_express", 1e-3): (0.84, 1.15),
}


@pytest.mark.parametrize("method,preset,safety", POLY)
@pytest.mark.parametrize("dtype,slack", [(torch.float64, 1e-9), (torch.float32, 1e-4), (torch.bfloat16, 0.08)])
def test_output_singular_values_in_documented_band(method, preset, safety, dtype, slack):
    lower = 1e-3 if preset == "polar_express" else 1e-2
    lo, hi = band(preset, lower, safety)
    doc_lo, doc_hi = DOCUMENTED_BANDS[(preset, lower)]
    assert doc_lo <= lo and hi <= doc_hi, "docs/orthogonalize.md understates the band"
    # Spectrum whose normalized values span [lower, 1/‖s‖]: s_1 = 1, tail down to lower·‖s‖.
    k = 32
    s = torch.logspace(0.0, -1.0, k, dtype=torch.float64)
    s[-1] = lower * torch.linalg.vector_norm(s).item() * 1.0001
    G, _, _, s = known_svd((3,), 64, 48, s)
    kw = {"coefficients": preset} if method == "newton_schulz" else {}
    O = orthogonalize(G.to(dtype), method, **kw)
    sv = torch.linalg.svdvals(O.double())[..., :k]
    assert sv.min().item() >= lo - slack
    assert sv.max().item() <= hi + slack


@pytest.mark.parametrize("method", ["svd", "gram", "symmetric", "beta", "newton_schulz", "polar_express"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_zero_input_gives_zero(method, dtype):
    G = torch.zeros(2, 5, 5 if method == "symmetric" else 3, dtype=dtype)
    O = orthogonalize(G, method, beta=0.1 if method == "beta" else 0.0)
    assert O.dtype == dtype and torch.equal(O, torch.zeros_like(G))


@pytest.mark.parametrize("method", ["svd", "newton_schulz", "polar_express"])
def test_rank_one_tall_and_wide_no_nan(method):
    u = torch.randn(40, 1, dtype=torch.float64)
    v = torch.randn(1, 7, dtype=torch.float64)
    for G in (u @ v, (u @ v).mT):
        O = orthogonalize(G, method)
        assert torch.isfinite(O).all()
        truth = G / torch.linalg.matrix_norm(G, ord=2)
        # rank one: msign = u vᵀ/(|u||v|); the polynomial maps σ/‖G‖_F = 1 to φ(1).
        scale = 1.0 if method == "svd" else O.norm().item()
        assert spec_norm(O - scale * truth) <= 1e-10


def test_batched_equals_loop():
    G = torch.randn(2, 3, 20, 12, dtype=torch.float64)
    for method in ["svd", "newton_schulz", "polar_express"]:
        O = orthogonalize(G, method)
        loop = torch.stack([torch.stack([orthogonalize(g, method) for g in row]) for row in G])
        assert torch.allclose(O, loop, atol=1e-13, rtol=0)


def test_custom_coefficient_table_and_steps():
    G = torch.randn(16, 9, dtype=torch.float64)
    one = orthogonalize(G, coefficients=(3.4445, -4.7750, 2.0315), steps=5)
    assert torch.equal(one, orthogonalize(G, coefficients="keller"))
    # Classic cubic Newton–Schulz (1.5, -0.5, 0) converges to msign with many steps.
    cubic = orthogonalize(G, coefficients=[(1.5, -0.5, 0.0)], steps=60)
    assert spec_norm(cubic - orthogonalize(G, "svd")) <= 1e-10
    # A 2-row table with 4 steps repeats its last row.
    table = [(2.0, -1.5, 0.5), (1.5, -0.5, 0.0)]
    expected = resolve_coefficients(table, 4)
    assert expected == [table[0], table[1], table[1], table[1]]


@settings(max_examples=60, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16]),
    method=st.sampled_from(["svd", "beta", "newton_schulz", "polar_express"]),
    seed=st.integers(0, 2**16),
)
def test_shapes_dtypes_and_partial_isometry(batch, m, n, dtype, method, seed):
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(*batch, m, n, generator=g, dtype=torch.float64).to(dtype)
    O = orthogonalize(G, method, beta=1e-3 if method == "beta" else 0.0)
    assert O.shape == G.shape and O.dtype == dtype
    assert torch.isfinite(O).all()
    sv = torch.linalg.svdvals(O.double())
    if method == "svd":  # a partial isometry: singular values are 0 or 1, up to output rounding
        work = torch.float64 if dtype == torch.float64 else torch.float32  # SVD's dtype
        tol = 4 * max(m, n) * torch.finfo(work).eps + 2 * min(m, n) ** 0.5 * torch.finfo(dtype).eps
        assert torch.all((sv - 1).abs().minimum(sv.abs()) <= tol)
    else:  # every method keeps singular values in a bounded band below ~1.25
        assert sv.max() <= 1.25


@pytest.mark.parametrize(
    "bad,message",
    [
        (torch.ones(5), "shape"),
        (torch.tensor(1.0), "shape"),
        (torch.ones(3, 3, dtype=torch.complex64), "dtype"),
        (torch.ones(3, 3, dtype=torch.int64), "dtype"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "NaN or Inf"),
        ([[1.0, 0.0], [0.0, 1.0]], "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        orthogonalize(bad)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"method": "qr"}, "method"),
        ({"coefficients": "jordan"}, "coefficients"),
        ({"coefficients": [(1.0, 2.0)]}, "coefficients"),
        ({"steps": 0}, "steps"),
        ({"method": "beta", "beta": -1.0}, "beta"),
        ({"method": "svd", "rtol": -1.0}, "rtol"),
        ({"dtype": torch.int32}, "dtype"),
    ],
)
def test_bad_options_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        orthogonalize(torch.randn(4, 3), **kwargs)
