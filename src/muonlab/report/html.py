"""``build_report(DIR)``: the self-contained HTML report of a reproduction directory.

``DIR`` holds one results store per experiment (``DIR/<name>/runs.parquet``), an
optional ``DIR/experiments.json`` (per experiment: name, title, description, x, y,
curve_by, panel_by) and an optional ``DIR/claims.json`` (a list of {name, seed,
passed, detail, experiment?, figure?} and, since per-replicate verdicts, n_pass,
n_total, ci_low, ci_high, required, unit, failing_seeds, seeds and scale: each claim
shows k/n, its interval, its rule, its scale and a strip of its replicates,
:mod:`muonlab.report.verdicts`; an entry without them shows what it has). The report
goes to ``DIR/report/``:
``index.html`` plus one PNG and one SVG per experiment, referenced by relative path,
so the folder can be moved or served as is. Every file is written atomically
(:mod:`muonlab.atomic`).

The markup and the stylesheet are Jinja2 templates (``report/templates/*.j2``); this
module reads the inputs, draws and saves the figures, and hands the templates plain
data. The environment autoescapes, so every piece of text from the inputs (titles,
descriptions, claim details, error messages, column values) is HTML-escaped there,
and nothing here builds markup.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from muonlab.atomic import write_atomic
from muonlab.engine.store import ResultStore, StoreError
from muonlab.report.figures import (
    NothingToPlot,
    error_curves,
    resolve_spec,
    save_figure,
    steps_table,
)
from muonlab.report.verdicts import Verdict, scale_counts, verdict_of

_log = logging.getLogger("muonlab")

__all__ = ["build_report", "find_experiments", "load_claims", "load_experiment_specs"]

REPORT_DIR = "report"

_COLUMN_TITLES = {
    "optimizer.name": "optimizer",
    "problem.kappa": "κ",
    "problem.r": "r",
    "problem.r_star": "r*",
    "problem.alpha": "α",
    "optimizer.lr": "η",
    "runs": "runs",
    "ok": "ok",
    "diverged": "diverged",
    "failed": "failed",
    "steps_to_1e-4": "steps to 10⁻⁴",
    "steps_to_1e-8": "steps to 10⁻⁸",
    "steps_to_1e-12": "steps to 10⁻¹²",
}


# ----------------------------------------------------------------------------- inputs


def load_experiment_specs(root: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The entries of ``root/experiments.json`` (a list, ``{"experiments": [...]}`` or
    ``{name: spec}``), and an error message if the file exists but cannot be used."""
    path = root / "experiments.json"
    if not path.exists():
        return [], None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [], f"experiments.json could not be read: {e}"
    if isinstance(data, Mapping) and isinstance(data.get("experiments"), list):
        data = data["experiments"]
    elif isinstance(data, Mapping):
        data = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k} for k, v in data.items()]
    if not isinstance(data, list):
        return [], "experiments.json: expected a list of experiments"
    specs = [dict(d) for d in data if isinstance(d, Mapping) and d.get("name")]
    return specs, None


def find_experiments(root: Path) -> list[tuple[str, Path]]:
    """(name, store dir) of every results store in ``root``: its subfolders holding a
    ``runs.parquet`` (sorted by name), or ``root`` itself if it is a store."""
    found = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and p.name != REPORT_DIR and (p / "runs.parquet").exists():
                found.append((p.name, p))
    if not found and (root / "runs.parquet").exists():
        found.append((root.resolve().name or "results", root))
    return found


