"""Memory a batch will need, estimated from shapes before anything is built.

:func:`batch_bytes` counts, for R runs that share a batch key, the scalars of the
problem's tensors (:meth:`~muonlab.config.problems._Problem.footprint`: fixed data,
parameters, per-step intermediates), the optimizer's copies of the parameters
(gradient, momentum, update, the orthogonalizer's workspace), and what logging keeps
until the batch ends (every logged metric value, then its long-form trajectory rows;
a flow solver also keeps the state at every logging time). The coefficients are
upper bounds calibrated against the peak resident memory of real batches
(``tests/engine/test_memory.py`` checks estimate ≥ measured peak, and not more than
a few times it, on several problems). :func:`available_bytes` reads what the machine
(or its cgroup) has free; :func:`default_budget` gives each worker a share of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from muonlab.config import RunSpec
from muonlab.errors import MuonlabError

__all__ = [
    "DEFAULT_FRACTION",
    "available_bytes",
    "batch_bytes",
    "default_budget",
    "format_bytes",
    "parse_bytes",
    "run_bytes",
]

#: The share of available memory the workers of one sweep may plan to use, together.
DEFAULT_FRACTION = 0.5

# Parameter-sized copies alive during a step: params, gradient, momentum, update and
# the orthogonalizer's workspace (Gram/product matrices are counted in ``work``).
_PARAM_COPIES = 6
# Per-step intermediates are built a few times (loss, gradient, metrics share none).
_WORK_COPIES = 4
# One logged scalar: its float64 value in the run book (plus its step's ok mask),
# then a long-form row (run_id, step, metric, index, value) built and concatenated.
_BYTES_PER_LOGGED = 160
# A flow (solve_ivp) keeps the state at every logging time and ~10 stage vectors.
_FLOW_STAGES = 10
# The allocator keeps freed blocks of mid-sized tensors (glibc's heap below its mmap
# threshold): measured peaks reach ~2× the live tensors, so tensors count twice.
_SLACK = 2
# Fixed cost of a batch regardless of size (Python objects, allocator arenas).
_BATCH_OVERHEAD = 64 * 2**20


def _logs(spec: RunSpec) -> int:
    """How many steps log metrics (every ``log_every``, step 0 and the last)."""
    return spec.steps // spec.log_every + 2


def run_bytes(spec: RunSpec) -> int:
    """Estimated peak bytes one run adds to its batch (see the module docstring)."""
    fp = spec.problem.footprint()
    tensors = 8 * fp.data + 8 * _PARAM_COPIES * fp.params + 8 * _WORK_COPIES * fp.work
    widths = sum(fp.width if _is_vector(m) else 1 for m in spec.metrics)
    logged = _logs(spec) * widths * _BYTES_PER_LOGGED
    if spec.optimizer.solver == "flow":
        tensors += 8 * fp.params * (_logs(spec) + _FLOW_STAGES)
    return int(_SLACK * tensors + logged)


def batch_bytes(runs: Sequence[RunSpec]) -> int:
    """Estimated peak bytes of one batch of runs (same batch key)."""
    if not runs:
        return 0
    return _BATCH_OVERHEAD + len(runs) * run_bytes(runs[0])


def _is_vector(metric: str) -> bool:
    """Whether a metric logs a vector per run (its doc gives a shape ``(R, k)``)."""
    from muonlab.engine.metrics import METRICS

    m = METRICS.get(metric)
    return m is not None and "(R, " in m.doc


def available_bytes() -> int:
    """Memory available to this process now: MemAvailable, capped by a cgroup v2/v1 limit."""
    avail = None
    try:
        text = Path("/proc/meminfo").read_text()
        found = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.M)
        if found:
            avail = int(found.group(1)) * 1024
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * 2**30  # unknown platform: assume a laptop
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 2**60:
                avail = min(avail, int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return max(int(avail), 0)


def default_budget(workers: int = 1) -> int:
    """Each worker's share of :data:`DEFAULT_FRACTION` of the available memory."""
    return int(available_bytes() * DEFAULT_FRACTION / max(workers, 1))


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int, field: str = "max_memory") -> int:
    """``"4GiB"``, ``"500MB"``, ``"2g"`` or a plain byte count → bytes (one-line error otherwise)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
        if not found or found.group(2).lower() not in _UNITS:
            raise MuonlabError.about(field, f"expected a size such as 4GiB, 500MB or 2e9, got {text!r}; "
                                     f"units: {', '.join(u for u in _UNITS if u)}")
        value, unit = float(found.group(1)), found.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise MuonlabError.about(field, f"must be positive, got {text!r}")
    return size


def format_bytes(n: float) -> str:
    """Bytes in binary units, three significant digits (``1.5 GiB``)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"
