"""The discrete solver: R runs advanced step by step as one batched tensor set.

Per step t: evaluate loss, gradient and relative error of every run in one call;
record them in the :class:`~muonlab.engine.runbook.RunBook` (divergence, ε hits,
logging); stop runs that reached ``stop.target`` or diverged; apply the batch's update
rule with each run's scheduled step size (to the gradient plus the run's
``gradient_noise`` when the config sets one, :mod:`muonlab.engine.noise`); advance the
schedule. A finished run's
parameters are frozen (``torch.where`` on an activity mask), so its numbers stay what
they were when it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from muonlab.config import RunSpec
from muonlab.engine.batch import Batch
from muonlab.engine.noise import gradient_noise
from muonlab.engine.runbook import BatchResult, RunBook, metric_values
from muonlab.errors import MuonlabError
from muonlab.optim.schedules import Schedule, ScheduleState
from muonlab.problems.targets import generator

__all__ = ["DiscreteSolver"]


def init_schedule(schedule: Schedule, runs: Sequence[RunSpec], lr: Tensor) -> ScheduleState:
    """Schedule state with each run's random draws (geometric's c) taken from its own seed.

    Drawing per run keeps a run's schedule independent of which batch it lands in.
    """
    states = [
        schedule.init(lr[i : i + 1].cpu(), generator=generator(int(r.seed), "schedule"))
        for i, r in enumerate(runs)
    ]
    return ScheduleState(
        t=0,
        lr=torch.cat([s.lr for s in states]),
        base=torch.cat([s.base for s in states]),
        best=torch.cat([s.best for s in states]),
        bad=torch.cat([s.bad for s in states]),
    )


def _to_host(loss: Tensor, rel: Tensor, grads: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """A step's ``(loss, rel_err, finite)`` on the CPU, float64/float64/bool, each ``(R,)``.

    ``finite``: loss, error and every gradient entry of the run are finite. Everything
    is reduced where the tensors live and crosses to the host in one copy, so a CUDA
    step synchronizes once (not once per tensor). Widening to float64 is exact, so
    ``isfinite`` before or after it agrees.
    """
    R = loss.shape[0]
    finite = torch.isfinite(loss) & torch.isfinite(rel)
    for g in grads:
        finite &= torch.isfinite(g.reshape(R, -1)).all(dim=1)
    f64 = torch.float64
    host = torch.stack([loss.detach().to(f64), rel.detach().to(f64), finite.to(f64)]).cpu()
    return host[0], host[1], host[2] != 0


class DiscreteSolver:
    """Steps ``spec.steps`` times (or until every run stopped) with the batch's rule."""

    name = "discrete"

    def solve(self, batch: Batch, on_step: Callable[[int], None] | None = None) -> BatchResult:
        """Advance the batch; ``on_step(k)`` reports k run-steps done since the last call."""
        if batch.rule is None:
            raise MuonlabError(
                f"optimizer.name: {batch.spec.optimizer.name} has no update rule to step with", field="optimizer.name"
            )
        t0 = time.perf_counter()
        spec, problem, rule, R = batch.spec, batch.problem, batch.rule, batch.size
        sched_state = init_schedule(batch.schedule, batch.runs, batch.initial_lr())
        book = RunBook(batch.runs)
        device = problem.device

        noise = gradient_noise(batch.runs)  # None: the exact gradient (the default)
        params = [p.clone() for p in problem.init_params()]
        reported = 0
        for t in range(spec.steps + 1):
            loss, grads, rel = problem.evaluate(params)
            loss64, rel64, finite = _to_host(loss, rel, grads)
            ok_now = book.observe(t, loss64, rel64, finite)
            if book.due(t):
                book.log(t, ok_now, metric_values(spec.metrics, problem, params, loss, rel, sched_state.lr))
            act = book.advance(t, ok_now, rel64)
            if not bool(act.any()) or t == spec.steps:
                break
            lr = sched_state.lr.to(device=device, dtype=params[0].dtype)
            if noise is not None:  # after the finiteness check and the log: they see the exact gradient
                grads = noise.apply(grads)
            if bool(act.all()):
                rule.step(params, grads, lr)
            else:  # finished runs keep their parameters: step on a masked copy, then restore
                active = act.to(device)
                before = [p.clone() for p in params]
                mask = [active.view(R, *([1] * (p.ndim - 1))) for p in params]
                safe_grads = [torch.where(m, g, torch.zeros_like(g)) for g, m in zip(grads, mask)]
                rule.step(params, safe_grads, lr)
                for p, b, m in zip(params, before, mask):
                    p.copy_(torch.where(m, p, b))
            sched_state = batch.schedule.step(
                sched_state, torch.where(act, loss64, torch.full_like(loss64, math.inf))
            )
            if on_step is not None and (t + 1) % 100 == 0:
                on_step((t + 1 - reported) * R)
                reported = t + 1
        if on_step is not None:  # runs that stopped early count their whole budget
            on_step((spec.steps - reported) * R)
        return book.result(batch.runs, time.perf_counter() - t0)
