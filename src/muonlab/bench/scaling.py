"""Wall time of a reproduction against the number of workers, per execution backend.

    python bench/scaling.py [--experiment s002_mode_order] [--scale paper|quick]
                            [--workers 1 2] [--backends local ray] [--json]

:func:`worker_scaling` runs one experiment end to end (``muonlab.reproduce.reproduce``
with ``report=False``: plan, batches, store, claims) into a fresh temporary folder for
each (backend, workers) pair and times the whole call. The baseline is the ``local``
backend with one worker (the batches run one after another in this process), measured
first, in this process. For each pair:

* ``speedup`` = baseline s / wall s and ``efficiency`` = speedup / workers (target
  ≥ :data:`TARGET_EFFICIENCY`);
* ``runs`` and ``batches``: what the plan ran (batches are split so that each worker
  gets at least two, so the count depends on ``workers``);
* ``stores_equal``: whether its results store holds exactly the baseline's — the runs
  table without ``wall_s`` (sorted by ``run_id``) and the trajectories (sorted by
  ``run_id``, ``metric``, ``step``, ``index``), compared value for value. Every backend
  must give the same numbers; a False is a bug, not noise.

What the wall includes: everything the user waits for — for ``local`` with several
workers, spawning the process pool (each worker imports torch); for ``ray``,
``ray.init`` of a local instance with ``workers`` CPUs (or connecting to ``address``)
and its shutdown; the claims evaluated after the runs (serial, the same for every
pair). ``run_s`` is the engine part alone (executor start-up included, claims not).
A backend that cannot start here (Ray not installed, no cluster at ``address``) is
reported with ``skipped`` set to the reason instead of times.

The default workload, :data:`EXPERIMENT` at ``paper`` scale, takes about
:data:`EXPERIMENT_BASELINE_S` s with one worker on a 2-core CPU; ``quick`` scale
(the suite's quick mode) a few seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from muonlab.bench.common import as_json, machine_info, print_results
from muonlab.errors import MuonlabError

if TYPE_CHECKING:
    from muonlab.config import ExperimentConfig

__all__ = [
    "BASELINE",
    "EXPERIMENT",
    "EXPERIMENT_BASELINE_S",
    "QUICK",
    "TARGET_EFFICIENCY",
    "ScalingResult",
    "main",
    "rows",
    "stores_equal",
    "worker_scaling",
]

#: The default experiment (``muonlab reproduce --list``).
EXPERIMENT = "s002_mode_order"
#: Its measured one-worker wall at ``paper`` scale (s), on the 2-core development CPU.
EXPERIMENT_BASELINE_S = 33
BASELINE = "the local backend with 1 worker (batches one after another in this process), timed in this process"
#: Parallel efficiency (speedup / workers) the backends should reach.
TARGET_EFFICIENCY = 0.8
#: The suite's quick mode: ``worker_scaling(**QUICK)``.
QUICK: dict[str, Any] = {"scale": "quick", "workers": (1, 2), "backends": ("local",)}

_TRAJECTORY_ORDER = ("run_id", "metric", "step", "index")


@dataclass(frozen=True)
class ScalingResult:
    """One (backend, workers) reproduction of an experiment against the 1-worker baseline."""

    experiment: str
    scale: str
    backend: str  # "local" | "ray"
    workers: int
    baseline_s: float  # local, 1 worker, this process
    wall_s: float | None  # the whole reproduce call (None: skipped)
    run_s: float | None  # the engine run alone (executor start-up included, claims not)
    runs: int | None  # runs executed
    batches: int | None  # batches the plan made for this many workers
    stores_equal: bool | None  # the store holds exactly the baseline's numbers (None: skipped)
    skipped: str | None = None  # why this backend could not run here
    speedup: float | None = field(init=False)  # baseline_s / wall_s
    efficiency: float | None = field(init=False)  # speedup / workers (target >= TARGET_EFFICIENCY)

    def __post_init__(self) -> None:
        speedup = None if self.wall_s is None else self.baseline_s / self.wall_s
        object.__setattr__(self, "speedup", speedup)
        object.__setattr__(self, "efficiency", None if speedup is None else speedup / self.workers)


def _comparable(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A store's runs table (without ``wall_s``) and trajectories, in a canonical order."""
    from muonlab.engine.store import ResultStore

    store = ResultStore(out)
    runs = store.runs().drop(columns=["wall_s"], errors="ignore")
    runs = runs.sort_values("run_id", kind="stable").reset_index(drop=True)
    traj = store.trajectories()
    by = [c for c in _TRAJECTORY_ORDER if c in traj.columns]
    traj = traj.sort_values(by, kind="stable").reset_index(drop=True)
    return runs[sorted(runs.columns)], traj[sorted(traj.columns)]


