r"""P3: asymmetric two-factor matrix factorization — seed 002 (and seed 003's "next check").

Rhee, Simon & Karkada, *Muon dynamics in matrix factorization* (arXiv 2606.30509).

Parameters W2 ∈ R^{n_out×d}, W1 ∈ R^{d×n_in} (product W2 W1, inner width d), target
M* ∈ R^{n_out×n_in}:

    f(W2, W1) = ½ ‖W2 W1 − M*‖²_F,   ∇_{W2} f = E W1ᵀ,   ∇_{W1} f = W2ᵀ E,   E = W2 W1 − M*.

Optimum (Eckart–Young): the product has rank ≤ d, so f* = ½ Σ_{i>d} σ_i(M*)²
(0 when d ≥ rank M*). Relative error ‖W2 W1 − M*‖_F / ‖M*‖_F.

Targets (stream ``"target"``):

* ``logspace`` / ``linspace``: U diag(σ) Vᵀ, Haar U, V, σ from 1 down to 1/κ, ``rank``
  (default min(n_out, n_in));
* ``list``: U diag(values) Vᵀ (values sorted descending), Haar U, V;
* ``diag``: M* = diag(values) exactly, no rotation (seed 002's figure 1 uses
  M* = diag(10/i), i = 1..32); the values keep their order on the diagonal;
* ``planted``: seed 002's planted signal diag(snr on the first ``rank`` entries) +
  G/√n (square only; singular values computed once at construction).

κ only shapes ``logspace``/``linspace``; it is ignored by the other targets.

Init (stream ``"init"``, W2 drawn before W1): ``gaussian`` N(0,1)·α/√max(n_out, n_in, d)
(seed 002's small random init); ``orthogonal`` α times Haar semi-orthogonal factors
(seed 002's two-step experiment: n = d = 25, α = 1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from muonlab.errors import MuonlabError
from muonlab.problems import _fields
from muonlab.problems.base import Problem
from muonlab.problems.targets import (
    generator,
    low_rank_factors,
    planted_target,
    semi_orthogonal,
)
from muonlab.problems.targets import spectrum as make_spectrum

__all__ = ["TARGETS", "TwoFactorMF"]

TARGETS = ("logspace", "linspace", "list", "diag", "planted")
INITS = ("gaussian", "orthogonal", "orthonormal")  # the last two are the same


class TwoFactorMF(Problem):
    """R runs of P3 (seed 002): f = ½‖W2 W1 − M*‖²_F, params ``[W2 (n_out×d), W1 (d×n_in)]``.

    Args:
        n_out, n_in: target shape. d: inner width (any ≥ 1; d > min(n_out, n_in) is allowed).
        seed: int or one per run. rank: target rank (spectra and ``planted``).
        kappa: σ_1/σ_rank for ``logspace``/``linspace``, scalar or per run.
        spectrum: ``logspace`` | ``linspace`` | ``list`` | ``diag`` | ``planted``.
        values: the singular values (``list``) or diagonal (``diag``), positive.
        snr: planted signal strength (``planted``). alpha: init scale, scalar or per run.
        init: ``gaussian`` | ``orthogonal``.
    """

    kind = "two_factor_mf"
    layout = "product"

    def __init__(
        self,
        n_out: int,
        n_in: int,
        d: int,
        *,
        seed: int | Sequence[int],
        rank: int | None = None,
        kappa: float | Sequence[float] = 1.0,
        spectrum: str = "logspace",
        values: Sequence[float] | None = None,
        snr: float | None = None,
        alpha: float | Sequence[float] = 1e-3,
        init: str = "gaussian",
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.seed = _fields.seeds(seed)
        super().__init__(len(self.seed), dtype, device)
        self.n_out = _fields.integer("n_out", n_out)
        self.n_in = _fields.integer("n_in", n_in)
        self.d = _fields.integer("d", d)
        self.kappa = _fields.per_run("kappa", kappa, self.n_runs, lower=1.0)
        self.alpha = _fields.per_run("alpha", alpha, self.n_runs, lower=0.0, strict=True)
        self.spectrum = _fields.choice("spectrum", spectrum, TARGETS)
        self.init = _fields.choice("init", init, INITS)
        small = min(self.n_out, self.n_in)

        if values is not None and self.spectrum not in ("list", "diag"):
            raise MuonlabError(
                f"values: only used with spectrum 'list' or 'diag', not {self.spectrum!r}", field="values"
            )
        if snr is not None and self.spectrum != "planted":
            raise MuonlabError(f"snr: only used with spectrum 'planted', not {self.spectrum!r}", field="snr")
        self.values = None if values is None else _fields.values_list("values", values)
        self.snr = None if snr is None else _fields.real("snr", snr, lower=0.0, strict=True)

        if self.spectrum in ("list", "diag"):
            if self.values is None:
                raise MuonlabError(f"values: spectrum {self.spectrum!r} needs a list of values", field="values")
            if len(self.values) > small:
                raise MuonlabError(
                    f"values: at most min(n_out, n_in) ({small}) values, got {len(self.values)}", field="values"
                )
            if rank is not None and _fields.integer("rank", rank) != len(self.values):
                raise MuonlabError(f"rank: must equal len(values) ({len(self.values)}), got {rank}", field="rank")
            self.rank = len(self.values)
        elif self.spectrum == "planted":
            if self.n_out != self.n_in:
                raise MuonlabError(
                    f"n_in: spectrum 'planted' needs a square target (n_in = n_out = {self.n_out}), got {self.n_in}",
                    field="n_in",
                )
            if rank is None:
                raise MuonlabError("rank: spectrum 'planted' needs the planted rank", field="rank")
            if self.snr is None:
                raise MuonlabError("snr: spectrum 'planted' needs the signal-to-noise ratio", field="snr")
            self.rank = _fields.integer("rank", rank, upper=small, upper_name="n_out")
        else:
            self.rank = (
                small if rank is None else _fields.integer("rank", rank, upper=small, upper_name="min(n_out, n_in)")
            )

        M, sv = [], []
        for s, k in zip(self.seed, self.kappa):
            m, v = self._make_target(s, k)
            M.append(m)
            sv.append(v)
        M64 = torch.stack(M)
        self._M64 = M64  # float64 copy for the minimizer's SVD
        self._sv64 = torch.stack(sv)  # (R, k) descending, exact where the target is built from them
        self._M = M64.to(dtype=dtype, device=self.device)
        self._M_norm = self._sv64.norm(dim=-1).to(dtype=dtype, device=self.device)

    def _make_target(self, seed: int, kappa: float) -> tuple[Tensor, Tensor]:
        if self.spectrum == "diag":
            M = torch.zeros(self.n_out, self.n_in, dtype=torch.float64, device="cpu")
            idx = torch.arange(self.rank, device="cpu")
            M[idx, idx] = torch.tensor(self.values, dtype=torch.float64, device="cpu")
            return M, torch.sort(M[idx, idx], descending=True).values
        if self.spectrum == "planted":
            snr = cast(float, self.snr)  # __init__ requires snr for 'planted'
            M = planted_target(self.n_out, self.rank, snr, generator(seed, "target"))
            return M, torch.linalg.svdvals(M)
        sigma = make_spectrum(self.rank, self.spectrum, kappa, self.values)
        U, V = low_rank_factors(self.n_out, self.n_in, self.rank, generator(seed, "target"))
        return (U * sigma) @ V.T, sigma

    # --- Problem interface -------------------------------------------------------

    def init_params(self) -> list[Tensor]:
        W2, W1 = [], []
        scale = 1.0 / math.sqrt(max(self.n_out, self.n_in, self.d))
        for s, a in zip(self.seed, self.alpha):
            g = generator(s, "init")
            if self.init == "gaussian":
                W2.append(a * scale * torch.randn(self.n_out, self.d, generator=g, dtype=torch.float64, device="cpu"))
                W1.append(a * scale * torch.randn(self.d, self.n_in, generator=g, dtype=torch.float64, device="cpu"))
            else:
                W2.append(a * semi_orthogonal(self.n_out, self.d, g))
                W1.append(a * semi_orthogonal(self.d, self.n_in, g))
        return [torch.stack(W2).to(dtype=self.dtype, device=self.device),
                torch.stack(W1).to(dtype=self.dtype, device=self.device)]

    def _residual(self, W2: Tensor, W1: Tensor) -> Tensor:
        return W2 @ W1 - self._M

    def loss(self, params: Sequence[Tensor]) -> Tensor:
        W2, W1 = params
        return 0.5 * self._residual(W2, W1).square().sum((-2, -1))

    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        return self.loss_and_grad(params)[1]

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        W2, W1 = params
        E = self._residual(W2, W1)
        return 0.5 * E.square().sum((-2, -1)), [E @ W1.mT, W2.mT @ E]

    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        W2, W1 = params
        return torch.linalg.matrix_norm(self._residual(W2, W1)) / self._M_norm

    def evaluate(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        W2, W1 = params
        E = self._residual(W2, W1)
        sq = E.square().sum((-2, -1))  # f = ½‖E‖², rel = ‖E‖/‖M*‖: one residual for both
        return 0.5 * sq, [E @ W1.mT, W2.mT @ E], sq.sqrt() / self._M_norm

    def optimum_loss(self) -> Tensor:
        tail = self._sv64[:, self.d :]
        return (0.5 * tail.square().sum(-1)).to(dtype=self.dtype, device=self.device)

    def minimizer(self) -> list[Tensor]:
        """Balanced truncated SVD: W2 = U_k √S_k, W1 = √S_k V_kᵀ (k = min(d, rank M*)), zero-padded to d."""
        U, S, Vh = torch.linalg.svd(self._M64, full_matrices=False)
        k = min(self.d, self._sv64.shape[-1])  # the planted target is full rank
        root = S[:, :k].sqrt()
        W2 = torch.zeros(self.n_runs, self.n_out, self.d, dtype=torch.float64, device="cpu")
        W1 = torch.zeros(self.n_runs, self.d, self.n_in, dtype=torch.float64, device="cpu")
        W2[:, :, :k] = U[:, :, :k] * root.unsqueeze(-2)
        W1[:, :k, :] = root.unsqueeze(-1) * Vh[:, :k, :]
        return [W2.to(dtype=self.dtype, device=self.device), W1.to(dtype=self.dtype, device=self.device)]

    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        W2, W1 = params
        return W2 @ W1

    def target(self) -> Tensor:
        return self._M

    def target_spectrum(self) -> Tensor:
        return self._sv64.to(dtype=self.dtype, device=self.device)
