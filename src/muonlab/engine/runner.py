"""The batched run engine (SPEC §4–§6): a grid of runs → batches → one tensor set each.

Runs that share everything but their *batchable* fields (seed, κ, α, γ, lr) form a
batch: one :class:`~muonlab.problems.base.Problem` with a leading run dimension R,
one :class:`~muonlab.engine.batched_optim.BatchedOptimizer`, one schedule state with
per-run step sizes and per-run plateau counters. Every step is a handful of batched
tensor operations, whatever R is.

A run stops when its relative error reaches ``stop.target`` (status ``ok``) or when
it diverges (non-finite loss or gradient, or loss above ``stop.blowup`` × its initial
loss; status ``diverged``); the others continue. A finished run's parameters are
frozen (``torch.where`` on an activity mask), so its numbers stay what they were
when it stopped. A batch that raises is recorded as ``failed`` with the error and
the sweep goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from muonlab.engine.batched_optim import DTYPES, BatchedOptimizer
from muonlab.engine.metrics import RUNNER_METRICS, compute_metrics
from muonlab.engine.store import EPSILON_COLUMNS
from muonlab.optim.schedules import ScheduleState, make_schedule
from muonlab.problems import PROBLEMS
from muonlab.problems.base import Problem
from muonlab.problems.targets import generator

__all__ = ["EPSILONS", "BatchResult", "RunBook", "build_problem", "run_batch"]

#: Accuracies whose first-hitting step is stored in runs.parquet (SPEC §6), and the
#: store's column for each (the store's schema is the single source of the names).
EPSILONS = (1e-4, 1e-8, 1e-12)
_EPS_COLUMN = dict(zip(EPSILONS, EPSILON_COLUMNS, strict=True))
_PER_RUN_PROBLEM_FIELDS = ("kappa", "alpha", "gamma")


@dataclass
class BatchResult:
    """Per-run summaries (one dict per run, SPEC §6 columns) and long-form trajectories."""

    runs: list[dict[str, Any]]
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)


def _spec_dict(model: Any) -> dict[str, Any]:
    return model.model_dump() if hasattr(model, "model_dump") else dict(model)


def build_problem(runs: Sequence[Any]) -> Problem:
    """One batched problem for runs that differ only in batchable fields."""
    first = _spec_dict(runs[0].problem)
    kind = first.pop("kind")
    per_run = {k: [_spec_dict(r.problem)[k] for r in runs] for k in _PER_RUN_PROBLEM_FIELDS if k in first}
    shared = {k: v for k, v in first.items() if k not in per_run}
    return PROBLEMS[kind](
        **shared,
        **per_run,
        seed=[int(r.seed) for r in runs],
        dtype=DTYPES[runs[0].dtype],
        device=runs[0].device,
    )


def _init_schedule(runs: Sequence[Any], lr: Tensor) -> tuple[Any, ScheduleState]:
    """Schedule state with each run's random draws (geometric's c) taken from its own seed.

    Drawing per run keeps a run's schedule independent of which batch it lands in.
    """
    settings = _spec_dict(runs[0].schedule)
    schedule = make_schedule(settings.pop("name"), **settings)
    states = [
        schedule.init(lr[i : i + 1].cpu(), generator=generator(int(r.seed), "schedule"))
        for i, r in enumerate(runs)
    ]
    cat = ScheduleState(
        t=0,
        lr=torch.cat([s.lr for s in states]),
        base=torch.cat([s.base for s in states]),
        best=torch.cat([s.best for s in states]),
        bad=torch.cat([s.bad for s in states]),
    )
    return schedule, cat


def _metric_values(
    names: Sequence[str], problem: Problem, params: list[Tensor], loss: Tensor, rel: Tensor, lr: Tensor
) -> dict[str, Tensor]:
    """The logged metrics at one step, each an (R, k) float64 CPU tensor (k = 1 for scalars).

    Loss and relative error come from the step's own evaluation, ``lr`` from the
    schedule; the others from the metric registry in one call, so metrics that need
    the product's SVD share it.
    """
    own = ("loss", "rel_err", *RUNNER_METRICS)
    values = compute_metrics(problem, params, [n for n in names if n not in own])
    values.update({"loss": loss, "rel_err": rel, "lr": lr})
    out = {}
    for name in names:
        v = values[name].detach().to(torch.float64).cpu()
        out[name] = v.reshape(v.shape[0], -1)
    return out


def run_batch(
    runs: Sequence[Any],
    on_step: Callable[[int], None] | None = None,
) -> BatchResult:
    """Advance a batch of compatible runs together and summarize each one.

    ``runs`` are resolved run specs (``muonlab.config.RunSpec``) sharing a
    batch key. ``on_step(k)`` reports progress: k run-steps (steps × runs) done
    since the last call.
    """
    if _spec_dict(runs[0].optimizer).get("name") == "specgf":  # continuous time: an ODE, not steps
        from muonlab.engine.flow import run_flow_batch

        return run_flow_batch(runs, on_step)
    t0 = time.perf_counter()
    spec = runs[0]
    R = len(runs)
    problem = build_problem(runs)
    optimizer = BatchedOptimizer(_spec_dict(spec.optimizer), problem.layout)
    lr0 = torch.tensor([float(_spec_dict(r.optimizer)["lr"]) for r in runs], dtype=torch.float64)
    schedule, sched_state = _init_schedule(runs, lr0)
    book = RunBook(runs)
    device = problem.device

    params = [p.clone() for p in problem.init_params()]
    active = torch.ones(R, dtype=torch.bool, device=device)
    reported = 0

    for t in range(spec.steps + 1):
        loss, grads, rel = problem.evaluate(params)
        loss64, rel64 = loss.detach().to(torch.float64).cpu(), rel.detach().to(torch.float64).cpu()
        finite = torch.isfinite(loss64) & torch.isfinite(rel64)
        for g in grads:
            finite &= torch.isfinite(g.reshape(R, -1)).all(dim=1).cpu()
        ok_now = book.observe(t, loss64, rel64, finite)
        if book.due(t):
            book.log(t, ok_now, _metric_values(spec.metrics, problem, params, loss, rel, sched_state.lr))
        act = book.advance(t, ok_now, rel64)
        active = act.to(device)
        if not bool(act.any()) or t == spec.steps:
            break
        lr = sched_state.lr.to(device=device, dtype=params[0].dtype)
        if bool(act.all()):
            optimizer.step(params, grads, lr)
        else:  # finished runs keep their parameters: step on a masked copy, then restore
            before = [p.clone() for p in params]
            mask = [active.view(R, *([1] * (p.ndim - 1))) for p in params]
            safe_grads = [torch.where(m, g, torch.zeros_like(g)) for g, m in zip(grads, mask)]
            optimizer.step(params, safe_grads, lr)
            for p, b, m in zip(params, before, mask):
                p.copy_(torch.where(m, p, b))
        sched_state = schedule.step(sched_state, torch.where(act, loss64, torch.full_like(loss64, math.inf)))
        if on_step is not None and (t + 1) % 100 == 0:
            on_step((t + 1 - reported) * R)
            reported = t + 1
    if on_step is not None:  # runs that stopped early count their whole budget
        on_step((spec.steps - reported) * R)
    return book.result(runs, time.perf_counter() - t0)


class RunBook:
    """Per-run bookkeeping of one batch, shared by the discrete runner and the flow
    (:mod:`muonlab.engine.flow`): status (a run diverges on a non-finite value or a loss
    above ``blowup`` × its first), the first step at which each ε is reached, the last
    healthy loss and error, steps taken, and the logged metrics.

    Per step t: ``ok = observe(t, loss, rel, finite)``, ``log(t, ok, values)`` when
    ``due(t)``, then ``active = advance(t, ok, rel)`` (a run also stops once
    ``rel <= stop.target``).
    """

    def __init__(self, runs: Sequence[Any]) -> None:
        spec = runs[0]
        R = len(runs)
        stop = _spec_dict(spec.stop)
        self.target = float(stop.get("target", 0.0) or 0.0)
        self.blowup = float(stop.get("blowup", math.inf) or math.inf)
        self.steps, self.log_every = int(spec.steps), int(spec.log_every)
        self.active = torch.ones(R, dtype=torch.bool)
        self.status = ["ok"] * R
        self.errors: dict[int, str] = {}
        self.steps_done = torch.zeros(R, dtype=torch.int64)
        self.hits = {eps: torch.full((R,), -1, dtype=torch.int64) for eps in EPSILONS}
        self.last_loss = torch.full((R,), math.nan, dtype=torch.float64)
        self.last_rel = torch.full((R,), math.nan, dtype=torch.float64)
        self.loss0: Tensor | None = None
        self.logged: dict[str, list[tuple[int, Tensor, Tensor]]] = {m: [] for m in spec.metrics}

    def observe(self, t: int, loss64: Tensor, rel64: Tensor, finite: Tensor) -> Tensor:
        """Record step t's loss and error (float64, CPU); returns the runs still healthy."""
        if self.loss0 is None:
            self.loss0 = loss64.abs().clamp_min(torch.finfo(torch.float64).tiny)
        diverged = self.active & (~finite | (loss64 > self.blowup * self.loss0))
        for i in torch.nonzero(diverged).flatten().tolist():
            self.status[i] = "diverged"
        ok_now = self.active & ~diverged
        self.last_loss = torch.where(ok_now, loss64, self.last_loss)
        self.last_rel = torch.where(ok_now, rel64, self.last_rel)
        for eps, h in self.hits.items():
            h.copy_(torch.where(ok_now & (h < 0) & (rel64 <= eps), torch.full_like(h, t), h))
        return ok_now

    def due(self, t: int) -> bool:
        """Whether step t is a logging step (every ``log_every`` steps, and the last)."""
        return t % self.log_every == 0 or t == self.steps

    def log(self, t: int, ok_now: Tensor, values: dict[str, Tensor]) -> None:
        """Log step t's metric values for the runs that are ``ok_now``."""
        for m, v in values.items():
            self.logged[m].append((t, ok_now.clone(), v))

    def advance(self, t: int, ok_now: Tensor, rel64: Tensor) -> Tensor:
        """Count step t for the runs active at it; returns the runs that go on."""
        self.steps_done = torch.where(self.active, torch.full_like(self.steps_done, t), self.steps_done)
        self.active = ok_now & ~(rel64 <= self.target)
        return self.active

    def fail_active(self, message: str) -> None:
        """Mark the runs still going as ``failed`` with ``message`` (e.g. a solver that gave up)."""
        for i in torch.nonzero(self.active).flatten().tolist():
            self.status[i] = "failed"
            self.errors[i] = message

    def result(self, runs: Sequence[Any], wall: float) -> BatchResult:
        summaries = []
        for i, r in enumerate(runs):
            row = {
                "run_id": r.run_id,
                **r.flat(),
                "status": self.status[i],
                "final_loss": float(self.last_loss[i]),
                "final_rel_err": float(self.last_rel[i]),
                "steps": int(self.steps_done[i]),
                "wall_s": wall / len(runs),
            }
            if i in self.errors:
                row["error"] = self.errors[i]
            for eps, h in self.hits.items():
                row[_EPS_COLUMN[eps]] = int(h[i]) if h[i] >= 0 else None
            summaries.append(row)
        return BatchResult(summaries, _trajectories(runs, self.logged))


def _trajectories(runs: Sequence[Any], logged: dict[str, list[tuple[int, Tensor, Tensor]]]) -> pd.DataFrame:
    """Long form (run_id, step, metric, index, value), vectorized with numpy."""
    ids = np.array([r.run_id for r in runs], dtype=object)
    frames = []
    for metric, records in logged.items():
        for step, ok, values in records:
            rows = torch.nonzero(ok).flatten().numpy()
            if rows.size == 0:
                continue
            vals = values[rows].numpy()
            k = vals.shape[1]
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": np.repeat(ids[rows], k),
                        "step": np.full(rows.size * k, step, dtype=np.int64),
                        "metric": metric,
                        "index": np.tile(np.arange(k, dtype=np.int64), rows.size),
                        "value": vals.reshape(-1),
                    }
                )
            )
    if not frames:
        return pd.DataFrame({"run_id": [], "step": [], "metric": [], "index": [], "value": []})
    return pd.concat(frames, ignore_index=True)
