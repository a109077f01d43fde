"""muonlab.bench.common: the timer, the machine record (lscpu / /proc/cpuinfo) and JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from muonlab.bench import common
from muonlab.bench.common import (
    MachineInfo,
    as_json,
    best_time,
    log10_gap,
    machine_info,
    parse_cpuinfo,
    parse_lscpu,
)

LSCPU = """\
Architecture:                            x86_64
Vendor ID:                               GenuineIntel
Model name:                              Intel(R) Xeon(R) Platinum 8480+
Flags:                                   fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile smep
"""

CPUINFO_X86 = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse4_2 avx avx2 fma

processor\t: 1
model name\t: AMD EPYC 9654 96-Core Processor
flags\t\t: fpu sse4_2 avx avx2 fma
"""

CPUINFO_ARM = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes sve sve2 bf16 i8mm
CPU implementer\t: 0x41
"""


def test_parse_lscpu_reads_model_and_every_flag():
    model, flags = parse_lscpu(LSCPU)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == ("fpu", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "smep")
    assert parse_lscpu("Architecture: x86_64\n") is None  # no model name: fall back


def test_parse_cpuinfo_x86_and_arm():
    assert parse_cpuinfo(CPUINFO_X86) == ("AMD EPYC 9654 96-Core Processor", ("fpu", "sse4_2", "avx", "avx2", "fma"))
    # Arm kernels list "Features" and often no model name at all: nothing to report.
    assert parse_cpuinfo(CPUINFO_ARM) is None
    assert parse_cpuinfo("Processor\t: ARMv7 rev 4 (v7l)\nFeatures\t: half neon vfpv4\n") == (
        "ARMv7 rev 4 (v7l)", ("half", "neon", "vfpv4"))


def test_summary_shows_the_matmul_flags_only():
    info = MachineInfo(cpu_model="X", cpu_flags=parse_lscpu(LSCPU)[1], logical_cpus=4, torch_threads=2,
                       torch_cpu_capability="AVX512", torch_version="2.x", gpu=None, source="lscpu")
    assert info.matmul_flags == ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    line = info.summary()
    assert "CPU: X (4 logical CPUs" in line and "amx_tile" in line
    assert "smep" not in line and "fpu" not in line and "GPU" not in line


def test_machine_info_on_this_machine_matches_proc_cpuinfo():
    info = machine_info()
    assert info.cpu_model and info.logical_cpus >= 1 and info.torch_threads == torch.get_num_threads()
    assert info.torch_version == torch.__version__ and info.gpu is None
    cpuinfo = Path("/proc/cpuinfo")
    parsed = parse_cpuinfo(cpuinfo.read_text()) if cpuinfo.exists() else None
    if parsed is not None:  # lscpu reads the same file: both sources agree
        assert (info.cpu_model, set(info.cpu_flags)) == (parsed[0], set(parsed[1]))


def test_machine_info_falls_back_to_proc_cpuinfo_then_platform(monkeypatch):
    monkeypatch.setattr(common, "_lscpu", lambda: "")
    monkeypatch.setattr(common, "_cpuinfo", lambda: CPUINFO_X86)
    info = machine_info()
    assert (info.source, info.cpu_model, info.cpu_flags) == (
        "/proc/cpuinfo", "AMD EPYC 9654 96-Core Processor", ("fpu", "sse4_2", "avx", "avx2", "fma"))
    monkeypatch.setattr(common, "_cpuinfo", lambda: "")
    info = machine_info()
    assert info.source == "platform" and info.cpu_model and info.cpu_flags == ()


def test_best_time_warms_up_then_takes_the_minimum(monkeypatch):
    clock = [0.0]
    durations = iter([5.0, 6.0, 1.0, 4.0])  # warm-up, then three timed calls
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])

    def fn():
        clock[0] += next(durations)

    # The 1 s call: not the warm-up (5 s), the last call (4 s) nor the mean (3.67 s).
    assert best_time(fn, torch.device("cpu"), 3) == 1.0
    assert next(durations, None) is None  # exactly one warm-up and three timed calls
    with pytest.raises(ValueError, match="^repeats: must be >= 1"):
        best_time(fn, torch.device("cpu"), 0)


def test_log10_gap():
    assert log10_gap([1e-3, 1e-6], [1e-3, 1e-6]) == 0.0
    assert log10_gap([1e-3, 1e-6], [1e-2, 1e-6]) == pytest.approx(1.0)
    assert log10_gap([1e-8], [1e-5]) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        log10_gap([1.0, 2.0], [1.0])


def test_as_json_flattens_results_with_computed_fields_and_dtypes():
    @dataclasses.dataclass(frozen=True)
    class R:
        dtype: torch.dtype
        a: float
        b: float
        ratio: float = dataclasses.field(init=False)

        def __post_init__(self):
            object.__setattr__(self, "ratio", self.a / self.b)

    data = json.loads(as_json({"x": [R(torch.bfloat16, 3.0, 2.0)], "none": None}))
    assert data == {"x": [{"dtype": "bfloat16", "a": 3.0, "b": 2.0, "ratio": 1.5}], "none": None}
    assert math.isclose(json.loads(as_json(R(torch.float32, 1.0, 4.0)))["ratio"], 0.25)
