r"""The gradient's normalized spectrum — what a polynomial orthogonalizer sees (issue 15, item 1).

Newton–Schulz and Polar Express map each singular value of their input independently:
orth(G) = U φ(S/‖G‖_F) Vᵀ (docs/orthogonalize.md). Whether a run of practical Muon
behaves like the exact msign is therefore decided by where the *normalized* singular
values x_i = σ_i(∇f)/‖∇f‖_F of the gradients it meets fall on φ: inside the band
(x ≥ the polynomial's knee, φ ≈ 1) the step is Muon's; below it, φ(x) ≈ φ'(0)·x and the
step is a GD step on that direction.

Metric (``cheap=False``, single-matrix problems: symmetric MF and the matrix layouts):

* ``grad_sv_fraction`` — σ_i(∇f)/‖∇f‖_F for i = 1…min(m, n), descending, (R, k). A
  zero gradient gives zeros.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from muonlab.engine.metrics import Metric, register_metric

__all__ = ["grad_sv_fraction"]


def _single_matrix(problem: Any) -> bool:
    return getattr(problem, "layout", None) in ("symmetric", "matrix")


def grad_sv_fraction(G: Tensor) -> Tensor:
    """σ_i(G)/‖G‖_F per run, descending, (R, min(m, n)); zeros where G = 0."""
    s = torch.linalg.svdvals(G)
    norm = s.square().sum(-1, keepdim=True).sqrt()
    return torch.where(norm > 0, s / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(s))


def _m_grad_sv_fraction(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    return grad_sv_fraction(problem.grad(params)[0])


register_metric(Metric(
    "grad_sv_fraction", _m_grad_sv_fraction,
    "σ_i(∇f)/‖∇f‖_F, descending: the normalized spectrum a polynomial orthogonalizer maps, (R, min(m, n))",
    applies=_single_matrix, cheap=False,
))
