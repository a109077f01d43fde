"""Update rules for the batched engine: R runs of one problem advanced as one tensor set.

A rule holds its hyper-parameters and state and has one method,
``step(params, grads, lr)``: every tensor has a leading run dimension R and ``lr`` is
the per-run step size, shape ``(R,)``. Each rule calls the list-level functional of
:mod:`muonlab.optim.updates` in its batched form — the same function the
``torch.optim`` classes call in their per-tensor form, so the two cannot drift apart
(tests/optim/test_batched.py runs every rule against its class as a loop of single runs).

Rules are built by the optimizer configs (:meth:`muonlab.config.optimizers.MuonConfig.build_rule`
and friends), so the engine never branches on an optimizer's name.

=============  ==============================================================
rule           update per run (SPEC §2; each factor orthogonalized separately)
=============  ==============================================================
MuonRule       M ← μM + G; D = G + μM (Nesterov) or M; W ← (1 − ηλ)W − η·orth(D)
SGDRule        W ← (1 − ηλ)W − η·D, D = G or heavy-ball M ← μM + G
               (``sign=True``: W ← (1 − ηλ)W − η·sign(D), SignGD)
AdamRule       AdamW (Loshchilov & Hutter 2019) with bias correction
ScaledGDRule   ScaledGD (Tong, Ma & Chi 2021) on the problem's factorization
=============  ==============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from muonlab.optim import updates

__all__ = ["AdamRule", "BatchedRule", "MuonRule", "SGDRule", "ScaledGDRule"]


class BatchedRule(Protocol):
    """What the engine needs of an update rule."""

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        """Advance every run by one step in place; ``lr`` has shape ``(R,)``."""
        ...


def _buffers(params: Sequence[Tensor], momentum: float) -> list[Tensor | None]:
    return [torch.zeros_like(p) if momentum != 0.0 else None for p in params]


@dataclass
class SGDRule:
    """Gradient descent, optionally with heavy-ball momentum; ``sign=True``: SignGD (signum)."""

    momentum: float = 0.0
    weight_decay: float = 0.0
    sign: bool = False
    buffers: list[Tensor | None] = field(default_factory=list, repr=False)

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        if not self.buffers:
            self.buffers = _buffers(params, self.momentum)
        updates.sgd(
            params, grads, self.buffers, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay, sign=self.sign
        )


@dataclass
class MuonRule:
    """Muon with any orthogonalizer; SpecGD is ``method="svd"``, SpecGD-β ``method="beta"``."""

    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    method: str = "newton_schulz"
    table: Sequence[tuple[float, float, float]] = ()
    ns_dtype: torch.dtype | None = None
    beta: float = 0.0
    buffers: list[Tensor | None] = field(default_factory=list, repr=False)

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        if not self.buffers:
            self.buffers = _buffers(params, self.momentum)
        updates.muon(
            params, grads, self.buffers, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
            weight_decay=self.weight_decay, method=self.method, table=self.table, ns_dtype=self.ns_dtype,
            beta=self.beta, batched=True,
        )


@dataclass
class AdamRule:
    """AdamW with torch.optim.AdamW's operation order."""

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    t: int = 0
    exp_avgs: list[Tensor] = field(default_factory=list, repr=False)
    exp_avg_sqs: list[Tensor] = field(default_factory=list, repr=False)

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        if not self.exp_avgs:
            self.exp_avgs = [torch.zeros_like(p) for p in params]
            self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        self.t += 1
        updates.adamw(
            params, grads, self.exp_avgs, self.exp_avg_sqs, [self.t] * len(params), lr=lr,
            betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
        )


@dataclass
class ScaledGDRule:
    """ScaledGD on the problem's factors ``[X]`` (symmetric) or ``[A, B]`` (product)."""

    damping: float = 0.0

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        updates.scaledgd(params, grads, lr=lr, damping=self.damping)
