"""Shared pieces of the config models: the error type, strict base model, number types and
canonical JSON (run ids and batch keys are digests of it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from muonlab.config.limits import MAX_NS_STEPS, MAX_SEED, MAX_SIZE, MAX_STEPS
from muonlab.errors import MuonlabError


class ConfigError(MuonlabError):
    """An invalid experiment config. ``str(error)`` is one line naming the field.

    Attributes:
        field: the dotted field path (``"problem.r"``), or None when the error is
            about the file as a whole.
    """


# ----------------------------------------------------------------------------- base types


def _integral_float_to_int(value: Any) -> Any:
    # 1e5 in YAML is a float; an integer field accepts it when it is integral.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**63 else repr(x)


def _in_range(low: float, high: float, *, high_open: bool = False) -> AfterValidator:
    """A check that a number lies in ``[low, high]`` (``[low, high)`` if ``high_open``);
    its error names the whole range: ``must be >= 0 and < 1, got 1.5``."""
    upper = f"< {_num(high)}" if high_open else f"<= {_num(high)}"

    def check(value: Any) -> Any:
        if not (low <= value and (value < high if high_open else value <= high)):
            raise _error(f"must be >= {_num(low)} and {upper}, got {_show(value)}")
        return value

    return AfterValidator(check)


def _bounded_int(low: int, high: int) -> Any:
    # An integral float (1e5) is accepted and converted before the strict int check.
    return Annotated[int, BeforeValidator(_integral_float_to_int), _in_range(low, high)]


# Every integer field is bounded (muonlab.config.limits): the store keeps int64 columns,
# and the planner must be able to size a run before it is refused.
_Int = _bounded_int(-MAX_STEPS, MAX_STEPS)
_Size = _bounded_int(1, MAX_SIZE)  # a dimension, rank or count of samples/prompts
_Index = _bounded_int(0, MAX_SIZE)  # an index into a dimension
_Steps = _bounded_int(1, MAX_STEPS)  # steps, log_every
_StepCount = _bounded_int(0, MAX_STEPS)  # a schedule's patience, warmup, total
_Seed = _bounded_int(0, MAX_SEED)
_NSSteps = _bounded_int(1, MAX_NS_STEPS)
_PosInt = _Size
_Kappa = Annotated[float, Field(ge=1.0)]
_Positive = Annotated[float, Field(gt=0.0)]
_NonNeg = Annotated[float, Field(ge=0.0)]
#: A momentum or moving-average coefficient: [0, 1) (1 never forgets; above 1 diverges).
_Momentum = Annotated[float, _in_range(0.0, 1.0, high_open=True)]


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


class _OmitWhenNone(_Model):
    """A model whose optional fields named in ``_OMIT_WHEN_NONE`` are left out of every
    dump while None. Fields added after configs were shipped use it, so that configs that
    do not name them keep their run ids and config hashes."""

    _OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in self._OMIT_WHEN_NONE:
            if key in data and data[key] is None:
                del data[key]
        return data


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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
