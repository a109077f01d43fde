"""Reproduce the seed figures and claims (SPEC §6: ``muonlab reproduce NAME|all``).

An experiment is declared once, in its YAML: the problem, grid and run settings, and a
``reproduce:`` section (:class:`~muonlab.config.reproduce_spec.ReproduceSpec`) with its
title, description, figure layout, claim names and scale overrides. :func:`discover`
reads every YAML with such a section under the experiments root
(:func:`experiments_root`); YAMLs without one (plain ``muonlab run`` examples) are not
experiments here.

Order: ``reproduce all``, experiments.json and claims.json list experiments by
``reproduce.order`` (ascending; experiments without one come after, by name). ``all``
means the papers' experiments (``group: paper``); ``beyond`` the open questions past the
seeds (``group: beyond``, claims of seed ``"beyond"``), kept apart so that ``all --quick``
keeps its budget; ``group: example`` ones, such as the demo, run only by name, and so do
fine-tuning experiments (``kind: finetune``: LoRA on a real transformer,
:mod:`muonlab.lora.experiment`; they need the ``lora`` extra and take minutes per run,
beyond ``all --quick``'s budget).

:func:`reproduce` runs each experiment into ``DIR/<name>/`` (resuming: the engine skips
runs already in the store), writes ``DIR/experiments.json``, evaluates the claims into
``DIR/claims.json`` and builds the HTML report when :mod:`muonlab.report.html` is
available.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from muonlab.errors import MuonlabError

Scale = Literal["quick", "paper"]

if TYPE_CHECKING:
    from muonlab.config import ExperimentConfig
    from muonlab.config.reproduce_spec import ReproduceSpec

__all__ = [
    "SCALES",
    "SHIPPED_ROOT",
    "Experiment",
    "ReproduceResult",
    "Scale",
    "UnknownExperimentError",
    "build_report",
    "check_scale",
    "discover",
    "experiment_config",
    "experiments_root",
    "reproduce",
    "resolve_names",
]

#: The experiment YAMLs shipped in the package (``pip install .`` carries them; the
#: repository's top-level ``experiments/`` is a link to this folder).
SHIPPED_ROOT = Path(__file__).resolve().parent / "experiments"
#: The names that run a group of experiments: `reproduce all` (the seeds' statements) and
#: `reproduce beyond` (the open questions, seed "beyond"); the YAML ``reproduce.group``.
GROUPS: dict[str, str] = {"all": "paper", "beyond": "beyond"}


#: The sizes ``muonlab reproduce`` runs at: ``quick`` (minutes on a laptop CPU, ≥ 5 seeds
#: per point for every per-seed claim) and ``paper`` (the seeds' settings, ≥ 10 seeds).
SCALES: tuple[Scale, ...] = ("quick", "paper")


def check_scale(scale: str) -> Scale:
    """``scale`` if it is one of :data:`SCALES`, else a one-line error naming them."""
    if scale not in SCALES:
        raise MuonlabError.about("scale", f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
    return scale


def scale_label(scale: Scale, extra: Iterable[str]) -> str:
    """What claims.json calls the scale: the scale's name, or ``custom`` when ``--set``
    overrides changed it (experiments.json lists them)."""
    return "custom" if list(extra) else scale


class UnknownExperimentError(MuonlabError):
    """An experiment name that no YAML under the experiments root declares (one-line
    message listing the known ones; ``field`` is ``"name"``)."""


@dataclass(frozen=True)
class Experiment:
    """One experiment YAML with a ``reproduce:`` section."""

    name: str
    path: Path  # the YAML
    spec: ReproduceSpec

    def overrides(self, scale: Scale = "paper", extra: Iterable[str] = ()) -> list[str]:
        """The ``--set`` overrides of a run: the scale's (quick or paper) first, then ``extra``."""
        return [*self.spec.overrides(check_scale(scale)), *extra]

    @property
    def finetune(self) -> bool:
        """A fine-tuning experiment (``kind: finetune``), not an engine sweep."""
        return self.spec.kind == "finetune"

    def config(self, scale: Scale = "paper", overrides: Iterable[str] = ()) -> ExperimentConfig:
        """The validated config with :meth:`overrides` applied (a
        :class:`~muonlab.lora.experiment.FinetuneExperiment` for ``kind: finetune``)."""
        from muonlab.config import load_config

        if self.finetune:
            from muonlab.lora.experiment import load_finetune_experiment

            return load_finetune_experiment(self.path, self.overrides(scale, overrides))  # type: ignore[return-value]
        return load_config(self.path, self.overrides(scale, overrides))

    def info(self) -> dict[str, Any]:
        """The experiment's entry in ``DIR/experiments.json`` (without quick/overrides),
        the keys the report reads."""
        s, f = self.spec, self.spec.figure
        return {"name": self.name, "title": s.title, "description": s.description, "curve_by": list(f.curve_by),
                "panel_by": f.panel_by, "best_of": list(f.best_of), "extra_figures": list(f.extra),
                "seed": s.seed, "x": f.x, "y": f.y}


