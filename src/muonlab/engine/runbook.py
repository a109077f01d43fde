"""Per-run bookkeeping shared by every solver: status, ε hits, last values, logged metrics.

:class:`RunBook` records, for each run of a batch, its status (a run diverges on a
non-finite value or a loss above ``stop.blowup`` × its first), the first step at which
each ε of :data:`muonlab.accuracy.EPSILONS` is reached, the last healthy loss and
error, the steps taken and the logged metric values; :meth:`RunBook.result` turns that
into a :class:`BatchResult` (summary rows in the store's schema and long-form
trajectories). :func:`metric_values` evaluates the logged metrics at one step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from muonlab.accuracy import EPSILONS, eps_column
from muonlab.config import RunSpec
from muonlab.engine.metrics import RUNNER_METRICS, compute_metrics
from muonlab.problems.base import Problem

__all__ = ["BatchResult", "RunBook", "metric_values"]


@dataclass
class BatchResult:
    """Per-run summaries (one dict per run, SPEC §6 columns) and long-form trajectories."""

    runs: list[dict[str, Any]]
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)


def metric_values(
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


class RunBook:
    """Per-run bookkeeping of one batch, shared by every solver
    (:mod:`muonlab.engine.solvers`): status (a run diverges on a non-finite value or a loss
    above ``blowup`` × its first), the first step at which each ε is reached, the last
    healthy loss and error, steps taken, and the logged metrics.

    Per step t: ``ok = observe(t, loss, rel, finite)``, ``log(t, ok, values)`` when
    ``due(t)``, then ``active = advance(t, ok, rel)`` (a run also stops once
    ``rel <= stop.target``).
    """

    def __init__(self, runs: Sequence[RunSpec]) -> None:
        spec = runs[0]
        R = len(runs)
        self.target = float(spec.stop.target or 0.0)
        self.blowup = float(spec.stop.blowup or math.inf)
        self.steps, self.log_every = int(spec.steps), int(spec.log_every)
        self.active = torch.ones(R, dtype=torch.bool, device="cpu")
        self.status = ["ok"] * R
        self.errors: dict[int, str] = {}
        self.steps_done = torch.zeros(R, dtype=torch.int64, device="cpu")
        self.hits = {eps: torch.full((R,), -1, dtype=torch.int64, device="cpu") for eps in EPSILONS}
        self.last_loss = torch.full((R,), math.nan, dtype=torch.float64, device="cpu")
        self.last_rel = torch.full((R,), math.nan, dtype=torch.float64, device="cpu")
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

    def result(self, runs: Sequence[RunSpec], wall: float) -> BatchResult:
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
                row[eps_column(eps)] = int(h[i]) if h[i] >= 0 else None
            summaries.append(row)
        return BatchResult(summaries, _trajectories(runs, self.logged))


def _trajectories(runs: Sequence[RunSpec], logged: dict[str, list[tuple[int, Tensor, Tensor]]]) -> pd.DataFrame:
    """Long form (run_id, step, metric, index, value): per metric, rows in step order,
    then run order, then index.

    One frame per metric, built from the stacked records (T, R, k) and their flags (T, R):
    a frame per record cost more than the runs themselves for short, small runs.
    """
    ids = np.array([r.run_id for r in runs], dtype=object)
    frames: list[pd.DataFrame] = []
    for metric, records in logged.items():
        if not records:
            continue
        if len({tuple(values.shape) for _, _, values in records}) != 1:  # a metric whose width changed
            parts = [_trajectories(runs, {metric: [rec]}) for rec in records]
            frames.extend(f for f in parts if len(f))
            continue
        steps = np.array([step for step, _, _ in records], dtype=np.int64)
        ok = torch.stack([flags for _, flags, _ in records]).numpy()  # (T, R)
        vals = torch.stack([values for _, _, values in records]).numpy()  # (T, R, k)
        t_idx, r_idx = np.nonzero(ok)
        if t_idx.size == 0:
            continue
        k = vals.shape[2]
        frames.append(
            pd.DataFrame(
                {
                    "run_id": np.repeat(ids[r_idx], k),
                    "step": np.repeat(steps[t_idx], k),
                    "metric": metric,
                    "index": np.tile(np.arange(k, dtype=np.int64), t_idx.size),
                    "value": vals[t_idx, r_idx].reshape(-1),
                }
            )
        )
    if not frames:
        return pd.DataFrame({"run_id": [], "step": [], "metric": [], "index": [], "value": []})
    return pd.concat(frames, ignore_index=True)
