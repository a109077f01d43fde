"""The limits a config is validated against: the run count, and the range of every integer.

**Run count.** How many runs one experiment may expand to: checked before the grid is expanded.

Expanding (validating every grid point, building every :class:`RunSpec`) costs time
and memory per run, so a config whose ``grid × seeds`` is absurdly large (``seeds:
1000000``, a 10⁸-point grid) is refused at once, in one line naming the count, instead
of hanging. The limit is :data:`DEFAULT_MAX_RUNS` unless a caller raises it for a
block of code with :func:`max_runs` (the CLI's ``--max-runs``).

**Integer ranges.** Every integer field has an upper bound, checked when the config is
validated (before anything is written): the store keeps them in int64 columns, so a
value beyond int64 used to pass validation and crash the first write after
``meta.json`` (issue 14). Sizes are bounded far below that, so that the memory
planner (:mod:`muonlab.engine.plan`) can still compute a run's footprint and refuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["DEFAULT_MAX_RUNS", "MAX_NS_STEPS", "MAX_SEED", "MAX_SIZE", "MAX_STEPS", "max_runs", "run_limit"]

#: Problem sizes (dimensions, ranks, sample and prompt counts): 2³¹ − 1, the largest
#: tensor dimension every kernel indexes; any matrix near it is refused by the planner.
MAX_SIZE = 2**31 - 1
#: Step counts (``steps``, ``log_every``, a schedule's ``patience``/``warmup``/``total``):
#: 10¹², beyond any run's wall time, exact in float64.
MAX_STEPS = 10**12
#: Seeds: the store's int64 ``seed`` column.
MAX_SEED = 2**63 - 1
#: Newton–Schulz / Polar Express iterations per Muon step (5 is usual).
MAX_NS_STEPS = 1000

#: 100,000 runs: 12× the largest paper-scale experiment (s002_lr_stability, 8,000 runs).
DEFAULT_MAX_RUNS = 100_000

_LIMIT: ContextVar[int] = ContextVar("muonlab_max_runs", default=DEFAULT_MAX_RUNS)


def run_limit() -> int:
    """The run-count limit in force."""
    return _LIMIT.get()


@contextlib.contextmanager
def max_runs(limit: int | None) -> Iterator[int]:
    """Validate configs inside this block with run-count limit ``limit`` (None: the default)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"max_runs: must be a positive integer, got {limit!r}")
    token = _LIMIT.set(DEFAULT_MAX_RUNS if limit is None else limit)
    try:
        yield _LIMIT.get()
    finally:
        _LIMIT.reset(token)
