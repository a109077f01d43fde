"""Engine step time against the problem size n and the number of runs R (SPEC §8).

    python bench/engine_scaling.py [--quick] [--method svd --method gram] [--out docs/img] [--threads 2]

:func:`engine_scaling` times the batched engine (``muonlab.engine.solvers``: the
workload of :mod:`muonlab.bench.engine`, R runs of P1 with κ log-spaced from 1 to
1e4, simplified Muon, plateau schedule, no early stopping) on two sweeps:

* against n ∈ {50, 100, 200, 400, 800} at a fixed number of runs (16);
* against R ∈ {1, 4, 16, 64, 256, 1024} at a fixed n (50).

Each point records the engine's time per step of the whole batch (best of
``repeats`` solves of ``steps`` steps, divided by ``steps``; building the batch is not
timed, the solver's fixed cost per solve, ~15 ms for its result tables on a 2-core
CPU, is, spread over the steps) and per run-step (÷ R), and, measured in the same process, the loop of single runs
(:func:`muonlab.bench.engine.loop_of_single_runs`'s per-run loop: one problem, one
``muonlab.optim.Muon`` and one ``ScheduleLR`` per run) on at most
``baseline_runs`` of the point's runs (spread over the κ range) for
``baseline_steps`` steps each. The loop's runs are independent, so its cost is R
times its time per run-step; ``ratio`` = loop s per run-step / engine s per run-step
(> 1: the engine is faster). Setting up a run (the problem, the optimizer) is not
timed on either side. :func:`plot_engine_scaling` draws both sweeps, log-log.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from muonlab.bench.common import as_json, machine_info, print_results, sync
from muonlab.bench.engine import METHODS, experiment
from muonlab.config import RunSpec, expand
from muonlab.engine.batch import build_batch
from muonlab.engine.solvers import solve
from muonlab.optim import Muon, ScheduleLR, make_schedule
from muonlab.problems import SymmetricMF

__all__ = [
    "BASELINE",
    "FIGURE",
    "NS",
    "QUICK",
    "RUNS",
    "ScalingPoint",
    "engine_scaling",
    "main",
    "plot_engine_scaling",
]

BASELINE = "a loop of single runs (muonlab.optim.Muon + ScheduleLR each), timed per run-step on a subset"
NS = (50, 100, 200, 400, 800)
RUNS = (1, 4, 16, 64, 256, 1024)
#: Smoke-test sizes (``engine_scaling(**QUICK)``): seconds, not minutes.
QUICK: dict[str, Any] = {"ns": (12, 24), "runs": (1, 4), "fixed_runs": 4, "fixed_n": 12, "rank": 2, "steps": 5,
                         "repeats": 1, "baseline_runs": 2, "baseline_steps": 3}
#: The figure's file name (without suffix) that :func:`plot_engine_scaling` writes by default.
FIGURE = "bench_engine_scaling"
_LR = 0.5
_PLATEAU = {"factor": 0.5, "patience": 10}


@dataclass(frozen=True)
class ScalingPoint:
    """One (method, R, n) point of a sweep: the engine's step time and the loop's."""

    sweep: str  # "n" (n varies at fixed R) or "runs" (R varies at fixed n)
    method: str  # Muon's orthogonalizer
    runs: int  # R
    n: int
    rank: int
    device: str
    steps: int  # engine steps per timed solve
    engine_step_s: float  # seconds per step of the whole batch of R runs
    baseline_runs: int | None  # runs the loop was timed on (None: no baseline)
    baseline_steps: int | None  # steps of each of those runs
    baseline_run_step_s: float | None  # the loop's seconds per run-step
    engine_run_step_s: float = field(init=False)  # engine_step_s / runs
    baseline_step_s: float | None = field(init=False)  # R × baseline_run_step_s: the loop's time per step of R runs
    ratio: float | None = field(init=False)  # baseline_run_step_s / engine_run_step_s (> 1: the engine is faster)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine_run_step_s", self.engine_step_s / self.runs)
        base = self.baseline_run_step_s
        object.__setattr__(self, "baseline_step_s", None if base is None else base * self.runs)
        object.__setattr__(self, "ratio", None if base is None else base / self.engine_run_step_s)


def _specs(*, runs: int, n: int, rank: int, steps: int, method: str, device: str) -> list[RunSpec]:
    specs = expand(experiment(runs=runs, n=n, rank=rank, steps=steps, method=method))
    return specs if device == "cpu" else [s.model_copy(update={"device": device}) for s in specs]


def _engine_step_s(specs: list[RunSpec], dev: torch.device, repeats: int) -> float:
    """Best time per step of solving the batch of ``specs`` (the batch is built untimed)."""
    solve(build_batch([s.model_copy(update={"steps": 2}) for s in specs]))  # warm-up at full batch size
    best = float("inf")
    for _ in range(repeats):
        batch = build_batch(specs)
        sync(dev)
        t0 = time.perf_counter()
        solve(batch)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best / specs[0].steps


def _loop_run_step_s(specs: Sequence[RunSpec], method: str, steps: int, dev: torch.device) -> float:
    """The loop of single runs' seconds per run-step (set-up untimed), as in ``engine.loop_of_single_runs``."""
    total = 0.0
    for r in specs:
        fields: dict[str, Any] = r.problem.model_dump()
        fields.pop("kind")
        problem = SymmetricMF(**fields, seed=[r.seed], device=dev)
        (X0,) = problem.init_params()
        X = torch.nn.Parameter(X0[0].clone())
        opt = Muon([X], lr=_LR, method=method)
        sched = ScheduleLR(opt, make_schedule("plateau", **_PLATEAU))
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss, (g,), _ = problem.evaluate([X.detach().unsqueeze(0)])
            X.grad = g[0]
            opt.step()
            sched.step(loss[0])
        sync(dev)
        total += time.perf_counter() - t0
    return total / (len(specs) * steps)


