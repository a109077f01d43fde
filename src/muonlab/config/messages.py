"""Pydantic validation errors reworded as one-line :class:`ConfigError` messages naming the field."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)

from muonlab.config.base import ConfigError, _show
from muonlab.config.optimizers import OPTIMIZERS
from muonlab.config.problems import PROBLEMS
from muonlab.config.schedules import SCHEDULE_CONFIGS
from muonlab.config.stop import StopConfig

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
    if kind in ("float_type", "float_parsing") and isinstance(value, int) and not isinstance(value, bool):
        # An integer too large for a float64 (beyond ~1.8e308): pydantic calls it "not a number".
        return path, f"{path}: must be a finite number (at most 1.8e308), got {_show(value)}"
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



_T = TypeVar("_T")


class OneLineErrors:
    """Mixin for the config models users validate directly (:class:`ExperimentConfig`,
    :class:`RunSpec`): ``model_validate`` raises :class:`ConfigError` (one line naming the
    field) instead of pydantic's multi-line ``ValidationError``."""

    @classmethod
    def model_validate(cls: type[_T], obj: Any, **kwargs: Any) -> _T:
        try:
            return super().model_validate(obj, **kwargs)  # type: ignore[misc]
        except ValidationError as e:
            raise _config_error(e, cls) from e  # type: ignore[arg-type]