def stores_equal(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]) -> bool:
    """Whether two :func:`_comparable` stores hold the same values (exactly; NaN equals NaN)."""
    return all(list(x.columns) == list(y.columns) and x.equals(y) for x, y in zip(a, b, strict=True))


def _ray_missing(backends: Sequence[str]) -> str | None:
    if "ray" in backends and importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'muonlab[ray]')"
    return None


def worker_scaling(
    experiment: str | ExperimentConfig = EXPERIMENT,
    scale: str = "paper",
    workers: Sequence[int] = (1, 2),
    backends: Sequence[str] = ("local", "ray"),
    overrides: Sequence[str] = (),
    *,
    root: str | Path | None = None,
    address: str | None = None,
    threads: int = 1,
) -> list[ScalingResult]:
    """Time a reproduction of ``experiment`` for every (backend, workers) pair.

    Args:
        experiment: an experiment name (``muonlab reproduce --list``; run with
            ``reproduce(..., report=False)``), or an :class:`ExperimentConfig`, run
            with :func:`muonlab.engine.experiment.run` (no claims; ``scale`` and
            ``overrides`` do not apply to it).
        scale: ``paper`` or ``quick`` (a named experiment's scale).
        workers: worker counts to measure, for each backend.
        backends: ``local`` and/or ``ray``.
        overrides: extra ``key=value`` overrides of a named experiment.
        root: the experiments folder (default: the shipped experiments).
        address: a Ray cluster to use for ``ray`` (default: start a local instance per pair).
        threads: torch threads per worker.

    Returns one result per (backend, workers), backends in the order given; the
    baseline (local, 1 worker) is timed once, first, and is the ``local``/1 row when
    that pair is asked for. Ray's start-up and shutdown count in its wall. A backend
    that cannot start is reported with ``skipped`` (the reason), not raised.

    Raises:
        ValueError: an unknown backend, a worker count < 1, overrides with a config.
        UnknownExperimentError, ConfigError: a bad experiment name, scale or override.
    """
    from muonlab.engine.backends import BACKENDS
    from muonlab.reproduce import check_scale

    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"backends: unknown {b!r}; allowed: {', '.join(BACKENDS)}")
    if not workers or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in workers):
        raise ValueError(f"workers: need positive integers, got {list(workers)}")
    is_config = not isinstance(experiment, str)
    if is_config and overrides:
        raise ValueError("overrides: only with an experiment name (apply them to the config instead)")
    scale = check_scale(scale)
    name = experiment if isinstance(experiment, str) else experiment.name
    label = "config" if is_config else scale

    def measure(backend: str, n: int) -> tuple[float, float, int, int, tuple[pd.DataFrame, pd.DataFrame]]:
        from muonlab.engine.experiment import run
        from muonlab.reproduce import reproduce

        plans: list[Any] = []
        with tempfile.TemporaryDirectory(prefix="muonlab-scaling-") as tmp:
            t0 = time.perf_counter()
            if isinstance(experiment, str):
                res = reproduce(experiment, tmp, scale=scale, overrides=overrides, backend=backend, workers=n,
                                address=address, threads=threads, report=False, root=root,
                                on_plan=lambda _name, p: plans.append(p))
                wall = time.perf_counter() - t0
                run_s, store = res.wall_s[experiment], Path(tmp) / experiment
            else:
                store = Path(tmp) / "store"
                run(experiment, store, backend=backend, workers=n, address=address, threads=threads,
                    on_plan=plans.append)
                wall = run_s = time.perf_counter() - t0
            frames = _comparable(store)
        todo = sum(p.todo for p in plans)
        batches = sum(len(p.batches) for p in plans)
        return wall, run_s, todo, batches, frames

    # Import what the runs use before the baseline is timed (the pool's workers pay
    # their own imports, which is part of their cost; this process's are not).
    import muonlab.claims
    import muonlab.engine.experiment  # noqa: F401

    base_wall, base_run, base_todo, base_batches, base_frames = measure("local", 1)
    results = []
    ray_missing = _ray_missing(backends)
    for backend in backends:
        for n in workers:
            if backend == "local" and n == 1:
                results.append(ScalingResult(name, label, backend, n, base_wall, base_wall, base_run, base_todo,
                                             base_batches, True))
                continue
            if backend == "ray" and ray_missing:
                results.append(ScalingResult(name, label, backend, n, base_wall, None, None, None, None, None,
                                             skipped=ray_missing))
                continue
            try:
                wall, run_s, todo, batches, frames = measure(backend, n)
            except MuonlabError as e:
                if backend != "ray" or e.field not in ("backend", "address"):
                    raise
                results.append(ScalingResult(name, label, backend, n, base_wall, None, None, None, None, None,
                                             skipped=str(e)))
                continue
            results.append(ScalingResult(name, label, backend, n, base_wall, wall, run_s, todo, batches,
                                         stores_equal(base_frames, frames)))
    return results


