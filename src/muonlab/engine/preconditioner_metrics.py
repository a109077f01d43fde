r"""Muon's and ScaledGD's preconditioners along a trajectory — seed 001, Appendix A / Figure 3.

For symmetric MF f(X) = ¼‖XXᵀ − M*‖², G = ∇f = (XXᵀ − M*)X ∈ R^{n×r}:

* Muon's update msign(G) = G (GᵀG)^{-1/2}: a right preconditioner P_M = (GᵀG)^{-1/2}
  built from the gradient (pseudo-inverse over singular values above rtol·s_max);
* ScaledGD's update G (XᵀX)^{-1}: P_S = (XᵀX)^{-1}, built from the iterate.

Acting on vec(X) row by row, each is I_n ⊗ P — block-diagonal with r×r blocks, the
"block-diagonal pattern" of the seed's Figure 3. An Adam-like (SignGD) preconditioner is
diagonal on the n·r entries; the distance of P/‖P‖_F from the nearest diagonal matrix
is ‖offdiag(P)‖_F/‖P‖_F (the same for I_n ⊗ P).

Metrics (``cheap=False``, symmetric layout only):

* ``precond_cos_update`` — cos∠(msign(G), G P_S), the two update directions;
* ``precond_cos_matrix`` — ⟨P_M, P_S⟩_F /(‖P_M‖_F ‖P_S‖_F), the normalized preconditioners;
* ``precond_offdiag_muon``, ``precond_offdiag_scaledgd`` — ‖offdiag(P)‖_F/‖P‖_F;
* ``precond_cos_sign`` — cos∠(msign(G), sign(G)), Muon's against the SignGD (Adam without
  momentum) direction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from muonlab.engine.metrics import Metric, register_metric

__all__ = ["muon_preconditioner", "offdiag_fraction", "scaledgd_preconditioner"]

#: Singular values of G below RTOL·s_max are left out of (GᵀG)^{-1/2} (as msign does).
RTOL = 1e-10


def _symmetric(problem: Any) -> bool:
    return getattr(problem, "layout", None) == "symmetric"


def _grad(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    if "precond_grad" not in cache:
        cache["precond_grad"] = problem.grad(params)[0]
    return cache["precond_grad"]


def _gram_power(M: Tensor, power: float, rtol: float) -> Tensor:
    """(MᵀM)^power over the singular values of M above rtol·s_max (0 on the rest), (R, r, r)."""
    evals, V = torch.linalg.eigh(M.mT @ M)
    s = evals.clamp_min(0).sqrt()
    keep = s > rtol * s.amax(-1, keepdim=True)
    p = torch.where(keep, torch.where(keep, s, torch.ones_like(s)) ** (2 * power), torch.zeros_like(s))
    return (V * p.unsqueeze(-2)) @ V.mT


def muon_preconditioner(G: Tensor, rtol: float = RTOL) -> Tensor:
    """(GᵀG)^{-1/2} over the retained directions, (R, r, r); msign(G) = G @ it (0 for G = 0)."""
    return _gram_power(G, -0.5, rtol)


def scaledgd_preconditioner(X: Tensor, rtol: float = RTOL) -> Tensor:
    """(XᵀX)⁻¹, (R, r, r); a pseudo-inverse over X's singular values above rtol·s_max
    (a rank-deficient X, e.g. an over-parameterized minimizer, has no inverse)."""
    return _gram_power(X, -1.0, rtol)


def offdiag_fraction(P: Tensor) -> Tensor:
    """‖offdiag(P)‖_F / ‖P‖_F per run: the distance of P/‖P‖_F from the nearest diagonal matrix."""
    diag = torch.diagonal(P, dim1=-2, dim2=-1)
    total = P.square().sum((-2, -1))
    off = (total - diag.square().sum(-1)).clamp_min(0).sqrt()
    return torch.where(total > 0, off / torch.where(total > 0, total, torch.ones_like(total)).sqrt(),
                       torch.zeros_like(total))


def _cos(A: Tensor, B: Tensor) -> Tensor:
    """Cosine of two matrices per run; 0 where either is 0 (no direction to compare)."""
    num = (A * B).sum((-2, -1))
    den = torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def _pm(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    if "precond_muon" not in cache:
        cache["precond_muon"] = muon_preconditioner(_grad(problem, params, cache))
    return cache["precond_muon"]


def _ps(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    if "precond_scaledgd" not in cache:
        cache["precond_scaledgd"] = scaledgd_preconditioner(params[0])
    return cache["precond_scaledgd"]


def _cos_update(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    G = _grad(problem, params, cache)
    return _cos(G @ _pm(problem, params, cache), G @ _ps(problem, params, cache))


def _cos_matrix(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    return _cos(_pm(problem, params, cache), _ps(problem, params, cache))


def _cos_sign(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    G = _grad(problem, params, cache)
    return _cos(G @ _pm(problem, params, cache), torch.sign(G))


for _name, _fn, _doc in (
    ("precond_cos_update", _cos_update, "cos∠(msign(∇f), ∇f (XᵀX)⁻¹): Muon's vs ScaledGD's update direction"),
    ("precond_cos_matrix", _cos_matrix, "cosine of Muon's (GᵀG)^(-1/2) and ScaledGD's (XᵀX)⁻¹ preconditioners"),
    ("precond_offdiag_muon", lambda p, x, c: offdiag_fraction(_pm(p, x, c)),
     "‖offdiag‖/‖·‖ of Muon's preconditioner (distance from a diagonal one)"),
    ("precond_offdiag_scaledgd", lambda p, x, c: offdiag_fraction(_ps(p, x, c)),
     "‖offdiag‖/‖·‖ of ScaledGD's preconditioner (distance from a diagonal one)"),
    ("precond_cos_sign", _cos_sign, "cos∠(msign(∇f), sign(∇f)): Muon's vs the SignGD/Adam-like direction"),
):
    register_metric(Metric(_name, _fn, _doc, applies=_symmetric, cheap=False))
