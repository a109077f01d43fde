"""Optimizer configs (SPEC §2), a union tagged by ``name``.

Each model knows what runs it: :attr:`solver` names the engine solver
(:data:`muonlab.engine.solvers.SOLVERS`: ``discrete`` steps, ``flow`` integrates an
ODE), and a stepped optimizer builds its batched update rule with :meth:`build_rule`
(:mod:`muonlab.optim.batched`). Adding an optimizer is one model here plus its rule.
"""

from __future__ import annotations

import math
import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from muonlab.config.base import (
    _error,
    _list_to_tuple,
    _Model,
    _Momentum,
    _NonNeg,
    _NSSteps,
    _Positive,
)
from muonlab.dtypes import DTYPES
from muonlab.linalg.orthogonalize import COEFFICIENT_PRESETS, METHODS
from muonlab.optim.batched import (
    AdamRule,
    BatchedRule,
    MuonRule,
    ScaledGDRule,
    SGDRule,
)
from muonlab.optim.updates import coefficient_table

# ----------------------------------------------------------------------------- optimizers


class _Optimizer(_Model):
    name: str

    #: The engine solver that advances runs of this optimizer.
    solver: ClassVar[str] = "discrete"
    #: Problem layouts (``symmetric``, ``product``, ``matrix``) it can optimize.
    layouts: ClassVar[frozenset[str]] = frozenset({"symmetric", "product", "matrix"})

    def build_rule(self) -> BatchedRule | None:
        """The batched update rule with these hyper-parameters (fresh state); None for an
        optimizer whose solver takes no steps (a flow)."""
        return None


class _SteppedOptimizer(_Optimizer):
    """An optimizer that takes discrete steps of size ``lr`` (scheduled per run)."""

    lr: _Positive
    weight_decay: _NonNeg = 0.0


def _coefficients(value: Any) -> Any:
    """A Newton–Schulz preset name, one (a, b, c) triple, or a (k, 3) table → list of rows."""
    allowed = f"allowed: {', '.join(COEFFICIENT_PRESETS)} or a list of [a, b, c]"
    if isinstance(value, str):
        if value not in COEFFICIENT_PRESETS:
            raise _error(f"unknown {value!r}; {allowed}")
        return value
    if not isinstance(value, (list, tuple)) or not value:
        raise _error(f"must be a preset name or a non-empty list of [a, b, c], got {value!r}; {allowed}")
    rows = [value] if all(_is_number(x) for x in value) else value
    table = []
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) != 3 or not all(_is_number(x) for x in row):
            raise _error(f"each row must be three numbers [a, b, c], got {row!r}")
        if not all(math.isfinite(x) for x in row):
            raise _error(f"must be finite, got {row!r}")
        table.append([float(x) for x in row])
    return table


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class MuonConfig(_SteppedOptimizer):
    """Muon: W ← (1 − ηλ)W − η·orth(D), D = momentum (Nesterov) of the gradient."""

    name: Literal["muon"] = "muon"
    momentum: _Momentum = 0.0
    nesterov: bool = False
    method: Literal[METHODS] = "newton_schulz"  # type: ignore[valid-type]
    coefficients: Annotated[str | list[list[float]], BeforeValidator(_coefficients)] = "keller"
    ns_steps: _NSSteps | None = None
    ns_dtype: Literal["float64", "float32", "bfloat16"] | None = None
    beta: _NonNeg = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> MuonConfig:
        if self.nesterov and self.momentum <= 0.0:
            raise _error("requires momentum > 0", "nesterov")
        if self.beta > 0.0 and self.method != "beta":
            raise _error(f"only used with method 'beta', not {self.method!r}", "beta")
        iterative = ("newton_schulz", "gram_newton_schulz", "auto")
        if self.coefficients != "keller" and self.method not in iterative:
            raise _error(f"only used with method {', '.join(iterative)}, not {self.method!r}", "coefficients")
        if self.ns_steps is not None and self.method not in (*iterative, "polar_express"):
            raise _error(f"only used with method {', '.join(iterative)} or polar_express, not {self.method!r}",
                         "ns_steps")
        return self

    def build_rule(self) -> MuonRule:
        coefficients = (
            self.coefficients if isinstance(self.coefficients, str) else [tuple(r) for r in self.coefficients]
        )
        return MuonRule(
            momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay, method=self.method,
            table=coefficient_table(self.method, coefficients, self.ns_steps),
            ns_dtype=DTYPES[self.ns_dtype] if self.ns_dtype is not None else None, beta=self.beta,
        )


