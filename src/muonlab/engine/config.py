"""Experiment configs (SPEC §4, §6): YAML → validated pydantic models → resolved runs.

An experiment is one YAML file::

    name: p1_kappa_sweep
    problem: {kind: symmetric_mf, n: 100, r: 10, kappa: 1.0, alpha: 1.0e-3}
    optimizer: {name: muon, lr: 0.5, method: svd}
    schedule: {name: plateau, factor: 0.5, patience: 10}
    steps: 100000
    stop: {target: 1.0e-12, blowup: 1.0e6}
    seeds: 3
    grid:
      problem.kappa: [1, 10, 100]
      optimizer: [{name: muon, lr: 0.5, method: svd}, {name: gd, lr: 0.3}]
      optimizer.lr: [0.1, 0.2]

Layers, from outside in:

* :func:`load_config` reads the YAML (YAML 1.2 floats such as ``1e-3`` are numbers,
  duplicate keys are errors), applies ``--set`` overrides (:func:`apply_overrides`)
  and validates (:meth:`ExperimentConfig.model_validate`).
* Every model forbids unknown keys and is strict about types (an integer field takes
  ``10`` or ``10.0`` but not ``"10"`` or ``true``; a float field takes ints).
  ``problem`` is a union tagged by ``kind``, ``optimizer`` and ``schedule`` by
  ``name``; schedule parameters are checked by :func:`muonlab.optim.schedules.make_schedule`.
* A *grid point* is the config with the axis values substituted (whole sub-configs
  first, then dotted paths into them, whatever the YAML order) and validated exactly
  as if written by hand; every point is validated when the config is, so a bad point
  is reported at load time. ``problem``/``optimizer`` may be omitted when the grid
  has a whole-sub-config axis for them (the first value is then the base).
* :func:`expand` gives one frozen :class:`RunSpec` per grid point × seed, with
  defaults resolved (``r_star`` = ``r``, ``rank`` = min(n_out, n_in), …), so the same
  run written two ways has the same :attr:`RunSpec.run_id`.

Every failure is a :class:`ConfigError` (a ``ValueError``) whose message is ONE line
naming the field path, the problem and, where there is a closed set, the allowed
values: ``problem.r: must be <= n (10), got 20``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from muonlab.engine.metrics import METRICS as _METRIC_REGISTRY
from muonlab.engine.metrics import RUNNER_METRICS as _RUNNER_METRICS
from muonlab.linalg.orthogonalize import COEFFICIENT_PRESETS, METHODS
from muonlab.optim.schedules import SCHEDULES, Schedule, make_schedule

__all__ = [
    "BATCHABLE",
    "ConfigError",
    "ExperimentConfig",
    "METRICS",
    "OPTIMIZERS",
    "PROBLEMS",
    "RunSpec",
    "SCHEDULE_CONFIGS",
    "StopConfig",
    "apply_overrides",
    "batch_key",
    "expand",
    "load_config",
    "load_yaml",
]

#: Per-step metrics a config may ask for (SPEC §5): the engine's metric registry.
METRICS = (*_METRIC_REGISTRY, *_RUNNER_METRICS)
DTYPES = ("float64", "float32", "bfloat16")

#: Flat columns that runs of one batch may differ in (the engine advances runs with
#: equal :func:`batch_key` as one batched tensor set).
BATCHABLE = frozenset({"seed", "problem.kappa", "problem.alpha", "problem.gamma", "optimizer.lr"})


class ConfigError(ValueError):
    """An invalid experiment config. ``str(error)`` is one line naming the field.

    Attributes:
        field: the dotted field path (``"problem.r"``), or None when the error is
            about the file as a whole.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        message = " ".join(str(message).split())
        super().__init__(message)
        self.field = field


# ----------------------------------------------------------------------------- base types


def _integral_float_to_int(value: Any) -> Any:
    # 1e5 in YAML is a float; an integer field accepts it when it is integral.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


_Int = Annotated[int, BeforeValidator(_integral_float_to_int)]
_PosInt = Annotated[int, BeforeValidator(_integral_float_to_int), Field(ge=1)]
_Kappa = Annotated[float, Field(ge=1.0)]
_Positive = Annotated[float, Field(gt=0.0)]
_NonNeg = Annotated[float, Field(ge=0.0)]


def _error(message: str, field: str | None = None, path: str | None = None) -> PydanticCustomError:
    """A validation error whose message is used verbatim; ``field`` extends the loc.

    ``field="__full__"`` marks a message that is already a whole line (grid points);
    ``path`` is then the field path it is about.
    """
    return PydanticCustomError("config", "{message}", {"message": message, "field": field, "path": path})


