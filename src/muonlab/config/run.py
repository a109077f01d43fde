"""The fields of one run, and :class:`RunSpec`: one fully resolved run with its id and batch key."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from muonlab.config.base import (
    _digest,
    _error,
    _flatten,
    _OmitWhenNone,
    _Seed,
    _Steps,
)
from muonlab.config.messages import OneLineErrors
from muonlab.config.noise import GradientNoiseConfig
from muonlab.config.optimizers import OptimizerConfig
from muonlab.config.problems import PROBLEM_CLASSES, ProblemConfig, _Problem
from muonlab.config.schedules import SCHEDULE_CONFIGS, ScheduleConfig
from muonlab.config.stop import StopConfig
from muonlab.dtypes import DTYPE_NAMES as DTYPES
from muonlab.engine.metrics import METRICS as _METRIC_REGISTRY
from muonlab.engine.metrics import RUNNER_METRICS as _RUNNER_METRICS

if TYPE_CHECKING:
    import pandas as pd

#: Per-step metrics a config may ask for (SPEC §5): the engine's metric registry.
METRICS = (*_METRIC_REGISTRY, *_RUNNER_METRICS)

#: Flat columns that runs of one batch may differ in (the engine advances runs with
#: equal :func:`batch_key` as one batched tensor set).
BATCHABLE = frozenset({"seed", "optimizer.lr", "gradient_noise.sigma",
                       *(f"problem.{f}" for f in _Problem.per_run_fields)})


def _cross_field_error(fields: Any) -> PydanticCustomError | None:
    """The first rule across fields that ``fields`` (a run's problem, optimizer, schedule,
    dtype, metrics) breaks, as a validation error naming the field; None if it breaks none.

    These are the combinations that would otherwise fail only when a batch runs.
    """
    problem, optimizer = fields.problem, fields.optimizer
    cls = problem.problem_class
    if cls.layout not in optimizer.layouts:
        allowed = ", ".join(k for k, c in PROBLEM_CLASSES.items() if c.layout in optimizer.layouts)
        return _error(
            f"{optimizer.name!r} does not apply to problem kind {problem.kind!r} (layout {cls.layout!r}); "
            f"allowed kinds: {allowed}",
            "optimizer.name",
        )
    if optimizer.solver == "flow":
        if fields.schedule.name != "constant":
            return _error(f"{optimizer.name} integrates a flow and takes no schedule; use constant, "
                          f"not {fields.schedule.name!r}", "schedule.name")
        if fields.dtype != "float64":
            return _error(f"{optimizer.name} integrates in float64; allowed: float64", "dtype")
        if fields.gradient_noise is not None:
            return _error(f"{optimizer.name} integrates a flow; gradient noise applies to discrete steps only",
                          "gradient_noise")
    for name in fields.metrics:
        metric = _METRIC_REGISTRY.get(name)
        if metric is not None and not metric.applies(cls):
            applicable = [m for m, reg in _METRIC_REGISTRY.items() if reg.applies(cls)] + list(_RUNNER_METRICS)
            return _error(f"{name!r} does not apply to problem kind {problem.kind!r}; allowed: {', '.join(applicable)}",
                          "metrics")
    return None


def _device(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d+)?", value):
        return value
    raise _error(f"must be cpu, cuda or cuda:N, got {value!r}")


def _metrics(value: Any) -> Any:
    # Canonical order, no duplicates: the same set of metrics is the same run.
    if isinstance(value, list) and all(isinstance(v, str) and v in METRICS for v in value):
        return [m for m in METRICS if m in value]
    return value


class _RunFields(_OmitWhenNone):
    """Everything that defines one run except its seed (a config without its grid)."""

    problem: ProblemConfig
    optimizer: OptimizerConfig
    schedule: ScheduleConfig = Field(default_factory=lambda: SCHEDULE_CONFIGS["constant"].model_validate({}))
    steps: _Steps
    stop: StopConfig = Field(default_factory=StopConfig)
    dtype: Literal[DTYPES] = "float64"  # type: ignore[valid-type]
    device: Annotated[str, BeforeValidator(_device)] = "cpu"
    metrics: Annotated[list[Literal[METRICS]], BeforeValidator(_metrics), Field(min_length=1)] = [  # type: ignore[valid-type]
        "loss",
        "rel_err",
    ]
    log_every: _Steps = 1
    gradient_noise: GradientNoiseConfig | None = None
    # gradient_noise (issue 15) came later: left out of dumps while None, so runs and
    # configs without it keep their ids and hashes.
    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("gradient_noise",)

    @model_validator(mode="before")
    @classmethod
    def _schedule_shorthand(cls, data: Any) -> Any:
        # `schedule: plateau` is `schedule: {name: plateau}`.
        if isinstance(data, dict) and isinstance(data.get("schedule"), str):
            data = {**data, "schedule": {"name": data["schedule"]}}
        return data


class RunFields(_RunFields):
    """The fields of one grid point: :class:`_RunFields` plus the rules across fields."""

    @model_validator(mode="after")
    def _cross_field(self) -> RunFields:
        error = _cross_field_error(self)
        if error is not None:
            raise error
        return self


_RUN_FIELDS = tuple(_RunFields.model_fields)
_SUBCONFIG_AXES = ("problem", "optimizer", "schedule")


# ----------------------------------------------------------------------------- runs


class RunSpec(OneLineErrors, _OmitWhenNone):
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
    steps: _Steps
    stop: StopConfig
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    device: Annotated[str, BeforeValidator(_device)]
    seed: _Seed
    metrics: Annotated[list[Literal[METRICS]], BeforeValidator(_metrics), Field(min_length=1)]  # type: ignore[valid-type]
    log_every: _Steps
    gradient_noise: GradientNoiseConfig | None = None
    # gradient_noise (issue 15) came later: left out of dumps while None, so runs and
    # configs without it keep their ids and hashes.
    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("gradient_noise",)

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


def batch_key(run: RunSpec) -> str:
    """Hash of the run's flat columns without :data:`BATCHABLE` (and the experiment name).

    Runs with the same key differ only in seed, κ, α, γ and lr, so the engine can
    advance them together as one batched tensor set.
    """
    flat = {k: v for k, v in run.flat().items() if k not in BATCHABLE and k != "experiment"}
    return _digest(flat)



def step_clock(row: Mapping[str, Any] | pd.Series) -> float:
    """Time per step of a run, from its flat columns: a flow's recording interval
    ``optimizer.dt``, else the step size ``optimizer.lr`` (the clock on which seed 000's
    equal-rate law t_i = sqrt(0.9σ*_i)/η is read)."""
    dt = row.get("optimizer.dt")
    if dt is not None and not (isinstance(dt, float) and math.isnan(dt)):
        return float(dt)
    return float(row["optimizer.lr"])
