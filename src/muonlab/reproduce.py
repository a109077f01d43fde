"""Reproduce the seed figures and claims (SPEC §6: ``muonlab reproduce NAME|all``).

The registry :data:`EXPERIMENTS` names each experiment YAML under
``experiments/seed001/`` with a title, a one-line description, how the report should
group its curves/panels, and its ``quick`` overrides (``--set``-style strings applied
by ``--quick``: smaller sizes for a smoke reproduction that keeps every claim
checkable). :func:`reproduce` runs each experiment into ``DIR/<name>/`` (resuming:
the engine skips runs already in the store), writes ``DIR/experiments.json``,
evaluates the claims into ``DIR/claims.json`` and builds the HTML report when
:mod:`muonlab.report.html` is available.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "QUICK", "Experiment", "ReproduceResult", "UnknownExperimentError", "build_report",
           "experiment_config", "experiments_root", "reproduce", "resolve_names"]


@dataclass(frozen=True)
class Experiment:
    name: str
    path: str  # relative to the experiments root
    title: str
    description: str
    curve_by: list[str] = field(default_factory=list)  # one curve per combination of these columns
    panel_by: str | None = None  # one panel per value of this column
    best_of: list[str] = field(default_factory=list)  # plot only each curve's best variant over these columns
    extra_figures: list[str] = field(default_factory=list)  # names in muonlab.report.extra_figures
    seed: str = "001"
    x: str = "step"
    y: str = "rel_err"

    def info(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "p1_kappa_sweep", "seed001/p1_kappa_sweep.yaml",
            "Seed 001, Fig. 1(a–c): symmetric MF, κ sweep",
            "Muon's steps to the target are κ-free; GD ∝ κ; SignGD, ScaledGD, Adam for reference (Thms 1–2).",
            curve_by=["problem.kappa", "schedule.threshold"], panel_by="optimizer.name",
        ),
        Experiment(
            "p1_rank_sweep", "seed001/p1_rank_sweep.yaml",
            "Seed 001, Fig. 1(d–f): symmetric MF, search-rank sweep",
            "Over-parameterized r > r* = 10 at κ = 100: Muon's steps barely change with r; GD slows (Thm 1).",
            curve_by=["problem.r", "schedule.threshold"], panel_by="optimizer.name",
        ),
        Experiment(
            "p2_icl_kappa_sweep", "seed001/p2_icl_kappa_sweep.yaml",
            "Seed 001, §2.2: in-context linear regression, κ sweep",
            "ICL quadratic f(Γ), d = 20: Muon κ-free vs GD (∝ κ³) and SignGD (Thms 3–4).",
            curve_by=["problem.kappa", "optimizer.lr", "schedule.threshold"], panel_by="optimizer.name",
        ),
        Experiment(
            "p1_geometric_thm1", "seed001/p1_geometric_thm1.yaml",
            "Seed 001, Theorem 1: geometric schedule c·q^t with random prefactor",
            "Muon with Theorem 1's schedule converges linearly and κ-free from both inits (gaussian, orthonormal).",
            curve_by=["problem.kappa", "problem.r"], panel_by="problem.init",
        ),
        Experiment(
            "p1_signgd_hard_instance", "seed001/p1_signgd_hard_instance.yaml",
            "Seed 001, Theorem 2 / App. C: SignGD's hard instance for symmetric MF",
            "M* = R diag(1, 1/κ) Rᵀ with a 45° rotation R, X_0 = αI: SignGD needs ∝ κ steps, Muon does not.",
            curve_by=["problem.kappa"], panel_by="optimizer.name",
            best_of=["optimizer.lr", "schedule.threshold"],
        ),
        Experiment(
            "p2_icl_signgd_hard_instance", "seed001/p2_icl_signgd_hard_instance.yaml",
            "Seed 001, Theorem 4 / App. E: SignGD's hard instance for in-context learning",
            "Σ = 45°-rotated diag(1, 1/κ), Γ_0 = 0: SignGD's steps grow with κ, Muon's do not.",
            curve_by=["problem.kappa"], panel_by="optimizer.name",
            best_of=["optimizer.lr", "schedule.q"],
        ),
        Experiment(
            "p1_scalar_recursions", "seed001/p1_scalar_recursions.yaml",
            "Seed 001, eqs. (12)–(15), Lemma 3: decoupled scalar recursions",
            "Aligned init X_0 = αUOᵀ: Muon's eigen-coordinates follow one scalar sign recursion per eigenvalue.",
            curve_by=["problem.kappa", "problem.r"], panel_by="problem.r", extra_figures=["scalar_recursions"],
        ),
        Experiment(
            "s002_mode_order", "seed002/s002_mode_order.yaml",
            "Seed 002, Fig. 1 / claim (a): which modes are learned first",
            "M* = diag(10/i), N = d = 32, small init: Muon grows all modes at one rate (smallest arrive first); "
            "GD learns largest first.",
            curve_by=["optimizer.name"], panel_by="optimizer.name", seed="002", extra_figures=["mode_arrivals"],
        ),
        Experiment(
            "s002_lr_stability", "seed002/s002_lr_stability.yaml",
            "Seed 002, claim (b): stability above GD's critical step size",
            "200 step sizes in [0.007, 2.8], constant and annealed: GD fails above 2/λ_max = 0.1, Muon does not.",
            curve_by=["schedule.name", "optimizer.lr"], panel_by="optimizer.name", seed="002",
            extra_figures=["lr_sweep"],
        ),
        Experiment(
            "s002_conservation", "seed002/s002_conservation.yaml",
            "Seed 002, claim (c): conserved quantities",
            "GD conserves W2ᵀW2 − W1W1ᵀ, Muon conserves √(W2ᵀW2) − √(W1W1ᵀ); each breaks the other's.",
            curve_by=["optimizer.name"], panel_by="optimizer.name", seed="002", y="muon_invariant_norm",
        ),
        Experiment(
            "s002_two_step", "seed002/s002_two_step.yaml",
            "Seed 002, claim (e): two-step alignment with spike_anneal",
            "n = d = 25, σ*_i = 5/(4+i), orthogonal init × 1e-4: η_0 = α, η_1 = sqrt(σ_max) aligns the factors "
            "in two steps; a constant small step for contrast.",
            curve_by=["optimizer.lr"], panel_by="schedule.name", seed="002", y="matched_alignment",
        ),
        Experiment(
            "s000_equal_rate", "seed000/s000_equal_rate.yaml",
            "Seed 000, claims (a)–(b): equal-rate spectral growth in LoRA-style MF",
            "A_0 = 0, B_0 = γN: SpecGD reaches σ*_i at t ≈ sqrt(σ*_i)/η, smallest first (also with r < r*); "
            "GD largest first.",
            curve_by=["problem.r"], panel_by="optimizer.name", seed="000", extra_figures=["mode_arrivals"],
        ),
        Experiment(
            "s000_specgf", "seed000/s000_specgf.yaml",
            "Seed 000: spectral gradient flow (adaptive ODE)",
            "SpecGF with T_β (β = 1e-6) integrated with error control: σ*_i reached at flow time sqrt(0.9σ*_i).",
            curve_by=["optimizer.name"], panel_by=None, seed="000", extra_figures=["mode_arrivals"],
        ),
        Experiment(
            "s000_convergence", "seed000/s000_convergence.yaml",
            "Seed 000, claim (c): SpecGF reaches a global minimum, exponentially near it",
            "Random inits, ℓ2 ∈ {0, 0.05}, T_β flow (β = 1e-2): the gap f − f* falls to rounding, linearly on a log "
            "scale near the minimum (Prop. 6.7).",
            curve_by=["problem.l2"], panel_by=None, seed="000", y="dist_to_opt",
        ),
    )
}

#: ``--quick`` overrides per experiment (``muonlab run --set`` syntax). Measured on
#: 2 CPU cores, one torch thread: all fourteen together take about 4 minutes (226 s measured).
QUICK: dict[str, list[str]] = {
    "p1_kappa_sweep": ["problem.n=40", "problem.r=4", "steps=1500", "seeds=2"],
    "p1_rank_sweep": ["problem.n=40", "problem.r_star=4", "grid.problem.r=[4,8,16,32]", "steps=1500", "seeds=2"],
    "p2_icl_kappa_sweep": ["steps=1500", "seeds=2", "stop.target=1e-8"],
    "p1_geometric_thm1": ["problem.n=40", "problem.r_star=4", "grid.problem.r=[4,8]", "steps=2000", "seeds=3"],
    "p1_signgd_hard_instance": ["steps=5000"],
    "p2_icl_signgd_hard_instance": [],
    "p1_scalar_recursions": ["problem.n=40", "problem.r_star=4", "grid.problem.r=[4,8]", "steps=2000", "seeds=2"],
    "s002_mode_order": ["seeds=2"],
    "s002_lr_stability": ["grid.optimizer.lr=[0.007,0.012,0.02,0.035,0.06,0.09,0.12,0.2,0.35,0.6,1.0,1.7,2.8]"],
    "s002_conservation": ["seeds=2"],
    "s002_two_step": [],
    "s000_equal_rate": ["seeds=2"],
    "s000_specgf": [],
    "s000_convergence": ["seeds=2"],
}


class UnknownExperimentError(ValueError):
    """An experiment name not in :data:`EXPERIMENTS` (one-line message listing them)."""


def experiments_root() -> Path:
    """The experiment YAMLs: ``$MUONLAB_EXPERIMENTS`` or the ones shipped in the package.

    They live in ``muonlab/experiments/`` so that a plain ``pip install .`` carries
    them; the repository's top-level ``experiments/`` is a link to that folder.
    """
    override = os.environ.get("MUONLAB_EXPERIMENTS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "experiments"


def resolve_names(name: str) -> list[str]:
    """``all`` → every registered experiment; a known name → [name]; else an error."""
    if name == "all":
        return list(EXPERIMENTS)
    if name in EXPERIMENTS:
        return [name]
    raise UnknownExperimentError(
        f"unknown experiment {name!r}; allowed: all, {', '.join(EXPERIMENTS)}"
    )


def experiment_config(name: str, quick: bool = False, overrides: Iterable[str] = ()):
    """The validated :class:`~muonlab.config.ExperimentConfig` of ``name``."""
    from muonlab.config import load_config

    exp = EXPERIMENTS[name]
    sets = [*(QUICK.get(name, []) if quick else []), *overrides]
    return load_config(experiments_root() / exp.path, sets)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def build_report(out: Path) -> Path | None:
    """Build DIR/report/index.html with :func:`muonlab.report.html.build_report`, or
    return None when that module is not installed (the claims are still written)."""
    try:
        from muonlab.report.html import build_report as _build
    except ImportError:
        return None
    return Path(_build(Path(out)))


@dataclass
class ReproduceResult:
    out: Path
    names: list[str]
    claims: list[dict[str, Any]]
    report: Path | None
    executed: dict[str, int]
    skipped: dict[str, int]
    wall_s: dict[str, float]


def reproduce(
    name: str,
    out: str | Path,
    *,
    quick: bool = False,
    overrides: Iterable[str] = (),
    threads: int | None = 1,
    report: bool = True,
    on_experiment: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> ReproduceResult:
    """Run experiment ``name`` (or ``all``) into ``out/<name>/``, then claims and report.

    Args:
        quick: apply :data:`QUICK` overrides (smaller sizes).
        overrides: extra ``key=value`` overrides applied to every experiment (after quick).
        threads: torch intra-op threads while running (default 1: these batches are
            small matrices, where extra threads cost more in synchronization than they
            gain — 15× slower measured with 2 threads on 2 busy cores). None: leave as is.
        on_experiment(name, total_run_steps, index), on_step(k): progress callbacks.
    """
    import time

    import torch

    from muonlab.claims import evaluate_claims
    from muonlab.config import expand
    from muonlab.engine.experiment import run as run_experiment

    names = resolve_names(name)
    out = Path(out)
    overrides = list(overrides)
    configs = {n: experiment_config(n, quick, overrides) for n in names}  # validate all first
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    executed, skipped, walls = {}, {}, {}
    try:
        for i, n in enumerate(names):
            cfg = configs[n]
            if on_experiment is not None:
                on_experiment(n, len(expand(cfg)) * cfg.steps, i)
            t0 = time.perf_counter()
            res = run_experiment(cfg, out / n, on_step=on_step)
            walls[n] = time.perf_counter() - t0
            executed[n], skipped[n] = res.executed, res.skipped
    finally:
        if threads:
            torch.set_num_threads(old_threads)
    # Describe every experiment present in DIR (earlier invocations included).
    present = [n for n in EXPERIMENTS if (out / n).is_dir()]
    previous: dict[str, dict[str, Any]] = {}
    try:
        previous = {e["name"]: e for e in json.loads((out / "experiments.json").read_text(encoding="utf-8"))}
    except (OSError, ValueError, TypeError, KeyError):
        pass
    entries = []
    for n in present:
        if n in names:
            sets = [*(QUICK.get(n, []) if quick else []), *overrides]
            entries.append({**EXPERIMENTS[n].info(), "quick": quick, "overrides": sets})
        else:
            old = previous.get(n, {})
            entries.append({**EXPERIMENTS[n].info(), "quick": old.get("quick"), "overrides": old.get("overrides")})
    _write_json(out / "experiments.json", entries)
    claims = evaluate_claims(out, present)
    report_path = build_report(out) if report else None
    return ReproduceResult(out, names, claims, report_path, executed, skipped, walls)
