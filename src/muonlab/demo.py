r"""The seed-001 headline in one minute: Muon's iteration count does not depend on κ.

Problem (SPEC §4 P1; Ma, Huang, Chi, Chen, *Preconditioning Benefits of Spectral
Orthogonalization in Muon*, arXiv 2601.13474, §2.1): symmetric matrix factorization

.. math::
    M^\star = U \operatorname{diag}(\lambda) U^\top,\qquad
    f(X) = \tfrac14 \lVert X X^\top - M^\star \rVert_F^2,\qquad
    \nabla f(X) = (X X^\top - M^\star) X,

with U a random orthonormal n×r matrix, λ log-spaced from λ_1 = 1 down to
λ_r = 1/κ, X ∈ R^{n×r} (exact parameterization r = r*), X_0 = α·N(0,1)/sqrt(n) with
α = 1e-3, and the metric ``rel_err = ‖XXᵀ − M*‖_F / ‖M*‖_F``.

Claims being illustrated (seed 001):

* Theorem 1 — simplified Muon, :math:`X \leftarrow X - \eta_t\,\mathrm{msign}(\nabla f(X))`
  with geometrically decaying η_t, reaches accuracy ε in O(log(1/ε)) iterations,
  *independent of κ*: msign maps every singular value of the gradient to 1, so the
  dynamics decouple into scalar sequences in the spectral domain that all move at the
  same speed, whatever the size of λ_i.
* GD, :math:`X \leftarrow X - \eta\nabla f(X)` with η ≲ 1/λ_1, needs O(κ log(1/ε))
  iterations: the mode λ_r = 1/κ grows and contracts at rate ≈ ηλ_r.
* SignGD (Theorem 2) needs at least ∝ κ iterations on a hard instance; ScaledGD
  (Tong, Ma & Chi 2021) is κ-free too, by explicit preconditioning with (XᵀX)⁻¹.

The demo is written as an ordinary *user training loop* over ``torch.optim``
optimizers (``muonlab.optim.Muon``, ``SignGD``, ``ScaledGD``, ``torch.optim.SGD``)
with the loss from autograd in float64 — it doubles as a showcase of the optimizer
API. The batched engine (SPEC §8) will replace the loop for large sweeps.

Step sizes follow the seed's experiments ("reduce η by ρ when the loss has not
decreased for k iterations", SPEC §3 ``plateau``, ρ = 0.5, k = 10) for the
scale-free methods (Muon, SignGD); GD and ScaledGD use a fixed stable step.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from muonlab.atomic import write_atomic
from muonlab.optim import Muon, ScaledGD, ScheduleLR, SignGD, make_schedule

__all__ = [
    "DEFAULT_KAPPAS",
    "EPSILONS",
    "OPTIMIZERS",
    "DemoConfig",
    "DemoConfigError",
    "DemoResult",
    "RunResult",
    "make_target",
    "init_factor",
    "parse_kappas",
    "parse_optimizers",
    "run_demo",
    "steps_to",
    "train",
]

DEFAULT_KAPPAS: tuple[float, ...] = (1.0, 100.0, 10_000.0)
#: Accuracies whose first-hitting step is reported (the last one is the target).
EPSILONS: tuple[float, ...] = (1e-4, 1e-8, 1e-10)
#: A run stops early once rel_err <= STOP_TOL (SPEC P1: run to 1e-12 in float64).
STOP_TOL = 1e-12
#: rel_err above this (or non-finite) marks a run as diverged.
BLOWUP = 1e6
ALPHA = 1e-3

# Plateau schedule of the seed-001 experiments (SPEC §3 defaults ρ = 0.5, k = 10),
# plus a 0.1 % relative threshold: without it, Muon's loss can oscillate between two
# levels while creeping down, which postpones every cut (2 of 60 seeds stalled near
# 1e-2). Kept in one place so the demo, its JSON and its page always agree.
PLATEAU = {"factor": 0.5, "patience": 10, "threshold": 1e-3}


@dataclass(frozen=True)
class OptimizerSetting:
    """How the demo trains with one optimizer (the values are recorded in demo.json)."""

    name: str
    label: str
    lr: float
    schedule: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    description: str = ""


# Step sizes: Muon/SignGD move a fixed distance η per step (msign/sign have unit
# scale), so η_0 only sets the first few steps and the plateau schedule shrinks it
# geometrically — 0.5 is ~½·sqrt(λ_1), a size that reaches the top mode in a couple
# of steps. With the plateau threshold, Muon reached rel err 1e-10 in 362–467 steps
# over 30 seeds × κ ∈ {1, 1e2, 1e4} (n = 40, r = 4), all κ alike. GD must stay
# below 2/λ_max(Hessian) = 1/λ_1 at the optimum; 1/(3λ_1) leaves room for the
# overshoot of the growth phase.
# ScaledGD's preconditioned step is scale-free; δ = 1e-8 only keeps the solve defined
# at the tiny init (Xu et al. 2023 show small-init ScaledGD works).
OPTIMIZERS: dict[str, OptimizerSetting] = {
    s.name: s
    for s in (
        OptimizerSetting(
            "muon",
            "Muon (msign, no momentum)",
            lr=0.5,
            schedule="plateau",
            extra={"method": "svd", "momentum": 0.0},
            description="muonlab.optim.Muon(method='svd', momentum=0): X ← X − η·msign(∇f), plateau η",
        ),
        OptimizerSetting(
            "gd",
            "GD",
            lr=1.0 / 3.0,
            schedule=None,
            extra={},
            description="torch.optim.SGD: X ← X − η·∇f, fixed η = 1/(3·λ_max)",
        ),
        OptimizerSetting(
            "signgd",
            "SignGD",
            lr=0.03,
            schedule="plateau",
            extra={},
            description="muonlab.optim.SignGD: X ← X − η·sign(∇f), plateau η",
        ),
        OptimizerSetting(
            "scaledgd",
            "ScaledGD",
            lr=0.5,
            schedule=None,
            extra={"damping": 1e-8},
            description="muonlab.optim.ScaledGD: X ← X − η·∇f·(XᵀX + δI)⁻¹, fixed η",
        ),
    )
}


class DemoConfigError(ValueError):
    """A demo setting is out of range; ``field`` names it (the CLI maps it to ``--field``)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def parse_kappas(text: str | Sequence[float]) -> tuple[float, ...]:
    """Parse ``"1,100,1e4"`` (or a sequence) into condition numbers κ ≥ 1, duplicates dropped."""
    items: list[Any]
    if isinstance(text, str):
        items = [s.strip() for s in text.split(",")]
    else:
        items = list(text)
    if not items or items == [""]:
        raise DemoConfigError("kappas", "expected a comma-separated list of numbers >= 1, e.g. 1,100,10000; got nothing")
    out: list[float] = []
    for item in items:
        try:
            k = float(item)
        except (TypeError, ValueError):
            raise DemoConfigError(
                "kappas", f"expected a comma-separated list of numbers >= 1, e.g. 1,100,10000; got {item!r}"
            ) from None
        if not math.isfinite(k) or k < 1.0:
            raise DemoConfigError("kappas", f"each condition number must be a finite number >= 1, got {item!r}")
        if k not in out:
            out.append(k)
    return tuple(out)