def load_claims(root: Path) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The claims of ``root/claims.json`` (None if absent) and a read error, if any."""
    path = root / "claims.json"
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"claims.json could not be read: {e}"
    if isinstance(data, Mapping) and isinstance(data.get("claims"), list):
        data = data["claims"]
    if not isinstance(data, list):
        return None, "claims.json: expected a list of claims"
    return [dict(c) for c in data if isinstance(c, Mapping)], None


def _passed(claim: Mapping[str, Any]) -> bool:
    return claim.get("passed") is True


# ----------------------------------------------------------------------------- rendering


@cache
def _environment() -> jinja2.Environment:
    """The templates' environment (built once): autoescape on, None printed as nothing
    (as a missing claim seed or detail should be), undefined names an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("muonlab.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        finalize=lambda value: "" if value is None else value,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# ----------------------------------------------------------------------------- page data
# What the templates receive: plain values, never markup.


@dataclass(frozen=True)
class Cell:
    col: str
    text: str
    numeric: bool


@dataclass(frozen=True)
class Table:
    cls: str
    columns: list[tuple[str, str]]  # (data-col, header title)
    rows: list[list[Cell]]
    experiment: str | None = None  # the table's data-experiment attribute, if any


@dataclass(frozen=True)
class FigureRef:
    src: str  # the PNG, relative to index.html
    svg: str
    alt: str
    caption: str


@dataclass(frozen=True)
class ClaimRow:
    name: Any
    seed: Any
    passed: bool
    detail: Any
    where: Any  # the claim's experiment, else its figure, else None
    anchor: str | None  # the section to link ``where`` to
    verdict: Verdict | None = None  # k/n, interval, rule, scale, strip; None for an old-format entry


@dataclass
class Section:
    name: str
    slug: str
    title: Any
    description: Any = None
    notice: str | None = None  # set when the section has nothing else to show
    layout: str = "sweep"  # "sweep" or "lora" (a ``muonlab finetune`` store)
    n_runs: int = 0
    store: str = ""
    meta: str = ""
    figures: list[FigureRef | str] = field(default_factory=list)  # a str is a notice in its place
    table: Table | None = None
    errors: list[tuple[str, int]] = field(default_factory=list)  # (message, runs)
    claims: list[ClaimRow] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)  # damaged files of its store, one line each


def _cell(col: str, value: Any) -> Cell:
    """A table cell: missing values as an em dash, numbers compactly and right-aligned."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell(col, "—", False)
    if isinstance(value, bool):
        return Cell(col, str(value), False)
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return Cell(col, f"{float(value):g}", True)
        except (TypeError, ValueError):
            pass
    text = str(value)
    # steps_table's "<median> (k/N)" cells are numbers too
    return Cell(col, text, bool(re.match(r"^[\d.eE+-]+( \(\d+/\d+\))?$", text)))


def _table(df: pd.DataFrame, *, cls: str, experiment: str | None = None) -> Table:
    columns = [(str(c), _COLUMN_TITLES.get(str(c), str(c))) for c in df.columns]
    rows = [[_cell(str(c), v) for c, v in zip(df.columns, rec)] for rec in df.itertuples(index=False, name=None)]
    return Table(cls, columns, rows, experiment)


def _claim_rows(claims: Sequence[Mapping[str, Any]], anchors: Mapping[str, str]) -> list[ClaimRow]:
    rows = []
    for c in claims:
        experiment = c.get("experiment")
        rows.append(ClaimRow(
            name=c.get("name"), seed=c.get("seed"), passed=_passed(c), detail=c.get("detail"),
            where=experiment or c.get("figure") or None,
            anchor=anchors.get(str(experiment)) if experiment else None,
            verdict=verdict_of(c),
        ))
    return rows


def _figure_ref(png: Path, alt: str, caption: str) -> FigureRef:
    return FigureRef(src=png.name, svg=png.with_suffix(".svg").name, alt=alt, caption=caption)


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    slug, i = base, 2
    while slug.lower() in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug.lower())
    return slug


def _section(
    name: str,
    store_dir: Path | None,
    spec: Mapping[str, Any] | None,
    slug: str,
    out_dir: Path,
    claims: Sequence[Mapping[str, Any]],
) -> Section:
    """One experiment's section; draws and saves its figures into ``out_dir``."""
    sec = Section(name=name, slug=slug, title=(spec or {}).get("title") or name,
                  description=(spec or {}).get("description") or None)
    if store_dir is None:
        sec.notice = "No results store for this experiment yet."
        return sec
    # A damaged store is a notice, never a traceback: the page names the damaged files
    # (read-only check; the next ``muonlab run`` into the store repairs it).
    try:
        sec.damage = ResultStore(store_dir).damage()
    except (StoreError, OSError, ValueError) as e:
        sec.damage = [f"the results store could not be checked: {e}"]
    try:
        _fill_section(sec, name, store_dir, spec, slug, out_dir, claims)
    except (StoreError, OSError) as e:
        sec.notice = f"The results store could not be read: {e}"
    sec.figures[:0] = [f"Damaged store: {line}" for line in sec.damage]
    return sec


