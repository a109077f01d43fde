r"""Pure update rules: the functional core behind :mod:`muonlab.optim.optimizers`.

Every function works on one tensor or on a batch with leading dimensions (the run
engine stacks many runs along dim 0); step sizes may be Python floats or tensors
that broadcast against the parameter (``lr.view(R, 1, 1)`` for R runs of matrices).

Update rules (SPEC §2, one matrix parameter W, gradient G, step size η):

* Muon, simplified (seeds 000–003):  W ← W − η·orth(G).
* Muon, practical:  M ← μM + G;  D = G + μM (Nesterov) or M;
  W ← (1 − ηλ)W − η·scale(m, n)·orth(D).
  ``momentum_form="ema"`` uses torch.optim.Muon's M ← μM + (1−μ)G and
  D = (1−μ)G + μM instead: the same direction up to the factor (1 − μ), which the
  orthogonalization removes, but a different bf16 rounding.
* SpecGD: Muon with the exact msign (``method="svd"``), or T_β (``"beta"``).
* SignGD: W ← (1 − ηλ)W − η·sign(D).
* ScaledGD (Tong, Ma, Chi 2021): for W = A·B,
  A ← A − η ∇_A f (BBᵀ)⁻¹,  B ← B − η (AᵀA)⁻¹ ∇_B f;  symmetric X Xᵀ:
  X ← X − η ∇f (XᵀX)⁻¹.
* AdamW (Loshchilov & Hutter 2019), bit-compatible with torch.optim.AdamW's
  single-tensor path.

The list-level functionals :func:`sgd` (with ``sign=True``: SignGD), :func:`muon`, :func:`adamw` and
:func:`scaledgd` are the one implementation of each rule. Each takes lists of
parameters, gradients and state tensors and exists in two forms, as torch.optim's
``_single_tensor_*``/``_multi_tensor_*`` split: a Python-float ``lr`` updates every
tensor on its own (the :mod:`muonlab.optim.optimizers` classes), and a tensor ``lr``
of shape ``(R,)`` treats dim 0 of every tensor as R independent runs (the batched
engine, :mod:`muonlab.optim.batched`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from muonlab.errors import MuonlabError
from muonlab.linalg.orthogonalize import orthogonalize_unchecked, resolve_coefficients, scale_down_huge

__all__ = [
    "ADJUST_LR",
    "MOMENTUM_FORMS",
    "adamw",
    "adamw_update_",
    "apply_muon_update_",
    "as_matrix",
    "coefficient_table",
    "descent_update_",
    "momentum_direction_",
    "muon",
    "muon_directions",
    "muon_update_",
    "per_run",
    "scale_factor",
    "scaledgd",
    "scaledgd_directions",
    "sgd",
    "signgd_update_",
]

ADJUST_LR = ("none", "original", "match_rms_adamw")
MOMENTUM_FORMS = ("sum", "ema")


def scale_factor(shape: Sequence[int], adjust_lr: str) -> float:
    r"""LR multiplier for an m×n matrix (SPEC §2).

    ``none``: 1;  ``original``: :math:`\sqrt{\max(1, m/n)}` (Keller Jordan;
    torch.optim.Muon's default);  ``match_rms_adamw``: :math:`0.2\sqrt{\max(m, n)}`
    (Liu et al. 2025, "Muon is scalable for LLM training"), which gives the update
    the RMS of a typical AdamW update so AdamW's lr and weight decay carry over.
    """
    m, n = shape[-2], shape[-1]
    if adjust_lr == "none":
        return 1.0
    if adjust_lr == "original":
        return math.sqrt(max(1.0, m / n))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(m, n))
    raise MuonlabError(f"adjust_lr: unknown {adjust_lr!r}; allowed: {', '.join(ADJUST_LR)}", field="adjust_lr")


def as_matrix(t: Tensor) -> Tensor:
    """View an N-D parameter (N ≥ 2) as the matrix Muon orthogonalizes.

    Rule (as Keller Jordan's Muon for conv filters): keep dim 0 (output channels /
    rows) and flatten every other dim, ``(out, in, kh, kw) → (out, in·kh·kw)``.
    2-D tensors are returned unchanged.
    """
    if t.ndim == 2:
        return t
    return t.reshape(t.shape[0], -1)


def momentum_direction_(
    grad: Tensor, buf: Tensor | None, *, momentum: float, nesterov: bool, form: str = "sum"
) -> Tensor:
    """Update the momentum buffer in place and return the direction D to orthogonalize.

    ``form="sum"``: M ← μM + G, D = G + μM (Nesterov) or M (seed 000, eq. (1)).
    ``form="ema"``: M ← μM + (1−μ)G, D = (1−μ)G + μM or M (torch.optim.Muon).
    With μ = 0 (or ``buf=None``) D = G.
    """
    if buf is None or momentum == 0.0:
        return grad
    if form == "sum":
        buf.mul_(momentum).add_(grad)
        return grad.add(buf, alpha=momentum) if nesterov else buf
    if form == "ema":
        buf.lerp_(grad, 1 - momentum)
        return grad.lerp(buf, momentum) if nesterov else buf
    raise MuonlabError(f"momentum_form: unknown {form!r}; allowed: {', '.join(MOMENTUM_FORMS)}", field="momentum_form")


def muon_update_(
    param: Tensor,
    direction: Tensor,
    *,
    lr: float | Tensor,
    weight_decay: float = 0.0,
    method: str = "newton_schulz",
    table: Sequence[tuple[float, float, float]] = (),
    ns_dtype: torch.dtype | None = None,
    beta: float = 0.0,
    eps: float = 1e-7,
    adjust_lr: str = "none",
    batched: bool = False,
) -> Tensor:
    """In place: W ← (1 − ηλ)W − η·scale(m, n)·orth(D). Returns orth(D).

    With ``batched=True`` the leading dim of ``param`` indexes independent runs (each
    run's trailing dims form its matrix) and ``lr`` may be a per-run tensor.
    """
    if batched:
        mats = direction.reshape(direction.shape[0], direction.shape[1], -1)
        matrix_shape = mats.shape[-2:]
    else:
        mats = as_matrix(direction)
        matrix_shape = mats.shape
    update = orthogonalize_unchecked(
        mats, method, table=table, dtype=ns_dtype, beta=beta, eps=eps
    ).view(direction.shape)
    apply_muon_update_(param, update, lr=lr, weight_decay=weight_decay, scale=scale_factor(matrix_shape, adjust_lr))
    return update


def apply_muon_update_(
    param: Tensor, update: Tensor, *, lr: float | Tensor, weight_decay: float = 0.0, scale: float = 1.0
) -> None:
    """In place: W ← (1 − ηλ)W − η·scale·U for an already orthogonalized ``update`` U."""
    if isinstance(lr, Tensor):
        lr_b = per_run(lr, param)
        if weight_decay != 0.0:
            param.mul_(1 - lr_b * weight_decay)
        param.sub_(update.to(param.dtype) * (lr_b * scale))
    else:
        if weight_decay != 0.0:
            param.mul_(1 - lr * weight_decay)
        # Same call as torch.optim.Muon (adds the bf16 update with type promotion),
        # so the torch-compatible preset matches it bit for bit.
        param.add_(update, alpha=-lr * scale)


def muon_directions(
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor | None],
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    momentum_form: str = "sum",
    method: str = "newton_schulz",
    table: Sequence[tuple[float, float, float]] = (),
    ns_dtype: torch.dtype | None = None,
    beta: float = 0.0,
    eps: float = 1e-7,
) -> tuple[list[Tensor | None], list[Tensor]]:
    """The first half of an atomic per-tensor Muon step: changes nothing.

    Returns the new momentum buffers (None where ``momentum`` is 0; a missing buffer
    counts as zeros) and orth(D) per tensor, each viewed back to its gradient's
    shape. The same operations as :func:`momentum_direction_` and
    :func:`muon_update_`, out of place (so bit for bit the same values); the caller
    checks them and only then stores the buffers and applies the updates with
    :func:`apply_muon_update_`.
    """
    if momentum_form not in MOMENTUM_FORMS:
        raise MuonlabError(
            f"momentum_form: unknown {momentum_form!r}; allowed: {', '.join(MOMENTUM_FORMS)}", field="momentum_form"
        )
    new_buffers: list[Tensor | None] = []
    directions: list[Tensor] = []
    for g, buf in zip(grads, momentum_buffers, strict=True):
        if momentum == 0.0:
            new_buf, d = None, g
        else:
            base = buf if buf is not None else torch.zeros_like(g)
            if momentum_form == "sum":
                new_buf = base.mul(momentum).add_(g)
                d = g.add(new_buf, alpha=momentum) if nesterov else new_buf
            else:
                new_buf = base.lerp(g, 1 - momentum)
                d = g.lerp(new_buf, momentum) if nesterov else new_buf
        mats = as_matrix(d)
        if method != "beta" and mats.numel() > 0:
            # Without it, float32 entries above ~1e19 overflow ‖D‖_F (or σ_max) and the
            # update is silently 0; sync-free, bit for bit the same on ordinary input.
            mats = scale_down_huge(mats, ns_dtype or mats.dtype)
        update = orthogonalize_unchecked(mats, method, table=table, dtype=ns_dtype, beta=beta, eps=eps)
        new_buffers.append(new_buf)
        directions.append(update.view(d.shape))
    return new_buffers, directions


def per_run(lr: Tensor, like: Tensor) -> Tensor:
    """View a per-run step size ``(R,)`` so that it broadcasts against ``like`` ``(R, …)``."""
    return lr.reshape(lr.shape + (1,) * (like.ndim - lr.ndim)).to(device=like.device, dtype=like.dtype)


def descent_update_(param: Tensor, direction: Tensor, *, lr: float | Tensor, weight_decay: float = 0.0) -> None:
    """In place: W ← (1 − ηλ)W − η·D; ``lr`` may be per run."""
    if isinstance(lr, Tensor):
        lr_b = per_run(lr, param)
        if weight_decay != 0.0:
            param.mul_(1 - lr_b * weight_decay)
        param.sub_(direction * lr_b)
        return
    if weight_decay != 0.0:
        param.mul_(1 - lr * weight_decay)
    param.add_(direction, alpha=-lr)


def signgd_update_(param: Tensor, direction: Tensor, *, lr: float | Tensor, weight_decay: float = 0.0) -> None:
    """In place: W ← (1 − ηλ)W − η·sign(D)  (sign(0) = 0); ``lr`` may be per run."""
    descent_update_(param, torch.sign(direction), lr=lr, weight_decay=weight_decay)


def scaledgd_directions(
    factors: Sequence[Tensor], grads: Sequence[Tensor], *, damping: float = 0.0
) -> list[Tensor]:
    r"""ScaledGD preconditioned directions (Tong, Ma & Chi 2021), batched over leading dims.

    * one factor X (n×r, product XXᵀ):  ∇f (XᵀX + δI)⁻¹
    * two factors A (m×r), B (r×n) (product AB):
      ∇_A f (BBᵀ + δI)⁻¹  and  (AᵀA + δI)⁻¹ ∇_B f

    δ = ``damping`` ≥ 0 keeps the solve defined at a rank-deficient (e.g. tiny
    random) initialization; δ = 0 is the method as published. Uses linear solves,
    not explicit inverses; a singular system yields non-finite values, not an error.
    """
    if len(factors) == 1:
        (X,), (g,) = factors, grads
        gram = X.mT @ X
        gram = _damp(gram, damping)
        # g P⁻¹ with P symmetric  ⇔  (P⁻¹ gᵀ)ᵀ
        return [_solve(gram, g.mT).mT]
    if len(factors) == 2:
        (A, B), (gA, gB) = factors, grads
        if A.shape[-1] != B.shape[-2]:
            raise MuonlabError(
                f"factors: A {tuple(A.shape)} and B {tuple(B.shape)} do not form a product A @ B", field="factors"
            )
        right = _damp(B @ B.mT, damping)
        left = _damp(A.mT @ A, damping)
        return [_solve(right, gA.mT).mT, _solve(left, gB)]
    raise MuonlabError(
        f"factors: ScaledGD takes 1 (symmetric) or 2 (A @ B) factors, got {len(factors)}", field="factors"
    )


def _solve(A: Tensor, B: Tensor) -> Tensor:
    # solve_ex does not raise on a singular system: in a batch of runs, one run whose
    # Gram matrix is singular gets non-finite values (and is flagged as diverged)
    # instead of aborting every other run.
    return torch.linalg.solve_ex(A, B)[0]


def _damp(gram: Tensor, damping: float) -> Tensor:
    if damping == 0.0:
        return gram
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return gram + damping * eye


def adamw_update_(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: int,
    lr: float | Tensor,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    """In place AdamW step ``step`` (1-based), in torch.optim.AdamW's operation order.

    ``lr`` may be a per-run tensor ``(R,)`` (then the leading dim of ``param`` is runs).
    """
    beta1, beta2 = betas
    lr_b = per_run(lr, param) if isinstance(lr, Tensor) else lr
    if weight_decay != 0.0 or not isinstance(lr, Tensor):
        param.mul_(1 - lr_b * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
    if isinstance(lr, Tensor):
        param.sub_(exp_avg / denom * (lr_b / bias_correction1))
    else:
        param.addcdiv_(exp_avg, denom, value=-(lr / bias_correction1))


# ----------------------------------------------------------------------------- list-level rules

LR = float | Tensor  # a float: per-tensor form; a (R,) tensor: batched over runs


def coefficient_table(
    method: str, coefficients: str | Sequence[Sequence[float]] = "keller", ns_steps: int | None = None
) -> list[tuple[float, float, float]]:
    """The polynomial table a Muon orthogonalizer uses: Newton–Schulz's ``coefficients``
    (preset or table) × ``ns_steps`` (also for its Gram-side form and ``auto``, which
    runs one of the two), Polar Express's own table, and none for the exact methods
    (``svd``, ``gram``, ``symmetric``, ``beta``)."""
    if method == "polar_express":
        return resolve_coefficients("polar_express", ns_steps)
    if method in _ITERATIVE:
        return resolve_coefficients(coefficients or "keller", ns_steps)
    return []


#: Methods that run the Newton–Schulz iteration with a coefficient table.
_ITERATIVE = ("newton_schulz", "gram_newton_schulz", "auto")


def sgd(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor | None],
    *,
    lr: LR,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    sign: bool = False,
) -> None:
    """GD / heavy ball, in place: M ← μM + G, W ← (1 − ηλ)W − η·M (D = G when μ = 0).

    ``sign=True`` is SignGD / signum (Bernstein et al. 2018): W ← (1 − ηλ)W − η·sign(D).
    """
    for p, g, buf in zip(params, grads, momentum_buffers, strict=True):
        d = momentum_direction_(g, buf, momentum=momentum, nesterov=False)
        descent_update_(p, torch.sign(d) if sign else d, lr=lr, weight_decay=weight_decay)


def muon(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    momentum_buffers: Sequence[Tensor | None],
    *,
    lr: LR,
    momentum: float = 0.0,
    nesterov: bool = False,
    momentum_form: str = "sum",
    weight_decay: float = 0.0,
    method: str = "newton_schulz",
    table: Sequence[tuple[float, float, float]] = (),
    ns_dtype: torch.dtype | None = None,
    beta: float = 0.0,
    eps: float = 1e-7,
    adjust_lr: str = "none",
    batched: bool = False,
) -> None:
    """Muon / SpecGD, in place: D from :func:`momentum_direction_`, then
    W ← (1 − ηλ)W − η·scale(m, n)·orth(D) (:func:`muon_update_`).

    ``batched=True``: dim 0 of every tensor indexes runs and each run's trailing dims
    form its matrix; otherwise an N-D tensor is viewed by :func:`as_matrix`.
    """
    for p, g, buf in zip(params, grads, momentum_buffers, strict=True):
        d = momentum_direction_(g, buf, momentum=momentum, nesterov=nesterov, form=momentum_form)
        muon_update_(
            p, d, lr=lr, weight_decay=weight_decay, method=method, table=table, ns_dtype=ns_dtype,
            beta=beta, eps=eps, adjust_lr=adjust_lr, batched=batched,
        )


def adamw(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    exp_avgs: Sequence[Tensor],
    exp_avg_sqs: Sequence[Tensor],
    steps: Sequence[int],
    *,
    lr: LR,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """AdamW, in place, each tensor at its own 1-based step count (:func:`adamw_update_`)."""
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps, strict=True):
        adamw_update_(p, g, m, v, step=t, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def scaledgd(factors: Sequence[Tensor], grads: Sequence[Tensor], *, lr: LR, damping: float = 0.0) -> None:
    """ScaledGD, in place, on one factorization ``[X]`` or ``[A, B]`` (:func:`scaledgd_directions`).

    Both preconditioners use the factors before the step.
    """
    directions = scaledgd_directions(list(factors), list(grads), damping=damping)
    for p, d in zip(factors, directions, strict=True):
        if isinstance(lr, Tensor):
            p.sub_(d * per_run(lr, p))
        else:
            p.add_(d, alpha=-lr)