class _Model(BaseModel):
    """Strict, frozen, no unknown keys, no inf/nan."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    def params(self) -> dict[str, Any]:
        """Fields as a plain dict, without the union tag (``kind`` / ``name``)."""
        return self.model_dump(exclude={"kind", "name"})


# ----------------------------------------------------------------------------- problems


class _Problem(_Model):
    kind: str

    def resolved(self) -> _Problem:
        """A copy with every ``None`` that has a documented default filled in."""
        return self


class SymmetricMFConfig(_Problem):
    """P1, symmetric matrix factorization (seed 001): M* = U diag(λ) Uᵀ, X ∈ R^{n×r}."""

    kind: Literal["symmetric_mf"] = "symmetric_mf"
    n: _PosInt = 100
    r: _PosInt = 10
    r_star: _PosInt | None = None  # default: r
    kappa: _Kappa = 1.0
    alpha: _Positive = 1e-3
    spectrum: Literal["logspace", "linspace"] = "logspace"
    init: Literal["gaussian", "orthonormal", "aligned", "identity"] = "gaussian"
    basis: Literal["haar", "paired"] = "haar"

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


class ICLConfig(_Problem):
    """P2, in-context learning of a linear transformer (seed 001 §2.2)."""

    kind: Literal["icl"] = "icl"
    d: _PosInt = 20
    kappa: _Kappa = 1.0
    covariance: Literal["rotated", "diagonal", "paired"] = "rotated"
    n_design: _PosInt | None = None  # default: the problem's (4·d)

    @model_validator(mode="after")
    def _design(self) -> ICLConfig:
        if self.n_design is not None and self.n_design < self.d:
            raise _error(f"must be >= d ({self.d}) for the covariance to be invertible, got {self.n_design}", "n_design")
        return self


class TwoFactorMFConfig(_Problem):
    """P3, asymmetric two-factor matrix factorization (seed 002): f = ½‖W2 W1 − M*‖²."""

    kind: Literal["two_factor_mf"] = "two_factor_mf"
    n_out: _PosInt = 32
    n_in: _PosInt = 32
    d: _PosInt = 32
    rank: _PosInt | None = None  # default: len(values) for list/diag, else min(n_out, n_in)
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


class LoRAMFConfig(_Problem):
    """P4, LoRA-style factorization (seed 000): f = ½‖W* − AB‖² (+ ℓ2)."""

    kind: Literal["lora_mf"] = "lora_mf"
    m: _PosInt = 60
    n: _PosInt = 70
    r: _PosInt = 5
    r_star: _PosInt | None = None  # default: len(values) for list, else r
    kappa: _Kappa = 1.0
    spectrum: Literal["logspace", "linspace", "list"] = "logspace"
    values: list[_Positive] | None = None
    gamma: _Positive = 1e-3
    l2: _NonNeg = 0.0

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
        return self

    def resolved(self) -> LoRAMFConfig:
        if self.r_star is not None:
            return self
        r_star = len(self.values) if self.values is not None else self.r
        return self.model_copy(update={"r_star": r_star})


class RegressionConfig(_Problem):
    """P5, matrix linear regression min_W ½‖WX − Y‖² with ill-conditioned XXᵀ."""

    kind: Literal["regression"] = "regression"
    d_out: _PosInt = 10
    d_in: _PosInt = 20
    n_samples: _PosInt = 100
    kappa: _Kappa = 1.0
    noise: _NonNeg = 0.0

    @model_validator(mode="after")
    def _samples(self) -> RegressionConfig:
        if self.n_samples < self.d_in:
            raise _error(f"must be >= d_in ({self.d_in}) for XXᵀ to be invertible, got {self.n_samples}", "n_samples")
        return self


PROBLEMS: dict[str, type[_Problem]] = {
    cls.model_fields["kind"].default: cls
    for cls in (SymmetricMFConfig, ICLConfig, TwoFactorMFConfig, LoRAMFConfig, RegressionConfig)
}
ProblemConfig = Annotated[
    Union[SymmetricMFConfig, ICLConfig, TwoFactorMFConfig, LoRAMFConfig, RegressionConfig],
    Field(discriminator="kind"),
]


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


# ----------------------------------------------------------------------------- schedules


class _Schedule(_Model):
    """Base of the schedule configs, generated from :data:`SCHEDULES` (one per dataclass)."""

    name: str
    schedule_class: ClassVar[type[Schedule]]

    def build(self) -> Schedule:
        """The :class:`~muonlab.optim.schedules.Schedule` this config describes."""
        return make_schedule(self.name, **self.params())

    @model_validator(mode="after")
    def _check_with_make_schedule(self) -> _Schedule:
        try:
            self.build()
        except ValueError as e:
            message = str(e)
            # make_schedule messages start with the parameter: "factor must satisfy ..."
            m = re.match(r"(\w+):? (must .*)$", message)
            if m and m.group(1) in type(self).model_fields:
                raise _error(m.group(2), m.group(1)) from None
            raise _error(message) from None
        return self


def _schedule_config(cls: type[Schedule]) -> type[_Schedule]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {"name": (Literal[cls.name], cls.name)}  # type: ignore[valid-type]
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if tp is int:
            tp = _Int
        default = f.default if f.default is not dataclasses.MISSING else ...
        fields[f.name] = (tp, default)
    model = create_model(  # type: ignore[call-overload]
        f"{cls.__name__}ScheduleConfig", __base__=_Schedule, __module__=__name__, **fields
    )
    model.schedule_class = cls
    return model


#: Schedule name → its config model (fields = the schedule dataclass's parameters).
SCHEDULE_CONFIGS: dict[str, type[_Schedule]] = {name: _schedule_config(cls) for name, cls in SCHEDULES.items()}
ScheduleConfig = Annotated[Union[tuple(SCHEDULE_CONFIGS.values())], Field(discriminator="name")]  # type: ignore[valid-type]


# ----------------------------------------------------------------------------- run fields


class StopConfig(_Model):
    """When a run stops early.

    ``target``: stop (status ``ok``) when rel_err <= target; None: run all steps.
    ``blowup``: diverged when the loss exceeds blowup × the initial loss (or is
    non-finite); None: only non-finite losses count as divergence.
    """

    target: _NonNeg | None = None
    blowup: Annotated[float, Field(gt=1.0)] | None = 1e6


def _device(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d+)?", value):
        return value
    raise _error(f"must be cpu, cuda or cuda:N, got {value!r}")


def _metrics(value: Any) -> Any:
    # Canonical order, no duplicates: the same set of metrics is the same run.
    if isinstance(value, list) and all(isinstance(v, str) and v in METRICS for v in value):
        return [m for m in METRICS if m in value]
    return value


class _RunFields(_Model):
    """Everything that defines one run except its seed (a config without its grid)."""

    problem: ProblemConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig = Field(default_factory=lambda: SCHEDULE_CONFIGS["constant"]())
    steps: _PosInt
    stop: StopConfig = Field(default_factory=StopConfig)
    dtype: Literal[DTYPES] = "float64"  # type: ignore[valid-type]
    device: Annotated[str, BeforeValidator(_device)] = "cpu"
    metrics: Annotated[list[Literal[METRICS]], BeforeValidator(_metrics), Field(min_length=1)] = [  # type: ignore[valid-type]
        "loss",
        "rel_err",
    ]
    log_every: _PosInt = 1

    @model_validator(mode="before")
    @classmethod
    def _schedule_shorthand(cls, data: Any) -> Any:
        # `schedule: plateau` is `schedule: {name: plateau}`.
        if isinstance(data, dict) and isinstance(data.get("schedule"), str):
            data = {**data, "schedule": {"name": data["schedule"]}}
        return data


_RUN_FIELDS = tuple(_RunFields.model_fields)
_SUBCONFIG_AXES = ("problem", "optimizer", "schedule")


def _seeds(value: Any) -> Any:
    if isinstance(value, bool):
        raise _error(f"must be a positive integer or a list of integers, got {value!r}")
    value = _integral_float_to_int(value)
    if isinstance(value, int):
        if value < 1:
            raise _error(f"must be >= 1 (the number of seeds), got {value}")
        return list(range(value))
    if isinstance(value, list):
        if not value:
            raise _error("must not be empty")
        for s in value:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise _error(f"must contain integers >= 0, got {s!r}")
        if len(set(value)) != len(value):
            dup = next(s for s in value if value.count(s) > 1)
            raise _error(f"duplicate seed {dup}")
        return value
    raise _error(f"must be a positive integer or a list of integers, got {value!r}")


def _grid(value: Any) -> Any:
    if not isinstance(value, dict):
        raise _error(f"must be a mapping of axis → list of values, got {value!r}")
    for key, values in value.items():
        parts = key.split(".") if isinstance(key, str) else [""]
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in parts):
            raise _error(f"bad axis name {key!r}; use a dotted path such as problem.kappa")
        if parts[0] not in _RUN_FIELDS:
            allowed = ", ".join(_RUN_FIELDS)
            raise _error(f"cannot be a grid axis; allowed: {allowed} (and dotted paths into them)", key)
        if not isinstance(values, list) or not values:
            raise _error(f"must be a non-empty list of values, got {_show(values)}", key)
    return value


class ExperimentConfig(_RunFields):
    """A validated experiment: the run fields, the experiment ``name``, ``seeds`` and ``grid``.

    ``model_validate`` raises :class:`ConfigError` (one line) instead of pydantic's
    ``ValidationError``. ``seeds`` is normalized to a list (``3`` → ``[0, 1, 2]``).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    seeds: Annotated[list[int], BeforeValidator(_seeds)] = [0]
    grid: Annotated[dict[str, list[Any]], BeforeValidator(_grid)] = {}

    _points: list[tuple[dict[str, Any], _RunFields]] = PrivateAttr(default_factory=list)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> ExperimentConfig:  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise _config_error(e, cls) from e

    @model_validator(mode="before")
    @classmethod
    def _base_from_grid(cls, data: Any) -> Any:
        # problem/optimizer may come from a whole-sub-config grid axis alone.
        if isinstance(data, dict) and isinstance(data.get("grid"), dict):
            for key in _SUBCONFIG_AXES:
                values = data["grid"].get(key)
                if key not in data and isinstance(values, list) and values:
                    data = {**data, key: values[0]}
        return data

    @model_validator(mode="after")
    def _expand_grid(self) -> ExperimentConfig:
        base = self.model_dump(include=set(_RUN_FIELDS))
        axes = list(self.grid.items())
        # Whole sub-configs first, then dotted paths into the (replaced) sub-configs.
        order = sorted(range(len(axes)), key=lambda i: axes[i][0].count("."))
        points = []
        for combo in itertools.product(*(values for _, values in axes)):
            setting = {axes[i][0]: combo[i] for i in range(len(axes))}
            label = ", ".join(f"{k}={_short(v)}" for k, v in setting.items())
            raw = copy.deepcopy(base)
            try:
                for i in order:
                    _set_path(raw, axes[i][0].split("."), copy.deepcopy(combo[i]))
                fields = _RunFields.model_validate(raw)
            except ConfigError as e:
                raise _error(f"grid[{label}]: {e}", "__full__", e.field) from None
            except ValidationError as e:
                inner = _config_error(e, _RunFields)
                raise _error(f"grid[{label}]: {inner}", "__full__", inner.field) from None
            points.append((setting, fields))
        self._points = points
        return self

    def grid_points(self) -> list[tuple[dict[str, Any], _RunFields]]:
        """(axis values, validated run fields) for every grid point, in grid order."""
        return list(self._points)

    def expand(self) -> list[RunSpec]:
        """Same as :func:`expand`."""
        return expand(self)


