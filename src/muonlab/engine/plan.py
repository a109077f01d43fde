"""The plan of an experiment: its runs not yet in the store, grouped into batches that fit.

``plan(config, done)`` expands the grid (:func:`muonlab.config.expand`; configs that
would expand past the run limit were already refused when loaded,
:mod:`muonlab.config.limits`), drops the runs whose id is in ``done`` (resume), groups
the rest by :func:`muonlab.config.batch_key` (input order kept), and splits the groups:

* to fit a memory budget per worker (:func:`muonlab.engine.memory.batch_bytes`); a
  run that does not fit even alone makes the whole plan fail with
  :class:`PlanError`, one line naming the estimate, before anything is written;
* to at most ``max_batch`` runs;
* into at least two batches per worker when there are fewer (so every worker has
  work); splitting never changes a run's results (each run's tensors are its own).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from muonlab.config import ExperimentConfig, RunSpec, batch_key, expand
from muonlab.engine.memory import _BATCH_OVERHEAD, batch_bytes, format_bytes, run_bytes
from muonlab.errors import MuonlabError

__all__ = ["Plan", "PlanError", "group_runs", "plan", "split_for_workers"]


class PlanError(MuonlabError):
    """A plan that cannot run on this machine (a run larger than the memory budget)."""


def group_runs(runs: Sequence[RunSpec]) -> list[tuple[RunSpec, ...]]:
    """Batches of runs that share everything but their batchable fields (input order kept)."""
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for r in runs:
        groups[batch_key(r)].append(r)
    return [tuple(g) for g in groups.values()]


@dataclass(frozen=True)
class Plan:
    """What a run of an experiment will do: ``batches`` to execute (each with its
    estimated peak memory in ``batch_bytes``) and ``skipped`` runs already complete in
    the store; ``budget`` is the memory per worker the batches were sized for."""

    batches: tuple[tuple[RunSpec, ...], ...]
    skipped: int
    batch_bytes: tuple[int, ...] = ()
    budget: int | None = None
    workers: int = 1

    @property
    def todo(self) -> int:
        """Runs to execute."""
        return sum(len(b) for b in self.batches)

    @property
    def peak_bytes(self) -> int:
        """The largest batch's estimated peak memory."""
        return max(self.batch_bytes, default=0)

    def describe(self) -> str:
        """One line: runs, batches, estimated memory, workers."""
        memory = f"largest batch ≈ {format_bytes(self.peak_bytes)}"
        if self.budget is not None:
            memory += f" (budget {format_bytes(self.budget)} per worker)"
        done = f", {self.skipped} already in the store" if self.skipped else ""
        return (f"{self.todo} runs in {len(self.batches)} batches{done}; {memory}; "
                f"{self.workers} worker{'s' if self.workers != 1 else ''}")


def _describe_run(spec: RunSpec) -> str:
    dims = spec.problem.model_dump(exclude={"kind", "kappa", "alpha", "gamma", "values", "spectrum", "init",
                                            "basis", "covariance"}, exclude_none=True)
    shape = ", ".join(f"{k}={v}" for k, v in dims.items() if isinstance(v, int))
    return f"{spec.problem.kind} ({shape}), {spec.dtype}, {spec.steps} steps, {len(spec.metrics)} metrics"


def _fit(batch: tuple[RunSpec, ...], budget: int | None, max_batch: int | None) -> list[tuple[RunSpec, ...]]:
    size = len(batch)
    if budget is not None:
        per_run = run_bytes(batch[0])
        cap = (budget - _BATCH_OVERHEAD) // per_run if per_run else size
        if cap < 1:
            raise PlanError.about(
                "max_memory",
                f"one run of {batch[0].experiment} needs ≈ {format_bytes(per_run + _BATCH_OVERHEAD)} "
                f"[{_describe_run(batch[0])}] but the budget is {format_bytes(budget)} per worker; "
                "shrink the problem or raise --max-memory",
            )
        size = min(size, int(cap))
    if max_batch:
        size = min(size, max_batch)
    return [batch[i : i + size] for i in range(0, len(batch), size)]


def split_for_workers(batches: Sequence[tuple[RunSpec, ...]], workers: int) -> list[tuple[RunSpec, ...]]:
    """Halve the largest batches until there are at least ``2 × workers`` (or every
    batch is one run), so no worker idles while another holds the only batch."""
    out = list(batches)
    while workers > 1 and len(out) < 2 * workers:
        i = max(range(len(out)), key=lambda j: len(out[j]), default=None)
        if i is None or len(out[i]) < 2:
            break
        b = out[i]
        half = (len(b) + 1) // 2
        out[i : i + 1] = [b[:half], b[half:]]
    return out


def plan(
    config: ExperimentConfig,
    done: Collection[str] = (),
    max_batch: int | None = None,
    *,
    max_memory: int | None = None,
    workers: int = 1,
) -> Plan:
    """The batches that run ``config``'s runs not in ``done``.

    Args:
        max_batch: at most this many runs per batch (None: no limit).
        max_memory: bytes one batch may use (per worker); None: no memory planning.
        workers: batches run at once; with more than one, batches are split so that
            each worker gets at least two.

    Raises:
        PlanError: one run alone exceeds ``max_memory`` (nothing has been run).
    """
    runs = expand(config)
    todo = [r for r in runs if r.run_id not in done]
    batches = [piece for b in group_runs(todo) for piece in _fit(b, max_memory, max_batch)]
    batches = split_for_workers(batches, workers)
    return Plan(tuple(batches), skipped=len(runs) - len(todo),
                batch_bytes=tuple(batch_bytes(b) for b in batches), budget=max_memory, workers=workers)
