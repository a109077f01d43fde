"""Where batches run: in this process, in a pool of local processes, or as Ray tasks.

Every backend runs the same pure function, :func:`execute_batch` (build the batch,
advance it with its solver, return its rows and trajectories), and hands the
outcomes back to the driver (:func:`muonlab.engine.experiment.run`), the store's only
writer. A batch that raises is an outcome too (its runs recorded ``failed``), except
when it ran out of memory: that is not a result, and the driver retries it in
smaller pieces (:attr:`BatchOutcome.resource_error`).

* :class:`InProcess` — one batch at a time in this process (reports steps as they go).
* :class:`LocalPool` — ``workers`` spawned processes (one torch thread each) over the
  local cores; a worker killed by the kernel's OOM killer breaks the pool, which is
  rebuilt and the batches it held retried smaller.
* :class:`RayTasks` — each batch a Ray task (``num_cpus``/``num_gpus`` per task, at
  most ``2 × workers`` in flight, lost tasks retried by Ray), on a running cluster
  (``address``) or a local instance; Ray is the optional extra ``muonlab[ray]``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from muonlab.accuracy import EPSILON_COLUMNS
from muonlab.config import RunSpec
from muonlab.engine.batch import build_batch
from muonlab.engine.solvers import solve
from muonlab.errors import MuonlabError

__all__ = [
    "BACKENDS",
    "BatchOutcome",
    "Executor",
    "InProcess",
    "LocalPool",
    "RayTasks",
    "execute_batch",
    "is_resource_error",
    "make_executor",
    "usable_cores",
]

BACKENDS = ("local", "ray")


@dataclass
class BatchOutcome:
    """What became of one batch: rows and trajectories to store, or a resource error."""

    runs: tuple[RunSpec, ...]
    rows: list[dict[str, Any]] | None = None
    trajectories: pd.DataFrame | None = None
    resource_error: str | None = None


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


_RESOURCE_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator")


def is_resource_error(error: BaseException) -> bool:
    """Whether ``error`` says the batch did not fit (host or device memory), not that a run is wrong."""
    import torch

    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error).lower() for m in _RESOURCE_MESSAGES)


def _one_line(error: BaseException) -> str:
    return (f"{type(error).__name__}: {error}".splitlines() or [type(error).__name__])[0]


def failed_rows(runs: Sequence[RunSpec], error: BaseException | str) -> list[dict[str, Any]]:
    """Store rows that record ``runs`` as ``failed`` with the error's first line."""
    message = error if isinstance(error, str) else _one_line(error)
    rows = []
    for r in runs:
        row = {"run_id": r.run_id, **r.flat(), "status": "failed", "final_loss": None,
               "final_rel_err": None, "steps": 0, "wall_s": 0.0, "error": message}
        row.update(dict.fromkeys(EPSILON_COLUMNS))
        rows.append(row)
    return rows


def execute_batch(
    runs: Sequence[RunSpec], threads: int | None = None, on_step: Callable[[int], None] | None = None
) -> BatchOutcome:
    """Build and solve one batch (the unit of work of every backend).

    ``threads``: set torch's intra-op threads first (a worker process). An exception is
    the batch's ``failed`` rows, except a resource error, which is returned as such.
    """
    import torch

    runs = tuple(runs)
    if threads:
        torch.set_num_threads(threads)
    try:
        result = solve(build_batch(runs), on_step=on_step)
    except Exception as e:  # noqa: BLE001 - a failing batch is an outcome; the sweep continues
        if is_resource_error(e):
            return BatchOutcome(runs, resource_error=_one_line(e))
        return BatchOutcome(runs, rows=failed_rows(runs, e))
    return BatchOutcome(runs, rows=result.runs, trajectories=result.trajectories)


_Payload = tuple[list[dict[str, Any]] | None, pd.DataFrame | None, str | None]


def _execute_remote(specs: list[str], threads: int) -> _Payload:
    """:func:`execute_batch` in another process. Runs travel as their JSON (config
    classes made at import time do not pickle) and come back as rows, not objects."""
    outcome = execute_batch([RunSpec.model_validate_json(s) for s in specs], threads)
    return outcome.rows, outcome.trajectories, outcome.resource_error


def _as_json(runs: Sequence[RunSpec]) -> list[str]:
    return [r.model_dump_json() for r in runs]


