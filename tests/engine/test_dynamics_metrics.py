"""The seed 002 dynamics metrics against direct computations."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.engine.dynamics_metrics import BLOCK_GAP, pack_symmetric, singular_blocks
from muonlab.engine.metrics import compute_metrics
from muonlab.problems.two_factor_mf import TwoFactorMF


def test_block_misalignment_and_balance_match_a_direct_computation():
    P = TwoFactorMF(12, 12, 6, seed=[0, 1], spectrum="list", values=[5.0, 4.9, 2.0, 1.0], alpha=0.5)
    W2, W1 = P.init_params()
    m = compute_metrics(P, [W2, W1], ["block_misalignment", "balance", "gf_invariant_entries",
                                      "muon_invariant_entries"])
    M = P.target()
    for r in range(2):
        U, S, Vh = torch.linalg.svd(M[r])
        X = U.T @ (W2[r] @ W1[r]) @ Vh.T
        lab = singular_blocks(S)
        on = sum(X[lab == b][:, lab == b].square().sum() for b in lab.unique())
        assert torch.allclose(m["block_misalignment"][r], 1 - on / X.square().sum(), rtol=1e-10)
        bal = torch.linalg.matrix_norm(W1[r] @ W1[r].T - W2[r].T @ W2[r]) / torch.linalg.matrix_norm(M[r])
        assert torch.allclose(m["balance"][r], bal, rtol=1e-12)
    assert m["gf_invariant_entries"].shape == (2, 21)
    assert torch.allclose(m["gf_invariant_entries"].norm(dim=-1),
                          torch.linalg.matrix_norm(W2.mT @ W2 - W1 @ W1.mT), rtol=1e-12)


def test_aligned_product_has_zero_misalignment_and_blocks_merge_by_gap():
    lab = singular_blocks(torch.tensor([5.0, 4.9, 2.0, 1.0, 0.0, 0.0]))
    assert lab.tolist() == [0, 0, 1, 2, 3, 3]
    P = TwoFactorMF(8, 8, 8, seed=[0], spectrum="list", values=[5.0, 4.9, 2.0, 1.0], alpha=0.1)
    W2, W1 = P.minimizer()
    m = compute_metrics(P, [W2, W1], ["block_misalignment", "balance"])
    assert float(m["block_misalignment"][0]) < 1e-12
    assert float(m["balance"][0]) < 1e-12


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_pack_symmetric_is_an_isometry_for_every_size(d, seed):
    g = torch.Generator().manual_seed(seed)
    A, B = torch.randn(2, d, d, generator=g, dtype=torch.float64)
    A, B = A + A.T, B + B.T
    assert pack_symmetric(A).shape == (d * (d + 1) // 2,)
    assert torch.allclose(pack_symmetric(A) @ pack_symmetric(B), (A * B).sum(), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-3, 10.0), min_size=1, max_size=12))
def test_blocks_split_exactly_at_relative_gaps_above_the_threshold(values):
    s = torch.tensor(sorted(values, reverse=True), dtype=torch.float64)
    lab = singular_blocks(s)
    assert lab[0] == 0
    for i in range(1, len(s)):
        step = int(lab[i] - lab[i - 1])
        assert step == int(bool((s[i - 1] - s[i]) / s[i - 1] > BLOCK_GAP))


@settings(max_examples=10, deadline=None)
@given(n_out=st.integers(3, 7), n_in=st.integers(3, 7), d=st.integers(1, 8), seed=st.integers(0, 100))
def test_block_misalignment_is_a_share_and_zero_at_the_minimizer_for_rectangular_targets(n_out, n_in, d, seed):
    k = min(n_out, n_in)
    P = TwoFactorMF(n_out, n_in, d, seed=[seed], spectrum="list", values=[float(2 * k - i) for i in range(k)],
                    alpha=0.3)
    mu = compute_metrics(P, P.init_params(), ["block_misalignment"])["block_misalignment"]
    assert 0.0 <= float(mu[0]) <= 1.0
    star = compute_metrics(P, P.minimizer(), ["block_misalignment"])["block_misalignment"]
    assert float(star[0]) < 1e-10
