r"""P2: in-context learning of a one-layer linear transformer — seed 001 §2.2, App. D–E.

Ma, Huang, Chi & Chen, *Preconditioning Benefits of Spectral Orthogonalization in
Muon* (arXiv 2601.13474), eqs. (19)–(25), Theorems 3–4, Appendix D (the ICL
derivation) and Appendix E (SignGD's hard instance).

**Setting (fixed design).** A fixed support set x_1, …, x_N ∈ R^d with empirical
second moment Σ = (1/N) Σ_i x_i x_iᵀ ≻ 0 (eq. 19). A task is w ~ N(0, I_d) with
noiseless labels y_i = wᵀx_i; the query x_q is uniform on the support set and its
label is y_q = wᵀx_q. The predictor, with meta-parameter Γ ∈ R^{d×d}, is

    ŷ = x_qᵀ Γ h,    h = (1/N) Σ_i y_i x_i  (= Σ w, because y_i = x_iᵀ w).

**Closed-form loss (eq. 20).** With A = ΓΣ − I the error is ŷ − y_q = x_qᵀ A w, so

    E_w[½(ŷ − y_q)²] = ½ x_qᵀ A Aᵀ x_q           (E[wwᵀ] = I),
    E_{x_q}[·]        = ½ tr(A Aᵀ (1/N)Σ_i x_i x_iᵀ) = ½ tr((ΓΣ − I)(ΓΣ − I)ᵀ Σ) = f(Γ).

So SPEC's f needs no extra normalization: it *is* the expected squared prediction
risk ½E(ŷ − y_q)² over tasks and queries (:meth:`InContextRegression.mc_loss`
estimates it from sampled prompts; the tests check agreement within 4 standard
errors). Differentiating, df = tr(dΓ Σ Aᵀ Σ), so

    ∇f(Γ) = Σ (ΓΣ − I) Σ,    Hessian: Γ ↦ Σ Γ Σ²,

with eigenvalues λ_i λ_j² — effective condition number κ(Σ)³ (eq. 21), minimizer
Γ* = Σ⁻¹ (unique), f* = 0. SPEC's formulas check out (gradient tested against
autograd). Γ_0 = 0, where f(0) = ½ tr Σ.

**Relative error** (our choice; the seed's accuracy criterion was lost in
extraction): ‖Γ − Σ⁻¹‖_F / ‖Σ⁻¹‖_F, the parameter-space distance to the unique
minimizer, normalized so that Γ_0 = 0 has error 1. It is dominated by the
small-eigenvalue directions of Σ (Σ⁻¹ has norm ~κ), which are exactly the slow
directions for GD, so it is the stricter of the natural choices.

**Covariance.** Σ = Q diag(λ) Qᵀ, λ log-spaced from 1 to 1/κ; ``rotated``: Q Haar
(a generic rotation of a diagonal spectrum, the family of App. E's instance);
``diagonal``: Q = I; ``paired``: our reconstruction of App. E's construction
(45° rotations pairing λ_i with λ_{d+1−i}; see :func:`targets.covariance_basis`).
The design (stream ``"data"``) is a whitened-then-colored Gaussian sample, so its
empirical second moment equals Σ to rounding.

**Transformer realization (App. D).** Tokens z_i = (x_i, y_i), z_q = (x_q, 0)
stacked as Z ∈ R^{(d+1)×(N+1)}; one linear-attention layer (no softmax, key/query
merged into W^{KQ}, projection/value merged into W^{PV}, the query masked out as a
key) outputs Z + W^{PV} Z M (Zᵀ W^{KQ} Z)/N, M = diag(1_N, 0). With
W^{PV} = [[0, 0], [0, 1]] and W^{KQ} = [[K, 0], [0, 0]] its bottom-right entry is
(1/N) Σ_i y_i x_iᵀ K x_q = x_qᵀ Kᵀ h, i.e. the Γ-predictor with Γ = Kᵀ
(:class:`LinearAttention`, :func:`gamma_from_attention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from muonlab.errors import MuonlabError
from muonlab.problems import _fields
from muonlab.problems.base import Problem
from muonlab.problems.targets import (
    COVARIANCES,
    covariance_basis,
    exact_covariance_design,
    generator,
)
from muonlab.problems.targets import spectrum as make_spectrum

__all__ = ["InContextRegression", "LinearAttention", "Prompts", "attention_from_gamma", "gamma_from_attention"]


@dataclass
class Prompts:
    """A batch of P sampled prompts per run (leading dims ``(R, P)``).

    ``w`` (R, P, d) tasks; ``y`` (R, P, N) context labels on the fixed design;
    ``query_index`` (R, P) the query's position in the design; ``x_q`` (R, P, d) and
    ``y_q`` (R, P) the query and its label; ``design`` (R, N, d) the support set.
    """

    w: Tensor
    y: Tensor
    query_index: Tensor
    x_q: Tensor
    y_q: Tensor
    design: Tensor

    def context(self) -> Tensor:
        """h = (1/N) Σ_i y_i x_i, shape (R, P, d) — what the transformer's attention aggregates."""
        return self.y @ self.design / self.design.shape[-2]

    def tokens(self) -> Tensor:
        """The embedded prompts Z (R, P, d+1, N+1): columns (x_i; y_i), last column (x_q; 0)."""
        R, P, N = self.y.shape
        d = self.x_q.shape[-1]
        Z = self.y.new_zeros(R, P, d + 1, N + 1)
        Z[..., :d, :N] = self.design.mT.unsqueeze(1)
        Z[..., d, :N] = self.y
        Z[..., :d, N] = self.x_q
        return Z


