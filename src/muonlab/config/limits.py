"""How many runs one experiment may expand to: checked before the grid is expanded.

Expanding (validating every grid point, building every :class:`RunSpec`) costs time
and memory per run, so a config whose ``grid × seeds`` is absurdly large (``seeds:
1000000``, a 10⁸-point grid) is refused at once, in one line naming the count, instead
of hanging. The limit is :data:`DEFAULT_MAX_RUNS` unless a caller raises it for a
block of code with :func:`max_runs` (the CLI's ``--max-runs``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["DEFAULT_MAX_RUNS", "max_runs", "run_limit"]

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
