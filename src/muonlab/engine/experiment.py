"""One experiment end to end: config → plan → batches → solver → results store (SPEC §6).

``run(config, out)`` plans the batches of the runs the store does not hold yet
(:func:`muonlab.engine.plan.plan`: resume, memory budget), runs each on a backend
(:mod:`muonlab.engine.backends`: this process, a local process pool, or Ray tasks),
where it is built once (:func:`muonlab.engine.batch.build_batch`) and advanced by the
solver its optimizer names (:data:`muonlab.engine.solvers.SOLVERS`), and appends every
finished batch to the store atomically from this process, so an interrupted sweep
loses at most the batches in flight. A batch that raises is split in halves until the
runs that raise stand alone (one run's failure must not take its batch-mates with it);
such a run is recorded as ``failed`` and the sweep goes on; the store retries it on the
next run (only ``ok`` and ``diverged`` are final). A batch that runs out of memory is retried smaller, never stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.config import (
    ConfigError,
    ExperimentConfig,
    load_config,
)
from muonlab.engine.backends import Executor, make_executor
from muonlab.engine.memory import default_budget
from muonlab.engine.plan import Plan, group_runs, plan
from muonlab.engine.store import ResultStore, StoreError
from muonlab.errors import MuonlabError

__all__ = ["ResourceError", "Result", "group_runs", "run"]

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


def check_device(device: str) -> None:
    """Refuse a device this machine lacks up front, rather than fail every batch."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r} is not available on this machine; allowed here: cpu", "device")


