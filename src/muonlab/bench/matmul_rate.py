"""The device's measured matmul rate, and orthogonalize against it (SPEC §8).

    python bench/matmul_rate.py [--quick] [--device cpu] [--threads 2] [--repeats 3] [--json]

:func:`matmul_rate` measures, in this one process:

* :func:`matmul_rates`: the FLOP rate of one square matmul A·B (2 s³ FLOPs) for each
  dtype (bf16, float32, float64) and size (256, 1024, 2048 by default); a dtype's
  *rate* below is its best over the sizes;
* :func:`orthogonalize_rates`: ``muonlab.orthogonalize`` (``newton_schulz`` with
  Keller's coefficients and ``polar_express``, 5 steps, on a batch of matrices) at
  each iteration dtype, and torch.optim.Muon's per-matrix loop
  (``torch.optim._muon._zeropower_via_newtonschulz``, bf16, Keller × 5). Each row
  carries its time relative to ONE matmul of the same shape (X·Xᵀ on the whole
  batch, X the s×l orientation with s ≤ l, in the row's dtype), its exact matmul
  FLOP count (:func:`ns_flops`) and its achieved FLOP rate as a fraction of the
  measured bf16 and float32 rates.

Every time is the best of ``repeats`` after a warm-up; calls shorter than ~20 ms are
repeated inside one timing, so that small sizes are not timer noise. On CUDA the
device is synchronized before each clock reading.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from muonlab.bench.common import (
    as_json,
    check_methods_and_shapes,
    default_device,
    machine_info,
    print_results,
    sync,
)
from muonlab.linalg import orthogonalize

__all__ = [
    "DTYPES",
    "KELLER",
    "ORTHO_METHODS",
    "QUICK",
    "SHAPES",
    "SIZES",
    "TORCH_MUON",
    "MatmulRate",
    "OrthoRate",
    "RateReport",
    "main",
    "matmul_rate",
    "matmul_rates",
    "ns_flops",
    "orthogonalize_rates",
]

SIZES = (256, 1024, 2048)
DTYPES = (torch.bfloat16, torch.float32, torch.float64)
#: (batch, m, n) of the orthogonalize rows on CPU: square 256², wide 256×1024, square 1024².
SHAPES = ((32, 256, 256), (8, 256, 1024), (4, 1024, 1024))
ORTHO_METHODS = ("newton_schulz", "polar_express")
KELLER = (3.4445, -4.7750, 2.0315)
#: The ``impl`` of torch.optim.Muon's rows.
TORCH_MUON = "torch.optim.Muon loop"
MUONLAB = "muonlab.orthogonalize"
#: Smoke-test sizes (``matmul_rate(**QUICK)``).
QUICK: dict[str, Any] = {"sizes": (32, 64), "shapes": ((2, 16, 16), (2, 16, 32)), "repeats": 1}
_MIN_TIMED_S = 0.02


def ns_flops(m: int, n: int, steps: int = 5, batch: int = 1) -> int:
    """Matmul FLOPs of ``steps`` quintic Newton–Schulz steps on ``batch`` m×n matrices.

    With X of shape s×l (s = min(m, n), l = max(m, n): the iteration works on the
    smaller Gram side), one step X ← aX + (bA + cA²)X, A = XXᵀ, costs XXᵀ: 2s²l,
    A·A: 2s³ and (bA + cA²)·X: 2s²l FLOPs (a multiply-add counted as 2; the O(s²)
    scalings and additions are not counted).
    """
    s, l = min(m, n), max(m, n)
    return batch * steps * (4 * s * s * l + 2 * s**3)


def _best(fn: Callable[[], object], dev: torch.device, repeats: int) -> float:
    """Best time of one ``fn()`` call in seconds (short calls repeated within a timing)."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    fn()  # warm-up (lazy initialization, allocator)
    sync(dev)
    t0 = time.perf_counter()
    fn()  # a first estimate of the call's length
    sync(dev)
    first = time.perf_counter() - t0
    inner = max(1, min(1000, math.ceil(_MIN_TIMED_S / max(first, 1e-9))))
    best = math.inf
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync(dev)
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


@dataclass(frozen=True)
class MatmulRate:
    """One square size×size · size×size matmul in one dtype."""

    device: str
    dtype: str
    size: int
    seconds: float  # best time of one product
    flops: int  # 2 size³
    flop_rate: float = field(init=False)  # FLOP/s

    def __post_init__(self) -> None:
        object.__setattr__(self, "flop_rate", self.flops / self.seconds)