def experiments_root(root: str | Path | None = None) -> Path:
    """Where the experiment YAMLs are: ``root`` if given, else ``$MUONLAB_EXPERIMENTS``,
    else :data:`SHIPPED_ROOT`."""
    if root is not None:
        return Path(root)
    override = os.environ.get("MUONLAB_EXPERIMENTS")
    return Path(override) if override else SHIPPED_ROOT


def discover(root: str | Path | None = None) -> dict[str, Experiment]:
    """Every experiment under ``root`` (see :func:`experiments_root`), by name, in
    reproduce order (``reproduce.order``, then name).

    Only the ``reproduce:`` section is validated here (the whole config is validated
    when it runs, with its overrides).

    Raises:
        ConfigError: a folder that does not exist, a YAML that cannot be read, a bad
            ``reproduce:`` section (naming the file), or two YAMLs with one name.
    """
    from muonlab.config import ConfigError, load_yaml
    from muonlab.config.reproduce_spec import parse_reproduce

    folder = experiments_root(root)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the experiments folder does not exist", field="experiments")
    found: dict[str, Experiment] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        raw = load_yaml(path)
        if "reproduce" not in raw:
            continue  # a plain `muonlab run` config, not a reproducible experiment
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}: name: required (a string) for an experiment with a reproduce section",
                              field="name")
        if name in GROUPS:
            raise ConfigError(f"{path}: name: {name!r} is reserved (reproduce {name})", field="name")
        try:
            spec = parse_reproduce(raw["reproduce"])
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}", field=e.field) from None
        if name in found:
            raise ConfigError(f"{path}: name: {name!r} is already declared by {found[name].path}", field="name")
        found[name] = Experiment(name, path, spec)
    ordered = sorted(found.values(), key=lambda e: (e.spec.order is None, e.spec.order or 0, e.name))
    return {e.name: e for e in ordered}


def resolve_names(name: str, experiments: dict[str, Experiment] | None = None) -> list[str]:
    """``all`` → every ``group: paper`` sweep (not ``kind: finetune``); ``beyond`` → every
    ``group: beyond`` sweep (the open questions past the seeds, run apart so that ``all``
    keeps its budget); a known name → [name]; else an error.

    ``experiments``: the discovered experiments (default: :func:`discover`).
    """
    exps = discover() if experiments is None else experiments
    if name in GROUPS:
        group = GROUPS[name]
        members = [n for n, e in exps.items() if e.spec.group == group and not e.finetune]
        if not members:
            raise UnknownExperimentError(f"{name!r} has nothing to run: no experiment with group: {group}; allowed: "
                                         f"{', '.join(exps) or 'none'}", field="name")
        return members
    if name in exps:
        return [name]
    raise UnknownExperimentError(f"unknown experiment {name!r}; allowed: {', '.join(GROUPS)}, {', '.join(exps)}",
                                 field="name")