# ----------------------------------------------------------------------------- runs


class RunSpec(_Model):
    """One fully resolved run: a grid point, a seed and the experiment's name.

    ``run_id`` is the first 16 hex digits of the sha256 of the canonical JSON (sorted
    keys) of every field but ``experiment``: the same run in two experiments has the
    same id, and any change of a resolved field (including an explicit default such
    as ``r_star``) changes it only if the resolved value changes.
    """

    experiment: str
    problem: ProblemConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    steps: _PosInt
    stop: StopConfig
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    device: Annotated[str, BeforeValidator(_device)]
    seed: Annotated[_Int, Field(ge=0)]
    metrics: Annotated[list[Literal[METRICS]], BeforeValidator(_metrics), Field(min_length=1)]  # type: ignore[valid-type]
    log_every: _PosInt

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> RunSpec:  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise _config_error(e, cls) from e

    @field_validator("problem", mode="after")
    @classmethod
    def _resolve_problem(cls, value: _Problem) -> _Problem:
        return value.resolved()

    def resolved(self) -> dict[str, Any]:
        """The JSON-able dict that defines the run (every field but ``experiment``)."""
        return self.model_dump(mode="json", exclude={"experiment"})

    @cached_property
    def run_id(self) -> str:
        return _digest(self.resolved())

    def __hash__(self) -> int:
        return hash(self.run_id)

    def flat(self) -> dict[str, Any]:
        """Flat columns for the results table: ``problem.kappa``, ``optimizer.lr``, ….

        Nested configs become dotted names, lists become canonical JSON strings
        (``metrics``, ``problem.values``, …), and the ``steps`` field is named
        ``max_steps`` (``steps`` is the results column: the steps a run took).
        """
        out: dict[str, Any] = {}
        for key, value in self.model_dump(mode="json").items():
            if key == "steps":
                key = "max_steps"
            _flatten(out, key, value)
        return out


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """One :class:`RunSpec` per grid point × seed (grid order, seeds innermost).

    Grid points that resolve to the same run (e.g. ``kappa: [1, 1.0]``) appear once.
    """
    runs: list[RunSpec] = []
    seen: set[str] = set()
    for _, fields in config.grid_points():
        values = {name: getattr(fields, name) for name in _RUN_FIELDS}
        for seed in config.seeds:
            run = RunSpec(experiment=config.name, seed=seed, **values)
            if run.run_id not in seen:
                seen.add(run.run_id)
                runs.append(run)
    return runs


