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

The package, from the inside out:

* :mod:`.base` — the error type :class:`ConfigError`, the strict frozen base model
  (unknown keys, inf/nan and string-for-number refused), canonical JSON and digests.
* :mod:`.problems`, :mod:`.optimizers`, :mod:`.schedules`, :mod:`.stop` — the models;
  ``problem`` is a union tagged by ``kind``, ``optimizer`` and ``schedule`` by ``name``.
  Each optimizer model builds its update rule (:meth:`build_rule`) and names its solver.
* :mod:`.run` — the fields of one run and :class:`RunSpec` (``run_id``, ``flat()``,
  :func:`batch_key`); every cross-field rule (a metric the problem lacks, ScaledGD on
  an unfactorized problem, SpecGF with a schedule or below float64) is checked here,
  so a bad combination is refused when the config is loaded, not when a batch runs.
* :mod:`.grid` — :class:`ExperimentConfig` (seeds, grid axes; every grid point is
  validated at load time) and :func:`expand` into runs.
* :mod:`.yaml_io` — :func:`load_yaml`, :func:`apply_overrides` (``--set key=value``),
  :func:`load_config`.
* :mod:`.messages` — pydantic errors reworded as ONE line naming the field path and,
  for a closed set, the allowed values: ``problem.r: must be <= n (10), got 20``.
"""

from muonlab.config.base import ConfigError
from muonlab.config.grid import ExperimentConfig, expand
from muonlab.config.optimizers import OPTIMIZERS
from muonlab.config.problems import PROBLEMS
from muonlab.config.run import BATCHABLE, METRICS, RunSpec, batch_key
from muonlab.config.schedules import SCHEDULE_CONFIGS
from muonlab.config.stop import StopConfig
from muonlab.config.yaml_io import apply_overrides, load_config, load_yaml

__all__ = [
    "BATCHABLE",
    "METRICS",
    "OPTIMIZERS",
    "PROBLEMS",
    "SCHEDULE_CONFIGS",
    "ConfigError",
    "ExperimentConfig",
    "RunSpec",
    "StopConfig",
    "apply_overrides",
    "batch_key",
    "expand",
    "load_config",
    "load_yaml",
]
