"""Solvers: how a :class:`~muonlab.engine.batch.Batch` is advanced in time.

A solver has a ``name`` and ``solve(batch, on_step=None) -> BatchResult``. The
registry :data:`SOLVERS` maps the name an optimizer config declares
(``config.optimizer.solver``) to the solver, so the engine never branches on an
optimizer's name:

* ``discrete`` (:class:`~.discrete.DiscreteSolver`): steps with the batch's update rule
  and schedule (every optimizer but SpecGF);
* ``flow`` (:class:`~.flow.FlowSolver`): integrates seed 000's spectral gradient flow
  with an adaptive ODE solver, recorded every ``optimizer.dt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from muonlab.config import RunSpec
from muonlab.engine.batch import Batch, build_batch
from muonlab.engine.runbook import BatchResult
from muonlab.engine.solvers.discrete import DiscreteSolver
from muonlab.engine.solvers.flow import FlowSolver

__all__ = ["SOLVERS", "Solver", "run_batch", "solve"]


class Solver(Protocol):
    """What the engine needs of a solver."""

    name: str

    def solve(self, batch: Batch, on_step: Callable[[int], None] | None = None) -> BatchResult:
        """Advance every run of ``batch``; ``on_step(k)`` reports k run-steps done."""
        ...


#: Solver name (an optimizer config's ``solver``) → solver.
SOLVERS: dict[str, Solver] = {s.name: s for s in (DiscreteSolver(), FlowSolver())}


def solve(batch: Batch, on_step: Callable[[int], None] | None = None) -> BatchResult:
    """Advance ``batch`` with the solver its optimizer names."""
    return SOLVERS[batch.solver].solve(batch, on_step)


def run_batch(runs: Sequence[RunSpec], on_step: Callable[[int], None] | None = None) -> BatchResult:
    """Build the batch of ``runs`` (same batch key) and solve it."""
    return solve(build_batch(runs), on_step)