def run(
    config: ExperimentConfig | str | Path,
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    max_batch: int | None = None,
    backend: str = "local",
    workers: int | None = 1,
    address: str | None = None,
    max_memory: int | None = None,
    threads: int | None = 1,
    executor: Executor | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> Result:
    """Run an experiment into the results store ``out`` (resuming if it exists).

    Every run row records its provenance: ``config_hash``
    (:attr:`ExperimentConfig.config_hash`) and ``overrides`` (the ``key=value`` list
    that made ``config`` from its YAML, as JSON text). A store holds the runs of one
    configuration: resuming the same config skips its completed runs, and a different
    config is refused before anything is written.

    The plan (:func:`muonlab.engine.plan.plan`) is made before anything is written:
    batches sized to ``max_memory`` per worker, a run that cannot fit refused. The
    batches then run on ``backend`` (:mod:`muonlab.engine.backends`); this process
    stores each finished batch at once, whatever order they finish in. A batch that
    runs out of memory is not a result: it is retried in halves, and a run that does
    not fit even alone is left out of the store (a later resume retries it) and
    reported by :class:`ResourceError` after every other batch is stored.

    Args:
        config: an :class:`ExperimentConfig` or a path to its YAML.
        out: the store directory.
        overrides: the overrides applied to the YAML (recorded; applied here only when
            ``config`` is a path).
        max_batch: split batches larger than this; None = no limit.
        backend, workers, address: where batches run (:func:`make_executor`):
            ``local`` with 1 worker = this process; ``workers`` None = all cores.
        max_memory: bytes per worker the batches are sized to (None: a share of the
            available memory, :func:`muonlab.engine.memory.default_budget`).
        threads: torch threads per worker (default 1; None: this process's setting,
            in this process only).
        executor: run on this (open) executor instead of making one from ``backend``,
            ``workers`` and ``address``, and leave it open (``reproduce`` keeps one pool
            for all its experiments: a spawned worker costs seconds to start).
        on_plan(plan), on_batch(done_runs, total_runs), on_step(k): progress callbacks
            (``on_step`` only in this process: 1 local worker).

    Raises:
        StoreConfigError: ``out`` holds runs of another configuration (one line).
        PlanError: a run is larger than the memory budget (nothing written).
        ResourceError: runs that did not fit in memory even one at a time (the rest stored).
    """
    overrides = [str(o) for o in overrides]
    if not isinstance(config, ExperimentConfig):
        config = load_config(config, overrides)
    check_device(config.device)
    owned = executor is None
    if executor is None:
        executor = make_executor(backend, workers, address=address, on_step=on_step, threads=threads,
                                 gpus_per_task=1 if config.device.startswith("cuda") else 0)
    store = ResultStore(out)
    provenance = {"config_hash": config.config_hash, "overrides": json.dumps(overrides, ensure_ascii=False)}
    with executor if owned else contextlib.nullcontext(executor):
        n_workers = getattr(executor, "workers", 1)
        budget = max_memory if max_memory is not None else default_budget(n_workers)
        # A plan that cannot run is refused before the store (even its lock file) exists.
        plan(config, _completed_before_repair(store) if Path(out).is_dir() else (), max_batch, max_memory=budget)
        with store.lock():
            # A damaged store is repaired (or its losses named) before any batch runs.
            for line in store.repair():
                _log.warning(line)
            store.check_config(config.config_hash, overrides)
            todo = plan(config, store.completed_ids(), max_batch, max_memory=budget, workers=n_workers)
            if on_plan is not None:
                on_plan(todo)
            store.write_metadata({"config": config.model_dump(mode="json"), "config_hash": config.config_hash,
                                  "overrides": overrides})
            unfit = _drive(executor, todo, store, provenance, on_batch)
            store.consolidate()
    if unfit:
        raise ResourceError.about(
            "max_memory", f"{len(unfit)} run(s) ran out of memory even one at a time and were not stored "
            f"(a rerun retries them): {unfit[0][1]}",
        )
    return Result(Path(out), store.runs(), skipped=todo.skipped, executed=todo.todo)


def _completed_before_repair(store: ResultStore) -> set[str]:
    """The completed runs for the early plan check; a store that cannot be read yet is
    repaired under the lock just after (the plan is made again there)."""
    try:
        return store.completed_ids()
    except StoreError:
        return set()


class ResourceError(MuonlabError):
    """Runs that did not fit in memory even alone (not stored; a resume retries them)."""


def _drive(executor: Executor, todo: Plan, store: ResultStore, provenance: dict[str, str],
           on_batch: Callable[[int, int], None] | None) -> list[tuple[str, str]]:
    """Keep ``executor``'s slots full, store each outcome as it comes, retry resource
    failures in halves; returns the (run_id, error) of runs that never fit."""
    queue = deque(todo.batches)
    in_flight, finished = 0, 0
    unfit: list[tuple[str, str]] = []
    while queue or in_flight:
        while queue and in_flight < executor.slots:
            executor.submit(queue.popleft())
            in_flight += 1
        for outcome in executor.collect():
            in_flight -= 1
            runs = outcome.runs
            if outcome.resource_error is not None:
                if len(runs) > 1:
                    half = (len(runs) + 1) // 2
                    _log.warning("batch of %d runs ran out of memory (%s); retrying as %d + %d runs",
                                 len(runs), outcome.resource_error, half, len(runs) - half)
                    queue.appendleft(runs[half:])
                    queue.appendleft(runs[:half])
                else:
                    _log.warning("run %s ran out of memory alone (%s); not stored", runs[0].run_id,
                                 outcome.resource_error)
                    unfit.append((runs[0].run_id, outcome.resource_error))
                continue
            rows = outcome.rows or []
            if rows and rows[0].get("status") == "failed" and rows[0].get("error"):
                if len(runs) > 1:
                    # One run's failure (an SVD that does not converge on its iterate) raises
                    # for the whole batch: split it until the failing runs stand alone, so
                    # that the others are stored with their own outcome.
                    half = (len(runs) + 1) // 2
                    _log.warning("batch of %d runs failed (%s); retrying as %d + %d runs", len(runs),
                                 rows[0]["error"], half, len(runs) - half)
                    queue.appendleft(runs[half:])
                    queue.appendleft(runs[:half])
                    continue
                _log.warning("run %s failed (recorded as failed): %s", runs[0].run_id, rows[0]["error"])
            rows = [{"run_id": row["run_id"], **provenance, **row} for row in rows]
            # Each batch is durable on its own; the consolidated files are refreshed
            # once at the end (rewriting them per batch would cost O(store) each time).
            store.append(rows, outcome.trajectories, consolidate=False)
            finished += len(runs)
            if on_batch is not None:
                on_batch(finished, todo.todo)
    return unfit