class SpecGDConfig(_SteppedOptimizer):
    """Spectral GD: W ← W − η·msign(∇f) (exact SVD)."""

    name: Literal["specgd"] = "specgd"
    momentum: _Momentum = 0.0

    def build_rule(self) -> MuonRule:
        return MuonRule(momentum=self.momentum, weight_decay=self.weight_decay, method="svd")


class SpecGDBetaConfig(_SteppedOptimizer):
    """Spectral GD with the β-regularized orthogonalization T_β (seed 000)."""

    name: Literal["specgd_beta"] = "specgd_beta"
    beta: _Positive
    momentum: _Momentum = 0.0

    def build_rule(self) -> MuonRule:
        return MuonRule(momentum=self.momentum, weight_decay=self.weight_decay, method="beta", beta=self.beta)


class SpecGFConfig(_Optimizer):
    """Spectral gradient *flow* (seed 000): dθ/dτ = −T_β(∇_θ f), integrated by an adaptive
    ODE solver (:mod:`muonlab.engine.solvers.flow`). ``dt`` is the recording interval Δτ:
    step k of a flow run is time k·Δτ, the clock of SpecGD with η = Δτ. β = 0 uses the
    exact msign (a discontinuous field). ``integrator`` is scipy's ``solve_ivp`` method."""

    name: Literal["specgf"] = "specgf"
    solver: ClassVar[str] = "flow"
    dt: _Positive
    beta: _NonNeg = 1e-4
    rtol: _Positive = 1e-8
    atol: _Positive = 1e-10
    integrator: Literal["DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA"] = "DOP853"


class GDConfig(_SteppedOptimizer):
    name: Literal["gd"] = "gd"
    momentum: _Momentum = 0.0

    def build_rule(self) -> SGDRule:
        return SGDRule(momentum=self.momentum, weight_decay=self.weight_decay)


class SignGDConfig(_SteppedOptimizer):
    name: Literal["signgd"] = "signgd"
    momentum: _Momentum = 0.0

    def build_rule(self) -> SGDRule:
        return SGDRule(momentum=self.momentum, weight_decay=self.weight_decay, sign=True)




class AdamConfig(_SteppedOptimizer):
    name: Literal["adam"] = "adam"
    betas: Annotated[tuple[_Momentum, _Momentum], BeforeValidator(_list_to_tuple)] = (0.9, 0.999)
    eps: _Positive = 1e-8

    def build_rule(self) -> AdamRule:
        return AdamRule(betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


class ScaledGDConfig(_SteppedOptimizer):
    name: Literal["scaledgd"] = "scaledgd"
    damping: _NonNeg = 0.0

    # ScaledGD preconditions a factorization; a plain matrix has nothing to precondition.
    layouts: ClassVar[frozenset[str]] = frozenset({"symmetric", "product"})

    @model_validator(mode="after")
    def _no_decay(self) -> ScaledGDConfig:
        if self.weight_decay != 0.0:
            raise _error("ScaledGD takes no weight decay; use 0", "weight_decay")
        return self

    def build_rule(self) -> ScaledGDRule:
        return ScaledGDRule(damping=self.damping)


OptimizerConfig = Annotated[
    MuonConfig | SpecGDConfig | SpecGDBetaConfig | SpecGFConfig | GDConfig | SignGDConfig | AdamConfig
    | ScaledGDConfig,
    Field(discriminator="name"),
]
OPTIMIZERS: dict[str, type[_Optimizer]] = {
    cls.model_fields["name"].default: cls for cls in typing.get_args(typing.get_args(OptimizerConfig)[0])
}

