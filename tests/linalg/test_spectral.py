"""Spectral diagnostics (muonlab.linalg.spectral) against independent references, float64.

References: ``torch.linalg.svdvals`` of the formed product, matrices with a
spectrum chosen by construction, closed-form entropies and angles, the gradient-flow
identity of two-factor MF, and full Hessians from ``torch.autograd.functional.hessian``.
"""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab.linalg.spectral import (
    alignment,
    block_alignment,
    block_alignment_scores,
    effective_rank,
    factor_alignment,
    gf_invariant,
    invariant_drift,
    merge_directions,
    muon_invariant,
    principal_angles,
    product_singular_values,
    product_svd,
    psd_sqrt,
    sharpness,
    target_alignment,
)

from helpers import F64, orthonormal, randn

# ---------------------------------------------------------------------------
# product singular values / SVD
# ---------------------------------------------------------------------------

SHAPES = [  # (batch, m, n, k)
    ((), 30, 20, 5),  # tall, k < min(m, n)
    ((), 8, 25, 12),  # wide, k > m
    ((4,), 40, 40, 40),  # square, k = n
    ((2, 3), 15, 7, 9),  # two leading dims, k > n
]


@pytest.mark.parametrize("batch,m,n,k", SHAPES)
def test_product_singular_values_match_formed_product(batch, m, n, k):
    L, Rt = randn(*batch, m, k, seed=1), randn(*batch, n, k, seed=2)
    s = product_singular_values(L, Rt)
    q = min(m, n, k)
    ref = torch.linalg.svdvals(L @ Rt.mT)
    assert s.shape == (*batch, q)
    torch.testing.assert_close(s, ref[..., :q], rtol=1e-11, atol=1e-11 * float(ref.max()))
    # Everything beyond q is exactly zero in exact arithmetic (rank <= k).
    tail = ref[..., q:]
    assert tail.numel() == 0 or float(tail.abs().max()) <= 1e-10 * float(ref.max())
    assert bool((s[..., :-1] >= s[..., 1:]).all())


def test_product_singular_values_rank_deficient():
    # L has rank 2 although it has k = 6 columns: the product has exactly 2 nonzero σ.
    batch, m, n, k = (3,), 20, 15, 6
    L = randn(*batch, m, 2, seed=3) @ randn(*batch, 2, k, seed=4)
    Rt = randn(*batch, n, k, seed=5)
    s = product_singular_values(L, Rt)
    ref = torch.linalg.svdvals(L @ Rt.mT)
    torch.testing.assert_close(s[..., :2], ref[..., :2], rtol=1e-10, atol=0)
    assert float(s[..., 2:].max()) <= 1e-12 * float(s.max())


def test_product_singular_values_known_spectrum_and_symmetric_path():
    # X Xᵀ with X = U diag(sqrt(λ)) Qᵀ has eigenvalues λ exactly.
    lam = torch.tensor([9.0, 4.0, 1.0, 0.25], dtype=F64)
    U = orthonormal(2, n=12, k=4, seed=6)
    Q = orthonormal(2, n=4, k=4, seed=7)
    X = (U * lam.sqrt()) @ Q.mT
    s = product_singular_values(X, X)  # same object: one QR
    torch.testing.assert_close(s, lam.expand(2, 4), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, product_singular_values(X, X.clone()), rtol=1e-12, atol=1e-12)


@settings(max_examples=25)
@given(
    m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 9), R=st.integers(1, 3), seed=st.integers(0, 10**6)
)
def test_product_singular_values_property(m, n, k, R, seed):
    L, Rt = randn(R, m, k, seed=seed), randn(R, n, k, seed=seed + 1)
    s = product_singular_values(L, Rt)
    ref = torch.linalg.svdvals(L @ Rt.mT)
    q = min(m, n, k)
    torch.testing.assert_close(s, ref[..., :q], rtol=1e-9, atol=1e-9 * (1 + float(ref.max())))


