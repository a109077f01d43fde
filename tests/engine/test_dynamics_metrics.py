"""The seed 002 dynamics metrics against direct computations."""

from __future__ import annotations

import torch

from muonlab.engine.dynamics_metrics import singular_blocks
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