def batch_key(run: RunSpec) -> str:
    """Hash of the run's flat columns without :data:`BATCHABLE` (and the experiment name).

    Runs with the same key differ only in seed, κ, α, γ and lr, so the engine can
    advance them together as one batched tensor set.
    """
    keep = {f"optimizer.{f}" for f in run.optimizer.unbatchable}
    flat = {k: v for k, v in run.flat().items() if (k not in BATCHABLE or k in keep) and k != "experiment"}
    return _digest(flat)


# ----------------------------------------------------------------------------- YAML and overrides


class _Loader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 floats (``1e-3``, ``1.0e6`` are numbers) + duplicate-key errors."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# PyYAML implements YAML 1.1, where a float needs a dot and a signed exponent.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_error(where: str, e: yaml.YAMLError) -> ConfigError:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ConfigError(f"{where}: invalid YAML{at}: {problem}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML config file (no validation)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise _yaml_error(str(path), e) from None
    if data is None:
        raise ConfigError(f"{path}: empty config")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read, override (``["problem.kappa=10", …]``) and validate an experiment YAML.

    Raises:
        ConfigError: missing file, YAML syntax, bad override, or invalid config (one line).
    """
    return ExperimentConfig.model_validate(apply_overrides(load_yaml(path), list(overrides)))


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``key=value`` overrides applied (``raw`` is not modified).

    * ``key`` is a dotted path (``problem.kappa``); missing mappings are created.
    * ``value`` is parsed as YAML: ``10`` → int, ``1e-3`` → float, ``[1, 10]`` → list,
      ``{name: gd, lr: 0.1}`` → mapping, ``null`` or nothing → None.
    * ``grid.<axis>=[...]`` sets a grid axis (the axis name may contain dots);
      ``grid.<axis>=null`` removes it.
    * Setting a field pins it: grid axes at or below that path are removed, and a
      whole-sub-config axis above it (``optimizer`` for ``optimizer.lr``) gets the
      value in each of its entries.

    Unknown keys are not detected here but by validation.
    """
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"override {item!r}: expected a 'key=value' string")
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. problem.kappa=10")
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty component in key {key!r}")
        try:
            value = yaml.load(text, Loader=_Loader)  # noqa: S506
        except yaml.YAMLError as e:
            raise _yaml_error(f"override {item!r}", e) from None
        if parts[0] == "grid" and len(parts) > 1:
            grid = out.get("grid")
            if grid is None:
                grid = out["grid"] = {}
            if not isinstance(grid, dict):
                raise ConfigError(f"override {item!r}: grid is not a mapping")
            axis = ".".join(parts[1:])
            if value is None:
                grid.pop(axis, None)
            else:
                grid[axis] = value
            continue
        _set_path(out, parts, value)
        grid = out.get("grid")
        if key != "grid" and isinstance(grid, dict):
            for axis in list(grid):
                if axis == key or axis.startswith(key + "."):
                    del grid[axis]
                elif key.startswith(axis + ".") and isinstance(grid[axis], list):
                    rest = key[len(axis) + 1 :].split(".")
                    for entry in grid[axis]:
                        if isinstance(entry, dict):
                            _set_path(entry, rest, copy.deepcopy(value))
    return out