@pytest.mark.parametrize("batch,m,n,k", SHAPES)
def test_product_svd_reconstructs_with_orthonormal_bases(batch, m, n, k):
    L, Rt = randn(*batch, m, k, seed=8), randn(*batch, n, k, seed=9)
    U, S, V = product_svd(L, Rt)
    q = min(m, n, k)
    assert U.shape == (*batch, m, q) and S.shape == (*batch, q) and V.shape == (*batch, n, q)
    P = L @ Rt.mT
    torch.testing.assert_close((U * S.unsqueeze(-2)) @ V.mT, P, rtol=0, atol=1e-11 * float(S.max()))
    eye = torch.eye(q, dtype=F64)
    torch.testing.assert_close(U.mT @ U, eye.expand(*batch, q, q), rtol=0, atol=1e-12)
    torch.testing.assert_close(V.mT @ V, eye.expand(*batch, q, q), rtol=0, atol=1e-12)
    # The top singular vector pair satisfies P v = σ u.
    torch.testing.assert_close(P @ V[..., :1], U[..., :1] * S[..., :1, None], rtol=0, atol=1e-10 * float(S.max()))


def test_product_factors_validation():
    with pytest.raises(ValueError, match="inner dimensions"):
        product_singular_values(randn(4, 3), randn(5, 2))


# ---------------------------------------------------------------------------
# effective rank
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("r", [1, 2, 5, 17])
def test_effective_rank_equal_values_is_count(r):
    s = torch.cat([torch.full((r,), 3.7, dtype=F64), torch.zeros(4, dtype=F64)])
    assert float(effective_rank(s)) == pytest.approx(r, rel=1e-12)


def test_effective_rank_closed_form_and_edge_cases():
    # p = (1/4, 1/4, 1/2): H = 1.5 log 2, erank = 2^1.5.
    assert float(effective_rank(torch.tensor([1.0, 1.0, 2.0], dtype=F64))) == pytest.approx(2**1.5, rel=1e-12)
    # One nonzero value → 1; the zero vector → 0 by definition; scale invariance.
    assert float(effective_rank(torch.tensor([0.0, 5.0, 0.0], dtype=F64))) == pytest.approx(1.0, rel=1e-15)
    assert float(effective_rank(torch.zeros(6, dtype=F64))) == 0.0
    s = torch.tensor([3.0, 1.0, 0.5], dtype=F64)
    assert float(effective_rank(1e-8 * s)) == pytest.approx(float(effective_rank(s)), rel=1e-12)
    # Batched over leading dims.
    batch = torch.stack([torch.ones(4, dtype=F64), torch.tensor([1.0, 0, 0, 0], dtype=F64), torch.zeros(4, dtype=F64)])
    torch.testing.assert_close(effective_rank(batch), torch.tensor([4.0, 1.0, 0.0], dtype=F64))


@settings(max_examples=50)
@given(st.lists(st.floats(0.0, 1e3), min_size=1, max_size=12))
def test_effective_rank_between_one_and_count(values):
    s = torch.tensor(values, dtype=F64)
    nnz = int((s > 0).sum())
    e = float(effective_rank(s))
    if nnz == 0:
        assert e == 0.0
    else:
        assert 1.0 - 1e-12 <= e <= nnz + 1e-9


# ---------------------------------------------------------------------------
# alignment
# ---------------------------------------------------------------------------


def test_alignment_and_principal_angles_closed_form():
    thetas = torch.tensor([0.0, 0.3, math.pi / 4, math.pi / 2], dtype=F64)
    n = 5
    Ua = torch.zeros(4, n, 1, dtype=F64)
    Ua[:, 0, 0] = 1.0
    Ub = torch.zeros(4, n, 1, dtype=F64)
    Ub[:, 0, 0], Ub[:, 1, 0] = thetas.cos(), thetas.sin()
    torch.testing.assert_close(alignment(Ua, Ub), thetas.cos() ** 2)
    torch.testing.assert_close(principal_angles(Ua, Ub)[:, 0], thetas, atol=1e-7, rtol=0)


def test_alignment_invariant_to_basis_rotation_and_dimension_mismatch():
    U = orthonormal(3, n=10, k=4, seed=11)
    rot = orthonormal(3, n=4, k=4, seed=12)
    torch.testing.assert_close(alignment(U, U @ rot), torch.ones(3, dtype=F64))
    # A subspace inside a larger one: alignment 1 (normalized by the smaller k).
    big = torch.cat([U, orthonormal(3, n=10, k=10, seed=13)[..., :2]], dim=-1)
    big, _ = torch.linalg.qr(big)
    torch.testing.assert_close(alignment(U[..., :2], big), torch.ones(3, dtype=F64))
    # Orthogonal complement: 0.
    Q = orthonormal(n=10, k=10, seed=14)
    assert float(alignment(Q[:, :3], Q[:, 3:7])) == pytest.approx(0.0, abs=1e-14)
    # Mean cos² of the principal angles.
    A, B = orthonormal(2, n=8, k=3, seed=15), orthonormal(2, n=8, k=3, seed=16)
    torch.testing.assert_close(alignment(A, B), principal_angles(A, B).cos().square().mean(-1))