def _fill_section(
    sec: Section,
    name: str,
    store_dir: Path,
    spec: Mapping[str, Any] | None,
    slug: str,
    out_dir: Path,
    claims: Sequence[Mapping[str, Any]],
) -> Section:
    try:
        runs = ResultStore(store_dir).runs()
    except (StoreError, OSError, ValueError) as e:
        sec.notice = f"The results store could not be read: {e}"
        return sec
    from muonlab.report.lora_figures import is_lora_store

    if len(runs) and is_lora_store(runs):
        sec.claims = _claim_rows([c for c in claims if str(c.get("experiment", "")) == name], {})
        return _lora_section(sec, store_dir, runs, out_dir)
    if not len(runs):
        sec.notice = "The results store holds no runs yet."
        return sec
    full = resolve_spec(runs, spec, name=name)
    sec.n_runs, sec.store = len(runs), store_dir.name
    sec.meta = f"curves by {', '.join(full['curve_by']) or '—'} · panels by {full['panel_by'] or '—'}"
    png = out_dir / f"{slug}.png"
    try:
        save_figure(error_curves(store_dir, full), png)
        best = (f" Each curve is the best variant over {', '.join(full['best_of'])} "
                "(fewest median steps to ε, the claims' rule).") if full.get("best_of") else ""
        sec.figures.append(_figure_ref(png, alt=f"{sec.title}: {full['y']} against {full['x']}",
                                       caption="Median over seeds (band: min–max)." + best))
        sec.figures.extend(_extra_figures(full.get("extra_figures") or [], store_dir, out_dir, slug))
    except NothingToPlot:
        status = runs["status"].astype(str).value_counts()
        counts = ", ".join(f"{status.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
        sec.figures.append(f"No figure: no run logged a finite {full['y']} ({counts}).")
    sec.table = _table(steps_table(store_dir, full), cls="steps", experiment=name)
    if "error" in runs.columns:
        errors = runs.loc[runs["status"].astype(str) == "failed", "error"].dropna().astype(str)
        sec.errors = [(str(msg), int(n)) for msg, n in errors.value_counts().items()]
    sec.claims = _claim_rows([c for c in claims if str(c.get("experiment", "")) == name], {})
    return sec


def _version() -> str:
    try:
        from muonlab import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def _extra_figures(names: Sequence[str], store_dir: Path, out_dir: Path, slug: str) -> list[FigureRef | str]:
    """The experiment's extra figures (muonlab.report.extra_figures); a failure is a notice."""
    from muonlab.report.extra_figures import EXTRA_FIGURES

    out: list[FigureRef | str] = []
    for fig_name in names:
        fn = EXTRA_FIGURES.get(str(fig_name))
        if fn is None:
            out.append(f"unknown extra figure {fig_name}")
            continue
        png = out_dir / f"{slug}_{fig_name}.png"
        try:
            fig, caption = fn(store_dir)
        except (NothingToPlot, KeyError, ValueError) as e:
            out.append(f"{fig_name}: {e}")
            continue
        save_figure(fig, png)
        out.append(_figure_ref(png, alt=caption, caption=caption))
    return out


_LORA_COLUMNS = {
    "optimizer": "optimizer", "seed": "seed", "status": "status", "steps": "steps", "final_loss": "train loss",
    "eval_loss": "eval loss", "eval_accuracy": "eval accuracy", "final_effective_rank_mean": "mean eff. rank (end)",
    "monitor_overhead": "monitor / step", "wall_s": "wall s",
}


_LORA_TITLE = "LoRA fine-tuning: Muon vs AdamW, spectra of every adapter"
_LORA_DESCRIPTION = ("LoRA fine-tuning, Muon on each adapter factor vs AdamW, same schedule; every adapter's "
                     "ΔW spectrum recorded by the spectral monitor (seed 000 §3).")
_LORA_SETTINGS = ("model", "data", "task", "rank", "alpha", "target_modules", "lr", "batch_size", "epochs",
                  "max_steps")


def _lora_section(sec: Section, store_dir: Path, runs: pd.DataFrame, out_dir: Path) -> Section:
    """A ``muonlab finetune`` store: settings, the run table and the spectral figures."""
    from muonlab.report.lora_figures import lora_figures

    if sec.title == sec.name:  # no title from experiments.json
        sec.title = _LORA_TITLE
    if sec.description is None:
        sec.description = _LORA_DESCRIPTION
    sec.layout, sec.n_runs, sec.store = "lora", len(runs), store_dir.name
    first = runs.iloc[0]
    sec.meta = ", ".join(f"{k} = {first.get(k)}" for k in _LORA_SETTINGS if k in runs.columns)
    if "seed" in runs.columns:
        seeds = sorted({int(s) for s in runs["seed"].dropna()})
        sec.meta += f", seed{'s' if len(seeds) > 1 else ''} = {', '.join(map(str, seeds))}"
    if {"optimizer", "seed"} <= set(runs.columns):  # Muon first, then by seed
        rank = runs["optimizer"].map({"muon": 0, "adamw": 1}).fillna(9)
        runs = runs.assign(_o=rank).sort_values(["_o", "seed"], kind="stable").drop(columns="_o")
    table = runs[[c for c in _LORA_COLUMNS if c in runs.columns]].rename(columns=_LORA_COLUMNS).copy()
    if "monitor / step" in table:
        table["monitor / step"] = [
            f"{v:.2%}" if not math.isnan(v) else "—" for v in table["monitor / step"].astype(float)
        ]
    for col in ("train loss", "eval loss", "eval accuracy", "mean eff. rank (end)", "wall s"):
        if col in table:
            table[col] = [f"{v:.4g}" if not math.isnan(v) else "—" for v in table[col].astype(float)]
    sec.table = _table(table, cls="steps")
    try:
        for name, fig, caption in lora_figures(store_dir):
            png = save_figure(fig, out_dir / f"{sec.slug}_{name}.png")
            sec.figures.append(_figure_ref(png, alt=caption, caption=caption))
    except NothingToPlot as e:
        sec.figures.append(str(e))
    return sec


def build_report(dir: str | Path) -> Path:
    """Write ``dir/report/index.html`` (and its figures) and return its path.

    One section per experiment (title, description, figure, iterations-to-ε table),
    a claims summary at the top (passed / failed, the scales) and the claims table at
    the bottom (each claim's k/n, interval, rule, scale and strip of replicates). Missing
    ``claims.json`` or ``experiments.json`` and experiments whose runs all failed
    are reported in the page rather than raised.

    Raises:
        FileNotFoundError: ``dir`` is not a directory.
    """
    root = Path(dir)
    if not root.is_dir():
        raise FileNotFoundError(f"report: {root} is not a directory")
    out_dir = root / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)

    specs, spec_error = load_experiment_specs(root)
    stores = dict(find_experiments(root))
    order: list[tuple[str, Mapping[str, Any] | None]] = [(str(s["name"]), s) for s in specs]
    listed = {n for n, _ in order}
    order += [(n, None) for n in stores if n not in listed]
    claims, claims_error = load_claims(root)
    claim_list = claims or []

    taken: set[str] = {"index"}
    slugs = {name: _slug(name, taken) for name, _ in order}
    sections = [_section(name, stores.get(name), spec, slugs[name], out_dir, claim_list) for name, spec in order]

    damaged = [f"{sec.name}: damaged results store: {line}" for sec in sections for line in sec.damage]
    for line in damaged:
        _log.warning(line)
    page = _environment().get_template("report.html.j2").render(
        folder=root.resolve().name,
        version=_version(),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        claims=None if claims is None else _claim_rows(claim_list, slugs),
        n_pass=sum(_passed(c) for c in claim_list),
        scales=scale_counts(claim_list),
        failing=[c.get("name") for c in claim_list if not _passed(c)],
        notices=[m for m in (spec_error, claims_error) if m] + damaged,
        toc=[(slugs[n], (s or {}).get("title") or n) for n, s in order],
        sections=sections,
    )
    index = out_dir / "index.html"
    write_atomic(index, page)
    return index