def parse_optimizers(text: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"muon,gd"`` (or a sequence) into known optimizer names, duplicates dropped."""
    items = [s.strip().lower() for s in text.split(",")] if isinstance(text, str) else [str(s) for s in text]
    allowed = ", ".join(OPTIMIZERS)
    if not items or items == [""]:
        raise DemoConfigError("optimizers", f"expected a comma-separated list from: {allowed}; got nothing")
    out: list[str] = []
    for item in items:
        if item not in OPTIMIZERS:
            raise DemoConfigError("optimizers", f"unknown optimizer {item!r}; allowed: {allowed}")
        if item not in out:
            out.append(item)
    return tuple(out)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DemoConfigError(name, f"must be an integer, got {value!r}")
    if value < lo:
        raise DemoConfigError(name, f"must be an integer >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise DemoConfigError(name, f"must be an integer <= {hi}, got {value}")
    return value


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo` (field names match the ``muonlab demo`` options).

    The same seed draws U and X_0 for every κ and every optimizer (common random
    numbers): runs differ only in the spectrum λ and the update rule.
    """

    kappas: tuple[float, ...] = DEFAULT_KAPPAS
    n: int = 40
    rank: int = 4
    steps: int = 1500
    seed: int = 0
    optimizers: tuple[str, ...] = ("muon", "gd")
    alpha: float = ALPHA

    def __post_init__(self) -> None:
        object.__setattr__(self, "kappas", parse_kappas(self.kappas))
        object.__setattr__(self, "optimizers", parse_optimizers(self.optimizers))
        _check_int("n", self.n, 2)
        _check_int("rank", self.rank, 1)
        if self.rank > self.n:
            raise DemoConfigError("rank", f"must be <= n ({self.n}), got {self.rank}")
        _check_int("steps", self.steps, 1)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (math.isfinite(a) and a > 0):
            raise DemoConfigError("alpha", f"must be a finite number > 0, got {a!r}")


# ----------------------------------------------------------------------------- problem


def make_target(
    n: int, rank: int, kappa: float, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """M* = U diag(λ) Uᵀ with U random orthonormal (n×r) and λ log-spaced 1 → 1/κ.

    Returns ``(M_star, lam)``; λ_1 = 1 so ‖M*‖₂ = 1 and κ = λ_1/λ_r exactly.
    """
    # QR of a Gaussian matrix: U spans a uniformly random r-dimensional subspace
    # (the column-sign bias of QR cancels in U diag(λ) Uᵀ).
    U, _ = torch.linalg.qr(torch.randn(n, rank, generator=generator, dtype=dtype))
    lam = torch.logspace(0.0, -math.log10(kappa), rank, dtype=dtype) if rank > 1 else torch.ones(1, dtype=dtype)
    return (U * lam) @ U.T, lam


def init_factor(
    n: int, rank: int, alpha: float, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Small random init X_0 = α·N(0,1)/sqrt(n) (seed 001, Theorem 1's exact case)."""
    return alpha * torch.randn(n, rank, generator=generator, dtype=dtype) / math.sqrt(n)


def steps_to(curve: Sequence[float], eps: float) -> int | None:
    """First iteration t with ``curve[t] <= eps`` (``curve[0]`` is the init), else None."""
    for t, value in enumerate(curve):
        if value <= eps:
            return t
    return None


def _eps_key(eps: float) -> str:
    """``1e-10`` → ``"1e-10"`` (the SPEC §6 column style ``steps_to_1e-10``)."""
    exp = math.log10(eps)
    if abs(exp - round(exp)) < 1e-9:
        return f"1e{int(round(exp))}"
    return f"{eps:g}"


# ----------------------------------------------------------------------------- training


@dataclass
class RunResult:
    """One (optimizer, κ) run: the relative-error curve and its summary."""

    optimizer: str
    kappa: float
    rel_err: list[float]
    steps_to: dict[str, int | None]
    final_rel_err: float
    steps_run: int
    status: str  # "reached" (target EPSILONS[-1]) | "not_reached" | "diverged"
    final_lr: float
    wall_s: float

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("rel_err", "steps_to")}
        if not math.isfinite(self.final_rel_err):  # JSON has no NaN/inf
            out["final_rel_err"] = None
        out.update({f"steps_to_{k}": v for k, v in self.steps_to.items()})
        return out


def _build(name: str, X: torch.nn.Parameter) -> tuple[torch.optim.Optimizer, ScheduleLR | None]:
    s = OPTIMIZERS[name]
    if name == "muon":
        opt: torch.optim.Optimizer = Muon([X], lr=s.lr, **s.extra)
    elif name == "gd":
        opt = torch.optim.SGD([X], lr=s.lr)
    elif name == "signgd":
        opt = SignGD([X], lr=s.lr)
    elif name == "scaledgd":
        opt = ScaledGD([X], lr=s.lr, **s.extra)
    else:  # pragma: no cover - OPTIMIZERS and this switch are edited together
        raise ValueError(f"optimizer: unknown {name!r}; allowed: {', '.join(OPTIMIZERS)}")
    sched = ScheduleLR(opt, make_schedule(s.schedule, **PLATEAU)) if s.schedule == "plateau" else None
    return opt, sched


def train(
    optimizer: str,
    kappa: float,
    config: DemoConfig,
    on_steps: Callable[[int], None] | None = None,
) -> RunResult:
    """Train X on P1 with one optimizer: a plain ``zero_grad / backward / step`` loop.

    ``rel_err[t]`` is the error of X_t (``rel_err[0]`` the init). Stops at
    ``config.steps``, at rel_err ≤ STOP_TOL, or on divergence. ``on_steps(k)`` is
    called with the number of steps done since its last call (progress bars).
    """
    if optimizer not in OPTIMIZERS:
        raise DemoConfigError("optimizers", f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(config.seed)
    M, _ = make_target(config.n, config.rank, kappa, g)
    X = torch.nn.Parameter(init_factor(config.n, config.rank, config.alpha, g))
    opt, sched = _build(optimizer, X)
    m_norm = torch.linalg.matrix_norm(M).item()

    curve: list[float] = []
    status = "not_reached"
    reported = 0
    for t in range(config.steps + 1):
        opt.zero_grad(set_to_none=True)
        residual = X @ X.T - M
        loss = 0.25 * residual.square().sum()
        rel = torch.linalg.matrix_norm(residual.detach()).item() / m_norm
        curve.append(rel)
        if not math.isfinite(rel) or rel > BLOWUP:
            status = "diverged"
            break
        if rel <= STOP_TOL or t == config.steps:
            break
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step(loss.detach())  # plateau needs the loss of the step just taken
        if on_steps is not None and (t + 1) % 50 == 0:
            on_steps(t + 1 - reported)
            reported = t + 1
    steps_run = len(curve) - 1
    if on_steps is not None:
        # Early-stopped runs still count as their full budget on the progress bar.
        on_steps(config.steps - reported)
    hits = {_eps_key(e): steps_to(curve, e) for e in EPSILONS}
    if status != "diverged" and hits[_eps_key(EPSILONS[-1])] is not None:
        status = "reached"
    return RunResult(
        optimizer=optimizer,
        kappa=float(kappa),
        rel_err=curve,
        steps_to=hits,
        final_rel_err=curve[-1],
        steps_run=steps_run,
        status=status,
        final_lr=float(opt.param_groups[0]["lr"]),
        wall_s=time.perf_counter() - t0,
    )


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    # n×r matrices this small gain nothing from intra-op threads, and spinning
    # OpenMP workers made backward up to ~100× slower on a loaded 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- outputs


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the runs and the paths it wrote."""

    config: DemoConfig
    runs: list[RunResult]
    out_dir: Path
    json_path: Path
    png_path: Path
    html_path: Path
    wall_s: float

    def run(self, optimizer: str, kappa: float) -> RunResult:
        for r in self.runs:
            if r.optimizer == optimizer and r.kappa == float(kappa):
                return r
        raise KeyError((optimizer, kappa))


def _kappa_label(k: float, style: str = "text") -> str:
    """``κ = 10^4`` as plain text, matplotlib mathtext (``tex``) or ``html``."""
    e = math.log10(k)
    if k != 1 and abs(e - round(e)) < 1e-9:
        p = int(round(e))
        return {"tex": rf"$\kappa = 10^{{{p}}}$", "html": f"κ = 10<sup>{p}</sup>"}.get(style, f"κ = 10^{p}")
    return rf"$\kappa = {k:g}$" if style == "tex" else f"κ = {k:g}"


def _figure_png(result_runs: list[RunResult], config: DemoConfig) -> bytes:
    # Figure + Agg canvas directly: no pyplot global state, no backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import matplotlib as mpl

    opts = config.optimizers
    style = {
        "font.family": "serif",
        "mathtext.fontset": "cm",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    }
    with mpl.rc_context(style):
        fig = Figure(figsize=(3.0 * len(opts) + 0.4, 2.8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(opts), sharey=True, sharex=True, squeeze=False)[0]
        cmap = mpl.colormaps["viridis"]
        nk = len(config.kappas)
        for ax, name in zip(axes, opts):
            for i, k in enumerate(config.kappas):
                run = next(r for r in result_runs if r.optimizer == name and r.kappa == k)
                y = [max(v, 1e-16) for v in run.rel_err]
                color = cmap(0.85 * i / max(nk - 1, 1))
                ax.semilogy(range(len(y)), y, color=color, lw=1.1, label=_kappa_label(k, "tex"))
            ax.axhline(EPSILONS[-1], color="0.5", lw=0.8, ls=":")
            ax.set_title(f"({chr(97 + list(opts).index(name))}) {OPTIMIZERS[name].label}")
            ax.set_xlabel("iteration")
            ax.set_xlim(0, config.steps)
            ax.grid(True, which="major", color="0.92", lw=0.6)
        axes[0].set_ylabel(r"$\|XX^\top - M^\star\|_F \,/\, \|M^\star\|_F$")
        axes[0].set_ylim(1e-13, 10.0)
        axes[-1].legend(loc="center right", fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()


def _cell(v: int | None) -> str:
    return "—" if v is None else str(v)


def _summary_sentence(runs: list[RunResult], config: DemoConfig) -> str:
    key = _eps_key(EPSILONS[-1])
    parts = []
    for name in config.optimizers:
        rs = [r for r in runs if r.optimizer == name]
        hit = [r.steps_to[key] for r in rs if r.steps_to[key] is not None]
        label = OPTIMIZERS[name].label
        if len(hit) == len(rs):
            spread = max(hit) / max(min(hit), 1)
            span = f"{min(hit)}" if min(hit) == max(hit) else f"{min(hit)}–{max(hit)}"
            parts.append(f"{label} reached {key} for every κ in {span} iterations (max/min ×{spread:.1f})")
        else:
            done = [_kappa_label(r.kappa) for r in rs if r.steps_to[key] is not None]
            parts.append(
                f"{label} reached {key} within {config.steps} iterations "
                + (f"only for {', '.join(done)}" if done else "for no κ")
            )
    return "; ".join(parts) + "."


def _html_page(runs: list[RunResult], config: DemoConfig, png: bytes, wall_s: float) -> str:
    from muonlab import __version__

    esc = html.escape
    head = "".join(f"<th>steps to {_eps_key(e)}</th>" for e in EPSILONS)
    rows = []
    for name in config.optimizers:
        for k in config.kappas:
            r = next(r for r in runs if r.optimizer == name and r.kappa == k)
            cells = "".join(f"<td>{_cell(r.steps_to[_eps_key(e)])}</td>" for e in EPSILONS)
            rows.append(
                f"<tr><td>{esc(OPTIMIZERS[name].label)}</td><td>{_kappa_label(k, 'html')}</td>{cells}"
                f"<td>{r.final_rel_err:.1e}</td><td>{esc(r.status.replace('_', ' '))}</td></tr>"
            )
    settings = "".join(f"<li><code>{esc(n)}</code>: {esc(OPTIMIZERS[n].description)}</li>" for n in config.optimizers)
    img = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>muonlab demo: Muon's iteration count does not depend on the condition number</title>
<style>
body {{ font-family: Georgia, serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.7rem; text-align: right; }}
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; }} code {{ font-size: 0.85rem; }} .meta {{ color: #666; font-size: 0.85rem; }}
</style></head><body>
<h1>Muon's iteration count does not depend on κ</h1>
<p>Symmetric matrix factorization f(X) = ¼‖XXᵀ − M*‖²<sub>F</sub> with M* = U diag(λ) Uᵀ of
size n = {config.n}, rank r = {config.rank}, and λ log-spaced from 1 down to 1/κ; X starts at
α·N(0,1)/√n with α = {config.alpha:g}. Simplified Muon (X ← X − η·msign(∇f), no momentum)
maps every singular value of the gradient to one, so the small modes of M* are learned as
fast as the large ones: its iteration count to a given accuracy does not grow with κ
(Ma, Huang, Chi &amp; Chen, <i>Preconditioning Benefits of Spectral Orthogonalization in Muon</i>,
arXiv 2601.13474, Theorem 1), while gradient descent slows down in proportion to κ.
{esc(_summary_sentence(runs, config))}</p>
<figure><img alt="relative error versus iteration, one panel per optimizer, one curve per condition number"
src="data:image/png;base64,{img}"><figcaption class="meta">Relative error ‖XXᵀ − M*‖<sub>F</sub>/‖M*‖<sub>F</sub>
per iteration; dotted line: target {_eps_key(EPSILONS[-1])}. Runs stop at {STOP_TOL:g}.</figcaption></figure>
<h2>Iterations to accuracy ε</h2>
<table><thead><tr><th>optimizer</th><th>κ</th>{head}<th>final rel. err</th><th>status</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<p class="meta">— : not reached within {config.steps} iterations.</p>
<h2>Settings</h2><ul>{settings}</ul>
<p class="meta">Plateau schedule: η ← {PLATEAU['factor']}·η after {PLATEAU['patience']} iterations without a
decrease of the best loss by more than {PLATEAU['threshold']:.1%}. float64, seed {config.seed}. muonlab {esc(__version__)}, {wall_s:.1f} s.
Data: <code>demo.json</code>; figure: <code>demo.png</code>.</p>
</body></html>
"""


def _json_doc(runs: list[RunResult], config: DemoConfig, wall_s: float) -> dict[str, Any]:
    from muonlab import __version__

    return {
        "muonlab_version": __version__,
        "demo": "seed-001 headline: symmetric matrix factorization (SPEC P1), Muon vs baselines",
        "reference": "Ma, Huang, Chi, Chen, Preconditioning Benefits of Spectral Orthogonalization in Muon, arXiv 2601.13474",
        "config": {
            **asdict(config),
            "kappas": list(config.kappas),
            "optimizers": list(config.optimizers),
            "dtype": "float64",
            "epsilons": list(EPSILONS),
            "target": EPSILONS[-1],
            "stop_tol": STOP_TOL,
            "optimizer_settings": {
                name: {
                    "lr": OPTIMIZERS[name].lr,
                    "schedule": None
                    if OPTIMIZERS[name].schedule is None
                    else {"name": OPTIMIZERS[name].schedule, **PLATEAU},
                    **OPTIMIZERS[name].extra,
                    "update": OPTIMIZERS[name].description,
                }
                for name in config.optimizers
            },
        },
        "results": [r.summary() for r in runs],
        "wall_s": wall_s,
    }


def run_demo(
    config: DemoConfig,
    out_dir: str | os.PathLike[str],
    *,
    on_run: Callable[[str, float], None] | None = None,
    on_steps: Callable[[int], None] | None = None,
) -> DemoResult:
    """Run every (optimizer, κ) of ``config`` and write demo.json, demo.png, index.html.

    ``on_run(optimizer, kappa)`` is called before each run and ``on_steps(k)`` as steps
    complete (each run counts ``config.steps``), for progress display.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs: list[RunResult] = []
    with _single_thread():
        for name in config.optimizers:
            for kappa in config.kappas:
                if on_run is not None:
                    on_run(name, kappa)
                runs.append(train(name, kappa, config, on_steps=on_steps))
    wall = time.perf_counter() - t0

    png = _figure_png(runs, config)
    paths = (out / "demo.json", out / "demo.png", out / "index.html")
    doc = json.dumps(_json_doc(runs, config, wall), indent=2, allow_nan=False, ensure_ascii=False)
    write_atomic(paths[0], (doc + "\n").encode("utf-8"))
    write_atomic(paths[1], png)
    write_atomic(paths[2], _html_page(runs, config, png, wall).encode("utf-8"))
    return DemoResult(config, runs, out, *paths, wall_s=time.perf_counter() - t0)
