"""Where and with what a reproduction ran: the record the report's provenance footers show.

:func:`record` measures what the results store does not already hold (``meta.json``
has the resolved config, its hash, the overrides and the package versions; every run
row its ``wall_s``): the muonlab version and the git commit of its source (when it runs
from a git checkout), torch's version, the machine (CPU model and its matmul-relevant
flags from ``lscpu`` or ``/proc/cpuinfo``, the GPU when a CUDA device ran), and the
experiment's wall time. :func:`muonlab.reproduce.reproduce` writes it, after each
experiment, to ``DIR/<experiment>/provenance.json`` (:data:`FILENAME`); nothing else in
the store changes (run ids, config hashes and ``meta.json`` are as before).
"""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["FILENAME", "git_commit", "machine", "read", "record", "write"]

#: The file in a results store folder that holds its provenance record.
FILENAME = "provenance.json"


@cache
def git_commit(path: str | None = None) -> str | None:
    """The commit of the git checkout holding ``path`` (default: this package's source),
    with ``-dirty`` when tracked files differ from it; None outside a checkout or
    without git (an installed wheel)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(head) != 40:
        return None
    return head[:12] + ("-dirty" if dirty else "")


def machine(device: str | None = None) -> dict[str, Any]:
    """The machine: ``cpu`` (model), ``cpu_flags`` (the matmul-relevant ones), ``cpus``
    (logical), ``gpu`` (the CUDA device's name when ``device`` is a CUDA one, else None)
    and ``platform``."""
    import torch

    from muonlab.bench.common import machine_info

    dev = torch.device(device) if device and device.startswith("cuda") and torch.cuda.is_available() else None
    info = machine_info(dev)
    return {"cpu": info.cpu_model, "cpu_flags": list(info.matmul_flags), "cpus": info.logical_cpus,
            "gpu": info.gpu, "platform": platform.platform(terse=True)}


def record(*, wall_s: float | None = None, device: str | None = None) -> dict[str, Any]:
    """The provenance of an experiment that just ran: versions, commit, machine, wall time."""
    import torch

    from muonlab import __version__

    return {"muonlab": str(__version__), "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "machine": machine(device),
            "wall_s": None if wall_s is None else round(float(wall_s), 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write(store_dir: str | Path, rec: dict[str, Any]) -> Path:
    """Write ``rec`` to ``store_dir/provenance.json`` (atomically)."""
    from muonlab.atomic import write_json

    path = Path(store_dir) / FILENAME
    write_json(path, rec)
    return path


def record_quietly(store_dir: str | Path, wall_s: float, device: Any = None) -> None:
    """Write the provenance of the store that just ran (``muonlab run``, ``reproduce``); a
    failure to measure or write it is logged, never raised (the runs are stored)."""
    import logging

    try:
        write(store_dir, record(wall_s=wall_s, device=str(device) if device else None))
    except (OSError, ValueError, RuntimeError) as e:  # pragma: no cover - a full disk, a broken torch
        logging.getLogger("muonlab").warning("provenance of %s not written: %s", store_dir, e)


def read(store_dir: str | Path) -> dict[str, Any]:
    """``store_dir/provenance.json`` ({} when absent or unreadable)."""
    try:
        data = json.loads((Path(store_dir) / FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
