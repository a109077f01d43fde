"""Muon's and ScaledGD's preconditioners (seed 001, App. A) against direct computations."""

from __future__ import annotations

import torch

from muonlab.engine.metrics import METRICS
from muonlab.engine.preconditioner_metrics import muon_preconditioner, offdiag_fraction, scaledgd_preconditioner
from muonlab.linalg.orthogonalize import orthogonalize
from muonlab.problems.symmetric_mf import SymmetricMF


def test_muon_preconditioner_gives_msign() -> None:
    G = torch.randn(3, 12, 4, dtype=torch.float64)
    torch.testing.assert_close(G @ muon_preconditioner(G), orthogonalize(G, method="svd"))


def test_offdiag_fraction() -> None:
    assert float(offdiag_fraction(torch.diag(torch.tensor([1.0, 2.0])).unsqueeze(0))[0]) == 0.0
    P = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    assert abs(float(offdiag_fraction(P)[0]) - 2**-0.5) < 1e-12


def test_metrics_on_symmetric_mf() -> None:
    prob = SymmetricMF(20, 3, seed=[0, 1], kappa=10.0)
    (X,) = prob.init_params()
    X = X * 100
    G = prob.grad([X])[0]
    direct = (orthogonalize(G, method="svd") * (G @ torch.linalg.inv(X.mT @ X))).sum((-2, -1))
    O, S = orthogonalize(G, method="svd"), G @ scaledgd_preconditioner(X)
    direct = direct / (O.norm(dim=(-2, -1)) * S.norm(dim=(-2, -1)))
    torch.testing.assert_close(METRICS["precond_cos_update"](prob, [X]), direct)
    sign = METRICS["precond_cos_sign"](prob, [X])
    assert sign.shape == (2,) and bool((sign.abs() <= 1).all())
    for name in ("precond_cos_matrix", "precond_offdiag_muon", "precond_offdiag_scaledgd"):
        v = METRICS[name](prob, [X])
        assert v.shape == (2,) and bool(torch.isfinite(v).all())
    assert not METRICS["precond_cos_update"].cheap


def test_scaledgd_preconditioner_is_the_inverse_and_a_pseudo_inverse_when_singular() -> None:
    X = torch.randn(2, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(scaledgd_preconditioner(X), torch.linalg.inv(X.mT @ X))
    Xs = torch.cat([X[..., :2], torch.zeros(2, 9, 1, dtype=torch.float64)], -1)  # rank 2
    torch.testing.assert_close(scaledgd_preconditioner(Xs), torch.linalg.pinv(Xs.mT @ Xs))


def test_metrics_at_an_overparameterized_minimizer_are_finite() -> None:
    prob = SymmetricMF(12, 5, 3, seed=[1, 2], kappa=[1.0, 100.0], alpha=0.1)
    star = prob.minimizer()  # rank 3 < r = 5 and ∇f = 0
    for name in ("precond_cos_update", "precond_cos_matrix", "precond_offdiag_muon", "precond_offdiag_scaledgd",
                 "precond_cos_sign"):
        assert bool(torch.isfinite(METRICS[name](prob, star)).all()), name
