"""Optimizer configs (SPEC §2), a union tagged by ``name``."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    model_validator,
)

from muonlab.config.base import (
    _error,
    _list_to_tuple,
    _Model,
    _NonNeg,
    _PosInt,
    _Positive,
)
from muonlab.linalg.orthogonalize import COEFFICIENT_PRESETS, METHODS

# ----------------------------------------------------------------------------- optimizers


class _Optimizer(_Model):
    name: str
    lr: _Positive
    weight_decay: _NonNeg = 0.0

    #: Batchable fields (:data:`BATCHABLE`) this optimizer needs equal within a batch.
    unbatchable: ClassVar[frozenset[str]] = frozenset()


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


class MuonConfig(_Optimizer):
    """Muon: W ← (1 − ηλ)W − η·orth(D), D = momentum (Nesterov) of the gradient."""

    name: Literal["muon"] = "muon"
    momentum: _NonNeg = 0.0
    nesterov: bool = False
    method: Literal[METHODS] = "newton_schulz"  # type: ignore[valid-type]
    coefficients: Annotated[Union[str, list[list[float]]], BeforeValidator(_coefficients)] = "keller"
    ns_steps: _PosInt | None = None
    ns_dtype: Literal["float64", "float32", "bfloat16"] | None = None
    beta: _NonNeg = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> MuonConfig:
        if self.nesterov and self.momentum <= 0.0:
            raise _error("requires momentum > 0", "nesterov")
        if self.beta > 0.0 and self.method != "beta":
            raise _error(f"only used with method 'beta', not {self.method!r}", "beta")
        if self.coefficients != "keller" and self.method != "newton_schulz":
            raise _error(f"only used with method 'newton_schulz', not {self.method!r}", "coefficients")
        if self.ns_steps is not None and self.method not in ("newton_schulz", "polar_express"):
            raise _error(f"only used with method newton_schulz or polar_express, not {self.method!r}", "ns_steps")
        return self


class SpecGDConfig(_Optimizer):
    """Spectral GD: W ← W − η·msign(∇f) (exact SVD)."""

    name: Literal["specgd"] = "specgd"
    momentum: _NonNeg = 0.0


class SpecGDBetaConfig(_Optimizer):
    """Spectral GD with the β-regularized orthogonalization T_β (seed 000)."""

    name: Literal["specgd_beta"] = "specgd_beta"
    beta: _Positive
    momentum: _NonNeg = 0.0


class SpecGFConfig(_Optimizer):
    """Spectral gradient *flow* (seed 000): dθ/dτ = −T_β(∇_θ f) by an adaptive ODE solver
    (muonlab.engine.flow). ``lr`` is the recording interval Δτ (step k = time k·Δτ, the
    clock of SpecGD with η = Δτ); β = 0 uses the exact msign (a discontinuous field)."""

    name: Literal["specgf"] = "specgf"
    # a flow records on one time grid per batch, so its Δτ cannot differ within one
    unbatchable: ClassVar[frozenset[str]] = frozenset({"lr"})
    beta: _NonNeg = 1e-4
    rtol: _Positive = 1e-8
    atol: _Positive = 1e-10
    solver: Literal["DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA"] = "DOP853"


class GDConfig(_Optimizer):
    name: Literal["gd"] = "gd"
    momentum: _NonNeg = 0.0


class SignGDConfig(_Optimizer):
    name: Literal["signgd"] = "signgd"
    momentum: _NonNeg = 0.0


_Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class AdamConfig(_Optimizer):
    name: Literal["adam"] = "adam"
    betas: Annotated[tuple[_Beta, _Beta], BeforeValidator(_list_to_tuple)] = (0.9, 0.999)
    eps: _Positive = 1e-8


class ScaledGDConfig(_Optimizer):
    name: Literal["scaledgd"] = "scaledgd"
    damping: _NonNeg = 0.0


OPTIMIZERS: dict[str, type[_Optimizer]] = {
    cls.model_fields["name"].default: cls
    for cls in (MuonConfig, SpecGDConfig, SpecGDBetaConfig, SpecGFConfig, GDConfig, SignGDConfig, AdamConfig,
                ScaledGDConfig)
}
OptimizerConfig = Annotated[Union[tuple(OPTIMIZERS.values())], Field(discriminator="name")]  # type: ignore[valid-type]

