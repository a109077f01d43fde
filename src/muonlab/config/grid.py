"""Experiments and their grids: :class:`ExperimentConfig` and :func:`expand` into runs."""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from muonlab.config.base import (
    ConfigError,
    _digest,
    _error,
    _integral_float_to_int,
    _num,
    _set_path,
    _short,
    _show,
)
from muonlab.config.limits import MAX_SEED, run_limit
from muonlab.config.messages import OneLineErrors, _config_error
from muonlab.config.reproduce_spec import ReproduceSpec
from muonlab.config.run import (
    _RUN_FIELDS,
    _SUBCONFIG_AXES,
    RunFields,
    RunSpec,
    _RunFields,
)


def _seeds(value: Any) -> Any:
    if isinstance(value, bool):
        raise _error(f"must be a positive integer or a list of integers, got {value!r}")
    value = _integral_float_to_int(value)
    if isinstance(value, int):
        if value < 1:
            raise _error(f"must be >= 1 (the number of seeds), got {value}")
        if value > run_limit():  # before building the list: `seeds: 1e12` must not hang
            raise _error(f"{value:,} seeds exceed the run limit of {run_limit():,} runs (raise it with --max-runs)")
        return list(range(value))
    if isinstance(value, list):
        if not value:
            raise _error("must not be empty")
        for s in value:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
                raise _error(f"must be a list of integers >= 0 and <= {_num(MAX_SEED)}, got {_show(s)}")
        if len(set(value)) != len(value):
            dup = next(s for s in value if value.count(s) > 1)
            raise _error(f"duplicate seed {dup}")
        return value
    raise _error(f"must be a positive integer or a list of integers, got {value!r}")


def axis_paths(axis: str) -> list[str]:
    """The dotted paths a grid axis sets: one (``problem.kappa``), or several joined by
    commas for a zipped axis (``problem.alpha, optimizer``) whose entries are lists with
    one value per path, set together."""
    return [p.strip() for p in axis.split(",")]


def _grid(value: Any) -> Any:
    if not isinstance(value, dict):
        raise _error(f"must be a mapping of axis → list of values, got {value!r}")
    # One spelling per axis (`a, b` and `a,b` are one axis; the later, an override, wins).
    value = {",".join(axis_paths(k)) if isinstance(k, str) else k: v for k, v in value.items()}
    seen: set[str] = set()
    for key, values in value.items():
        paths = axis_paths(key) if isinstance(key, str) else [""]
        for path in paths:
            parts = path.split(".")
            if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in parts):
                raise _error(f"bad axis name {key!r}; use a dotted path such as problem.kappa, or several "
                             "joined by commas (a zipped axis)")
            if parts[0] not in _RUN_FIELDS:
                allowed = ", ".join(_RUN_FIELDS)
                raise _error(f"cannot be a grid axis; allowed: {allowed} (and dotted paths into them)", key)
            if path in seen:  # two axes setting one path: the later would silently win
                raise _error(f"path {path!r} is set by two grid axes", key)
            seen.add(path)
        if not isinstance(values, list) or not values:
            raise _error(f"must be a non-empty list of values, got {_show(values)}", key)
        if len(paths) > 1:
            for entry in values:
                if not isinstance(entry, list) or len(entry) != len(paths):
                    raise _error(f"a zipped axis needs each entry to be a list of {len(paths)} values "
                                 f"({', '.join(paths)}), got {_show(entry)}", key)
    return value


class ExperimentConfig(OneLineErrors, _RunFields):
    """A validated experiment: the run fields, the experiment ``name``, ``seeds`` and ``grid``.

    ``model_validate`` raises :class:`ConfigError` (one line) instead of pydantic's
    ``ValidationError``. ``seeds`` is normalized to a list (``3`` → ``[0, 1, 2]``).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    seeds: Annotated[list[int], BeforeValidator(_seeds)] = [0]
    grid: Annotated[dict[str, list[Any]], BeforeValidator(_grid)] = {}
    # How `muonlab reproduce` presents, judges and scales it; no run carries it, and
    # meta.json leaves it out (exclude) so stores stay as they were.
    reproduce: Annotated[ReproduceSpec | None, Field(exclude=True)] = None

    _points: list[tuple[dict[str, Any], _RunFields]] = PrivateAttr(default_factory=list)

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
        count = math.prod(len(values) for _, values in axes) * len(self.seeds)
        if count > run_limit():  # before validating any grid point: a 10⁸-point grid must not hang
            sizes = " × ".join([*(f"{len(v)} {k}" for k, v in axes), f"{len(self.seeds)} seeds"])
            raise _error(f"{sizes} = {count:,} runs exceed the run limit of {run_limit():,} "
                         "(raise it with --max-runs)", "__full__", "grid")
        paths = [axis_paths(key) for key, _ in axes]
        points: list[tuple[dict[str, Any], _RunFields]] = []
        for combo in itertools.product(*(values for _, values in axes)):
            setting = {axes[i][0]: combo[i] for i in range(len(axes))}
            label = ", ".join(f"{k}={_short(v)}" for k, v in setting.items())
            assigned = [(path, value) for i, value in enumerate(combo)
                        for path, value in zip(paths[i], value if len(paths[i]) > 1 else [value], strict=True)]
            raw = copy.deepcopy(base)
            try:
                # Whole sub-configs first, then dotted paths into the (replaced) sub-configs.
                for path, value in sorted(assigned, key=lambda pv: pv[0].count(".")):
                    _set_path(raw, path.split("."), copy.deepcopy(value))
                fields = RunFields.model_validate(raw)
            except ConfigError as e:
                raise _error(f"grid[{label}]: {e}" if label else str(e), "__full__", e.field) from None
            except ValidationError as e:
                inner = _config_error(e, RunFields)
                raise _error(f"grid[{label}]: {inner}" if label else str(inner), "__full__", inner.field) from None
            points.append((setting, fields))
        self._points = points
        return self

    def grid_points(self) -> list[tuple[dict[str, Any], _RunFields]]:
        """(axis values, validated run fields) for every grid point, in grid order."""
        return list(self._points)

    def expand(self) -> list[RunSpec]:
        """Same as :func:`expand`."""
        return expand(self)

    @property
    def config_hash(self) -> str:
        """The first 16 hex digits of the sha256 of the canonical JSON of the resolved
        config (every field, grid and seeds included; the ``reproduce:`` section, which
        no run reads, excluded). Every run row records it: a store holds the runs of
        one configuration, and two configs with equal hashes make the same runs."""
        return _digest(self.model_dump(mode="json"))


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

