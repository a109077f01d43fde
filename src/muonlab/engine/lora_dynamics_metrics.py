r"""Per-step metrics for seed 000's dynamics claims (Kang et al., arXiv 2602.06385) on P4,
f = ½‖W* − AB‖²_F (+ ℓ2): per-mode values in the target's basis, factor norms, and the
distance in parameter space to the balanced global minimizer.

* ``target_mode_values`` — c_i = u_iᵀ (AB) v_i for the target's top r* singular pairs
  (u_i, v_i): mode i's value, (R, r*). Once the factors are aligned with the target,
  AB = Σ_i c_i u_i v_iᵀ and c_i is σ_i(AB) *labelled by its target mode* (the sorted
  singular values of AB lose the label whenever two growing modes cross or tie,
  which under equal-rate growth they do all the time). Equal-rate growth reads
  d√c_i/dτ = 1 for every mode until c_i reaches σ*_i (seed 000 Thm 5.7).
* ``factor_norms`` — (‖A‖_F, ‖B‖_F), (R, 2): Thm 6.2 assumes they stay bounded.
* ``dist_to_minimizer`` — sqrt(‖A − A*‖² + ‖B − B*‖²)/sqrt(‖A*‖² + ‖B*‖²) with
  (A*, B*) the balanced minimizer :meth:`~muonlab.problems.lora_mf.LoRAMF.minimizer`,
  (R,): for ``init: minimum`` it starts at ``perturb`` and measures the excursion of
  Lyapunov stability (Prop. 6.7).

None is cheap (``cheap=False``): default logging and old configs are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from muonlab.engine.metrics import Metric, register_metric

__all__ = ["dist_to_minimizer", "factor_norms", "target_mode_values"]


def _is_lora(problem: Any) -> bool:
    cls = problem if isinstance(problem, type) else type(problem)
    return getattr(cls, "kind", None) == "lora_mf"


def target_mode_values(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    """c_i = u_iᵀ A B v_i over the target's r* modes, (R, r*), computed as
    diag((U*ᵀA)(B V*)) without forming AB."""
    A, B = params
    U = problem._U64.to(dtype=A.dtype, device=A.device)  # (R, m, r*)
    V = problem._V64.to(dtype=A.dtype, device=A.device)  # (R, n, r*)
    left = U.mT @ A  # (R, r*, r)
    right = B @ V  # (R, r, r*)
    return (left * right.mT).sum(-1)


def factor_norms(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    """(‖A‖_F, ‖B‖_F) per run, (R, 2)."""
    A, B = params
    return torch.stack([torch.linalg.matrix_norm(A), torch.linalg.matrix_norm(B)], dim=-1)


def dist_to_minimizer(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    """‖(A, B) − (A*, B*)‖_F / ‖(A*, B*)‖_F, (R,)."""
    A, B = params
    key = "_lora_dynamics_minimizer"
    star = getattr(problem, key, None)
    if star is None:
        star = [p.to(dtype=A.dtype, device=A.device) for p in problem.minimizer()]
        setattr(problem, key, star)
    As, Bs = star
    num = (A - As).square().sum((-2, -1)) + (B - Bs).square().sum((-2, -1))
    den = As.square().sum((-2, -1)) + Bs.square().sum((-2, -1))
    return (num / den.clamp_min(torch.finfo(A.dtype).tiny)).sqrt()


register_metric(Metric("target_mode_values", target_mode_values,
                       "u_iᵀ(AB)v_i on the target's top r* singular pairs: each mode's value, labelled (P4), (R, r*)",
                       applies=_is_lora, cheap=False))
register_metric(Metric("factor_norms", factor_norms, "(‖A‖_F, ‖B‖_F) of the two factors (P4), (R, 2)",
                       applies=_is_lora, cheap=False))
register_metric(Metric("dist_to_minimizer", dist_to_minimizer,
                       "‖(A, B) − (A*, B*)‖_F/‖(A*, B*)‖_F to the balanced minimizer (P4), (R,)",
                       applies=_is_lora, cheap=False))
