r"""When is Muon's update ScaledGD's? Per-step metrics for issue 15 item 5 (seed 003, OQ 4).

Symmetric MF f(X) = ¼‖XXᵀ − M*‖²_F, M* = U diag(λ) Uᵀ, G = ∇f = (XXᵀ − M*)X, S = XᵀX.
Muon steps along Q = msign(G) = G(GᵀG)^{-1/2}, ScaledGD along G S⁻¹ = Q·T with

    T = (GᵀG)^{1/2} S⁻¹,    R = S^{-1/2} (GᵀG)^{1/2} S^{-1/2}   (T and R are similar).

The two updates are parallel iff T = cI, i.e. (GᵀG)^{1/2} = c·XᵀX (the paper's eq. 81).
Since QᵀQ = I (G of full column rank), cos∠(Q, QT) = tr T/(√r‖T‖_F), and by Schur's
inequality ‖T‖_F ≥ ‖R‖_F with equality iff T is normal. Hence, always,

    cos∠(Muon, ScaledGD) ≤ tr R/(√r‖R‖_F) = √(1 − d_P²),

with d_P the distance of R/‖R‖_F from the nearest multiple of I (``scaledgd_precond_dist``):
the preconditioners' distance in ScaledGD's own (whitened, scale-free) normalization bounds
the update angle from below. For an aligned iterate X = U diag(x) Oᵀ (seed 001 eq. 12),
G = U diag((x²−λ)x) Oᵀ, T = O diag(w) Oᵀ is normal, and both sides equal the closed form

    cos = ‖w‖₁ / (√r ‖w‖₂) = 1/√(1 + CV²(w)),   w_i = |x_i − λ_i/x_i| = |x_i² − λ_i|/x_i,

ScaledGD's per-mode step length (Muon's is 1 for every mode): the updates coincide exactly
when every mode's ScaledGD step is the same, whatever the distance to the solution.

Metrics (``cheap=False``; symmetric problems with an eigenbasis, i.e. ``eigen_coordinates``
and ``target_spectrum``; c_i = diag(UᵀXXᵀU)_i = x_i² in the aligned case):

* ``scaledgd_cos_closed_form`` — ‖w‖₁/(√r*‖w‖₂) with w_i = |c_i − λ_i|/√c_i over the r* modes;
* ``scaledgd_misalignment`` — ρ = ‖XXᵀ − U diag(c) Uᵀ‖_F / ‖XXᵀ − M*‖_F ∈ [0, 1]: the share of
  the residual that is off the aligned form (the aligned part U diag(c − λ) Uᵀ and the rest are
  Frobenius-orthogonal). It is relative to the residual, not to ‖M*‖ (``alignment_residual``):
  G = (XXᵀ − M*)X is what msign acts on, so a misalignment tiny against M* but not against the
  residual still turns Muon's direction;
* ``scaledgd_subspace_alignment`` — ‖UᵀX‖²_F/‖X‖²_F ∈ [0, 1]: the share of X's energy in the
  target's eigenspace (1 for X in span U);
* ``scaledgd_mode_residual`` — max_i |c_i − λ_i|/λ_i: the worst mode's relative distance to its
  target (κ-fair: ``rel_err`` ≤ 0.1 holds while the 1/κ modes are still far);
* ``scaledgd_precond_dist`` — d_P = √(1 − (tr R)²/(r‖R‖²_F)) (0 iff (GᵀG)^{1/2} ∝ XᵀX).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from muonlab.engine.metrics import Metric, register_metric

__all__ = ["closed_form_cos", "precond_distance", "whitened_preconditioner"]

#: Singular values of X below RTOL·max are left out of S^{-1/2} (a rank-deficient X has none).
RTOL = 1e-12


def _applies(problem: Any) -> bool:
    cls = problem if isinstance(problem, type) else type(problem)
    return (getattr(cls, "layout", None) == "symmetric" and callable(getattr(cls, "eigen_coordinates", None))
            and callable(getattr(cls, "target_spectrum", None)))


def closed_form_cos(coords: Tensor, lam: Tensor) -> Tensor:
    """‖w‖₁/(√k‖w‖₂), w_i = |c_i − λ_i|/√c_i, over the last dim (k modes); 1 where w = 0 (no step)."""
    c = coords.clamp_min(torch.finfo(coords.dtype).tiny)
    w = (coords - lam).abs() / c.sqrt()
    l2 = w.norm(dim=-1)
    k = w.shape[-1]
    safe = torch.where(l2 > 0, l2, torch.ones_like(l2))
    return torch.where(l2 > 0, w.sum(-1) / (math.sqrt(k) * safe), torch.ones_like(l2))


def _gram_power(M: Tensor, power: float, rtol: float) -> Tensor:
    """(MᵀM)^power from the SVD of M (not eigh of MᵀM, which squares M's condition number and loses
    the small singular values); singular values ≤ rtol·s_max count as 0 (and 0^power := 0)."""
    _, s, Vh = torch.linalg.svd(M, full_matrices=False)
    keep = s > rtol * s.amax(-1, keepdim=True)
    p = torch.where(keep, torch.where(keep, s, torch.ones_like(s)) ** (2 * power), torch.zeros_like(s))
    return (Vh.mT * p.unsqueeze(-2)) @ Vh


def whitened_preconditioner(G: Tensor, X: Tensor, rtol: float = RTOL) -> Tensor:
    """R = (XᵀX)^{-1/2} (GᵀG)^{1/2} (XᵀX)^{-1/2}, (…, r, r), symmetric PSD; similar to
    T = (GᵀG)^{1/2}(XᵀX)⁻¹, where ScaledGD's update is msign(G)·T."""
    Sih = _gram_power(X, -0.5, rtol)
    Gh = _gram_power(G, 0.5, 0.0)
    R = Sih @ Gh @ Sih
    return 0.5 * (R + R.mT)


