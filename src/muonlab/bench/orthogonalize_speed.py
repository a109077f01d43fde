"""Speed of ``muonlab.orthogonalize`` on a batch vs torch.optim.Muon's per-matrix loop (SPEC §8).

    python bench/orthogonalize_speed.py [--batch 64] [--size 256] [--repeats 3] [--device cpu]
                                        [--methods newton_schulz,polar_express] [--dtypes bfloat16,float32]

:func:`orthogonalize_speed` measures, in this one process and per shape: the baseline
(a Python loop calling ``torch.optim._muon._zeropower_via_newtonschulz`` on each
matrix: bf16, Keller's coefficients × 5 steps), then ``muonlab.orthogonalize`` on the
whole batch for each method and iteration dtype. Each result carries the ratio
baseline / muonlab, the largest entrywise difference from the baseline's output
(0 for ``newton_schulz`` in bf16 on CPU: the same operations), and for the polynomial
methods the achieved matmul rate as a fraction of the device's best measured matmul
rate at the same dtype and GEMM size. On CPUs without bf16 matmul units bf16 is
emulated and far slower than float32, hence the float32 row.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from muonlab.bench.common import (
    as_json,
    best_time,
    check_methods_and_shapes,
    default_device,
    machine_info,
    print_results,
)
from muonlab.linalg import METHODS, orthogonalize, resolve_coefficients

__all__ = ["BASELINE", "KELLER", "SpeedResult", "main", "orthogonalize_speed"]

KELLER = (3.4445, -4.7750, 2.0315)
BASELINE = "torch.optim.Muon's _zeropower_via_newtonschulz per matrix (bf16, Keller × 5)"
_POLYNOMIAL = {"newton_schulz": "keller", "polar_express": "polar_express"}


@dataclass(frozen=True)
class SpeedResult:
    """One method at one iteration dtype on one batch shape, against the baseline."""

    device: str
    batch: int
    m: int
    n: int
    method: str
    dtype: str  # the iteration dtype asked for (the exact methods run half precision in float32)
    baseline_s: float  # best time of the baseline loop over the batch
    muonlab_s: float  # best time of muonlab.orthogonalize on the whole batch
    max_abs_diff: float  # max |muonlab − baseline| over the batch's entries
    matmul_rate_fraction: float | None  # achieved / best measured matmul rate (polynomial methods)
    ratio: float = field(init=False)  # baseline_s / muonlab_s: > 1 means muonlab is faster

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", self.baseline_s / self.muonlab_s)


def _baseline(G: Tensor) -> Tensor:
    from torch.optim._muon import _zeropower_via_newtonschulz

    return torch.stack([_zeropower_via_newtonschulz(g, KELLER, 5, 1e-7) for g in G])


def _gemm_flops(m: int, n: int) -> tuple[int, int]:
    """Flops of X·Xᵀ (and of B·X) and of A·A for an m×n X, on the smaller Gram side."""
    small, large = min(m, n), max(m, n)
    return 2 * small * small * large, 2 * small**3


def _best_matmul_rate(G: Tensor, dtype: torch.dtype, repeats: int) -> float:
    """The device's best flop rate over the three products one polynomial step uses.

    X·Xᵀ, A·A and addmm(X, B, X) at the kernel's own sizes; one matrix at a time on
    CPU, batched on GPU (the way ``orthogonalize`` runs on each).
    """
    X = G.to(dtype)
    if X.shape[-2] > X.shape[-1]:
        X = X.mT
    A = X @ X.mT
    xxt, aa = _gemm_flops(*G.shape[-2:])
    batch = X.shape[0]
    forms: list[tuple[Callable[[], object], int]]
    if X.device.type == "cpu":
        forms = [
            (lambda: [x @ x.T for x in X], xxt),
            (lambda: [a @ a for a in A], aa),
            (lambda: [torch.addmm(x, a, x, beta=0.5) for x, a in zip(X, A)], xxt),
        ]
    else:
        forms = [
            (lambda: X @ X.mT, xxt),
            (lambda: A @ A, aa),
            (lambda: torch.baddbmm(X, A, X, beta=0.5), xxt),
        ]
    return max(batch * flops / best_time(fn, X.device, repeats) for fn, flops in forms)


def orthogonalize_speed(
    *,
    shapes: Sequence[tuple[int, int, int]] = ((64, 256, 256),),
    methods: Sequence[str] = ("newton_schulz",),
    dtypes: Sequence[torch.dtype] = (torch.bfloat16, torch.float32),
    repeats: int = 3,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> list[SpeedResult]:
    """Time ``orthogonalize`` against torch.optim.Muon's per-matrix loop.

    ``shapes`` are (batch, m, n) of float32 Gaussian inputs; one result per shape ×
    method × dtype, in that order. Timings are the best of ``repeats`` after a warm-up.
    """
    check_methods_and_shapes(methods, METHODS, shapes)
    dev = torch.device(device) if device is not None else default_device()
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    gen = torch.Generator().manual_seed(seed)
    results = []
    for batch, m, n in shapes:
        G = torch.randn(batch, m, n, generator=gen).to(dev)
        reference = _baseline(G).float()
        t_base = best_time(functools.partial(_baseline, G), dev, repeats)
        rates: dict[torch.dtype, float] = {}
        for method in methods:
            for dtype in dtypes:
                out = orthogonalize(G, method, dtype=dtype)
                t = best_time(functools.partial(orthogonalize, G, method, dtype=dtype), dev, repeats)
                fraction = None
                if method in _POLYNOMIAL:
                    if dtype not in rates:
                        rates[dtype] = _best_matmul_rate(G, dtype, repeats)
                    steps = len(resolve_coefficients(_POLYNOMIAL[method], None))
                    xxt, aa = _gemm_flops(m, n)
                    fraction = batch * steps * (2 * xxt + aa) / t / rates[dtype]
                results.append(SpeedResult(
                    device=dev_name, batch=batch, m=m, n=n, method=method,
                    dtype=str(dtype).removeprefix("torch."), baseline_s=t_base, muonlab_s=t,
                    max_abs_diff=float((out.float() - reference).abs().max()),
                    matmul_rate_fraction=fraction,
                ))
    return results


def _dtype(name: str) -> torch.dtype:
    value = getattr(torch, name.strip(), None)
    if not isinstance(value, torch.dtype):
        raise argparse.ArgumentTypeError(f"not a torch dtype: {name!r}")
    return value


def main(argv: list[str] | None = None) -> list[SpeedResult]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--methods", default="newton_schulz", help="comma-separated orthogonalize methods")
    ap.add_argument("--dtypes", default="bfloat16,float32", help="comma-separated iteration dtypes")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    results = orthogonalize_speed(
        shapes=[(args.batch, args.size, args.size)],
        methods=[m.strip() for m in args.methods.split(",")],
        dtypes=[_dtype(d) for d in args.dtypes.split(",")],
        repeats=args.repeats,
        device=args.device,
    )
    machine = machine_info(torch.device(args.device) if args.device else default_device())
    if args.json:
        print(as_json({"machine": machine, "orthogonalize": results}))
    elif not args.quiet:
        print_results(
            "orthogonalize: batch vs torch.optim.Muon's per-matrix loop (ratio = baseline / muonlab)",
            ["shape", "method", "dtype", "baseline s", "muonlab s", "ratio", "max |Δ| vs baseline", "of matmul rate"],
            [[f"{r.batch}×{r.m}×{r.n} on {r.device}", r.method, r.dtype, f"{r.baseline_s:.3g}",
              f"{r.muonlab_s:.3g}", f"{r.ratio:.2f}×", f"{r.max_abs_diff:.1e}",
              "—" if r.matmul_rate_fraction is None else f"{r.matmul_rate_fraction:.0%}"] for r in results],
            machine=machine, note=f"baseline: {BASELINE}",
        )
    return results


if __name__ == "__main__":
    main()