def experiment_config(name: str, scale: Scale = "paper", overrides: Iterable[str] = (),
                      root: str | Path | None = None) -> ExperimentConfig:
    """The validated :class:`~muonlab.config.ExperimentConfig` of experiment ``name``
    (scale overrides first, then ``overrides``)."""
    exps = discover(root)
    if name not in exps:
        resolve_names(name, exps)  # raises the one-line error
    return exps[name].config(scale, overrides)


def build_report(out: Path) -> Path | None:
    """Build DIR/report/index.html with :func:`muonlab.report.html.build_report`, or
    return None when that module is not installed (the claims are still written)."""
    try:
        from muonlab.report.html import build_report as _build
    except ImportError:
        return None
    return Path(_build(Path(out)))


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` (None: unchanged) for the block.

    Fine-tuning runs in this process; with more threads than free cores torch's
    workers spin against each other (measured: ~3 s per MiniLM step with 2 threads on
    2 busy cores, against 0.3 s on idle ones)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class _FinetunePlan:
    """What ``on_plan`` gets for a fine-tuning experiment (a sweep gets the engine's plan)."""

    runs: int
    steps: int
    seeds: int

    def describe(self) -> str:
        steps = f"{self.steps} steps each" if self.steps > 1 else "steps from the epochs"
        return (f"{self.runs} fine-tuning runs (optimizers × {self.seeds} seeds), {steps}, one after another "
                "with transformers' Trainer in this process")


@dataclass
class ReproduceResult:
    """What :func:`reproduce` did: the experiments run, the claims written, the report."""

    out: Path
    names: list[str]
    claims: list[dict[str, Any]]
    report: Path | None
    executed: dict[str, int]
    skipped: dict[str, int]
    wall_s: dict[str, float]


def _describe(out: Path, exps: dict[str, Experiment], names: list[str], scale: Scale,
              overrides: list[str], configs: dict[str, ExperimentConfig]) -> dict[str, dict[str, Any]]:
    """Write DIR/experiments.json for every experiment whose store is in DIR (earlier
    invocations' included, with the settings they recorded); return the entries by name.

    Each entry records the provenance of its store: ``scale``, ``overrides`` (the scale's
    and the user's, in the order applied) and ``config_hash``, which the claims use to
    read that configuration's runs only."""
    from muonlab.atomic import write_json

    present = [n for n in exps if (out / n).is_dir()]
    previous: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        previous = {e["name"]: e for e in json.loads((out / "experiments.json").read_text(encoding="utf-8"))}
    entries: dict[str, dict[str, Any]] = {}
    for n in present:
        if n in names:
            entries[n] = {**exps[n].info(), "scale": scale_label(scale, overrides), "quick": scale == "quick",
                          "overrides": exps[n].overrides(scale, overrides), "config_hash": configs[n].config_hash}
        else:
            old = previous.get(n, {})
            entries[n] = {**exps[n].info(), **{k: old.get(k) for k in ("scale", "quick", "overrides", "config_hash")}}
    write_json(out / "experiments.json", list(entries.values()))
    return entries


def reproduce(
    name: str,
    out: str | Path,
    *,
    scale: Scale = "paper",
    overrides: Iterable[str] = (),
    threads: int | None = 1,
    report: bool = True,
    root: str | Path | None = None,
    backend: str = "local",
    workers: int | None = 1,
    address: str | None = None,
    max_memory: int | None = None,
    on_experiment: Callable[[str, int, int], None] | None = None,
    on_plan: Callable[[str, Any], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> ReproduceResult:
    """Run experiment ``name`` (or ``all``) into ``out/<name>/``, then claims and report.

    Args:
        scale: ``quick`` or ``paper``: apply each experiment's ``reproduce.scales.<scale>``
            overrides (``paper`` is usually the YAML as written).
        overrides: extra ``key=value`` overrides applied to every experiment (after the scale's).
        threads: torch intra-op threads per worker (default 1: these batches are
            small matrices, where extra threads cost more in synchronization than they
            gain — 15× slower measured with 2 threads on 2 busy cores). None: leave as is.
        root: the experiments folder (default: :func:`experiments_root`).
        backend, workers, address, max_memory: where and how batches run
            (:func:`muonlab.engine.experiment.run`); every experiment's plan is made,
            and a run too large for the memory budget refused, before any runs.
        on_experiment(name, runs, steps_per_run), on_plan(name, plan),
        on_batch(done_runs, total_runs), on_step(k): progress callbacks.

    Raises:
        UnknownExperimentError, ConfigError: before anything is run or written.
        StoreConfigError: a store in ``out`` holds runs of another configuration
            (checked for every experiment before any runs).
    """
    from muonlab import provenance
    from muonlab.claims import evaluate_claims
    from muonlab.config import expand
    from muonlab.engine.backends import make_executor, usable_cores
    from muonlab.engine.experiment import run as run_experiment
    from muonlab.engine.memory import default_budget
    from muonlab.engine.plan import plan
    from muonlab.engine.store import ResultStore

    scale = check_scale(scale)
    exps = discover(root)
    names = resolve_names(name, exps)
    out = Path(out)
    overrides = list(overrides)
    configs = {n: exps[n].config(scale, overrides) for n in names}  # validate all first
    used = {n: exps[n].overrides(scale, overrides) for n in names}
    budget = max_memory if max_memory is not None else default_budget(workers or usable_cores())
    sweeps = [n for n in names if not exps[n].finetune]
    tunes = [n for n in names if exps[n].finetune]
    for n in names:  # refuse a stale store or a run too large for memory before running anything
        done: set[str] = set()
        if (out / n).is_dir():
            ResultStore(out / n).check_config(configs[n].config_hash, used[n])
            done = ResultStore(out / n).completed_ids()
        if n in sweeps:
            plan(configs[n], done, max_memory=budget)
    executed, skipped, walls = {}, {}, {}
    if sweeps:
        cuda = any(configs[n].device.startswith("cuda") for n in sweeps)
        # One pool (or Ray connection) for every experiment: a spawned worker takes seconds to start.
        with make_executor(backend, workers, address=address, threads=threads, on_step=on_step,
                           gpus_per_task=1 if cuda else 0) as executor:
            for n in sweeps:
                cfg = configs[n]
                if on_experiment is not None:
                    on_experiment(n, len(expand(cfg)), cfg.steps)
                t0 = time.perf_counter()
                res = run_experiment(cfg, out / n, overrides=used[n], max_memory=max_memory, executor=executor,
                                     on_batch=on_batch,
                                     on_plan=None if on_plan is None else functools.partial(on_plan, n))
                walls[n] = time.perf_counter() - t0
                executed[n], skipped[n] = res.executed, res.skipped
                provenance.record_quietly(out / n, walls[n], cfg.device)
    for n in tunes:  # LoRA fine-tuning: one Trainer run per optimizer × seed, in this process
        from muonlab.lora.experiment import run_finetune_experiment

        fexp: Any = configs[n]
        if on_experiment is not None:
            on_experiment(n, fexp.n_runs, fexp.steps)
        if on_plan is not None:
            on_plan(n, _FinetunePlan(fexp.n_runs, fexp.steps, len(fexp.seeds)))
        t0 = time.perf_counter()
        with _torch_threads(threads):
            fres = run_finetune_experiment(fexp, out / n, overrides=used[n], on_run=on_batch)
        walls[n] = time.perf_counter() - t0
        executed[n], skipped[n] = fres.executed, fres.skipped
        provenance.record_quietly(out / n, walls[n], getattr(fexp, "device", None))
    entries = _describe(out, exps, names, scale, overrides, configs)
    claims = evaluate_claims(out, {n: exps[n].spec.claims for n in entries},
                             provenance={n: (e.get("config_hash"), e.get("scale") or "") for n, e in entries.items()})
    report_path = build_report(out) if report else None
    return ReproduceResult(out, names, claims, report_path, executed, skipped, walls)
