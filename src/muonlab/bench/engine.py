"""Batched run engine vs a loop of single runs driven by a torch.optim optimizer (SPEC §8).

    python bench/engine.py   (or: muonlab bench) [--runs 64] [--n 100] [--rank 10] [--steps 200] [--method svd]

:func:`engine_speed`: both sides do the same work: R runs of P1 (symmetric MF, κ
log-spaced from 1 to 1e4 over the runs, one seed each) for a fixed number of
simplified-Muon steps (no early stopping), with the closed-form gradient. The baseline
loops over runs, each with its own ``muonlab.optim.Muon`` and ``ScheduleLR``
(plateau); the engine advances all R runs as one batched tensor set
(``muonlab.engine.solvers.run_batch``). Each result holds both times and their ratio
(target ≥ 10× for 64 runs at n = 100), measured in this process, and how far apart
the two sides' final errors are (they do the same work, so ~0).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from muonlab.bench.common import as_json, log10_gap, machine_info, print_results
from muonlab.config import ExperimentConfig, RunSpec, expand
from muonlab.engine.solvers import run_batch
from muonlab.optim import Muon, ScheduleLR, make_schedule
from muonlab.problems import SymmetricMF

__all__ = ["BASELINE", "EngineResult", "engine_speed", "main"]

BASELINE = "a loop of single runs, each with its own muonlab.optim.Muon + ScheduleLR"
METHODS = ("svd", "gram", "newton_schulz", "polar_express")
_LR = 0.5
_PLATEAU = {"factor": 0.5, "patience": 10}


@dataclass(frozen=True)
class EngineResult:
    """R runs of P1 for a fixed number of steps, batched vs a loop of single runs."""

    method: str  # Muon's orthogonalizer
    runs: int
    n: int
    rank: int
    steps: int
    baseline_s: float  # the loop of single runs
    muonlab_s: float  # the batched engine
    max_log10_gap_final_rel_err: float  # max over runs of |log10 loop − log10 engine| final error
    ratio: float = field(init=False)  # baseline_s / muonlab_s: > 1 means the engine is faster

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", self.baseline_s / self.muonlab_s)


def experiment(*, runs: int, n: int, rank: int, steps: int, method: str) -> ExperimentConfig:
    """The benchmark's workload as an experiment config (κ log-spaced from 1 to 1e4)."""
    kappas = [float(10 ** (4 * i / max(runs - 1, 1))) for i in range(runs)]
    return ExperimentConfig.model_validate(
        {
            "name": "bench_engine",
            "problem": {"kind": "symmetric_mf", "n": n, "r": rank, "alpha": 1e-3},
            "optimizer": {"name": "muon", "lr": _LR, "method": method},
            "schedule": {"name": "plateau", **_PLATEAU},
            "steps": steps,
            "stop": {"target": 0.0},
            "seeds": [0],
            "grid": {"problem.kappa": kappas},
            "metrics": ["loss", "rel_err"],
            "log_every": steps,
        }
    )


def loop_of_single_runs(runs: Sequence[RunSpec], method: str) -> list[float]:
    """The baseline: one problem, one torch.optim optimizer and one scheduler per run."""
    finals = []
    for r in runs:
        fields: dict[str, Any] = r.problem.model_dump()
        fields.pop("kind")
        problem = SymmetricMF(**fields, seed=[r.seed])
        (X0,) = problem.init_params()
        X = torch.nn.Parameter(X0[0].clone())
        opt = Muon([X], lr=_LR, method=method)
        sched = ScheduleLR(opt, make_schedule("plateau", **_PLATEAU))
        for _ in range(r.steps):
            loss, (g,), _ = problem.evaluate([X.detach().unsqueeze(0)])
            X.grad = g[0]
            opt.step()
            sched.step(loss[0])
        finals.append(float(problem.rel_err([X.detach().unsqueeze(0)])[0]))
    return finals


def engine_speed(
    *,
    methods: Sequence[str] = ("svd", "gram"),
    runs: int = 64,
    n: int = 100,
    rank: int = 10,
    steps: int = 200,
) -> list[EngineResult]:
    """Time the batched engine against a loop of single runs, once per orthogonalizer."""
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: unknown {m!r}; allowed: {', '.join(METHODS)}")
    results = []
    for method in methods:
        specs = expand(experiment(runs=runs, n=n, rank=rank, steps=steps, method=method))
        # Warm both paths up (lazy LAPACK/thread-pool start-up must not count for either side).
        loop_of_single_runs(specs[:1], method)
        run_batch(specs[:2])

        t0 = time.perf_counter()
        loop_final = loop_of_single_runs(specs, method)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = run_batch(specs)
        t_engine = time.perf_counter() - t0
        engine_final = [float(row["final_rel_err"]) for row in batch.runs]
        results.append(EngineResult(
            method=method, runs=runs, n=n, rank=rank, steps=steps, baseline_s=t_loop, muonlab_s=t_engine,
            # Same schedule semantics on both sides: the loss of X_t drives the cut after step t.
            max_log10_gap_final_rel_err=log10_gap(loop_final, engine_final),
        ))
    return results


def main(argv: list[str] | None = None) -> list[EngineResult]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--method", action="append", choices=METHODS,
                    help="Muon's orthogonalizer; repeat for several (default: svd)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    results = engine_speed(methods=args.method or ["svd"], runs=args.runs, n=args.n, rank=args.rank,
                           steps=args.steps)
    if args.json:
        print(as_json({"machine": machine_info(), "engine": results}))
    elif not args.quiet:
        print_results(
            "engine: batched runs vs a loop of single runs (ratio = baseline / muonlab)",
            ["workload", "baseline s", "muonlab s", "ratio", "final-error gap (log10)"],
            [[f"{r.runs} runs of P1 n={r.n} r={r.rank}, {r.steps} steps, msign={r.method}", f"{r.baseline_s:.3g}",
              f"{r.muonlab_s:.3g}", f"{r.ratio:.2f}×", f"{r.max_log10_gap_final_rel_err:.1e}"] for r in results],
            machine=machine_info(), note=f"baseline: {BASELINE}",
        )
    return results


if __name__ == "__main__":
    main()
