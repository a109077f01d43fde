"""One experiment end to end: config → grid of runs → batches → results store (SPEC §6).

``run(config, out)`` expands the grid, skips the runs the store already holds
(resume), groups the rest by batch key, advances each batch with
:func:`muonlab.engine.runner.run_batch`, and appends every finished batch to the
store atomically, so an interrupted sweep loses at most the batch in flight.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.config import ConfigError, ExperimentConfig, RunSpec, batch_key, expand, load_config
from muonlab.engine.runner import run_batch
from muonlab.engine.store import EPSILON_COLUMNS, ResultStore

__all__ = ["Result", "run", "group_runs"]

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


def group_runs(runs: list[RunSpec]) -> list[list[RunSpec]]:
    """Batches of runs that share everything but their batchable fields (input order kept)."""
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for r in runs:
        groups[batch_key(r)].append(r)
    return list(groups.values())


def _failed_rows(batch: list[RunSpec], error: BaseException) -> list[dict[str, Any]]:
    message = f"{type(error).__name__}: {error}".splitlines()[0]
    rows = []
    for r in batch:
        row = {"run_id": r.run_id, **r.flat(), "status": "failed", "final_loss": None,
               "final_rel_err": None, "steps": 0, "wall_s": 0.0, "error": message}
        row.update({col: None for col in EPSILON_COLUMNS})
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
    max_batch: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Result:
    """Run an experiment into the results store ``out`` (resuming if it exists).

    Args:
        config: an :class:`ExperimentConfig` or a path to its YAML.
        out: the store directory.
        max_batch: split batches larger than this (memory bound); None = no limit.
        on_batch(done_runs, total_runs), on_step(k): progress callbacks.
    """
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    check_device(config.device)
    store = ResultStore(out)
    all_runs = expand(config)
    with store.lock():
        store.write_metadata({"config": config.model_dump(mode="json")})
        done = store.completed_ids()
        todo = [r for r in all_runs if r.run_id not in done]
        batches = group_runs(todo)
        if max_batch:
            batches = [b[i : i + max_batch] for b in batches for i in range(0, len(b), max_batch)]
        finished = 0
        for batch in batches:
            try:
                result = run_batch(batch, on_step=on_step)
                rows, traj = result.runs, result.trajectories
            except Exception as e:  # a failing batch is recorded; the sweep continues
                rows, traj = _failed_rows(batch, e), None
                _log.warning("batch of %d runs failed (recorded as failed): %s", len(batch), rows[0]["error"])
            # Each batch is durable on its own; the consolidated files are refreshed
            # once at the end (rewriting them per batch would cost O(store) each time).
            store.append(rows, traj, consolidate=False)
            finished += len(batch)
            if on_batch is not None:
                on_batch(finished, len(todo))
        store.consolidate()
    return Result(Path(out), store.runs(), skipped=len(all_runs) - len(todo), executed=len(todo))
