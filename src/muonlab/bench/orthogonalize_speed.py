"""Speed of ``muonlab.orthogonalize`` on a batch vs torch.optim.Muon's per-matrix loop (SPEC §8).

    python bench/orthogonalize_speed.py [--batch 64] [--size 256] [--repeats 3] [--device cpu]

Reports, measured in this one process: the baseline (a Python loop calling
``torch.optim._muon._zeropower_via_newtonschulz`` per matrix, bf16, Keller × 5), muonlab
on the whole batch, their ratio, and Newton–Schulz's achieved bf16 matmul rate as a
fraction of the device's measured bf16 matmul rate at the same GEMM size, and muonlab's
time with a float32 iteration (on CPUs without bf16 matmul units bf16 is emulated and
far slower than float32).
"""

from __future__ import annotations

import argparse
import time

import torch

from muonlab import orthogonalize

KELLER = (3.4445, -4.7750, 2.0315)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the result)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    from torch.optim._muon import _zeropower_via_newtonschulz  # the baseline's kernel

    G = torch.randn(args.batch, args.size, args.size, device=device)
    t_loop = best_time(lambda: [_zeropower_via_newtonschulz(g, KELLER, 5, 1e-7) for g in G], device, args.repeats)
    t_ours = best_time(lambda: orthogonalize(G, dtype=torch.bfloat16), device, args.repeats)

    t_f32 = best_time(lambda: orthogonalize(G, dtype=torch.float32), device, args.repeats)
    # The device's bf16 matmul rate at the kernel's own GEMM size: the fastest of the
    # three product forms Newton–Schulz uses (A·B, A·Bᵀ, addmm), one per matrix.
    Gb = G.bfloat16()
    forms = (lambda g: g @ g, lambda g: g @ g.T, lambda g: torch.addmm(g, g, g, beta=0.5, alpha=2.0))
    t_mm = min(best_time(lambda f=f: [f(g) for g in Gb], device, args.repeats) for f in forms)
    peak = args.batch * 2 * args.size**3 / t_mm
    # Per NS step on an s×s matrix: X Xᵀ (2s³), A·A (2s³), B·X (2s³) → 6s³ flops.
    ns_flops = args.batch * 5 * 6 * args.size**3
    result = {
        "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"),
        "batch": args.batch,
        "size": args.size,
        "loop_s": t_loop,
        "muonlab_s": t_ours,
        "speedup": t_loop / t_ours,
        "muonlab_float32_s": t_f32,
        "bf16_matmul_tflops": peak / 1e12,
        "ns_fraction_of_matmul_rate": ns_flops / t_ours / peak,
    }
    if not args.quiet:
        for k, v in result.items():
            print(f"{k:>28}: {v:.4g}" if isinstance(v, float) else f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