class InContextRegression(Problem):
    """R runs of P2 (seed 001): f(Γ) = ½ tr((ΓΣ − I)(ΓΣ − I)ᵀ Σ), Γ ∈ R^{d×d}, Γ_0 = 0.

    Args:
        d: dimension. seed: int or one per run.
        kappa: condition number of Σ (≥ 1), scalar or per run.
        covariance: ``rotated`` | ``diagonal`` | ``paired`` (eigenbasis of Σ).
        n_design: support-set size N (≥ d; default 4d).
        prompts: None (default): the closed-form expected loss f(Γ) and its gradient.
            An integer P: :meth:`evaluate` / :meth:`loss_and_grad` return the Monte-Carlo
            training loss ½(1/P) Σ_p (ŷ_p − y_q,p)² over P sampled prompts and its exact
            gradient (App. D's meta-learning protocol, as a transformer is trained);
            :meth:`loss` and :meth:`rel_err` stay the population quantities.
        prompt_sampling: ``fresh`` (default with ``prompts``): P new prompts at every
            step, from each run's own stream ``"prompts"`` (a run's draws do not depend
            on its batch); ``fixed``: one set of P prompts per run, drawn once (training
            on a finite prompt set, i.e. empirical risk).
    """

    kind = "icl"
    layout = "matrix"

    def __init__(
        self,
        d: int,
        *,
        seed: int | Sequence[int],
        kappa: float | Sequence[float] = 1.0,
        covariance: str = "rotated",
        n_design: int | None = None,
        prompts: int | None = None,
        prompt_sampling: str | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.seed = _fields.seeds(seed)
        super().__init__(len(self.seed), dtype, device)
        self.d = _fields.integer("d", d)
        self.kappa = _fields.per_run("kappa", kappa, self.n_runs, lower=1.0)
        self.covariance = _fields.choice("covariance", covariance, COVARIANCES)
        if n_design is None:
            n_design = 4 * self.d
        self.n_design = _fields.integer("n_design", n_design)
        if self.n_design < self.d:
            raise MuonlabError(
                f"n_design: must be >= d ({self.d}) for Σ to be invertible, got {self.n_design}", field="n_design"
            )

        Q, lam, X = [], [], []
        for s, k in zip(self.seed, self.kappa):
            q = covariance_basis(self.d, self.covariance, generator(s, "target"))
            l = make_spectrum(self.d, "logspace", k)
            Q.append(q)
            lam.append(l)
            X.append(exact_covariance_design(self.n_design, (q * l.sqrt()) @ q.T, generator(s, "data")))
        self._Q64 = torch.stack(Q)
        self._lam64 = torch.stack(lam)
        # Σ and Σ⁻¹ from the eigendecomposition, not from the design or an inverse: exact to rounding.
        Sigma = (self._Q64 * self._lam64.unsqueeze(-2)) @ self._Q64.mT
        Sigma_inv = (self._Q64 / self._lam64.unsqueeze(-2)) @ self._Q64.mT
        self._design64 = torch.stack(X)  # (R, N, d), rows x_i
        self._Sigma = self._cast(Sigma)
        self._Sigma_inv = self._cast(Sigma_inv)
        self._Sigma_inv_norm = self._cast((1.0 / self._lam64).norm(dim=-1))
        self._eye = torch.eye(self.d, dtype=dtype, device=self.device)

        self.prompts = None if prompts is None else _fields.integer("prompts", prompts)
        if prompt_sampling is not None and self.prompts is None:
            raise MuonlabError("prompt_sampling: only used with prompts (a number of prompts)", field="prompt_sampling")
        self.prompt_sampling = _fields.choice(
            "prompt_sampling", prompt_sampling or "fresh", ("fresh", "fixed")
        )
        self._prompt_gens = [generator(s, "prompts") for s in self.seed]
        self._fixed: tuple[Tensor, Tensor, Tensor] | None = None
        if self.prompts is not None and self.prompt_sampling == "fixed":
            self._fixed = self._draw(self.prompts)

    def _cast(self, t: Tensor) -> Tensor:
        return t.to(dtype=self.dtype, device=self.device)

    # --- Problem interface -------------------------------------------------------

    def init_params(self) -> list[Tensor]:
        return [torch.zeros(self.n_runs, self.d, self.d, dtype=self.dtype, device=self.device)]

    def _residual(self, G: Tensor) -> Tensor:
        return G @ self._Sigma - self._eye  # A = ΓΣ − I

    def loss(self, params: Sequence[Tensor]) -> Tensor:
        (G,) = params
        A = self._residual(G)
        # tr(A Aᵀ Σ) = tr(Aᵀ Σ A) = Σ_ij A_ij (ΣA)_ij
        return 0.5 * (A * (self._Sigma @ A)).sum((-2, -1))

    def grad(self, params: Sequence[Tensor]) -> list[Tensor]:
        (G,) = params
        return [self._Sigma @ self._residual(G) @ self._Sigma]

    def loss_and_grad(self, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        (G,) = params
        if self.prompts is not None:  # the Monte-Carlo training loss on this step's prompts
            loss, grad = self.prompt_loss_and_grad(G, *self.training_prompts())
            return loss, [grad]
        A = self._residual(G)
        SA = self._Sigma @ A
        return 0.5 * (A * SA).sum((-2, -1)), [SA @ self._Sigma]

    def rel_err(self, params: Sequence[Tensor]) -> Tensor:
        (G,) = params
        return torch.linalg.matrix_norm(G - self._Sigma_inv) / self._Sigma_inv_norm

    def optimum_loss(self) -> Tensor:
        return torch.zeros(self.n_runs, dtype=self.dtype, device=self.device)

    def minimizer(self) -> list[Tensor]:
        return [self._Sigma_inv.clone()]

    def end_to_end(self, params: Sequence[Tensor]) -> Tensor:
        (G,) = params
        return G

    def target(self) -> Tensor:
        """Γ* = Σ⁻¹, the unique minimizer."""
        return self._Sigma_inv

    def target_spectrum(self) -> Tensor:
        """Singular values of Σ⁻¹ (= 1/λ), descending."""
        return self._cast(torch.flip(1.0 / self._lam64, dims=(-1,)))

    # --- Monte-Carlo training (App. D's protocol) ------------------------------------

    @property
    def stochastic(self) -> bool:
        """True when the training loss and gradient come from sampled prompts."""
        return self.prompts is not None

    def _draw(self, n_prompts: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_q, h, y_q)`` of P prompts per run, each run from its own stream, float64 CPU draws.

        w ~ N(0, I_d), query index uniform on the design, h = (1/N) Σ_i y_i x_i with
        y_i = wᵀx_i computed from the design itself (so h = Σ_design w to rounding), and
        y_q = wᵀx_q. Shapes (R, P, d), (R, P, d), (R, P).
        """
        N, d = self.n_design, self.d
        xs, hs, ys = [], [], []
        for r, g in enumerate(self._prompt_gens):
            w = torch.randn(n_prompts, d, generator=g, dtype=torch.float64)
            q = torch.randint(N, (n_prompts,), generator=g)
            X = self._design64[r]
            y = w @ X.T  # (P, N)
            xs.append(X[q])
            hs.append(y @ X / N)
            ys.append(y.gather(1, q.unsqueeze(1)).squeeze(1))
        return self._cast(torch.stack(xs)), self._cast(torch.stack(hs)), self._cast(torch.stack(ys))

    def training_prompts(self) -> tuple[Tensor, Tensor, Tensor]:
        """The prompts of the next training step: the fixed set, or P fresh ones (advances the streams)."""
        if self.prompts is None:
            raise MuonlabError("prompts: this problem uses the closed-form loss (prompts not set)", field="prompts")
        return self._fixed if self._fixed is not None else self._draw(self.prompts)

    @staticmethod
    def prompt_loss_and_grad(Gamma: Tensor, x_q: Tensor, h: Tensor, y_q: Tensor) -> tuple[Tensor, Tensor]:
        """Mean prompt loss L = (1/2P) Σ_p (x_pᵀ Γ h_p − y_p)² and ∇_Γ L = (1/P) Σ_p e_p x_p h_pᵀ.

        Γ (R, d, d); x_q, h (R, P, d); y_q (R, P). The gradient: dL = (1/P) Σ e_p x_pᵀ dΓ h_p
        = tr(dΓ · (1/P) Σ e_p h_p x_pᵀ), so ∇L = (1/P) Σ e_p x_p h_pᵀ (tested against autograd
        through :class:`LinearAttention`, whose K = Γᵀ).
        """
        P = x_q.shape[-2]
        e = (x_q * (h @ Gamma.mT)).sum(-1) - y_q  # (R, P)
        return 0.5 * e.square().mean(-1), (x_q * e.unsqueeze(-1)).mT @ h / P

    # --- the ICL view --------------------------------------------------------------

    def covariance_matrix(self) -> Tensor:
        """Σ, shape (R, d, d)."""
        return self._Sigma

    def eigenvalues(self) -> Tensor:
        """λ(Σ), descending, shape (R, d)."""
        return self._cast(self._lam64)

    def design(self) -> Tensor:
        """The fixed support set, rows x_i, shape (R, N, d); (1/N) Xᵀ X = Σ to rounding."""
        return self._cast(self._design64)

    def sample_prompts(self, n_prompts: int, generator: torch.Generator | None) -> Prompts:
        """P = ``n_prompts`` prompts per run: w ~ N(0, I_d), y_i = wᵀx_i, x_q uniform on the design.

        Draws happen on the CPU in float64 from ``generator`` (None: torch's global RNG).
        """
        P = _fields.integer("n_prompts", n_prompts)
        R, N = self.n_runs, self.n_design
        w = torch.randn(R, P, self.d, generator=generator, dtype=torch.float64, device="cpu")
        q = torch.randint(N, (R, P), generator=generator, device="cpu")
        y = w @ self._design64.mT  # (R, P, N)
        x_q = torch.gather(self._design64, 1, q.unsqueeze(-1).expand(R, P, self.d))
        y_q = torch.gather(y, 2, q.unsqueeze(-1)).squeeze(-1)
        return Prompts(
            w=self._cast(w),
            y=self._cast(y),
            query_index=q.to(self.device),
            x_q=self._cast(x_q),
            y_q=self._cast(y_q),
            design=self.design(),
        )

    def prompt_losses(self, Gamma: Tensor | Sequence[Tensor], prompts: Prompts) -> Tensor:
        """½(ŷ − y_q)² per prompt, ŷ = x_qᵀ Γ (1/N) Σ_i y_i x_i; shape (R, P)."""
        G = Gamma if isinstance(Gamma, Tensor) else Gamma[0]
        h = prompts.context()
        y_hat = (prompts.x_q * (h @ G.mT)).sum(-1)  # x_qᵀ Γ h, batched over (R, P)
        return 0.5 * (y_hat - prompts.y_q).square()

    def mc_loss(
        self,
        Gamma: Tensor | Sequence[Tensor],
        n_prompts: int,
        generator: torch.Generator | None,
        chunk: int = 8192,
    ) -> tuple[Tensor, Tensor]:
        """Monte-Carlo estimate of f(Γ) = E ½(ŷ − y_q)² from sampled prompts: (mean, stderr), each (R,).

        Sampled in chunks of ``chunk`` prompts to bound memory; moments accumulate in float64.
        """
        total = _fields.integer("n_prompts", n_prompts)
        s1 = torch.zeros(self.n_runs, dtype=torch.float64, device="cpu")
        s2 = torch.zeros(self.n_runs, dtype=torch.float64, device="cpu")
        done = 0
        while done < total:
            p = min(chunk, total - done)
            losses = self.prompt_losses(Gamma, self.sample_prompts(p, generator)).detach().to("cpu", torch.float64)
            s1 += losses.sum(-1)
            s2 += losses.square().sum(-1)
            done += p
        mean = s1 / total
        var = (s2 - total * mean.square()).clamp_min(0.0) / max(total - 1, 1)
        return self._cast(mean), self._cast((var / total).sqrt())


class LinearAttention(nn.Module):
    """One-layer linear-attention transformer in seed 001's App. D parameterization.

    Output Z + W^{PV} Z M (Zᵀ W^{KQ} Z)/N on prompts Z (…, d+1, N+1) with the query in
    the last column and M = diag(1_N, 0) (the query is not a key). W^{PV} is fixed to
    [[0, 0], [0, 1]] (only the label row carries values) and W^{KQ} = [[K, 0], [0, 0]]
    with the trainable block K (d×d), as in Huang et al. (2023) and App. D; then the
    prediction (bottom-right output entry) is x_qᵀ Kᵀ h, so Γ = Kᵀ.

    ``n_runs``: give K a leading run dim R (prompts then lead with R as well).
    """

    pv: Tensor  # a registered buffer

    def __init__(
        self,
        d: int,
        *,
        n_runs: int | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d = _fields.integer("d", d)
        self.n_runs = None if n_runs is None else _fields.integer("n_runs", n_runs)
        shape = (self.d, self.d) if self.n_runs is None else (self.n_runs, self.d, self.d)
        self.kq = nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
        pv = torch.zeros(self.d + 1, self.d + 1, dtype=dtype, device=device)
        pv[self.d, self.d] = 1.0
        self.register_buffer("pv", pv)

    @property
    def W_KQ(self) -> Tensor:
        """The full (…, d+1, d+1) key-query matrix [[K, 0], [0, 0]]."""
        return nn.functional.pad(self.kq, (0, 1, 0, 1))

    @property
    def W_PV(self) -> Tensor:
        return self.pv

    def _weights(self, Z: Tensor) -> Tensor:
        W = self.W_KQ
        if self.n_runs is not None:  # (R, d+1, d+1) against Z (R, …, d+1, N+1)
            W = W.reshape(self.n_runs, *([1] * (Z.ndim - 3)), self.d + 1, self.d + 1)
        return W

    def transform(self, Z: Tensor) -> Tensor:
        """The layer's full output Z + W^{PV} Z M (Zᵀ W^{KQ} Z)/N, same shape as Z."""
        N = Z.shape[-1] - 1
        scores = Z.mT @ self._weights(Z) @ Z  # (…, N+1, N+1): entry (i, j) = z_iᵀ W^{KQ} z_j
        values = self.W_PV @ Z
        values = values[..., :N]  # M drops the query as a key/value
        return Z + values @ scores[..., :N, :] / N

    def forward(self, Z: Tensor) -> Tensor:
        """The prediction ŷ for each prompt: the bottom-right entry of :meth:`transform`.

        Computes only the query column (same formula, O(dN) instead of O(dN²)).
        """
        N = Z.shape[-1] - 1
        z_q = Z[..., :, N:]  # (…, d+1, 1)
        scores = Z[..., :, :N].mT @ (self._weights(Z) @ z_q)  # (…, N, 1)
        out = z_q + self.W_PV @ (Z[..., :, :N] @ scores) / N
        return out[..., self.d, 0]


def gamma_from_attention(module: LinearAttention) -> Tensor:
    """Γ realized by the layer: the prediction is x_qᵀ Γ h with Γ = W^{PV}_{d,d} · Kᵀ."""
    return module.pv[module.d, module.d] * module.kq.detach().mT


def attention_from_gamma(Gamma: Tensor, *, n_runs: int | None = None) -> LinearAttention:
    """A :class:`LinearAttention` layer realizing Γ (d×d, or (R, d, d) with ``n_runs``)."""
    d = Gamma.shape[-1]
    module = LinearAttention(d, n_runs=n_runs, dtype=Gamma.dtype, device=Gamma.device)
    with torch.no_grad():
        module.kq.copy_(Gamma.mT)
    return module
