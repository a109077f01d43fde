"""A batch: runs that differ only in batchable fields, with everything built once.

:func:`build_batch` turns a group of :class:`~muonlab.config.RunSpec` (same
:func:`~muonlab.config.batch_key`) into a :class:`Batch`: one
:class:`~muonlab.problems.base.Problem` with a leading run dimension R (per-run κ, α,
γ and seeds), the optimizer's batched update rule (for stepped optimizers), the
schedule, and the solver that will advance it. Solvers read only the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from muonlab.config import RunSpec
from muonlab.dtypes import DTYPES
from muonlab.errors import MuonlabError
from muonlab.optim.batched import BatchedRule
from muonlab.optim.schedules import Schedule
from muonlab.problems.base import Problem

__all__ = ["Batch", "build_batch", "build_problem"]


@dataclass
class Batch:
    """R compatible runs and what advancing them needs, built once."""

    runs: tuple[RunSpec, ...]
    problem: Problem
    schedule: Schedule
    rule: BatchedRule | None  # None for a continuous-time solver

    @property
    def spec(self) -> RunSpec:
        """The first run: every field but the batchable ones is the same for all."""
        return self.runs[0]

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def solver(self) -> str:
        """The name of the solver that advances this batch (``SOLVERS`` key)."""
        return self.spec.optimizer.solver

    def initial_lr(self) -> torch.Tensor:
        """Each run's base step size η_0, shape (R,), float64."""
        return torch.tensor([float(r.optimizer.lr) for r in self.runs], dtype=torch.float64)  # type: ignore[union-attr]


def build_problem(runs: Sequence[RunSpec]) -> Problem:
    """One batched problem for runs that differ only in batchable fields."""
    spec = runs[0].problem
    per_run = {k: [getattr(r.problem, k) for r in runs] for k in spec.per_run_fields if k in type(spec).model_fields}
    return spec.build(
        [int(r.seed) for r in runs], dtype=DTYPES[runs[0].dtype], device=runs[0].device, per_run=per_run
    )


def build_batch(runs: Sequence[RunSpec]) -> Batch:
    """Problem, schedule and update rule for a group of runs sharing a batch key."""
    runs = tuple(runs)
    if not runs:
        raise MuonlabError("runs: a batch needs at least one run", field="runs")
    spec = runs[0]
    return Batch(
        runs=runs, problem=build_problem(runs), schedule=spec.schedule.build(), rule=spec.optimizer.build_rule()
    )