def test_factor_alignment_aligned_misaligned_and_matched():
    R, n_out, d, n_in = 2, 7, 6, 5
    U = orthonormal(R, n=n_out, k=d, seed=20)[..., :d]
    O = orthonormal(R, n=d, k=d, seed=21)
    V = orthonormal(R, n=n_in, k=d, seed=22)[..., : min(n_in, d)]
    s2 = torch.tensor([3.0, 2.0, 0.1, 0.05, 0.02, 0.01], dtype=F64)
    s1 = torch.tensor([4.0, 1.0, 0.1, 0.05, 0.01], dtype=F64)
    W2 = (U * s2) @ O.mT
    W1 = (O[..., :5] * s1) @ V.mT
    torch.testing.assert_close(factor_alignment(W2, W1, k=2), torch.ones(R, dtype=F64))
    torch.testing.assert_close(factor_alignment(W2, W1, k=2, matched=True), torch.ones(R, dtype=F64))
    # Swap the order of W1's top two directions: same subspace, mismatched order.
    s1_swap = torch.tensor([1.0, 4.0, 0.1, 0.05, 0.01], dtype=F64)
    W1s = (O[..., :5] * s1_swap) @ V.mT
    torch.testing.assert_close(factor_alignment(W2, W1s, k=2), torch.ones(R, dtype=F64))
    matched = factor_alignment(W2, W1s, k=2, matched=True)
    torch.testing.assert_close(matched, torch.zeros(R, dtype=F64), atol=1e-12, rtol=0)
    # W1's top directions orthogonal to W2's: 0.
    W1o = (O[..., 2:4] * torch.tensor([4.0, 3.0], dtype=F64)) @ V[..., :2].mT
    torch.testing.assert_close(factor_alignment(W2, W1o, k=2), torch.zeros(R, dtype=F64), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="k must be"):
        factor_alignment(W2, W1, k=9)


def test_target_alignment():
    Ut, Vt = orthonormal(2, n=9, k=3, seed=30), orthonormal(2, n=6, k=3, seed=31)
    # A product with the target's subspaces (rotated inside) and an extra 4th direction.
    extraU = torch.linalg.qr(torch.cat([Ut, randn(2, 9, 1, seed=32)], -1))[0]
    extraV = torch.linalg.qr(torch.cat([Vt, randn(2, 6, 1, seed=33)], -1))[0]
    left, right = target_alignment(extraU, extraV, Ut, Vt)
    torch.testing.assert_close(left, torch.ones(2, dtype=F64))
    torch.testing.assert_close(right, torch.ones(2, dtype=F64))
    left, right = target_alignment(Ut, Vt, Ut, Vt, k=1)
    torch.testing.assert_close(left, torch.ones(2, dtype=F64))


# ---------------------------------------------------------------------------
# seed 002 block alignment
# ---------------------------------------------------------------------------


def test_merge_directions_relative_gap():
    s = torch.tensor([10.0, 9.5, 5.0, 4.9, 4.85, 1.0, 0.0, 0.0])
    assert merge_directions(s, rel_gap=0.08) == [[0, 1], [2, 3, 4], [5], [6, 7]]
    assert merge_directions(s, rel_gap=0.0) == [[0], [1], [2], [3], [4], [5], [6, 7]]
    # Exactly on the threshold merges (≤); just above does not.
    assert merge_directions([1.0, 0.92], rel_gap=0.08) == [[0, 1]]
    assert merge_directions([1.0, 0.919], rel_gap=0.08) == [[0], [1]]
    # Batched: one block list per run.
    assert merge_directions(torch.tensor([[4.0, 4.0], [4.0, 1.0]])) == [[[0, 1]], [[0], [1]]]
    with pytest.raises(ValueError, match="descending"):
        merge_directions([1.0, 2.0])