def rows(results: Sequence[ScalingResult]) -> list[list[str]]:
    """Table rows: workload, baseline s, wall s, speedup, efficiency, stores equal."""
    out = []
    for r in results:
        what = f"{r.experiment} ({r.scale}), {r.backend} × {r.workers}"
        if r.skipped is not None:
            out.append([f"{what}: skipped ({r.skipped})", f"{r.baseline_s:.3g}", "—", "—", "—", "—"])
            continue
        assert r.wall_s is not None and r.speedup is not None and r.efficiency is not None
        out.append([f"{what}, {r.runs} runs in {r.batches} batches (engine {r.run_s:.3g} s)",
                    f"{r.baseline_s:.3g}", f"{r.wall_s:.3g}", f"{r.speedup:.2f}×", f"{r.efficiency:.0%}",
                    "yes" if r.stores_equal else "NO"])
    return out


def main(argv: list[str] | None = None) -> list[ScalingResult]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--experiment", default=EXPERIMENT, help=f"an experiment name (default: {EXPERIMENT})")
    ap.add_argument("--scale", default="paper", choices=("paper", "quick"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    ap.add_argument("--backends", nargs="+", default=["local", "ray"], choices=("local", "ray"),
                    help="execution backends (default: local ray)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value (repeatable)")
    ap.add_argument("--address", default=None, help="a Ray cluster (default: a local instance per measurement)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    results = worker_scaling(args.experiment, args.scale, args.workers, args.backends, args.overrides,
                             address=args.address)
    machine = machine_info()
    if args.json:
        print(as_json({"machine": machine, "scaling": results}))
    elif not args.quiet:
        print_results(
            "reproduction wall time against workers (speedup = baseline s / wall s; efficiency = speedup / workers)",
            ["workload", "baseline s", "wall s", "speedup", "efficiency", "stores equal"], rows(results),
            machine=machine, note=f"baseline: {BASELINE}; target efficiency ≥ {TARGET_EFFICIENCY:.0%}; "
            "wall includes pool / Ray start-up and the claims",
        )
    return results


if __name__ == "__main__":
    main()
