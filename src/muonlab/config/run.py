"""The fields of one run, and :class:`RunSpec`: one fully resolved run with its id and batch key."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from muonlab.config.base import (
    _digest,
    _error,
    _flatten,
    _Int,
    _Model,
    _PosInt,
)
from muonlab.config.messages import _config_error
from muonlab.config.optimizers import OptimizerConfig
from muonlab.config.problems import ProblemConfig, _Problem
from muonlab.config.schedules import SCHEDULE_CONFIGS, ScheduleConfig
from muonlab.config.stop import StopConfig
from muonlab.dtypes import DTYPE_NAMES as DTYPES
from muonlab.engine.metrics import METRICS as _METRIC_REGISTRY
from muonlab.engine.metrics import RUNNER_METRICS as _RUNNER_METRICS

#: Per-step metrics a config may ask for (SPEC §5): the engine's metric registry.
METRICS = (*_METRIC_REGISTRY, *_RUNNER_METRICS)

#: Flat columns that runs of one batch may differ in (the engine advances runs with
#: equal :func:`batch_key` as one batched tensor set).
BATCHABLE = frozenset({"seed", "problem.kappa", "problem.alpha", "problem.gamma", "optimizer.lr"})


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


def batch_key(run: RunSpec) -> str:
    """Hash of the run's flat columns without :data:`BATCHABLE` (and the experiment name).

    Runs with the same key differ only in seed, κ, α, γ and lr, so the engine can
    advance them together as one batched tensor set.
    """
    keep = {f"optimizer.{f}" for f in run.optimizer.unbatchable}
    flat = {k: v for k, v in run.flat().items() if (k not in BATCHABLE or k in keep) and k != "experiment"}
    return _digest(flat)

