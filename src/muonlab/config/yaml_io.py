"""YAML I/O: a strict loader (YAML 1.2 floats, duplicate keys refused), ``--set`` overrides."""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from muonlab.config.base import ConfigError, _set_path
from muonlab.config.grid import ExperimentConfig

# ----------------------------------------------------------------------------- YAML and overrides


class _Loader(yaml.SafeLoader):
    """SafeLoader + YAML 1.2 floats (``1e-3``, ``1.0e6`` are numbers) + duplicate-key errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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


def _yaml_error(where: str, e: Exception) -> ConfigError:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e) or type(e).__name__
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(problem).split())
    if len(problem) > 160:
        problem = problem[:157] + "..."
    return ConfigError(f"{where}: invalid YAML{at}: {problem}")


def _parse(text: str, where: str) -> Any:
    """``text`` parsed as YAML; any failure is ONE line naming ``where``.

    PyYAML raises more than ``YAMLError`` on hostile input: a ``\\U`` escape beyond
    Unicode (``ValueError``/``OverflowError`` from ``chr``), an impossible date
    (``2020-99-99``), a bad explicit tag (``!!int 1.5``), an integer of more than 4,300
    digits (``ValueError``), thousands of nested brackets (``RecursionError``).
    """
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise _yaml_error(where, e) from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError, TypeError) as e:
        raise _yaml_error(where, e) from None


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
    data = _parse(text, str(path))
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
        value = _parse(text, f"override {item!r}")
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
                zipped = [a.strip() for a in str(axis).split(",")]
                if len(zipped) > 1:
                    if any(a == key or a.startswith(key + ".") or key.startswith(a + ".") for a in zipped):
                        raise ConfigError(f"override {item!r}: {key} is set by the zipped grid axis {axis!r}; "
                                          f"override the axis itself (grid.{axis}=[...])")
                    continue
                if axis == key or axis.startswith(key + "."):
                    del grid[axis]
                elif key.startswith(axis + ".") and isinstance(grid[axis], list):
                    rest = key[len(axis) + 1 :].split(".")
                    for entry in grid[axis]:
                        if isinstance(entry, dict):
                            _set_path(entry, rest, copy.deepcopy(value))
    return out