def precond_distance(R: Tensor) -> Tensor:
    """‖R − (tr R/r) I‖_F/‖R‖_F = √(1 − (tr R)²/(r‖R‖²_F)): the Frobenius distance of R/‖R‖_F from
    the nearest multiple of the identity; 0 for R = 0."""
    r = R.shape[-1]
    tr = torch.diagonal(R, dim1=-2, dim2=-1).sum(-1)
    sq = R.square().sum((-2, -1))
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, (1 - tr.square() / (r * safe)).clamp(0, 1).sqrt(), torch.zeros_like(sq))


def _coords(problem: Any, params: list[Tensor], cache: dict) -> tuple[Tensor, Tensor]:
    if "eigen_coordinates" not in cache:
        cache["eigen_coordinates"] = problem.eigen_coordinates(params)
    return cache["eigen_coordinates"]


def _lam(problem: Any, coords: Tensor) -> Tensor:
    return problem.target_spectrum().to(dtype=coords.dtype, device=coords.device)


def _cos_closed_form(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    coords, _ = _coords(problem, params, cache)
    return closed_form_cos(coords, _lam(problem, coords))


def _misalignment(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    coords, residual = _coords(problem, params, cache)
    lam = _lam(problem, coords)
    off = residual * lam.norm(dim=-1)  # eigen_coordinates' residual is relative to ‖M*‖_F = ‖λ‖
    aligned = (coords - lam).norm(dim=-1)
    total = (off.square() + aligned.square()).sqrt()
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, off / safe, torch.zeros_like(total))


def _subspace_alignment(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    coords, _ = _coords(problem, params, cache)
    xx = params[0].square().sum((-2, -1))
    safe = torch.where(xx > 0, xx, torch.ones_like(xx))
    return torch.where(xx > 0, (coords.sum(-1) / safe).clamp(0, 1), torch.zeros_like(xx))


def _mode_residual(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    coords, _ = _coords(problem, params, cache)
    lam = _lam(problem, coords)
    return ((coords - lam).abs() / lam).amax(-1)


def _precond_dist(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    if "precond_grad" not in cache:  # the same key as muonlab.engine.preconditioner_metrics
        cache["precond_grad"] = problem.grad(params)[0]
    return precond_distance(whitened_preconditioner(cache["precond_grad"], params[0]))


for _name, _fn, _doc in (
    ("scaledgd_cos_closed_form", _cos_closed_form,
     "‖w‖₁/(√r*‖w‖₂), w_i = |c_i − λ_i|/√c_i: cos∠(Muon, ScaledGD) predicted for an aligned iterate, (R,)"),
    ("scaledgd_misalignment", _misalignment,
     "‖XXᵀ − U diag(c)Uᵀ‖/‖XXᵀ − M*‖: share of the residual off the aligned form, (R,)"),
    ("scaledgd_subspace_alignment", _subspace_alignment,
     "‖UᵀX‖²/‖X‖²: share of X's energy in the target's eigenspace, (R,)"),
    ("scaledgd_mode_residual", _mode_residual,
     "max_i |c_i − λ_i|/λ_i: the worst mode's relative distance to its target, (R,)"),
    ("scaledgd_precond_dist", _precond_dist,
     "distance of (XᵀX)^(-1/2)(GᵀG)^(1/2)(XᵀX)^(-1/2), normalized, from a multiple of I; "
     "sin∠(Muon, ScaledGD) ≥ it, (R,)"),
):
    register_metric(Metric(_name, _fn, _doc, applies=_applies, cheap=False))
