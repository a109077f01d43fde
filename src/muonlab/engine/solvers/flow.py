r"""Spectral gradient *flow* (SpecGF) with an adaptive ODE integrator — seed 000.

Kang, Yun, Shin, Cho & Yun, *Uniform Spectral Growth and Convergence of Muon in
LoRA-Style Matrix Factorization* (arXiv 2602.06385) analyse the continuous-time limit
of SpecGD on every factor θ of a factorized problem,

.. math::  \frac{dθ}{dτ} = -T\big(\nabla_θ f\big), \qquad
           T = T_β(G) = G\,(G^\top G + βI)^{-1/2} \ \ (β > 0), \qquad T_0 = \mathrm{msign},

(seed 000 §4; β > 0 makes the vector field smooth, β → 0 recovers msign). Here the
flow is integrated with ``scipy.integrate.solve_ivp`` (error-controlled, adaptive
steps; default DOP853, rtol 1e-8, atol 1e-10) in float64, all runs of a batch in one
state vector (the field is block-diagonal over runs, so batching only shares the step
size control).

**Engine integration.** An experiment selects it with ``optimizer: {name: specgf,
dt: Δτ, beta: …}`` and the engine hands such batches to :class:`FlowSolver`: the state
is recorded at τ_k = k·Δτ for k = 0..steps, so "step k" of a flow run is time k·Δτ —
the same clock as SpecGD with η = Δτ, which makes the discrete and continuous runs
directly comparable (and the claims shared). The config refuses a schedule other than
``constant`` and a dtype other than float64 when it is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from muonlab.engine.batch import Batch
from muonlab.engine.runbook import BatchResult, RunBook, metric_values
from muonlab.errors import MuonlabError
from muonlab.linalg.orthogonalize import orthogonalize
from muonlab.problems.base import Problem

if TYPE_CHECKING:
    from muonlab.config.optimizers import SpecGFConfig

__all__ = ["INTEGRATORS", "FlowSolver", "spec_gf", "spectral_field"]

#: scipy ``solve_ivp`` methods.
INTEGRATORS = ("DOP853", "RK45", "RK23", "Radau", "BDF", "LSODA")


def spectral_field(problem: Problem, beta: float) -> Callable[[list[Tensor]], list[Tensor]]:
    """θ ↦ −T_β(∇_θ f) for every factor (batched over runs); β = 0 uses the exact msign."""
    def field(params: list[Tensor]) -> list[Tensor]:
        grads = problem.grad(params)
        if beta > 0:
            return [-orthogonalize(g, "beta", beta=beta) for g in grads]
        return [-orthogonalize(g, "svd") for g in grads]

    return field


def spec_gf(
    problem: Problem,
    times: Sequence[float] | np.ndarray,
    *,
    beta: float = 1e-4,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    integrator: str = "DOP853",
    params0: list[Tensor] | None = None,
) -> tuple[np.ndarray, list[list[Tensor]], dict[str, Any]]:
    """Integrate SpecGF from ``params0`` (default: the problem's init) and return the
    state at ``times`` (ascending, starting at 0).

    Returns ``(times_reached, states, info)``: ``states[k]`` is the parameter list at
    ``times_reached[k]``; ``info`` has the solver's ``nfev``, ``status`` and
    ``message``. If the solver stops early (status < 0), only the times it reached are
    returned.

    Raises:
        ValueError: unknown ``integrator``, negative ``beta``, or ``times`` not ascending from 0.
    """
    if integrator not in INTEGRATORS:
        raise MuonlabError(f"integrator: unknown {integrator!r}; allowed: {', '.join(INTEGRATORS)}", field="integrator")
    if not beta >= 0:
        raise MuonlabError(f"beta: must be >= 0, got {beta!r}", field="beta")
    ts = np.asarray(list(times), dtype=float)
    if ts.size == 0 or ts[0] != 0.0 or np.any(np.diff(ts) <= 0):
        raise MuonlabError("times: must start at 0 and increase", field="times")
    params = [p.detach().to(torch.float64).clone() for p in (params0 or problem.init_params())]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    field = spectral_field(problem, beta)
    device = problem.device  # scipy integrates on the host; the field is evaluated where the problem lives

    def unpack(y: np.ndarray) -> list[Tensor]:
        out, at = [], 0
        flat = torch.from_numpy(np.ascontiguousarray(y)).to(device)  # one host→device copy per evaluation
        for shape, size in zip(shapes, sizes):
            out.append(flat[at : at + size].reshape(shape))
            at += size
        return out

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([d.reshape(-1) for d in field(unpack(y))]).cpu().numpy()

    y0 = torch.cat([p.reshape(-1) for p in params]).cpu().numpy()
    sol = solve_ivp(rhs, (0.0, float(ts[-1])), y0, method=integrator, t_eval=ts, rtol=rtol, atol=atol)
    states = [unpack(sol.y[:, k].copy()) for k in range(sol.y.shape[1])]
    return sol.t, states, {"nfev": int(sol.nfev), "status": int(sol.status), "message": str(sol.message)}


class FlowSolver:
    """Integrates SpecGF for a batch and records it on the grid τ_k = k·``optimizer.dt``."""

    name = "flow"

    def solve(self, batch: Batch, on_step: Callable[[int], None] | None = None) -> BatchResult:
        """Same summaries and trajectories as the discrete solver, step k meaning time k·Δτ."""
        t0 = time.perf_counter()
        spec, problem, R = batch.spec, batch.problem, batch.size
        opt = cast("SpecGFConfig", spec.optimizer)  # the only optimizer whose solver is "flow"
        dt = float(opt.dt)
        times = dt * np.arange(spec.steps + 1)
        _, states, info = spec_gf(problem, times, beta=float(opt.beta), rtol=float(opt.rtol),
                                  atol=float(opt.atol), integrator=str(opt.integrator))
        book = RunBook(batch.runs)
        lr = torch.full((R,), dt, dtype=torch.float64, device="cpu")
        for k, params in enumerate(states):
            loss, _grads, rel = problem.evaluate(params)
            loss, rel = loss.detach().double().cpu(), rel.detach().double().cpu()  # the RunBook keeps CPU books
            ok_now = book.observe(k, loss, rel, torch.isfinite(loss) & torch.isfinite(rel))
            if book.due(k):
                book.log(k, ok_now, metric_values(spec.metrics, problem, params, loss, rel, lr))
            if not bool(book.advance(k, ok_now, rel).any()):
                break
        if info["status"] < 0:  # the solver gave up before the horizon: say so on every run still going
            book.fail_active(f"solve_ivp: {info['message']}")
        if on_step is not None:
            on_step(spec.steps * R)
        return book.result(batch.runs, time.perf_counter() - t0)
