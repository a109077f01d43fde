r"""P5: matrix linear regression with ill-conditioned inputs — seed 003's open question 1.

Does Muon's κ-free behaviour on seed 001's problems (Ma, Huang, Chi & Chen, arXiv
2601.13474) survive min_W ½‖WX − Y‖²_F when XXᵀ is ill-conditioned? We report, we
don't assume.

Data (per run): inputs X ∈ R^{d_in×N} (stream ``"data"``) with second moment
S = XXᵀ/N = Q diag(λ) Qᵀ exactly (Haar Q, λ log-spaced 1..1/κ; a whitened Gaussian
sample colored by S^{1/2}); a teacher W* ∈ R^{d_out×d_in} with all singular values 1
(Haar semi-orthogonal, stream ``"target"``), so the only ill-conditioning is the
data's; labels Y = W* X + noise·Ξ with Ξ ~ N(0,1) (stream ``"noise"``).

**Normalization.** f(W) = ½‖WX − Y‖²_F / N (the per-sample mean, so N only
sets the sample size, not the scale), ∇f = (WX − Y)Xᵀ/N = W S − YXᵀ/N.

**Optimum.** The normal equations W S = YXᵀ/N give W_opt = W* + noise·(ΞXᵀ/N) S⁻¹
(= W* exactly when noise = 0) and f* = ½‖W_opt X − Y‖²_F/N. Since the cross term
vanishes at W_opt,

    f(W) = f* + ½ tr(Δ S Δᵀ),   Δ = W − W_opt,   ∇f = Δ S,

which is how :meth:`MatrixRegression.loss` evaluates f: the same function, but
without the cancellation that would floor the loss near 1e-16·‖Y‖² (runs go to
relative errors of 1e-12). :meth:`MatrixRegression.data_loss` evaluates it from
the data; the tests check the two agree. Hessian Δ ↦ ΔS: condition number κ.
Relative error ‖W − W_opt‖_F / ‖W_opt‖_F; W_0 = 0.

**Options (issue 15; docs/beyond_regression.md).** All default to the setting above, which
they leave bit for bit unchanged:

* ``rank`` r ≤ min(d_out, d_in): the teacher W* = U diag(s) Vᵀ has rank r (Haar U, V from
  stream ``"target"``), so Y = W*X has rank r;
* ``teacher_kappa`` κ_W ≥ 1: its singular values s are log-spaced from 1 to 1/κ_W
  (default: all 1). With either option set, W* is drawn as U diag(s) Vᵀ; with neither,
  it is the Haar semi-orthogonal matrix above (same draws as before the options);
* ``init_scale`` α: W_0 = α·N(0,1)/sqrt(d_in) from stream ``"init"`` instead of 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from muonlab.errors import MuonlabError
from muonlab.problems import _fields
from muonlab.problems.base import Problem
from muonlab.problems.targets import (
    exact_covariance_design,
    generator,
    random_orthonormal,
    semi_orthogonal,
)
from muonlab.problems.targets import spectrum as make_spectrum

__all__ = ["MatrixRegression"]


class MatrixRegression(Problem):
    """R runs of P5: f(W) = ½‖WX − Y‖²_F / N, W ∈ R^{d_out×d_in}, W_0 = 0.

    Args:
        d_out, d_in: weight shape. n_samples: N (≥ d_in, so XXᵀ is invertible).
        seed: int or one per run. kappa: condition number of XXᵀ (≥ 1), scalar or per run.
        noise: label-noise standard deviation (≥ 0).
        rank: rank of the teacher W* (default min(d_out, d_in)).
        teacher_kappa: condition number of W*'s non-zero singular values, log-spaced
            from 1 (default 1: all equal).
        init_scale: W_0 = init_scale·N(0,1)/sqrt(d_in) (default: W_0 = 0).
    """

    kind = "regression"
    layout = "matrix"

    def __init__(
        self,
        d_out: int,
        d_in: int,
        n_samples: int,
        *,
        seed: int | Sequence[int],
        kappa: float | Sequence[float] = 1.0,
        noise: float = 0.0,
        rank: int | None = None,
        teacher_kappa: float | None = None,
        init_scale: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.seed = _fields.seeds(seed)
        super().__init__(len(self.seed), dtype, device)
        self.d_out = _fields.integer("d_out", d_out)
        self.d_in = _fields.integer("d_in", d_in)
        self.n_samples = _fields.integer("n_samples", n_samples)
        if self.n_samples < self.d_in:
            raise MuonlabError(
                f"n_samples: must be >= d_in ({self.d_in}) for XXᵀ to be invertible, got {self.n_samples}",
                field="n_samples",
            )
        self.kappa = _fields.per_run("kappa", kappa, self.n_runs, lower=1.0)
        self.noise = _fields.real("noise", noise, lower=0.0)
        small = min(self.d_out, self.d_in)
        self.rank = small if rank is None else _fields.integer("rank", rank, upper=small, upper_name="min(d_out, d_in)")
        self.teacher_kappa = 1.0 if teacher_kappa is None else _fields.real("teacher_kappa", teacher_kappa, lower=1.0)
        self.init_scale = 0.0 if init_scale is None else _fields.real("init_scale", init_scale, lower=0.0)
        plain_teacher = rank is None and teacher_kappa is None

        N = self.n_samples
        X, Y, S, W_opt, f_opt = [], [], [], [], []
        for s, k in zip(self.seed, self.kappa):
            if plain_teacher:
                W_star = semi_orthogonal(self.d_out, self.d_in, generator(s, "target"))
            else:
                gt = generator(s, "target")
                U, V = random_orthonormal(self.d_out, self.rank, gt), random_orthonormal(self.d_in, self.rank, gt)
                W_star = (U * make_spectrum(self.rank, "logspace", self.teacher_kappa)) @ V.T
            g = generator(s, "data")
            Q = random_orthonormal(self.d_in, self.d_in, g)
            lam = make_spectrum(self.d_in, "logspace", k)
            x = exact_covariance_design(N, (Q * lam.sqrt()) @ Q.T, g).T  # (d_in, N)
            y = W_star @ x
            w_opt, fo = W_star, torch.zeros((), dtype=torch.float64, device="cpu")
            if self.noise > 0:
                xi = torch.randn(self.d_out, N, generator=generator(s, "noise"), dtype=torch.float64, device="cpu")
                y = y + self.noise * xi
                # S⁻¹ from the eigendecomposition: exact to rounding, no inverse of an ill-conditioned matrix
                w_opt = W_star + self.noise * (xi @ x.T / N) @ ((Q / lam) @ Q.T)
                fo = 0.5 * (w_opt @ x - y).square().sum() / N
            X.append(x)
            Y.append(y)
            S.append((Q * lam) @ Q.T)
            W_opt.append(w_opt)
            f_opt.append(fo)
        self._X64, self._Y64 = torch.stack(X), torch.stack(Y)
        self._S = self._cast(torch.stack(S))
        W_opt64 = torch.stack(W_opt)
        self._W_opt = self._cast(W_opt64)
        self._W_opt_norm = self._cast(torch.linalg.matrix_norm(W_opt64))
        self._sv = self._cast(torch.linalg.svdvals(W_opt64))
        self._f_opt = self._cast(torch.stack(f_opt))

    def _cast(self, t: Tensor) -> Tensor:
        return t.to(dtype=self.dtype, device=self.device)

    # --- Problem interface -------------------------------------------------------

    def init_params(self) -> list[Tensor]:
        if self.init_scale == 0.0:
            return [torch.zeros(self.n_runs, self.d_out, self.d_in, dtype=self.dtype, device=self.device)]
        W0 = [self.init_scale * torch.randn(self.d_out, self.d_in, generator=generator(s, "init"), dtype=torch.float64,
                                            device="cpu") / self.d_in**0.5 for s in self.seed]
        return [self._cast(torch.stack(W0))]

    def loss(self, params: Sequence[Tensor]) -> Tensor:
        (W,) = params
        D = W - self._W_opt
        return self._f_opt + 0.5 * (D * (D @ self._S)).sum((-2, -1))

    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        (W,) = params
        return [(W - self._W_opt) @ self._S]

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        (W,) = params
        DS = (W - self._W_opt) @ self._S
        return self._f_opt + 0.5 * ((W - self._W_opt) * DS).sum((-2, -1)), [DS]

    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        (W,) = params
        return torch.linalg.matrix_norm(W - self._W_opt) / self._W_opt_norm

    def optimum_loss(self) -> Tensor:
        return self._f_opt.clone()

    def minimizer(self) -> list[Tensor]:
        return [self._W_opt.clone()]

    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        (W,) = params
        return W

    def target(self) -> Tensor:
        """W_opt, the least-squares solution (W* itself when noise = 0)."""
        return self._W_opt

    def target_spectrum(self) -> Tensor:
        """Singular values of W_opt (those of W* when noise = 0: all 1 by default)."""
        return self._sv

    # --- the data view -------------------------------------------------------------

    def data(self) -> tuple[Tensor, Tensor]:
        """(X (R, d_in, N), Y (R, d_out, N))."""
        return self._cast(self._X64), self._cast(self._Y64)

    def data_loss(self, params: Sequence[Tensor]) -> Tensor:
        """½‖WX − Y‖²_F / N evaluated from the data (equal to :meth:`loss` up to rounding)."""
        (W,) = params
        X, Y = self.data()
        return 0.5 * (W @ X - Y).square().sum((-2, -1)) / self.n_samples

    def covariance_matrix(self) -> Tensor:
        """S = XXᵀ/N, (R, d_in, d_in), from its eigendecomposition."""
        return self._S