@dataclass(frozen=True)
class OrthoRate:
    """An orthogonalization of a batch against one matmul of its shape and the measured rates."""

    device: str
    impl: str  # "muonlab.orthogonalize" or "torch.optim.Muon loop"
    method: str  # newton_schulz (Keller's coefficients) or polar_express
    dtype: str  # the iteration dtype
    batch: int
    m: int
    n: int
    steps: int
    seconds: float  # best time on the whole batch
    matmul_s: float  # best time of ONE matmul of the same shape: X·Xᵀ on the whole batch (X: s×l, s ≤ l)
    flops: int  # ns_flops(m, n, steps, batch): exact matmul FLOPs
    bf16_rate: float  # the measured bf16 matmul rate (FLOP/s) the fractions refer to
    float32_rate: float  # the measured float32 matmul rate (FLOP/s)
    matmul_ratio: float = field(init=False)  # seconds / matmul_s: its time in matmuls of its shape
    matmul_flop_ratio: float = field(init=False)  # flops / (2 b s² l): what matmul_ratio would be at that rate
    flop_rate: float = field(init=False)  # flops / seconds
    bf16_fraction: float = field(init=False)  # flop_rate / bf16_rate
    float32_fraction: float = field(init=False)  # flop_rate / float32_rate

    def __post_init__(self) -> None:
        s, l = min(self.m, self.n), max(self.m, self.n)
        rate = self.flops / self.seconds
        object.__setattr__(self, "matmul_ratio", self.seconds / self.matmul_s)
        object.__setattr__(self, "matmul_flop_ratio", self.flops / (2 * self.batch * s * s * l))
        object.__setattr__(self, "flop_rate", rate)
        object.__setattr__(self, "bf16_fraction", rate / self.bf16_rate)
        object.__setattr__(self, "float32_fraction", rate / self.float32_rate)


@dataclass(frozen=True)
class RateReport:
    """The square-matmul rates, each dtype's best, and the orthogonalize rows measured against them."""

    device: str
    matmul: tuple[MatmulRate, ...]
    rates: dict[str, float]  # dtype name → best measured FLOP/s over the sizes
    orthogonalize: tuple[OrthoRate, ...]