# ----------------------------------------------------------------------------- helpers


def _set_path(data: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(
                f"{'.'.join(parts)}: cannot set a key inside {where} (a {type(child).__name__}, not a mapping)",
                field=".".join(parts),
            )
        node = child
    node[parts[-1]] = value


def _flatten(out: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(out, f"{key}.{k}", v)
    elif isinstance(value, (list, tuple)):
        out[key] = _canonical_json(value)
    else:
        out[key] = value


def _normalize(obj: Any) -> Any:
    if isinstance(obj, float) and obj == 0.0:
        return 0.0  # -0.0 and 0.0 are the same run
    if isinstance(obj, dict):
        return {str(k): _normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normalize(v) for v in obj]
    return obj


def _canonical_json(obj: Any) -> str:
    return json.dumps(_normalize(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _digest(obj: Any) -> str:
    return hashlib.sha256(_canonical_json(obj).encode("ascii")).hexdigest()[:16]


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- error messages

_UNIONS: dict[str, dict[str, type[BaseModel]]] = {
    "problem": PROBLEMS,  # type: ignore[dict-item]
    "optimizer": OPTIMIZERS,  # type: ignore[dict-item]
    "schedule": SCHEDULE_CONFIGS,  # type: ignore[dict-item]
}
_NESTED: dict[str, type[BaseModel]] = {"stop": StopConfig}
_TYPE_WORDS = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="), "less_than": ("lt", "<"),
           "less_than_equal": ("le", "<=")}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _walk(root: type[BaseModel], loc: Sequence[Any]) -> tuple[list[Any], type[BaseModel] | None]:
    """Drop union tags from a pydantic loc; return (path parts, model owning the last part)."""
    parts: list[Any] = []
    model: type[BaseModel] | None = root
    owner: type[BaseModel] | None = root
    i = 0
    while i < len(loc):
        el = loc[i]
        parts.append(el)
        owner = model
        top = model is not None and "problem" in model.model_fields
        if top and el in _UNIONS and i + 1 < len(loc) and loc[i + 1] in _UNIONS[el]:
            model = _UNIONS[el][loc[i + 1]]
            i += 2
            continue
        model = _NESTED.get(el) if top else None
        i += 1
    return parts, owner


def _join(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _format(err: Mapping[str, Any], root: type[BaseModel]) -> tuple[str, str]:
    """(field path, one-line message) for one pydantic error dict."""
    ctx = err.get("ctx") or {}
    if ctx.get("field") == "__full__":
        return str(ctx.get("path") or ""), str(ctx["message"])
    parts, owner = _walk(root, err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "config":
        if ctx.get("field"):
            parts.append(ctx["field"])
        path = _join(parts)
        return path, f"{path}: {ctx['message']}" if path else str(ctx["message"])
    if kind == "extra_forbidden":
        path = _join(parts)
        allowed = list(owner.model_fields) if owner is not None else []
        hint = difflib.get_close_matches(str(parts[-1]), allowed, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return path, f"{path}: unknown key{did}; allowed: {', '.join(allowed)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_name = str(ctx.get("discriminator", "name")).strip("'\"")
        parts.append(tag_name)
        path = _join(parts)
        tags = list(_UNIONS.get(str(parts[-2]), {})) or re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            if not isinstance(value, dict):
                return path, f"{_join(parts[:-1])}: must be a mapping with a {tag_name!r} key, got {_show(value)}"
            return path, f"{path}: required; allowed: {', '.join(tags)}"
        return path, f"{path}: unknown {ctx.get('tag')!r}; allowed: {', '.join(tags)}"
    path = _join(parts) or "config"
    if kind == "missing":
        return path, f"{path}: required key is missing"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return path, f"{path}: unknown {value!r}; allowed: {', '.join(allowed)}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return path, f"{path}: must be {op} {ctx.get(key)}, got {_show(value)}"
    if kind in _TYPE_WORDS:
        return path, f"{path}: must be {_TYPE_WORDS[kind]}, got {_show(value)} ({type(value).__name__})"
    if kind == "finite_number":
        return path, f"{path}: must be a finite number, got {_show(value)}"
    if kind == "string_pattern_mismatch":
        return path, f"{path}: must match {ctx.get('pattern')}, got {_show(value)}"
    msg = str(err.get("msg", kind)).replace("Input should be", "must be").replace("Value error, ", "")
    return path, f"{path}: {msg[:1].lower() + msg[1:]}, got {_show(value)}"


def _config_error(exc: ValidationError, root: type[BaseModel]) -> ConfigError:
    """The first error of a pydantic ValidationError as a one-line ConfigError."""
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return ConfigError(str(exc))
    path, message = _format(errors[0], root)
    return ConfigError(message, field=path or None)