def _spread(items: list[RunSpec], k: int) -> list[RunSpec]:
    """At most ``k`` items evenly spread over ``items`` (first and last included)."""
    if len(items) <= k:
        return items
    if k == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def engine_scaling(
    *,
    methods: Sequence[str] = ("svd", "gram"),
    ns: Sequence[int] = NS,
    runs: Sequence[int] = RUNS,
    fixed_runs: int = 16,
    fixed_n: int = 50,
    rank: int = 10,
    steps: int = 100,
    repeats: int = 2,
    baseline: bool = True,
    baseline_runs: int = 16,
    baseline_steps: int = 20,
    device: str | torch.device = "cpu",
) -> list[ScalingPoint]:
    """Time the engine on the n sweep (at ``fixed_runs``) and the R sweep (at ``fixed_n``).

    Returns, per method, the n sweep's points then the R sweep's; a point on both
    sweeps is measured once and listed in each. ``baseline=False`` skips the loop.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: unknown {m!r}; allowed: {', '.join(METHODS)}")
    for name, value in (("fixed_runs", fixed_runs), ("fixed_n", fixed_n), ("rank", rank), ("steps", steps),
                        ("repeats", repeats), ("baseline_runs", baseline_runs), ("baseline_steps", baseline_steps)):
        if value < 1:
            raise ValueError(f"{name}: must be >= 1, got {value}")
    if any(n < rank for n in (*ns, fixed_n)) or any(R < 1 for R in runs):
        raise ValueError(f"ns, runs: need n >= rank ({rank}) and R >= 1, got ns={list(ns)}, runs={list(runs)}")
    dev = torch.device(device)
    dev_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    measured: dict[tuple[str, int, int], ScalingPoint] = {}
    points = []
    for method in methods:
        for sweep, grid in (("n", [(fixed_runs, n) for n in ns]), ("runs", [(R, fixed_n) for R in runs])):
            for R, n in grid:
                key = (method, R, n)
                if key not in measured:
                    specs = _specs(runs=R, n=n, rank=rank, steps=steps, method=method, device=str(dev))
                    engine_s = _engine_step_s(specs, dev, repeats)
                    base = None
                    subset: list[RunSpec] = []
                    if baseline:
                        subset = _spread(specs, baseline_runs)
                        _loop_run_step_s(subset[:1], method, 2, dev)  # warm-up
                        base = _loop_run_step_s(subset, method, baseline_steps, dev)
                    measured[key] = ScalingPoint(
                        sweep=sweep, method=method, runs=R, n=n, rank=rank, device=dev_name, steps=steps,
                        engine_step_s=engine_s, baseline_runs=len(subset) if baseline else None,
                        baseline_steps=baseline_steps if baseline else None, baseline_run_step_s=base,
                    )
                points.append(dataclasses.replace(measured[key], sweep=sweep))
    return points


def plot_engine_scaling(points: Sequence[ScalingPoint], out_dir: str | Path, name: str = FIGURE) -> list[Path]:
    """Draw both sweeps (seconds per step of the batch, log-log) as ``<name>.png`` and ``<name>.svg``.

    Solid: the engine; dashed: the loop of single runs (R × its time per run-step).
    Returns the two paths.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    methods = list(dict.fromkeys(p.method for p in points))
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, sweep, xlabel in ((axes[0], "n", "n (problem size)"), (axes[1], "runs", "R (runs in the batch)")):
        fixed = ""
        for method in methods:
            pts = sorted((p for p in points if p.sweep == sweep and p.method == method),
                         key=lambda p: p.n if sweep == "n" else p.runs)
            if not pts:
                continue
            x = [p.n if sweep == "n" else p.runs for p in pts]
            ax.plot(x, [p.engine_step_s for p in pts], "o-", color=colors[method], label=f"engine, msign={method}")
            based = [(xi, p.baseline_step_s) for xi, p in zip(x, pts) if p.baseline_step_s is not None]
            if based:
                ax.plot(*zip(*based), "s--", color=colors[method], alpha=0.7, label=f"loop of single runs, {method}")
            fixed = f"R = {pts[0].runs}" if sweep == "n" else f"n = {pts[0].n}"
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({p.n if sweep == "n" else p.runs for p in points if p.sweep == sweep})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per step of the batch")
        ax.set_title(f"P1, r = {points[0].rank if points else '?'}, {fixed}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("muonlab engine step time (batched) vs a loop of single runs")
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None})
    return paths