def test_block_alignment_scores():
    n = 6
    ref = torch.eye(n, dtype=F64)  # reference directions e_0..e_5
    learned = ref[:, [0, 2]]  # learned subspace span(e_0, e_2)
    O = ref.mT @ learned  # (6, 2) overlaps
    blocks = [[0, 1], [2], [3, 4, 5]]
    torch.testing.assert_close(block_alignment_scores(O, blocks), torch.tensor([0.5, 1.0, 0.0], dtype=F64))
    # Rotating the learned basis within its span leaves every block score unchanged.
    rot = orthonormal(n=2, k=2, seed=40)
    torch.testing.assert_close(block_alignment_scores(O @ rot, blocks), torch.tensor([0.5, 1.0, 0.0], dtype=F64))
    # Batched and bounded in [0, 1] for random orthonormal learned directions.
    Ur, Ul = orthonormal(4, n=10, k=10, seed=41), orthonormal(4, n=10, k=3, seed=42)
    score = block_alignment(Ur.mT[..., :4, :] @ Ul)
    assert score.shape == (4,) and bool(((score >= 0) & (score <= 1)).all())


# ---------------------------------------------------------------------------
# conserved quantities
# ---------------------------------------------------------------------------


def mf_loss(W2, W1, M):
    return 0.5 * (W2 @ W1 - M).square().sum(dim=(-2, -1))


def mf_grads(W2, W1, M):
    W2 = W2.detach().requires_grad_(True)
    W1 = W1.detach().requires_grad_(True)
    g2, g1 = torch.autograd.grad(mf_loss(W2, W1, M).sum(), (W2, W1))
    return g2, g1


def test_gradient_flow_derivative_of_gf_invariant_is_zero():
    R, n_out, d, n_in = 3, 6, 4, 5
    W2, W1, M = randn(R, n_out, d, seed=50), randn(R, d, n_in, seed=51), randn(R, n_out, n_in, seed=52)
    g2, g1 = mf_grads(W2, W1, M)
    # W2ᵀ ∇_{W2} = ∇_{W1} W1ᵀ (= W2ᵀ E W1ᵀ) exactly, as matrices.
    torch.testing.assert_close(W2.mT @ g2, g1 @ W1.mT, rtol=1e-13, atol=1e-12)
    # d/dt(W2ᵀW2 − W1W1ᵀ) along Ẇ = −∇f vanishes.
    ddt = -(g2.mT @ W2 + W2.mT @ g2) + (g1 @ W1.mT + W1 @ g1.mT)
    assert float(ddt.abs().max()) <= 1e-11
    # …while each Gram matrix alone does change.
    assert float((g2.mT @ W2 + W2.mT @ g2).abs().max()) > 1e-2


def gd_invariant_change(lr, total_time=0.5):
    R, n, d = 2, 5, 4
    W2, W1 = 0.5 * randn(R, n, d, seed=60), 0.5 * randn(R, d, n, seed=61)
    M = randn(R, n, n, seed=62)
    delta0 = gf_invariant(W2, W1)
    for _ in range(round(total_time / lr)):
        E = W2 @ W1 - M
        W2, W1 = W2 - lr * E @ W1.mT, W1 - lr * W2.mT @ E
    return float((gf_invariant(W2, W1) - delta0).norm(dim=(-2, -1)).max()), float(delta0.norm(dim=(-2, -1)).min())


def test_gd_conserves_gf_invariant_to_order_lr():
    changes = {lr: gd_invariant_change(lr)[0] for lr in (4e-3, 1e-3, 2.5e-4)}
    scale = gd_invariant_change(1e-3)[1]
    # Discrete GD drifts by η²(G2ᵀG2 − G1G1ᵀ) per step: O(η) over a fixed time.
    for lr, ch in changes.items():
        assert ch <= 5.0 * lr * max(scale, 1.0)
    assert changes[1e-3] < changes[4e-3] / 3.0
    assert changes[2.5e-4] < changes[1e-3] / 3.0


def test_psd_sqrt():
    A = randn(3, 6, 4, seed=70)
    G = A @ A.mT  # rank 4 PSD 6×6: eigh gives tiny negative eigenvalues
    S = psd_sqrt(G)
    torch.testing.assert_close(S @ S, G, rtol=0, atol=1e-10)
    torch.testing.assert_close(S, S.mT)
    assert float(torch.linalg.eigvalsh(S).min()) >= -1e-7
    D = torch.diag(torch.tensor([4.0, 9.0, 0.0], dtype=F64))
    torch.testing.assert_close(psd_sqrt(D), torch.diag(torch.tensor([2.0, 3.0, 0.0], dtype=F64)))