class Executor(ABC):
    """Runs batches; at most :attr:`slots` are submitted and not yet collected."""

    slots: int = 1
    #: Whether ``on_step`` progress reaches the driver while a batch runs.
    reports_steps: bool = False

    @abstractmethod
    def submit(self, runs: tuple[RunSpec, ...]) -> None: ...

    @abstractmethod
    def collect(self) -> list[BatchOutcome]:
        """Wait for at least one submitted batch to finish; return the finished ones."""

    def close(self, wait: bool = True) -> None:  # noqa: B027 - optional: only pools hold workers
        """Release workers (idempotent); ``wait=False``: do not wait for batches still running."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(wait=exc_type is None)  # Ctrl-C must not wait for a long batch to end


class InProcess(Executor):
    """One batch at a time, in this process, with ``threads`` torch threads while it
    runs (None: as set)."""

    reports_steps = True

    def __init__(self, on_step: Callable[[int], None] | None = None, threads: int | None = 1) -> None:
        self.on_step = on_step
        self.threads = threads
        self._queue: list[tuple[RunSpec, ...]] = []

    def submit(self, runs: tuple[RunSpec, ...]) -> None:
        self._queue.append(runs)

    def collect(self) -> list[BatchOutcome]:
        import torch

        old = torch.get_num_threads()
        try:
            return [execute_batch(self._queue.pop(0), self.threads, on_step=self.on_step)]
        finally:
            torch.set_num_threads(old)


def _spawn_context() -> Any:
    # Not fork: a forked child of a process with torch's thread pools can deadlock.
    return multiprocessing.get_context("spawn")


class LocalPool(Executor):
    """``workers`` spawned processes, one torch thread each (``threads``)."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.slots = self.workers = workers
        self.threads = threads
        self._pool: cf.ProcessPoolExecutor | None = None
        self._futures: dict[cf.Future[_Payload], tuple[RunSpec, ...]] = {}

    def _executor(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_spawn_context())
        return self._pool

    def submit(self, runs: tuple[RunSpec, ...]) -> None:
        self._futures[self._executor().submit(_execute_remote, _as_json(runs), self.threads)] = runs

    def collect(self) -> list[BatchOutcome]:
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            runs = self._futures.pop(future)
            try:
                out.append(BatchOutcome(runs, *future.result()))
            except cf.process.BrokenProcessPool:
                broken = True
                out.append(BatchOutcome(runs, resource_error="a worker process died (killed for memory?)"))
        if broken:  # every batch the dead pool held is lost with it: retry them as resource failures
            for future, runs in list(self._futures.items()):
                out.append(BatchOutcome(runs, resource_error="a worker process died (killed for memory?)"))
                del self._futures[future]
            self.close()
        return out

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


class RayTasks(Executor):
    """Each batch a Ray task on the cluster at ``address`` (None: start a local instance
    with ``workers`` CPUs). ``workers`` None: as many as the cluster has CPUs."""

    def __init__(self, workers: int | None = None, address: str | None = None, *, cpus_per_task: float = 1,
                 gpus_per_task: float = 0, max_retries: int = 3) -> None:
        try:
            import ray
        except ImportError:
            raise MuonlabError.about("backend", "'ray' needs Ray: pip install 'muonlab[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = workers or usable_cores()
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise MuonlabError.about("address", f"cannot connect to Ray at {address!r}: {_one_line(e)}") from None
            self._started = True
        cluster = int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_task, 1e-9))
        self.workers = workers or max(cluster, 1)
        self.slots = 2 * self.workers  # bounded in flight: the driver never floods the cluster
        threads = max(int(cpus_per_task), 1)
        self._task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries)(
            _execute_remote
        )
        self._threads = threads
        self._refs: dict[Any, tuple[RunSpec, ...]] = {}

    def submit(self, runs: tuple[RunSpec, ...]) -> None:
        self._refs[self._task.remote(_as_json(runs), self._threads)] = runs

    def collect(self) -> list[BatchOutcome]:
        ray = self._ray
        ready, _ = ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in ready:
            runs = self._refs.pop(ref)
            try:
                out.append(BatchOutcome(runs, *ray.get(ref)))
            except ray.exceptions.RayTaskError as e:  # raised outside execute_batch's own handling
                cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
                if is_resource_error(cause):
                    out.append(BatchOutcome(runs, resource_error=_one_line(cause)))
                else:
                    out.append(BatchOutcome(runs, rows=failed_rows(runs, cause)))
            except (ray.exceptions.OutOfMemoryError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError) as e:  # retries exhausted: a resource problem, not a result
                out.append(BatchOutcome(runs, resource_error=_one_line(e)))
        return out

    def close(self, wait: bool = True) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def make_executor(
    backend: str = "local",
    workers: int | None = 1,
    *,
    address: str | None = None,
    gpus_per_task: float = 0,
    threads: int | None = 1,
    on_step: Callable[[int], None] | None = None,
) -> Executor:
    """The executor for ``backend`` (``local`` | ``ray``) and ``workers``.

    ``local`` with one worker runs in this process; with more, a spawned process pool.
    ``workers`` None: every usable core (local) or every CPU of the Ray cluster.
    ``threads``: torch threads per worker (default 1: these batches are small matrices;
    the same count everywhere also keeps every backend's results bit-identical).
    """
    if backend not in BACKENDS:
        raise MuonlabError.about("backend", f"unknown {backend!r}; allowed: {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise MuonlabError.about("workers", f"must be a positive integer, got {workers!r}")
    if address is not None and backend != "ray":
        raise MuonlabError.about("address", "only with --backend ray")
    if backend == "ray":
        return RayTasks(workers, address, cpus_per_task=threads or 1, gpus_per_task=gpus_per_task)
    n = workers or usable_cores()
    return InProcess(on_step, threads) if n == 1 else LocalPool(n, threads or 1)