def rows(points: Sequence[ScalingPoint]) -> list[list[str]]:
    """Table rows: workload, loop s/step, engine s/step, engine s/run-step, ratio."""
    return [[f"{p.runs} runs of P1 n={p.n} r={p.rank}, msign={p.method} ({p.sweep} sweep)",
             "—" if p.baseline_step_s is None else f"{p.baseline_step_s:.3g}", f"{p.engine_step_s:.3g}",
             f"{p.engine_run_step_s:.3g}", "—" if p.ratio is None else f"{p.ratio:.2f}×"] for p in points]


def main(argv: list[str] | None = None) -> list[ScalingPoint]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke-test sizes")
    ap.add_argument("--method", action="append", choices=METHODS,
                    help="Muon's orthogonalizer; repeat for several (default: svd and gram)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the loop of single runs")
    ap.add_argument("--out", type=Path, default=None, help="write the figure (PNG, SVG) into this folder")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = dict(QUICK) if args.quick else {}
    points = engine_scaling(methods=args.method or ["svd", "gram"], baseline=not args.no_baseline,
                            device=args.device, **sizes)
    figures = plot_engine_scaling(points, args.out) if args.out is not None else []
    machine = machine_info(torch.device(args.device))
    if args.json:
        print(as_json({"machine": machine, "engine_scaling": points, "figures": [str(p) for p in figures]}))
    elif not args.quiet:
        print_results(
            "engine step time against n and R (ratio = loop s / engine s per run-step)",
            ["workload", "loop s/step", "engine s/step", "engine s/run-step", "ratio"], rows(points),
            machine=machine, note=f"baseline: {BASELINE}" + "".join(f"\nfigure: {p}" for p in figures),
        )
    return points


if __name__ == "__main__":
    main()
