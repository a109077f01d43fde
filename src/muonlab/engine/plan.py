"""The plan of an experiment: its runs not yet in the store, grouped into batches.

``plan(config, done)`` expands the grid (:func:`muonlab.config.expand`), drops the runs
whose id is in ``done`` (resume), groups the rest by :func:`muonlab.config.batch_key`
(input order kept) and splits groups larger than ``max_batch``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from muonlab.config import ExperimentConfig, RunSpec, batch_key, expand

__all__ = ["Plan", "group_runs", "plan"]


def group_runs(runs: Sequence[RunSpec]) -> list[tuple[RunSpec, ...]]:
    """Batches of runs that share everything but their batchable fields (input order kept)."""
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for r in runs:
        groups[batch_key(r)].append(r)
    return [tuple(g) for g in groups.values()]


@dataclass(frozen=True)
class Plan:
    """What a run of an experiment will do: ``batches`` to execute and ``skipped`` runs
    already complete in the store."""

    batches: tuple[tuple[RunSpec, ...], ...]
    skipped: int

    @property
    def todo(self) -> int:
        """Runs to execute."""
        return sum(len(b) for b in self.batches)


def plan(config: ExperimentConfig, done: Collection[str] = (), max_batch: int | None = None) -> Plan:
    """The batches that run ``config``'s runs not in ``done``, at most ``max_batch`` runs each."""
    runs = expand(config)
    todo = [r for r in runs if r.run_id not in done]
    batches = group_runs(todo)
    if max_batch:
        batches = [b[i : i + max_batch] for b in batches for i in range(0, len(b), max_batch)]
    return Plan(tuple(batches), skipped=len(runs) - len(todo))
