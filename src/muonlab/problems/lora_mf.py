r"""P4: LoRA-style matrix factorization — seed 000.

Kang, Yun, Shin, Cho & Yun, *Uniform Spectral Growth and Convergence of Muon in
LoRA-Style Matrix Factorization* (arXiv 2602.06385): SpecGD / SpecGF on
A ∈ R^{m×r}, B ∈ R^{r×n} from the LoRA initialization A_0 = 0, B_0 = γ·N(0,1).

Target W* = U diag(σ*) Vᵀ (Haar U, V; rank r*; σ* log-spaced 1..1/κ by default).

    f(A, B) = ½ ‖W* − AB‖²_F + (ℓ2/2)(‖A‖²_F + ‖B‖²_F),
    ∇_A f = E Bᵀ + ℓ2 A,   ∇_B f = Aᵀ E + ℓ2 B,   E = AB − W*.

**Optimum.** For ℓ2 = 0 it is the Eckart–Young tail ½ Σ_{i>r} σ*_i². For ℓ2 > 0:
for any factorization Z = AB, ½(‖A‖² + ‖B‖²) ≥ ‖Z‖_* with equality for balanced
factors (A = U_Z √S, B = √S V_Zᵀ), so

    min f = min_{rank Z ≤ r} ½‖W* − Z‖²_F + ℓ2 ‖Z‖_*.

By von Neumann's trace inequality the minimizing Z shares W*'s singular vectors, so
the problem splits into modes: with s ≥ 0 the singular value given to mode i,
½(σ_i − s)² + ℓ2 s is minimized at s = (σ_i − ℓ2)_+ with value

    ℓ2 σ_i − ℓ2²/2   (σ_i > ℓ2),        ½ σ_i²   (σ_i ≤ ℓ2, mode switched off),

and a mode left out (rank budget) costs ½σ_i². Keeping a mode saves ½(σ_i − ℓ2)_+²,
increasing in σ_i, so the r kept modes are the top r:

    f* = Σ_{i ≤ min(r, r*)} [σ_i > ℓ2 ? ℓ2σ_i − ℓ2²/2 : ½σ_i²] + Σ_{i > r} ½σ_i²
       = ½‖σ*‖² − ½ Σ_{i ≤ r} (σ_i − ℓ2)_+²,

attained by A = U_r diag(√s), B = diag(√s) V_rᵀ (soft-thresholded, balanced). We
sum the per-mode form, which is exactly 0 for ℓ2 = 0, r ≥ r* (no cancellation).

Relative error ‖AB − W*‖_F / ‖W*‖_F (nonzero at the optimum when ℓ2 > 0).

**Initializations** (``init``; seed 000 Thm 6.2, App. D.3–D.4): ``zero_a`` (default,
the LoRA init A_0 = 0, B_0 = γ·N(0,1)); ``random`` (A_0 = γ·N(0,1) too, from its own
stream); ``saddle`` (the balanced minimizer with target mode ``saddle_mode`` — 0-based
among the kept min(r, r*) modes — removed: A's column and B's row of that mode are 0,
so AB = W* minus that mode, a critical point that is not a minimum, since
∇_A f = E Bᵀ + ℓ2 A and ∇_B f = Aᵀ E + ℓ2 B vanish when E = −σ*_j u_j v_jᵀ is
orthogonal to the factors' spans); ``minimum`` (the balanced minimizer). ``saddle``
and ``minimum`` add a Gaussian perturbation (P_A, P_B) rescaled so that
sqrt(‖P_A‖² + ‖P_B‖²) = γ · sqrt(‖A*‖² + ‖B*‖²): there γ is the perturbation's size
relative to the minimizer's norm (its own random stream). γ is thus the init's scale
in every case, and per run (one batch may mix scales).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from muonlab.errors import MuonlabError
from muonlab.problems import _fields
from muonlab.problems.base import Problem
from muonlab.problems.targets import SPECTRA, generator, low_rank_factors
from muonlab.problems.targets import spectrum as make_spectrum

__all__ = ["INITS", "LoRAMF"]

#: Initializations of :class:`LoRAMF` (the first is the default).
INITS = ("zero_a", "random", "saddle", "minimum")


class LoRAMF(Problem):
    """R runs of P4 (seed 000): f = ½‖W* − AB‖²_F + (ℓ2/2)(‖A‖² + ‖B‖²), params ``[A (m×r), B (r×n)]``.

    Args:
        m, n: target shape. r: adapter rank (≤ min(m, n)).
        r_star: target rank (≤ min(m, n); default r, or len(values) for ``list``).
        seed: int or one per run. kappa: σ*_1/σ*_{r*}, scalar or per run.
        spectrum: ``logspace`` | ``linspace`` | ``list``; values: σ* for ``list``.
        gamma: scale of B_0 = γ·N(0,1) (> 0), scalar or per run. l2: ridge weight ℓ2 ≥ 0.
        init: one of :data:`INITS` (None: ``zero_a``); for ``saddle``/``minimum``, γ is the
            perturbation's relative size. saddle_mode: the kept target mode missing
            from ``saddle`` (None: 0, the largest).
    """

    kind = "lora_mf"
    layout = "product"

    def __init__(
        self,
        m: int,
        n: int,
        r: int,
        r_star: int | None = None,
        *,
        seed: int | Sequence[int],
        kappa: float | Sequence[float] = 1.0,
        spectrum: str = "logspace",
        values: Sequence[float] | None = None,
        gamma: float | Sequence[float] = 1e-3,
        l2: float = 0.0,
        init: str | None = None,
        saddle_mode: int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.seed = _fields.seeds(seed)
        super().__init__(len(self.seed), dtype, device)
        self.m = _fields.integer("m", m)
        self.n = _fields.integer("n", n)
        small = min(self.m, self.n)
        self.r = _fields.integer("r", r, upper=small, upper_name="min(m, n)")
        self.kappa = _fields.per_run("kappa", kappa, self.n_runs, lower=1.0)
        self.gamma = _fields.per_run("gamma", gamma, self.n_runs, lower=0.0, strict=True)
        self.l2 = _fields.real("l2", l2, lower=0.0)
        self.spectrum = _fields.choice("spectrum", spectrum, SPECTRA)
        if self.spectrum == "list":
            self.values: tuple[float, ...] | None = _fields.values_list("values", values)
            if r_star is None:
                r_star = len(self.values)
        elif values is not None:
            raise MuonlabError(f"values: only used with spectrum 'list', not {self.spectrum!r}", field="values")
        else:
            self.values = None
        self.r_star = (
            self.r if r_star is None else _fields.integer("r_star", r_star, upper=small, upper_name="min(m, n)")
        )
        if self.values is not None and len(self.values) != self.r_star:
            raise MuonlabError(f"values: need r_star ({self.r_star}) values, got {len(self.values)}", field="values")

        U, V, sig = [], [], []
        for s, k in zip(self.seed, self.kappa):
            u, v = low_rank_factors(self.m, self.n, self.r_star, generator(s, "target"))
            U.append(u)
            V.append(v)
            sig.append(make_spectrum(self.r_star, self.spectrum, k, self.values))
        self._U64, self._V64, self._sig64 = torch.stack(U), torch.stack(V), torch.stack(sig)
        self.init = _fields.choice("init", INITS[0] if init is None else init, INITS)
        kept = min(self.r, self.r_star)
        if saddle_mode is not None and self.init != "saddle":
            raise MuonlabError(f"saddle_mode: only used with init 'saddle', not {self.init!r}", field="saddle_mode")
        self.saddle_mode = 0 if saddle_mode is None else _fields.integer(
            "saddle_mode", saddle_mode, lower=0, upper=kept - 1, upper_name="min(r, r_star) − 1")
        W = (self._U64 * self._sig64.unsqueeze(-2)) @ self._V64.mT
        self._W = W.to(dtype=dtype, device=self.device)
        self._W_norm = self._sig64.norm(dim=-1).to(dtype=dtype, device=self.device)

    # --- Problem interface -------------------------------------------------------

    def init_params(self) -> list[Tensor]:
        if self.init in ("saddle", "minimum"):
            return self._near_critical_init()
        B = [g * torch.randn(self.r, self.n, generator=generator(s, "init"), dtype=torch.float64, device="cpu")
             for s, g in zip(self.seed, self.gamma)]
        if self.init == "random":
            A = torch.stack([g * torch.randn(self.m, self.r, generator=generator(s, "init_a"), dtype=torch.float64,
                                             device="cpu") for s, g in zip(self.seed, self.gamma)])
        else:
            A = torch.zeros(self.n_runs, self.m, self.r, dtype=torch.float64, device="cpu")
        return [A.to(dtype=self.dtype, device=self.device), torch.stack(B).to(dtype=self.dtype, device=self.device)]

    def _near_critical_init(self) -> list[Tensor]:
        """``saddle``/``minimum``: the balanced minimizer (mode ``saddle_mode`` removed for a
        saddle) plus a Gaussian perturbation of joint Frobenius norm γ·‖(A*, B*)‖_F."""
        A, B = (p.to(dtype=torch.float64, device="cpu") for p in self.minimizer())
        gamma = torch.tensor(self.gamma, dtype=torch.float64)
        scale = gamma * (A.square().sum((-2, -1)) + B.square().sum((-2, -1))).sqrt()  # (R,)
        if self.init == "saddle":
            j = self.saddle_mode
            A[:, :, j] = 0.0
            B[:, j, :] = 0.0
        PA, PB = [], []
        for s in self.seed:
            g = generator(s, "perturb")
            PA.append(torch.randn(self.m, self.r, generator=g, dtype=torch.float64, device="cpu"))
            PB.append(torch.randn(self.r, self.n, generator=g, dtype=torch.float64, device="cpu"))
        pa, pb = torch.stack(PA), torch.stack(PB)
        norm = (pa.square().sum((-2, -1)) + pb.square().sum((-2, -1))).sqrt()
        k = (scale / norm).view(-1, 1, 1)
        A, B = A + k * pa, B + k * pb
        return [A.to(dtype=self.dtype, device=self.device), B.to(dtype=self.dtype, device=self.device)]

    def _residual(self, A: Tensor, B: Tensor) -> Tensor:
        return A @ B - self._W

    def _ridge(self, A: Tensor, B: Tensor) -> Tensor:
        return 0.5 * self.l2 * (A.square().sum((-2, -1)) + B.square().sum((-2, -1)))

    def loss(self, params: Sequence[Tensor]) -> Tensor:
        A, B = params
        f = 0.5 * self._residual(A, B).square().sum((-2, -1))
        return f + self._ridge(A, B) if self.l2 else f

    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        return self.loss_and_grad(params)[1]

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        A, B = params
        E = self._residual(A, B)
        f = 0.5 * E.square().sum((-2, -1))
        gA, gB = E @ B.mT, A.mT @ E
        if self.l2:
            f = f + self._ridge(A, B)
            gA, gB = gA + self.l2 * A, gB + self.l2 * B
        return f, [gA, gB]

    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        A, B = params
        return torch.linalg.matrix_norm(self._residual(A, B)) / self._W_norm

    def optimum_loss(self) -> Tensor:
        sig, l2 = self._sig64, self.l2
        within_rank = torch.arange(self.r_star, device="cpu") < self.r
        on = within_rank & (sig > l2)  # modes the minimizer keeps (soft-thresholded)
        per_mode = torch.where(on, l2 * sig - 0.5 * l2 * l2, 0.5 * sig.square())
        return per_mode.sum(-1).to(dtype=self.dtype, device=self.device)

    def minimizer(self) -> list[Tensor]:
        """A = U_k diag(√s), B = diag(√s) V_kᵀ with s = (σ* − ℓ2)_+ on the top k = min(r, r*) modes."""
        k = min(self.r, self.r_star)
        root = (self._sig64[:, :k] - self.l2).clamp_min(0.0).sqrt()
        A = torch.zeros(self.n_runs, self.m, self.r, dtype=torch.float64, device="cpu")
        B = torch.zeros(self.n_runs, self.r, self.n, dtype=torch.float64, device="cpu")
        A[:, :, :k] = self._U64[:, :, :k] * root.unsqueeze(-2)
        B[:, :k, :] = root.unsqueeze(-1) * self._V64[:, :, :k].mT
        return [A.to(dtype=self.dtype, device=self.device), B.to(dtype=self.dtype, device=self.device)]

    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        A, B = params
        return A @ B

    def target(self) -> Tensor:
        return self._W

    def target_spectrum(self) -> Tensor:
        return self._sig64.to(dtype=self.dtype, device=self.device)
