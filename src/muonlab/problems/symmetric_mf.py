r"""P1: symmetric (Burer–Monteiro) matrix factorization — seed 001 §2.1.

Ma, Huang, Chi & Chen, *Preconditioning Benefits of Spectral Orthogonalization in
Muon* (arXiv 2601.13474), Theorems 1–2 and Figure 1.

Target M* = U diag(λ) Uᵀ with U a Haar n×r* frame and λ_1 = 1 ≥ … ≥ λ_{r*} = 1/κ
(log-spaced by default); parameter X ∈ R^{n×r} (search rank r, exact r = r* or
over-parameterized r > r*; r < r* is allowed and fits the best rank-r part).

    f(X) = ¼ ‖XXᵀ − M*‖²_F,        ∇f(X) = (XXᵀ − M*) X.

(d/dX of ¼‖E‖² with E = XXᵀ − M* symmetric is ½(E + Eᵀ)X = EX.)

Optimum: 0 for r ≥ r*; for r < r*, the best PSD rank-r approximation keeps the top r
eigenvalues (all λ > 0), so f* = ¼ Σ_{i>r} λ_i². Relative error ‖XXᵀ − M*‖_F/‖M*‖_F.

Initialization (stream ``"init"``): ``gaussian`` X_0 = α·N(0,1)/√n (seed 001's
small random init, α = 1e-3 by default); ``orthonormal`` X_0 = α·(Haar n×r frame),
the over-parameterized case of Theorem 1; ``aligned`` X_0 = α·U Oᵀ with O a Haar
r×r* frame (needs r ≥ r*): Lemma 3's initialization (41) with D_0 = αI, whose left
singular subspace is M*'s, so that Muon's iterates stay X_t = U diag(x_t) Oᵀ and the
dynamics decouple into the scalar recursions of eq. (15),
x_{i,t+1} = x_{i,t} − η_t·sign((x_{i,t}² − λ_i)·x_{i,t}) (:func:`scalar_recursions`);
``identity`` X_0 = α·I_{n×r} (the first r columns of I).

Eigenbasis of M* (``basis``): ``haar`` (U drawn per seed) or ``paired``: App. C's
hard instance for SignGD (Theorem 2), where M*'s eigenvectors are 45° rotations of
coordinate pairs, so M* = R diag(λ) Rᵀ has equal diagonal and equal off-diagonal
entries in each 2×2 block (needs r* = n; nothing is drawn). From X_0 = α·I the
iterates of every entrywise method stay in that commuting slice, where SignGD moves
one eigen-coordinate per step and needs ∝ κ steps (Lemmas 12–15); Muon sees the
aligned case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from muonlab.errors import MuonlabError
from muonlab.problems import _fields
from muonlab.problems.base import Problem
from muonlab.problems.targets import (
    SPECTRA,
    covariance_basis,
    generator,
    low_rank_factors,
    random_orthonormal,
)
from muonlab.problems.targets import spectrum as make_spectrum

__all__ = ["SymmetricMF", "scalar_recursions"]

INITS = ("gaussian", "orthonormal", "aligned", "identity")
BASES = ("haar", "paired")


def scalar_recursions(lam: Tensor, x0: Tensor, lrs: Tensor) -> Tensor:
    r"""Seed 001 eq. (15)/(27): simplified Muon on the scalar problems ¼(x² − λ_i)².

    .. math:: x_{i,t+1} = x_{i,t} - η_t\,\mathrm{sign}\big((x_{i,t}^2 - λ_i)\,x_{i,t}\big)

    with sign(0) = 0. Args: ``lam`` (..., k) eigenvalues, ``x0`` (..., k) starting
    points, ``lrs`` (T,) or (..., T) step sizes. Returns the iterates (..., T+1, k),
    x_0 first. In the aligned case (Lemma 3) these are exactly the diagonal of
    UᵀX_tO along Muon's matrix trajectory.
    """
    lam, x = torch.broadcast_tensors(lam, x0)
    lrs = torch.as_tensor(lrs, dtype=x.dtype, device=x.device)
    out = [x]
    for t in range(lrs.shape[-1]):
        eta = lrs[..., t : t + 1]
        x = x - eta * torch.sign((x * x - lam) * x)
        out.append(x)
    return torch.stack(out, dim=-2)


class SymmetricMF(Problem):
    """R runs of P1 (seed 001): f(X) = ¼‖XXᵀ − M*‖²_F, X ∈ R^{n×r}, M* = U diag(λ) Uᵀ (rank r*).

    Args:
        n: matrix size. r: search rank (≤ n). r_star: target rank (≤ n; default r).
        seed: int or one int per run (R = number of seeds).
        kappa: condition number λ_1/λ_{r*} (≥ 1), scalar or per run.
        alpha: init scale (> 0), scalar or per run.
        spectrum: ``logspace`` | ``linspace`` (from 1 down to 1/κ).
        init: ``gaussian`` | ``orthonormal`` | ``aligned`` (r ≥ r*) | ``identity``.
        basis: ``haar`` | ``paired`` (r* = n; Theorem 2's hard instance).
        entry_fraction: None (default): the full gradient. p ∈ (0, 1]: :meth:`evaluate`
            returns the mini-batch gradient :meth:`minibatch_grad` on a fresh random
            fraction p of the entries at every step (loss and error stay exact).
    """

    kind = "symmetric_mf"
    layout = "symmetric"

    def __init__(
        self,
        n: int,
        r: int,
        r_star: int | None = None,
        *,
        seed: int | Sequence[int],
        kappa: float | Sequence[float] = 1.0,
        alpha: float | Sequence[float] = 1e-3,
        spectrum: str = "logspace",
        init: str = "gaussian",
        basis: str = "haar",
        entry_fraction: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.seed = _fields.seeds(seed)
        super().__init__(len(self.seed), dtype, device)
        self.n = _fields.integer("n", n)
        self.r = _fields.integer("r", r, upper=self.n, upper_name="n")
        self.r_star = self.r if r_star is None else _fields.integer("r_star", r_star, upper=self.n, upper_name="n")
        self.kappa = _fields.per_run("kappa", kappa, self.n_runs, lower=1.0)
        self.alpha = _fields.per_run("alpha", alpha, self.n_runs, lower=0.0, strict=True)
        # "list" needs explicit values, which P1 does not take
        self.spectrum = _fields.choice("spectrum", spectrum, tuple(s for s in SPECTRA if s != "list"))
        self.init = _fields.choice("init", init, INITS)
        self.basis = _fields.choice("basis", basis, BASES)
        if self.basis == "paired" and self.r_star != self.n:
            raise MuonlabError(f"basis: 'paired' needs r_star = n ({self.n}), got r_star={self.r_star}", field="basis")
        if self.init == "aligned" and self.r < self.r_star:
            raise MuonlabError(f"init: 'aligned' needs r >= r_star ({self.r_star}), got r={self.r}", field="init")

        if entry_fraction is not None and not 0.0 < float(entry_fraction) <= 1.0:
            raise MuonlabError(f"entry_fraction: must be > 0 and <= 1, got {entry_fraction!r}", field="entry_fraction")
        self.entry_fraction = None if entry_fraction is None else float(entry_fraction)
        self._mask_gens = [generator(s, "minibatch") for s in self.seed]
        # Targets are drawn per (seed, κ) in float64 on the CPU; U depends on the seed only.
        U, lam = [], []
        for s, k in zip(self.seed, self.kappa):
            if self.basis == "paired":
                U.append(covariance_basis(self.n, "paired", generator(s, "target")))
            else:
                U.append(low_rank_factors(self.n, self.n, self.r_star, generator(s, "target"), symmetric=True)[0])
            lam.append(make_spectrum(self.r_star, self.spectrum, k))
        self._U64 = torch.stack(U)  # (R, n, r*)
        self._lam64 = torch.stack(lam)  # (R, r*)
        M = (self._U64 * self._lam64.unsqueeze(-2)) @ self._U64.mT
        self._M = M.to(dtype=dtype, device=self.device)
        self._M_norm = self._lam64.norm(dim=-1).to(dtype=dtype, device=self.device)
        self._U = self._U64.to(dtype=dtype, device=self.device)
        self._lam = self._lam64.to(dtype=dtype, device=self.device)

    # --- Problem interface -------------------------------------------------------

    def init_params(self) -> list[Tensor]:
        X = []
        for s, a in zip(self.seed, self.alpha):
            g = generator(s, "init")
            if self.init == "gaussian":
                draw = torch.randn(self.n, self.r, generator=g, dtype=torch.float64, device="cpu")
                X.append(a * draw / math.sqrt(self.n))
            elif self.init == "orthonormal":
                X.append(a * random_orthonormal(self.n, self.r, g))
            elif self.init == "aligned":
                X.append(a * self._U64[len(X)] @ random_orthonormal(self.r, self.r_star, g).T)
            else:
                X.append(a * torch.eye(self.n, self.r, dtype=torch.float64, device="cpu"))
        return [torch.stack(X).to(dtype=self.dtype, device=self.device)]

    def _residual(self, X: Tensor) -> Tensor:
        return X @ X.mT - self._M

    def loss(self, params: Sequence[Tensor]) -> Tensor:
        (X,) = params
        return 0.25 * self._residual(X).square().sum((-2, -1))

    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        (X,) = params
        return [self._residual(X) @ X]

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        (X,) = params
        E = self._residual(X)
        return 0.25 * E.square().sum((-2, -1)), [E @ X]

    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        (X,) = params
        return torch.linalg.matrix_norm(self._residual(X)) / self._M_norm

    def evaluate(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        r"""Loss, gradient and relative error in O(n·r·r*) without forming the n×n residual.

        Split X = U A + Z with A = UᵀX (r*×r) and Z ⟂ range(U). Then
        E = XXᵀ − UΛUᵀ = U(AAᵀ − Λ)Uᵀ + UAZᵀ + ZAᵀUᵀ + ZZᵀ, whose four blocks are
        mutually orthogonal, so

        .. math:: \lVert E\rVert_F^2 = \lVert AA^\top - Λ\rVert_F^2
                  + 2\lVert ZA^\top\rVert_F^2 + \lVert Z^\top Z\rVert_F^2,
        .. math:: E X = U\big[(AA^\top - Λ)A + A Z^\top Z\big] + Z\big[A^\top A + Z^\top Z\big].

        Every term is a sum of non-negative parts or a small-matrix difference, so
        near the optimum this is as accurate as the dense residual (no cancellation
        between large terms), at a fraction of its cost and memory traffic.
        """
        (X,) = params
        U = self._U
        A = U.mT @ X
        Z = X - U @ A
        ZtZ = Z.mT @ Z
        core = A @ A.mT - torch.diag_embed(self._lam)
        sq = core.square().sum((-2, -1)) + 2 * (Z @ A.mT).square().sum((-2, -1)) + ZtZ.square().sum((-2, -1))
        grad = U @ (core @ A + A @ ZtZ) + Z @ (A.mT @ A + ZtZ)
        if self.entry_fraction is not None:
            grad = self.minibatch_grad(params, self.entry_mask())
        return 0.25 * sq, [grad], sq.sqrt() / self._M_norm

    # --- mini-batch gradients (issue 15 [beyond], docs/beyond_noise.md) ----------------

    @property
    def stochastic(self) -> bool:
        """True when :meth:`evaluate`'s gradient is a mini-batch estimate."""
        return self.entry_fraction is not None

    def entry_mask(self) -> Tensor:
        r"""A fresh symmetric 0/1 mask Ω per run, ``(R, n, n)``: each pair {i, j} (i ≤ j) is
        kept independently with probability p = ``entry_fraction``, Ω_ij = Ω_ji. Drawn in
        float64 on the CPU from each run's own stream ``"minibatch"`` (one n×n uniform draw
        per run per call), so a run's masks do not depend on its batch."""
        if self.entry_fraction is None:
            raise MuonlabError("entry_fraction: this problem uses the full gradient (entry_fraction not set)",
                               field="entry_fraction")
        masks = []
        for g in self._mask_gens:
            u = torch.rand(self.n, self.n, generator=g, dtype=torch.float64)
            keep = torch.triu(u < self.entry_fraction)
            masks.append(keep | keep.mT)
        return torch.stack(masks).to(dtype=self.dtype, device=self.device)

    def minibatch_grad(self, params: Sequence[Tensor], mask: Tensor) -> Tensor:
        r"""The mini-batch gradient on the entries in ``mask`` (R, n, n), symmetric 0/1:

        .. math:: \tilde G = \tfrac1p (Ω ∘ E)\,X,\qquad E = XX^\top - M^*.

        f = ¼ Σ_ij E_ij², and the loss on the sampled entries, f_Ω = ¼p⁻¹ Σ_ij Ω_ij E_ij²,
        has gradient (Ω∘E/p)X for symmetric Ω (the same computation as ∇f = EX with E
        replaced by Ω∘E/p). E[Ω_ij] = p, so E[G̃] = EX = ∇f: unbiased. The noise G̃ − ∇f =
        ((Ω/p − 1)∘E)X vanishes with E: it is multiplicative, so an exactly parameterized
        run (r ≥ r*, f* = 0) has no noise floor (interpolation).
        """
        (X,) = params
        p = float(self.entry_fraction if self.entry_fraction is not None else 1.0)
        return (mask * self._residual(X)) @ X / p

    def eigen_coordinates(self, params: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        r"""X's coordinates in M*'s eigenbasis and how far X is from the aligned form.

        With A = UᵀX and Z = X − UA: ``coords`` (R, r*) is diag(UᵀXXᵀU) = ‖A_i‖², which
        equals x_i² when X = U diag(x) Oᵀ (Lemma 3's aligned iterates, seed 001 eq. 12);
        ``residual`` (R,) is ‖XXᵀ − U diag(coords) Uᵀ‖_F / ‖M*‖_F, zero exactly in the
        aligned case, computed blockwise (‖AAᵀ − diag‖² + 2‖ZAᵀ‖² + ‖ZᵀZ‖²) so that
        rounding-level misalignment is resolved rather than cancelled away.
        """
        (X,) = params
        A = self._U.mT @ X
        Z = X - self._U @ A
        AAt = A @ A.mT
        coords = torch.diagonal(AAt, dim1=-2, dim2=-1)
        off = (AAt - torch.diag_embed(coords)).square().sum((-2, -1))
        sq = off + 2 * (Z @ A.mT).square().sum((-2, -1)) + (Z.mT @ Z).square().sum((-2, -1))
        return coords, sq.sqrt() / self._M_norm

    def optimum_loss(self) -> Tensor:
        tail = self._lam64[:, self.r :]  # empty when r >= r*
        return (0.25 * tail.square().sum(-1)).to(dtype=self.dtype, device=self.device)

    def minimizer(self) -> list[Tensor]:
        """X* = [U_k diag(√λ_k), 0] with k = min(r, r*): the top-k eigenpairs, zero columns after."""
        k = min(self.r, self.r_star)
        X = torch.zeros(self.n_runs, self.n, self.r, dtype=torch.float64, device="cpu")
        X[:, :, :k] = self._U64[:, :, :k] * self._lam64[:, :k].sqrt().unsqueeze(-2)
        return [X.to(dtype=self.dtype, device=self.device)]

    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        (X,) = params
        return X @ X.mT

    def target(self) -> Tensor:
        return self._M

    def target_spectrum(self) -> Tensor:
        """The eigenvalues λ of M* per run, descending, ``(R, r*)``."""
        return self._lam64.to(dtype=self.dtype, device=self.device)