def test_specgd_conserves_muon_invariant_after_alignment():
    """Aligned factors W2 = U diag(a) Oᵀ, W1 = O diag(b) Vᵀ: every msign step moves a_i and
    b_i by the same ±η, so sqrt(W2ᵀW2) − sqrt(W1W1ᵀ) = O diag(a − b) Oᵀ is conserved exactly,
    while W2ᵀW2 − W1W1ᵀ = O diag(a² − b²) Oᵀ is not."""
    from muonlab import orthogonalize

    R, n, d = 2, 6, 4
    U, O, V = orthonormal(R, n=n, k=d, seed=80), orthonormal(R, n=d, k=d, seed=81), orthonormal(R, n=n, k=d, seed=82)
    a = torch.tensor([0.30, 0.20, 0.15, 0.10], dtype=F64)
    b = torch.tensor([0.05, 0.12, 0.02, 0.08], dtype=F64)
    m = torch.tensor([5.0, 3.0, 2.0, 1.0], dtype=F64)
    W2, W1, M = (U * a) @ O.mT, (O * b) @ V.mT, (U * m) @ V.mT
    mu0, gf0 = muon_invariant(W2, W1), gf_invariant(W2, W1)
    torch.testing.assert_close(mu0, (O * (a - b)) @ O.mT)
    lr = 0.01
    for _ in range(40):
        E = W2 @ W1 - M
        W2, W1 = (
            W2 - lr * orthogonalize(E @ W1.mT, "svd"),
            W1 - lr * orthogonalize(W2.mT @ E, "svd"),
        )
    assert float((muon_invariant(W2, W1) - mu0).abs().max()) <= 1e-10
    assert float((gf_invariant(W2, W1) - gf0).abs().max()) > 1e-2
    # The drift projection of seed 002 reads exactly 1 for the conserved quantity.
    torch.testing.assert_close(invariant_drift(muon_invariant(W2, W1), mu0), torch.ones(R, dtype=F64))


def test_invariant_drift():
    ref = randn(3, 4, 4, seed=90)
    c = torch.tensor([1.0, 0.5, -2.0], dtype=F64)
    torch.testing.assert_close(invariant_drift(c[:, None, None] * ref, ref), c)
    # Orthogonal (Frobenius) perturbations do not change the projection.
    perp = randn(3, 4, 4, seed=91)
    perp = perp - ((perp * ref).sum((-2, -1)) / ref.square().sum((-2, -1)))[:, None, None] * ref
    torch.testing.assert_close(invariant_drift(ref + perp, ref), torch.ones(3, dtype=F64))
    # A trajectory (T, R, d, d) against the reference (R, d, d).
    traj = torch.stack([ref * t for t in (0.0, 1.0, 3.0)])
    torch.testing.assert_close(invariant_drift(traj, ref), torch.tensor([[0.0] * 3, [1.0] * 3, [3.0] * 3], dtype=F64))
    assert bool(invariant_drift(ref[:1], torch.zeros(1, 4, 4, dtype=F64)).isnan().all())


# ---------------------------------------------------------------------------
# sharpness
# ---------------------------------------------------------------------------


def quadratic_problem(eigs, seed=100):
    eigs = torch.as_tensor(eigs, dtype=F64)
    R, n = eigs.shape
    Q = orthonormal(R, n=n, k=n, seed=seed)
    H = (Q * eigs.unsqueeze(-2)) @ Q.mT

    def loss_fn(ps):
        (x,) = ps
        return 0.5 * torch.einsum("ri,rij,rj->r", x, H, x)

    return loss_fn, [randn(R, n, seed=seed + 1)]


