"""What every benchmark shares: the timer, the machine record, JSON and rich output.

A benchmark's result is a frozen dataclass; :func:`as_json` turns a result (or a list
of them, or a dict of those) into plain JSON, and :func:`machine_info` records what the
numbers were measured on (CPU model and flags from ``lscpu`` or ``/proc/cpuinfo``,
torch's CPU capability and thread count, the GPU if one was used), because a ratio
means little without the machine it was measured on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "MATMUL_FLAGS",
    "MachineInfo",
    "as_json",
    "best_time",
    "default_device",
    "log10_gap",
    "machine_info",
    "parse_cpuinfo",
    "parse_lscpu",
    "print_results",
    "sync",
]

#: CPU flags that decide matmul speed (SIMD width, FMA, bf16/fp16 and matrix units):
#: the ones :meth:`MachineInfo.summary` shows; the record keeps every flag.
MATMUL_FLAGS = re.compile(r"^(avx\d*|avx512\w*|avx_vnni\w*|amx\w*|fma|f16c|sse4_2|asimd\w*|sve\w*|sme\d?|bf16|i8mm)$")


def default_device() -> torch.device:
    """CUDA when it is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    """Wait for queued kernels, so that a wall-clock time covers the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` wall-clock times of ``fn()`` in seconds, after one warm-up call."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def check_methods_and_shapes(methods: Iterable[str], allowed: Sequence[str],
                              shapes: Iterable[Sequence[int]]) -> None:
    """ValueError naming the field unless every method is allowed and every shape is
    (batch, m, n) of positive sizes (the orthogonalize benchmarks' inputs)."""
    for name in methods:
        if name not in allowed:
            raise ValueError(f"methods: unknown {name!r}; allowed: {', '.join(allowed)}")
    for shape in shapes:
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shapes: each shape is (batch, m, n) of positive sizes, got {tuple(shape)}")


def log10_gap(a: Iterable[float], b: Iterable[float]) -> float:
    """max |log10 a_i − log10 b_i|: how far apart two lists of positive errors are."""
    return max((abs(math.log10(x) - math.log10(y)) for x, y in zip(a, b, strict=True)), default=0.0)


# ----------------------------------------------------------------------------- machine


@dataclass(frozen=True)
class MachineInfo:
    """The machine a benchmark ran on."""

    cpu_model: str
    cpu_flags: tuple[str, ...]
    logical_cpus: int
    torch_threads: int
    torch_cpu_capability: str
    torch_version: str
    gpu: str | None
    source: str  # where cpu_model and cpu_flags came from: "lscpu", "/proc/cpuinfo" or "platform"

    @property
    def matmul_flags(self) -> tuple[str, ...]:
        return tuple(f for f in self.cpu_flags if MATMUL_FLAGS.match(f))

    def summary(self) -> str:
        """One line: CPU model, CPU count, matmul-relevant flags, torch, GPU."""
        flags = " ".join(self.matmul_flags) or "none of the SIMD/matrix flags"
        gpu = f"; GPU: {self.gpu}" if self.gpu else ""
        return (f"CPU: {self.cpu_model} ({self.logical_cpus} logical CPUs, torch {self.torch_threads} threads, "
                f"{self.torch_cpu_capability}; flags: {flags}){gpu}; torch {self.torch_version}")


def parse_lscpu(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(model name, flags) from ``lscpu`` output, or None when it has no model name."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    model = fields.get("Model name")
    if not model:
        return None
    return model, tuple(fields.get("Flags", "").split())


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(model name, flags) from ``/proc/cpuinfo`` (x86 ``model name``/``flags``, Arm ``Features``)."""
    model = flags = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if (model is None and key in ("model name", "hardware", "cpu model", "processor")
                and not value.strip().isdigit()):
            model = value.strip()
        elif flags is None and key in ("flags", "features"):
            flags = tuple(value.split())
    if not model:
        return None
    return model, flags or ()


def _lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True,
                             env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def machine_info(device: torch.device | None = None) -> MachineInfo:
    """Record the CPU (``lscpu``, else ``/proc/cpuinfo``, else :mod:`platform`) and torch's view of it."""
    found = parse_lscpu(_lscpu())
    source = "lscpu"
    if found is None:
        found, source = parse_cpuinfo(_cpuinfo()), "/proc/cpuinfo"
    if found is None:
        found, source = (platform.processor() or platform.machine() or "unknown", ()), "platform"
    model, flags = found
    gpu = None
    if device is not None and device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
    return MachineInfo(
        cpu_model=model,
        cpu_flags=flags,
        logical_cpus=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        torch_version=torch.__version__,
        gpu=gpu,
        source=source,
    )


# ----------------------------------------------------------------------------- output


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    if isinstance(obj, torch.device):
        return str(obj)
    return obj


def as_json(obj: Any) -> str:
    """A result, a list of results or a dict of those as one line of JSON."""
    return json.dumps(_plain(obj))


def print_results(title: str, header: Sequence[str], rows: Iterable[Sequence[str]], *,
                  machine: MachineInfo | None = None, note: str | None = None) -> None:
    """A rich table (first column left-aligned, the others right), the machine line under it."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", caption=note, caption_justify="left")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    if machine is not None:
        console.print(machine.summary(), highlight=False, soft_wrap=True)
