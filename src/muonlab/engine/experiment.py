"""One experiment end to end: config → plan → batches → solver → results store (SPEC §6).

``run(config, out)`` plans the batches of the runs the store does not hold yet
(:func:`muonlab.engine.plan.plan`: resume), builds each batch once
(:func:`muonlab.engine.batch.build_batch`), advances it with the solver its optimizer
names (:data:`muonlab.engine.solvers.SOLVERS`), and appends every finished batch to
the store atomically, so an interrupted sweep loses at most the batch in flight. A
batch that raises is recorded as ``failed`` and the sweep goes on; the store retries
it on the next run (only ``ok`` and ``diverged`` are final).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.accuracy import EPSILON_COLUMNS
from muonlab.config import (
    ConfigError,
    ExperimentConfig,
    RunSpec,
    load_config,
)
from muonlab.engine.batch import build_batch
from muonlab.engine.plan import group_runs, plan
from muonlab.engine.solvers import solve
from muonlab.engine.store import ResultStore

__all__ = ["Result", "group_runs", "run"]

_log = logging.getLogger("muonlab")


@dataclass
class Result:
    """What an experiment left in its store: one row per run, and the trajectories."""

    out: Path
    runs: pd.DataFrame
    skipped: int
    executed: int

    def trajectories(self, **filters: Any) -> pd.DataFrame:
        return ResultStore(self.out).trajectories(**filters)


def _failed_rows(batch: Sequence[RunSpec], error: BaseException) -> list[dict[str, Any]]:
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    rows = []
    for r in batch:
        row = {"run_id": r.run_id, **r.flat(), "status": "failed", "final_loss": None,
               "final_rel_err": None, "steps": 0, "wall_s": 0.0, "error": message}
        row.update(dict.fromkeys(EPSILON_COLUMNS))
        rows.append(row)
    return rows


def check_device(device: str) -> None:
    """Refuse a device this machine lacks up front, rather than fail every batch."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r} is not available on this machine; allowed here: cpu")


def run(
    config: ExperimentConfig | str | Path,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    max_batch: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Result:
    """Run an experiment into the results store ``out`` (resuming if it exists).

    Every run row records its provenance: ``config_hash``
    (:attr:`ExperimentConfig.config_hash`) and ``overrides`` (the ``key=value`` list
    that made ``config`` from its YAML, as JSON text). A store holds the runs of one
    configuration: resuming the same config skips its completed runs, and a different
    config is refused before anything is written.

    Args:
        config: an :class:`ExperimentConfig` or a path to its YAML.
        out: the store directory.
        overrides: the overrides applied to the YAML (recorded; applied here only when
            ``config`` is a path).
        max_batch: split batches larger than this (memory bound); None = no limit.
        on_batch(done_runs, total_runs), on_step(k): progress callbacks.

    Raises:
        StoreConfigError: ``out`` holds runs of another configuration (one line).
    """
    overrides = [str(o) for o in overrides]
    if not isinstance(config, ExperimentConfig):
        config = load_config(config, overrides)
    check_device(config.device)
    store = ResultStore(out)
    provenance = {"config_hash": config.config_hash, "overrides": json.dumps(overrides, ensure_ascii=False)}
    with store.lock():
        store.check_config(config.config_hash, overrides)
        store.write_metadata({"config": config.model_dump(mode="json"), "config_hash": config.config_hash,
                              "overrides": overrides})
        todo = plan(config, store.completed_ids(), max_batch)
        finished = 0
        for batch in todo.batches:
            try:
                result = solve(build_batch(batch), on_step=on_step)
                rows, traj = result.runs, result.trajectories
            except Exception as e:  # noqa: BLE001 - a failing batch is recorded; the sweep continues
                rows, traj = _failed_rows(batch, e), None
                _log.warning("batch of %d runs failed (recorded as failed): %s", len(batch), rows[0]["error"])
            rows = [{"run_id": row["run_id"], **provenance, **row} for row in rows]
            # Each batch is durable on its own; the consolidated files are refreshed
            # once at the end (rewriting them per batch would cost O(store) each time).
            store.append(rows, traj, consolidate=False)
            finished += len(batch)
            if on_batch is not None:
                on_batch(finished, todo.todo)
        store.consolidate()
    return Result(Path(out), store.runs(), skipped=todo.skipped, executed=todo.todo)
