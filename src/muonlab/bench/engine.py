"""Batched run engine vs a loop of single runs driven by a torch.optim optimizer (SPEC §8).

    python bench/engine.py   (or: muonlab bench) [--runs 64] [--n 100] [--rank 10] [--steps 200] [--method svd]

Both sides do the same work: R runs of P1 (symmetric MF, κ log-spaced over the runs,
one seed each) for a fixed number of simplified-Muon steps (no early stopping), with
the closed-form gradient. The baseline loops over runs, each with its own
``muonlab.optim.Muon`` and ``ScheduleLR`` (plateau); the engine advances all R runs
as one batched tensor set (``muonlab.engine.runner.run_batch``). Reports both times
and their ratio (target ≥ 10× for 64 runs at n = 100), measured in this process, and
checks that both reach the same final errors.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from muonlab.engine.config import ExperimentConfig, expand
from muonlab.engine.runner import run_batch
from muonlab.optim import Muon, ScheduleLR, make_schedule
from muonlab.problems import PROBLEMS


def experiment(args: argparse.Namespace) -> ExperimentConfig:
    kappas = [float(10 ** (4 * i / max(args.runs - 1, 1))) for i in range(args.runs)]
    return ExperimentConfig.model_validate(
        {
            "name": "bench_engine",
            "problem": {"kind": "symmetric_mf", "n": args.n, "r": args.rank, "alpha": 1e-3},
            "optimizer": {"name": "muon", "lr": 0.5, "method": args.method},
            "schedule": {"name": "plateau", "factor": 0.5, "patience": 10},
            "steps": args.steps,
            "stop": {"target": 0.0},
            "seeds": [0],
            "grid": {"problem.kappa": kappas},
            "metrics": ["loss", "rel_err"],
            "log_every": args.steps,
        }
    )


def loop_of_single_runs(runs) -> list[float]:
    """The baseline: one problem, one torch.optim optimizer and one scheduler per run."""
    finals = []
    for r in runs:
        cfg = r.problem.model_dump()
        problem = PROBLEMS[cfg.pop("kind")](**cfg, seed=[r.seed])
        (X0,) = problem.init_params()
        X = torch.nn.Parameter(X0[0].clone())
        opt = Muon([X], lr=r.optimizer.lr, method=r.optimizer.method)
        sched = ScheduleLR(opt, make_schedule("plateau", factor=0.5, patience=10))
        for _ in range(r.steps):
            loss, (g,), _ = problem.evaluate([X.detach().unsqueeze(0)])
            X.grad = g[0]
            opt.step()
            sched.step(loss[0])
        finals.append(float(problem.rel_err([X.detach().unsqueeze(0)])[0]))
    return finals


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--method", default="svd", choices=["svd", "gram", "newton_schulz", "polar_express"])
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the result)")
    args = ap.parse_args(argv)
    runs = expand(experiment(args))
    # Warm both paths up (lazy LAPACK/thread-pool start-up must not count for either side).
    loop_of_single_runs(runs[:1])
    run_batch(runs[:2])

    t0 = time.perf_counter()
    loop_final = loop_of_single_runs(runs)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = run_batch(runs)
    t_engine = time.perf_counter() - t0
    engine_final = [row["final_rel_err"] for row in batch.runs]
    # Same schedule state semantics on both sides: the loss of X_t drives the cut after step t.
    agree = max(abs(math.log10(a) - math.log10(b)) for a, b in zip(loop_final, engine_final))

    result = {
        "runs": args.runs,
        "n": args.n,
        "steps": args.steps,
        "method": args.method,
        "loop_s": t_loop,
        "engine_s": t_engine,
        "speedup": t_loop / t_engine,
        "max_log10_gap_final_rel_err": agree,
    }
    if args.quiet:
        pass
    elif args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v:.4g}" if isinstance(v, float) else f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