def matmul_rates(
    *,
    sizes: Sequence[int] = SIZES,
    dtypes: Sequence[torch.dtype] = DTYPES,
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> list[MatmulRate]:
    """FLOP rate of one square matmul per dtype × size (in that order)."""
    if any(s < 1 for s in sizes):
        raise ValueError(f"sizes: must be positive, got {list(sizes)}")
    dev = torch.device(device) if device is not None else default_device()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for dtype in dtypes:
        for size in sizes:
            A = torch.randn(size, size, generator=gen).to(dev, dtype)
            B = torch.randn(size, size, generator=gen).to(dev, dtype)
            t = _best(functools.partial(torch.matmul, A, B), dev, repeats)
            out.append(MatmulRate(device=_device_name(dev), dtype=_dtype_name(dtype), size=size, seconds=t,
                                  flops=2 * size**3))
    return out


def best_rates(rates: Sequence[MatmulRate]) -> dict[str, float]:
    """Each dtype's best measured FLOP rate."""
    best: dict[str, float] = {}
    for r in rates:
        best[r.dtype] = max(best.get(r.dtype, 0.0), r.flop_rate)
    return best


def _one_matmul_s(G: Tensor, dtype: torch.dtype, dev: torch.device, repeats: int) -> float:
    """Best time of ONE matmul of ``G``'s shape: X·Xᵀ on the whole batch, X = G (or Gᵀ) with s ≤ l rows."""
    X = (G if G.shape[-2] <= G.shape[-1] else G.mT).to(dtype).contiguous()
    return _best(lambda: X @ X.mT, dev, repeats)


def torch_muon_loop(G: Tensor, steps: int = 5) -> Tensor:
    """torch.optim.Muon's orthogonalization, one matrix at a time (bf16, Keller's coefficients)."""
    from torch.optim._muon import _zeropower_via_newtonschulz

    return torch.stack([_zeropower_via_newtonschulz(g, KELLER, steps, 1e-7) for g in G])


def orthogonalize_rates(
    *,
    rates: Mapping[str, float],
    shapes: Sequence[tuple[int, int, int]] = SHAPES,
    methods: Sequence[str] = ORTHO_METHODS,
    dtypes: Sequence[torch.dtype] = (torch.bfloat16, torch.float32),
    steps: int = 5,
    torch_muon: bool = True,
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> list[OrthoRate]:
    """Time orthogonalize (and torch.optim.Muon's loop) against one matmul and the measured ``rates``.

    ``rates`` maps "bfloat16" and "float32" to FLOP/s (e.g. :func:`best_rates`). Per
    shape: muonlab's rows (method × dtype), then torch.optim.Muon's (bf16) row.
    """
    for key in ("bfloat16", "float32"):
        if not rates.get(key, 0.0) > 0.0:
            raise ValueError(f"rates: need a positive {key!r} rate, got {dict(rates)}")
    check_methods_and_shapes(methods, ORTHO_METHODS, shapes)
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    dev = torch.device(device) if device is not None else default_device()
    gen = torch.Generator().manual_seed(seed)
    out = []
    name = _device_name(dev)
    for batch, m, n in shapes:
        G = torch.randn(batch, m, n, generator=gen).to(dev)
        timed: list[tuple[str, str, torch.dtype, float]] = []  # (impl, method, dtype, seconds)
        for method in methods:
            for dtype in dtypes:
                t = _best(functools.partial(orthogonalize, G, method, steps=steps, dtype=dtype),
                          dev, repeats)
                timed.append((MUONLAB, method, dtype, t))
        if torch_muon:
            timed.append((TORCH_MUON, "newton_schulz", torch.bfloat16,
                          _best(functools.partial(torch_muon_loop, G, steps), dev, repeats)))
        matmul_s = {dtype: _one_matmul_s(G, dtype, dev, repeats) for dtype in dict.fromkeys(d for *_, d, _ in timed)}
        out += [OrthoRate(device=name, impl=impl, method=method, dtype=_dtype_name(dtype), batch=batch, m=m, n=n,
                          steps=steps, seconds=t, matmul_s=matmul_s[dtype], flops=ns_flops(m, n, steps, batch),
                          bf16_rate=rates["bfloat16"], float32_rate=rates["float32"])
                for impl, method, dtype, t in timed]
    return out


def matmul_rate(
    *,
    sizes: Sequence[int] = SIZES,
    dtypes: Sequence[torch.dtype] = DTYPES,
    shapes: Sequence[tuple[int, int, int]] = SHAPES,
    methods: Sequence[str] = ORTHO_METHODS,
    ortho_dtypes: Sequence[torch.dtype] = (torch.bfloat16, torch.float32),
    steps: int = 5,
    torch_muon: bool = True,
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> RateReport:
    """The square-matmul rates, then orthogonalize measured against the best bf16 and float32 ones."""
    dev = torch.device(device) if device is not None else default_device()
    needed = [d for d in (torch.bfloat16, torch.float32) if d not in dtypes]
    mm = matmul_rates(sizes=sizes, dtypes=[*dtypes, *needed], repeats=repeats, device=dev, seed=seed)
    rates = best_rates(mm)
    ortho = orthogonalize_rates(rates=rates, shapes=shapes, methods=methods, dtypes=ortho_dtypes, steps=steps,
                                torch_muon=torch_muon, repeats=repeats, device=dev, seed=seed)
    return RateReport(device=_device_name(dev), matmul=tuple(mm), rates=rates, orthogonalize=tuple(ortho))


def matmul_rows(report: RateReport) -> list[list[str]]:
    """Table rows of the square matmuls: dtype, size, seconds, GFLOP/s."""
    return [[f"{r.dtype} {r.size}×{r.size} on {r.device}", f"{r.seconds:.3g}", f"{r.flop_rate / 1e9:.1f}"]
            for r in report.matmul]


def ortho_rows(report: RateReport) -> list[list[str]]:
    """Table rows of the orthogonalize runs against one matmul and the measured rates."""
    return [[f"{r.impl} {r.method} {r.dtype}, {r.batch}×{r.m}×{r.n}, {r.steps} steps", f"{r.matmul_s:.3g}",
             f"{r.seconds:.3g}", f"{r.matmul_ratio:.1f} (ideal {r.matmul_flop_ratio:.0f})",
             f"{r.flop_rate / 1e9:.1f}", f"{r.bf16_fraction:.0%}", f"{r.float32_fraction:.0%}"]
            for r in report.orthogonalize]


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name.strip(), None)
    if not isinstance(value, torch.dtype):
        raise argparse.ArgumentTypeError(f"not a torch dtype: {name!r}")
    return value


def main(argv: list[str] | None = None) -> RateReport:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke-test sizes")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=None, help="best of this many timings (default 3)")
    ap.add_argument("--dtypes", default=None, help="comma-separated matmul dtypes (default bfloat16,float32,float64)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kw: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.repeats is not None:
        kw["repeats"] = args.repeats
    if args.dtypes is not None:
        kw["dtypes"] = [_dtype(d) for d in args.dtypes.split(",")]
    report = matmul_rate(device=args.device, **kw)
    machine = machine_info(torch.device(args.device) if args.device else default_device())
    if args.json:
        print(as_json({"machine": machine, "matmul_rate": report}))
    elif not args.quiet:
        print_results("square matmul A·B: the measured rate", ["matmul", "s", "GFLOP/s"], matmul_rows(report))
        print_results(
            "orthogonalize vs one matmul of the same shape and the measured matmul rates",
            ["orthogonalization", "one matmul s", "s", "in matmuls", "GFLOP/s", "of bf16 rate", "of f32 rate"],
            ortho_rows(report), machine=machine,
            note="rates: " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in report.rates.items())
            + "; FLOPs per step: 4s²l + 2s³ (s ≤ l)",
        )
    return report


if __name__ == "__main__":
    main()