def test_sharpness_quadratic_power_and_lanczos():
    eigs = [[5.0, 2.0, 1.0, 0.5, 0.1], [0.3, 0.2, 0.1, 0.05, 0.0], [40.0, -3.0, 1.0, 1.0, 2.0]]
    loss_fn, params = quadratic_problem(eigs)
    expected = torch.tensor([5.0, 0.3, 40.0], dtype=F64)
    g = torch.Generator().manual_seed(0)
    lam = sharpness(loss_fn, params, iters=200, tol=1e-13, generator=g)
    torch.testing.assert_close(lam, expected, rtol=1e-9, atol=0)
    lam_l = sharpness(loss_fn, params, iters=5, method="lanczos", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(lam_l, expected, rtol=1e-10, atol=0)
    # The parameters are not modified and need no grad.
    assert not params[0].requires_grad


def test_sharpness_power_finds_largest_magnitude_lanczos_largest_value():
    # Dominant negative curvature: power iteration returns −6 (largest |λ|), Lanczos 2.
    loss_fn, params = quadratic_problem([[-6.0, 2.0, 1.0, 0.5]])
    lam = sharpness(loss_fn, params, iters=300, tol=1e-13, generator=torch.Generator().manual_seed(2))
    assert float(lam) == pytest.approx(-6.0, rel=1e-9)
    lam_l = sharpness(loss_fn, params, iters=10, method="lanczos", generator=torch.Generator().manual_seed(3))
    assert float(lam_l) == pytest.approx(2.0, rel=1e-10)


def test_sharpness_mf_against_full_hessian():
    R, n_out, d, n_in = 3, 4, 3, 5
    M = randn(R, n_out, n_in, seed=110)
    # A point near a balanced minimum (Hessian close to PSD, clear top eigenvalue).
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    W2 = (U[..., :d] * S[..., None, :d].sqrt()) + 0.05 * randn(R, n_out, d, seed=111)
    W1 = (S[..., :d].sqrt()[..., None] * Vh[..., :d, :]) + 0.05 * randn(R, d, n_in, seed=112)

    def loss_fn(ps):
        return mf_loss(ps[0], ps[1], M)

    eig_full = []
    for r in range(R):
        def f(flat, r=r):
            a = flat[: n_out * d].reshape(n_out, d)
            b = flat[n_out * d :].reshape(d, n_in)
            return mf_loss(a, b, M[r])

        x = torch.cat([W2[r].reshape(-1), W1[r].reshape(-1)])
        eig_full.append(torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, x)))
    eig_full = torch.stack(eig_full)
    top = eig_full[:, -1]
    top_abs = eig_full.abs().max(dim=1).values
    P = n_out * d + d * n_in
    lam_l = sharpness(loss_fn, [W2, W1], iters=P, method="lanczos", generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(lam_l, top, rtol=1e-9, atol=0)
    lam_p = sharpness(loss_fn, [W2, W1], iters=2000, tol=1e-14, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(lam_p.abs(), top_abs, rtol=1e-7, atol=0)


def test_sharpness_validation():
    loss_fn, params = quadratic_problem([[1.0, 2.0]])
    with pytest.raises(ValueError, match="method"):
        sharpness(loss_fn, params, method="arnoldi")
    with pytest.raises(ValueError, match="shape"):
        sharpness(lambda ps: ps[0].sum(), params)


def test_sharpness_degenerate_spectra():
    # Krylov space of dimension 2 (two distinct eigenvalues): Lanczos breaks down at
    # step 2 and restarts; the top Ritz value stays exact.
    loss_fn, params = quadratic_problem([[2.0, 2.0, 2.0, 2.0, 7.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    lam_l = sharpness(loss_fn, params, iters=5, method="lanczos", generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(lam_l, torch.tensor([7.0, 1.0], dtype=F64), rtol=1e-12, atol=0)
    lam_p = sharpness(loss_fn, params, iters=100, tol=1e-14, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(lam_p, torch.tensor([7.0, 1.0], dtype=F64), rtol=1e-10, atol=0)
    # A linear loss has a zero Hessian: both methods return 0.
    x = randn(2, 3, seed=120)
    for method in ("power", "lanczos"):
        lam = sharpness(lambda ps: ps[0].sum(-1), [x], iters=3, method=method)
        torch.testing.assert_close(lam, torch.zeros(2, dtype=F64))


def test_half_precision_inputs_are_computed_in_float32():
    L, Rt = randn(2, 9, 3, seed=130), randn(2, 7, 3, seed=131)
    ref = torch.linalg.svdvals(L @ Rt.mT)[..., :3]
    s = product_singular_values(L.bfloat16(), Rt.bfloat16())
    assert s.dtype == torch.float32
    # bf16 rounding of the inputs (8 bits of mantissa) bounds the relative error.
    torch.testing.assert_close(s.double(), ref, rtol=3e-2, atol=3e-2 * float(ref.max()))
    W2, W1 = randn(2, 5, 3, seed=132), randn(2, 3, 4, seed=133)
    mu = muon_invariant(W2.bfloat16(), W1.bfloat16())
    assert mu.dtype == torch.float32
    torch.testing.assert_close(mu.double(), muon_invariant(W2, W1), rtol=0, atol=5e-2)
