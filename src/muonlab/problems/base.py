"""The batched problem interface (SPEC §4): R runs of one problem shape as one set of tensors.

Every problem holds its targets with a leading run dimension R and exposes pure
tensor functions of the parameters (a list of ``(R, ·, ·)`` tensors):

* ``init_params()``: reproducible initial parameters (from the per-run seeds);
* ``loss(params) -> (R,)`` and ``grad(params) -> list`` (closed form, tested
  against autograd in float64), ``loss_and_grad`` (shares the residual) and
  ``evaluate`` (loss, gradient and relative error in one pass);
* ``rel_err(params) -> (R,)``: the problem's headline relative error;
* ``optimum_loss() -> (R,)``: the loss at a global minimum (and, optionally,
  ``minimizer() -> list`` parameters attaining it);
* ``end_to_end(params) -> (R, m, n)``: the matrix the parameters represent
  (XXᵀ, W2·W1, A·B, Γ or W) and ``target() -> (R, m, n) | None``;
* ``factors(params) -> (L, Rt)`` with ``end_to_end = L @ Rtᵀ``: lets metrics get the
  product's singular values from thin QRs of the factors, never the full m×n SVD.

``layout`` tells optimizers such as ScaledGD how the parameters combine:
``"symmetric"`` (one factor X, product X Xᵀ), ``"product"`` (two factors [A, B],
product A @ B) or ``"matrix"`` (one matrix parameter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

__all__ = ["LAYOUTS", "Problem"]

LAYOUTS = ("symmetric", "product", "matrix")


class Problem(ABC):
    """A batch of ``R`` independent runs of one problem shape."""

    kind: ClassVar[str] = ""
    layout: ClassVar[str] = "matrix"

    def __init__(self, n_runs: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> None:
        self.n_runs = int(n_runs)
        self.dtype = dtype
        self.device = torch.device(device)

    @abstractmethod
    def init_params(self) -> list[Tensor]:
        """Initial parameters, each ``(R, ·, ·)``; the same seeds give the same tensors."""

    @abstractmethod
    def loss(self, params: Sequence[Tensor]) -> Tensor:
        """Per-run loss, shape ``(R,)``."""

    @abstractmethod
    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        """Closed-form gradient of :meth:`loss` (per run), same shapes as ``params``."""

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.loss(params), self.grad(params)

    def evaluate(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        """``(loss, grads, rel_err)`` in one pass; the engine's per-step call.

        Problems whose relative error is a function of the loss override it to
        share the residual (forming it is most of a step's cost).
        """
        loss, grads = self.loss_and_grad(params)
        return loss, grads, self.rel_err(params)

    @abstractmethod
    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        """Per-run relative error (the metric the claims use), shape ``(R,)``."""

    @abstractmethod
    def optimum_loss(self) -> Tensor:
        """Loss at a global minimum, shape ``(R,)``."""

    @abstractmethod
    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        """The matrix the parameters represent, ``(R, m, n)``."""

    def minimizer(self) -> list[Tensor]:
        """Parameters at a global minimum, same shapes as :meth:`init_params` (optional).

        One of possibly many minimizers (factorizations are defined up to rotations);
        used by tests and by distance-to-optimum metrics.
        """
        raise NotImplementedError(f"{type(self).__name__} does not construct a minimizer")

    def target(self) -> Tensor | None:
        """The matrix the problem fits, ``(R, m, n)``, if it has one."""
        return None

    def target_spectrum(self) -> Tensor | None:
        """Singular values of :meth:`target` per run, descending, ``(R, k)`` (σ* for per-mode metrics).

        Problems that build the target from known values override this with them exactly.
        """
        M = self.target()
        # float64: low-precision SVDs are missing on CPU (bfloat16) and too coarse for σ*
        return None if M is None else torch.linalg.svdvals(M.to(torch.float64)).to(M.dtype)

    def factors(self, params: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``(L, Rt)`` with ``end_to_end(params) == L @ Rt.mT``."""
        if self.layout == "symmetric":
            (X,) = params
            return X, X
        if self.layout == "product":
            A, B = params
            return A, B.mT
        (W,) = params
        eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device).expand(W.shape[0], -1, -1)
        return W, eye
