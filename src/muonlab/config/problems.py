"""Problem configs (SPEC §4), a union tagged by ``kind``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import torch
from pydantic import Field, model_validator

from muonlab.config.base import _error, _Index, _Kappa, _Model, _NonNeg, _OmitWhenNone, _Positive, _Size
from muonlab.problems import PROBLEMS as PROBLEM_CLASSES
from muonlab.problems.base import Problem

# ----------------------------------------------------------------------------- problems


class Footprint(NamedTuple):
    """Scalars per run of a problem's tensors, for planning memory (:mod:`muonlab.engine.memory`).

    ``data``: fixed tensors (target, its factors, design matrices); ``params``: the
    trainable parameters; ``work``: the largest per-step intermediates (residuals,
    products); ``width``: the longest vector a metric logs per step (singular values,
    mode progress).
    """

    data: int
    params: int
    work: int
    width: int


class _Problem(_Model):
    kind: str

    #: Fields that may differ between the runs of one batch (a list per run in :meth:`build`).
    per_run_fields: ClassVar[tuple[str, ...]] = ("kappa", "alpha", "gamma")

    @property
    def problem_class(self) -> type[Problem]:
        """The :class:`~muonlab.problems.base.Problem` subclass this config describes."""
        return PROBLEM_CLASSES[self.kind]

    def build(
        self,
        seeds: Sequence[int],
        *,
        dtype: torch.dtype,
        device: str,
        per_run: Mapping[str, Sequence[Any]] | None = None,
    ) -> Problem:
        """The batched problem: one run per seed; ``per_run`` gives a value per run for
        fields in :attr:`per_run_fields` (the others are this config's)."""
        per_run = dict(per_run or {})
        fields = {k: v for k, v in self.model_dump(exclude={"kind"}).items() if k not in per_run}
        # Each Problem subclass takes its own fields (the base __init__ takes none of them).
        build: Callable[..., Problem] = self.problem_class
        return build(**fields, **per_run, seed=list(seeds), dtype=dtype, device=device)

    def resolved(self) -> _Problem:
        """A copy with every ``None`` that has a documented default filled in."""
        return self

    def footprint(self) -> Footprint:
        """Scalars per run of this problem's tensors (counted from its shapes)."""
        raise NotImplementedError(f"{type(self).__name__}.footprint")


class SymmetricMFConfig(_OmitWhenNone, _Problem):
    """P1, symmetric matrix factorization (seed 001): M* = U diag(λ) Uᵀ, X ∈ R^{n×r}."""

    kind: Literal["symmetric_mf"] = "symmetric_mf"
    n: _Size = 100
    r: _Size = 10
    r_star: _Size | None = None  # default: r
    kappa: _Kappa = 1.0
    alpha: _Positive = 1e-3
    spectrum: Literal["logspace", "linspace"] = "logspace"
    init: Literal["gaussian", "orthonormal", "aligned", "identity"] = "gaussian"
    basis: Literal["haar", "paired"] = "haar"
    # Mini-batch gradient (issue 15, docs/beyond_noise.md): each step's gradient uses a
    # fresh random fraction p of M*'s entries, (Ω∘E/p)·X, unbiased. None = the full
    # gradient; left out of dumps while None, so configs without it keep their hashes.
    entry_fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None

    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("entry_fraction",)

    @model_validator(mode="after")
    def _ranks(self) -> SymmetricMFConfig:
        if self.r > self.n:
            raise _error(f"must be <= n ({self.n}), got {self.r}", "r")
        if self.r_star is not None and self.r_star > self.n:
            raise _error(f"must be <= n ({self.n}), got {self.r_star}", "r_star")
        r_star = self.r if self.r_star is None else self.r_star
        if self.basis == "paired" and r_star != self.n:
            raise _error(f"'paired' needs r_star = n ({self.n}), got r_star={r_star}", "basis")
        if self.init == "aligned" and self.r < r_star:
            raise _error(f"'aligned' needs r >= r_star ({r_star}), got r={self.r}", "init")
        return self

    def resolved(self) -> SymmetricMFConfig:
        return self if self.r_star is not None else self.model_copy(update={"r_star": self.r})

    def footprint(self) -> Footprint:
        n, r = self.n, self.r
        # M* and its eigenbasis U (float64 and run dtype); residual XXᵀ − M* and the gradient.
        return Footprint(data=4 * n * n, params=n * r, work=2 * n * n + 2 * n * r, width=n)


class ICLConfig(_OmitWhenNone, _Problem):
    """P2, in-context learning of a linear transformer (seed 001 §2.2)."""

    kind: Literal["icl"] = "icl"
    d: _Size = 20
    kappa: _Kappa = 1.0
    covariance: Literal["rotated", "diagonal", "paired"] = "rotated"
    n_design: _Size | None = None  # default: the problem's (4·d)
    # Monte-Carlo training (App. D): None = the closed-form expected loss; P = the loss
    # and gradient of P sampled prompts per step (fresh each step, or one fixed set).
    # Both are left out of dumps while None, so configs without them keep their hashes.
    prompts: _Size | None = None
    prompt_sampling: Literal["fresh", "fixed"] | None = None

    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("prompts", "prompt_sampling")

    @model_validator(mode="after")
    def _design(self) -> ICLConfig:
        if self.n_design is not None and self.n_design < self.d:
            raise _error(
                f"must be >= d ({self.d}) for the covariance to be invertible, got {self.n_design}", "n_design"
            )
        if self.prompt_sampling is not None and self.prompts is None:
            raise _error("only used with prompts (a number of prompts per step)", "prompt_sampling")
        return self

    def footprint(self) -> Footprint:
        d, N = self.d, self.n_design or 4 * self.d
        # Σ, Σ⁻¹ (both dtypes), the design (d × N) it came from; ΓΣ − I and Σ A Σ.
        # With prompts: each step's P tasks, context labels (P × N), queries, contexts.
        P = self.prompts or 0
        fixed = self.prompt_sampling == "fixed"
        prompt_work = P * (N + 3 * d + 2)
        return Footprint(data=6 * d * d + d * N + (P * (2 * d + 1) if fixed else 0), params=d * d,
                         work=4 * d * d + prompt_work, width=d)


class TwoFactorMFConfig(_Problem):
    """P3, asymmetric two-factor matrix factorization (seed 002): f = ½‖W2 W1 − M*‖²."""

    kind: Literal["two_factor_mf"] = "two_factor_mf"
    n_out: _Size = 32
    n_in: _Size = 32
    d: _Size = 32
    rank: _Size | None = None  # default: len(values) for list/diag, else min(n_out, n_in)
    kappa: _Kappa = 1.0
    spectrum: Literal["logspace", "linspace", "list", "diag", "planted"] = "logspace"
    values: list[_Positive] | None = None
    snr: _Positive | None = None
    alpha: _Positive = 5e-3
    init: Literal["gaussian", "orthogonal"] = "gaussian"

    @model_validator(mode="after")
    def _target(self) -> TwoFactorMFConfig:
        small = min(self.n_out, self.n_in)
        spec = self.spectrum
        if self.rank is not None and self.rank > small:
            raise _error(f"must be <= min(n_out, n_in) ({small}), got {self.rank}", "rank")
        if self.values is not None and spec not in ("list", "diag"):
            raise _error(f"only used with spectrum list or diag, not {spec!r}", "values")
        if self.snr is not None and spec != "planted":
            raise _error(f"only used with spectrum planted, not {spec!r}", "snr")
        if spec in ("list", "diag"):
            if self.values is None:
                raise _error(f"required with spectrum {spec!r} (a list of target singular values)", "values")
            if self.rank is not None and len(self.values) != self.rank:
                raise _error(f"must have rank ({self.rank}) entries, got {len(self.values)}", "values")
            if len(self.values) > small:
                raise _error(f"must have at most min(n_out, n_in) ({small}) entries, got {len(self.values)}", "values")
            if not self.values:
                raise _error("must not be empty", "values")
        if spec == "planted":
            if self.snr is None:
                raise _error("required with spectrum 'planted'", "snr")
            if self.rank is None:
                raise _error("required with spectrum 'planted' (the planted rank)", "rank")
            if self.n_out != self.n_in:
                raise _error(f"spectrum 'planted' needs n_out == n_in, got {self.n_in} != {self.n_out}", "n_in")
        return self

    def resolved(self) -> TwoFactorMFConfig:
        if self.rank is not None:
            return self
        rank = len(self.values) if self.values is not None else min(self.n_out, self.n_in)
        return self.model_copy(update={"rank": rank})

    def footprint(self) -> Footprint:
        m, n, d = self.n_out, self.n_in, self.d
        # M* (both dtypes) and its singular vectors (the metrics' target SVD); W2W1 − M*.
        return Footprint(data=2 * m * n + m * m + n * n, params=d * (m + n), work=2 * m * n + d * d,
                         width=min(m, n, d))


class LoRAMFConfig(_OmitWhenNone, _Problem):
    """P4, LoRA-style factorization (seed 000): f = ½‖W* − AB‖² (+ ℓ2)."""

    kind: Literal["lora_mf"] = "lora_mf"
    m: _Size = 60
    n: _Size = 70
    r: _Size = 5
    r_star: _Size | None = None  # default: len(values) for list, else r
    kappa: _Kappa = 1.0
    spectrum: Literal["logspace", "linspace", "list"] = "logspace"
    values: list[_Positive] | None = None
    gamma: _Positive = 1e-3
    l2: _NonNeg = 0.0
    # Initialization (seed 000 Thm 6.2, App. D.3–D.4; problems/lora_mf.py): None means the
    # LoRA init zero_a; with saddle/minimum, gamma is the perturbation's size relative to
    # the minimizer's norm. These fields are left out of the dump when None, so configs
    # that do not name them keep their run ids and config hashes.
    init: Literal["zero_a", "random", "saddle", "minimum"] | None = None
    saddle_mode: _Index | None = None  # mode missing from saddle (None: 0)

    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("init", "saddle_mode")

    @model_validator(mode="after")
    def _ranks(self) -> LoRAMFConfig:
        small = min(self.m, self.n)
        if self.r > small:
            raise _error(f"must be <= min(m, n) ({small}), got {self.r}", "r")
        if self.r_star is not None and self.r_star > small:
            raise _error(f"must be <= min(m, n) ({small}), got {self.r_star}", "r_star")
        if self.spectrum == "list":
            if not self.values:
                raise _error("required with spectrum 'list' (a list of target singular values)", "values")
            if self.r_star is not None and len(self.values) != self.r_star:
                raise _error(f"must have r_star ({self.r_star}) entries, got {len(self.values)}", "values")
            if len(self.values) > small:
                raise _error(f"must have at most min(m, n) ({small}) entries, got {len(self.values)}", "values")
        elif self.values is not None:
            raise _error(f"only used with spectrum list, not {self.spectrum!r}", "values")
        init = self.init or "zero_a"
        if self.saddle_mode is not None:
            if init != "saddle":
                raise _error(f"only used with init saddle, not {init!r}", "saddle_mode")
            kept = min(self.r, self.r_star if self.r_star is not None else
                       (len(self.values) if self.values else self.r))
            if self.saddle_mode >= kept:
                raise _error(f"must be < min(r, r_star) ({kept}), got {self.saddle_mode}", "saddle_mode")
        return self

    def resolved(self) -> LoRAMFConfig:
        if self.r_star is not None:
            return self
        r_star = len(self.values) if self.values is not None else self.r
        return self.model_copy(update={"r_star": r_star})

    def footprint(self) -> Footprint:
        m, n, r = self.m, self.n, self.r
        # W* (both dtypes) and its singular vectors; AB − W*.
        return Footprint(data=2 * m * n + m * m + n * n, params=r * (m + n), work=2 * m * n + r * r,
                         width=min(m, n, r))


class RegressionConfig(_OmitWhenNone, _Problem):
    """P5, matrix linear regression min_W ½‖WX − Y‖² with ill-conditioned XXᵀ."""

    kind: Literal["regression"] = "regression"
    d_out: _Size = 10
    d_in: _Size = 20
    n_samples: _Size = 100
    kappa: _Kappa = 1.0
    noise: _NonNeg = 0.0
    # Issue 15 (docs/beyond_regression.md; problems/regression.py): the teacher's rank and
    # the spread of its singular values (None: full rank, all 1), and W_0's scale (None: W_0
    # = 0). Left out of the dump when None, so configs that do not name them keep their
    # run ids and config hashes.
    rank: _Size | None = None
    teacher_kappa: _Kappa | None = None
    init_scale: _NonNeg | None = None

    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("rank", "teacher_kappa", "init_scale")

    @model_validator(mode="after")
    def _samples(self) -> RegressionConfig:
        if self.n_samples < self.d_in:
            raise _error(f"must be >= d_in ({self.d_in}) for XXᵀ to be invertible, got {self.n_samples}", "n_samples")
        if self.rank is not None and self.rank > min(self.d_out, self.d_in):
            raise _error(f"must be <= min(d_out, d_in) ({min(self.d_out, self.d_in)}), got {self.rank}", "rank")
        return self

    def footprint(self) -> Footprint:
        o, i, N = self.d_out, self.d_in, self.n_samples
        # X, Y (float64), S = XXᵀ/N, W_opt; the residual WX − Y.
        return Footprint(data=(o + i) * N + 2 * i * i + 2 * o * i, params=o * i, work=o * N + o * i,
                         width=min(o, i))


PROBLEMS: dict[str, type[_Problem]] = {
    cls.model_fields["kind"].default: cls
    for cls in (SymmetricMFConfig, ICLConfig, TwoFactorMFConfig, LoRAMFConfig, RegressionConfig)
}
ProblemConfig = Annotated[
    SymmetricMFConfig | ICLConfig | TwoFactorMFConfig | LoRAMFConfig | RegressionConfig,
    Field(discriminator="kind"),
]

