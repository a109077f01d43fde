"""``build_report(DIR)``: the HTML report of a reproduction directory, read in two minutes.

``DIR`` holds one results store per experiment (``DIR/<name>/runs.parquet``), an
optional ``DIR/experiments.json`` (per experiment: name, title, description, x, y,
curve_by, panel_by, scale, overrides, config_hash) and an optional ``DIR/claims.json``
(a list of {name, seed, passed, detail, experiment?, figure?} and, since per-replicate
verdicts, n_pass, n_total, ci_low, ci_high, required, unit, failing_seeds, seeds and
scale, :mod:`muonlab.report.verdicts`; an entry without them shows what it has).

The page, top to bottom (docs/report.md):

1. the verdicts: the summary line, the failing claims with the findings that bear on
   them (:mod:`muonlab.report.claim_text`), then every claim grouped by paper seed (000,
   001, 002, 003, then "Beyond the papers"): verdict, k/n with its 95 % interval drawn
   as a bar, the strip of replicates, the statement in a few words, the threshold, the
   measured value and a link to the figure that shows it;
2. one section per experiment: its claims, its figures at full width (each a link to its
   SVG), the headline pivot (:mod:`muonlab.report.pivot`: optimizer × the main axis,
   median [min–max] over seeds), the long-form table folded (and as CSV), errors, and a
   provenance footer (:mod:`muonlab.provenance`: version, commit, config hash,
   overrides, scale, seeds, machine, torch, wall time);
3. the report's own provenance.

The report goes to ``DIR/report/``: ``index.html`` plus the PNG, SVG and CSV files it
links by relative path, so the folder can be moved or served as is; with
``single_file=True`` it is one self-contained ``DIR/report.html`` instead (every figure
and CSV embedded as a ``data:`` URI, nothing external). Every file is written
atomically (:mod:`muonlab.atomic`).

The markup and the stylesheet are Jinja2 templates (``report/templates/*.j2``); this
module reads the inputs, draws and saves the figures, and hands the templates plain
data. The environment autoescapes, so every piece of text from the inputs (titles,
descriptions, claim details, error messages, column values) is HTML-escaped there,
and nothing here builds markup.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import re
import tempfile
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
from muonlab.report.pivot import pivot
from muonlab.report.verdicts import Verdict, scale_counts, verdict_of

_log = logging.getLogger("muonlab")

__all__ = ["build_report", "find_experiments", "load_claims", "load_experiment_specs"]

REPORT_DIR = "report"
#: The most rows a table shows unfolded (a longer one is folded, or split with its rest folded).
MAX_VISIBLE_ROWS = 20

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
    id: str = ""  # the figure element's id (claims link to it)
    width: int | None = None  # the width to show it at, in CSS px (the page caps it at 100 %)


@dataclass(frozen=True)
class Bar:
    """A claim's pass fraction drawn as a bar on [0, 1], in percent: the 95 % interval
    [lo, hi], the observed k/n (point) and the required fraction (None: need all)."""

    lo: float
    hi: float
    point: float
    required: float | None


@dataclass(frozen=True)
class FindingRef:
    id: str  # "F4"
    title: str | None  # None when findings.md is not available
    anchor: str | None  # the finding's id on the page, when its text is there


@dataclass(frozen=True)
class ClaimRow:
    name: Any
    seed: Any
    passed: bool
    detail: Any
    where: Any  # the claim's experiment, else its figure, else None
    anchor: str | None  # the section to link ``where`` to
    verdict: Verdict | None = None  # k/n, interval, rule, scale, strip; None for an old-format entry
    statement: str | None = None  # the paper's statement in a few words (claim_text.statement)
    statement_full: str | None = None
    thresholds: tuple[str, ...] = ()
    measured: str | None = None
    figure: str | None = None  # the id of the figure that shows it (on this page)
    bar: Bar | None = None
    findings: tuple[FindingRef, ...] = ()
    row_id: str | None = None  # the row's id in the verdicts table


@dataclass(frozen=True)
class SeedGroup:
    """The claims of one paper seed, in the verdicts table."""

    seed: str
    title: str
    rows: list[ClaimRow]  # shown
    n_pass: int
    n_total: int
    folded: list[ClaimRow] = field(default_factory=list)  # passing claims past MAX_VISIBLE_ROWS, folded


@dataclass(frozen=True)
class Finding:
    id: str
    anchor: str
    title: str
    summary: str
    claims: list[str]  # the claims it bears on


@dataclass(frozen=True)
class Download:
    href: str
    label: str


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
    table: Table | None = None  # the long-form table (folded)
    pivot: Table | None = None  # the headline table
    pivot_caption: str = ""
    downloads: list[Download] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)  # (message, runs)
    claims: list[ClaimRow] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)  # damaged files of its store, one line each
    provenance: list[tuple[str, str]] = field(default_factory=list)  # (label, value)


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


def _bar(claim: Mapping[str, Any]) -> Bar | None:
    def frac(v: Any) -> float | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return None
        return float(v) if 0.0 <= float(v) <= 1.0 else None

    lo, hi, req = frac(claim.get("ci_low")), frac(claim.get("ci_high")), frac(claim.get("required"))
    k, n = claim.get("n_pass"), claim.get("n_total")
    if lo is None or hi is None or lo > hi or not isinstance(n, (int, float)) or isinstance(n, bool) or n <= 0:
        return None
    if not isinstance(k, (int, float)) or isinstance(k, bool) or not 0 <= k <= n:
        return None
    return Bar(lo=round(100 * lo, 1), hi=round(100 * hi, 1), point=round(100 * k / n, 1),
               required=None if req is None or req >= 1.0 else round(100 * req, 1))


def _claim_rows(
    claims: Sequence[Mapping[str, Any]],
    anchors: Mapping[str, str],
    figures: Mapping[str, str] | None = None,
    findings: Mapping[str, Any] | None = None,
) -> list[ClaimRow]:
    """One row per claim; ``anchors``: experiment → section id, ``figures``: experiment →
    the id of its first figure, ``findings``: finding id → (title, anchor)."""
    from muonlab.report import claim_text

    figures = figures or {}
    known = findings or {}
    rows = []
    taken: set[str] = set()
    for c in claims:
        experiment = c.get("experiment")
        detail = c.get("detail") if isinstance(c.get("detail"), str) else None
        short = claim_text.statement(c)
        refs = []
        for fid in claim_text.findings_for(c, [f for f, _ in known.values()]):
            title, anchor = (known[fid][0].title, known[fid][1]) if fid in known else (None, None)
            refs.append(FindingRef(fid, title, anchor))
        rows.append(ClaimRow(
            name=c.get("name"), seed=c.get("seed"), passed=_passed(c), detail=c.get("detail"),
            where=experiment or c.get("figure") or None,
            anchor=anchors.get(str(experiment)) if experiment else None,
            verdict=verdict_of(c),
            statement=short,
            statement_full=claim_text.full_statement(c),
            thresholds=tuple(claim_text.thresholds(claim_text.full_statement(c) or short, detail)),
            measured=claim_text.measured(detail),
            figure=figures.get(str(experiment)) if experiment else None,
            bar=_bar(c),
            findings=tuple(refs),
            row_id="claim-" + _slug(str(c.get("name")), taken),
        ))
    return rows


#: The paper seeds (SPEC, seeds/), in the verdicts table's order; "beyond" comes last.
SEED_TITLES = {
    "000": "Seed 000 — Kang et al., Uniform spectral growth and convergence of Muon in LoRA-style matrix factorization",
    "001": "Seed 001 — Ma et al., Preconditioning benefits of spectral orthogonalization in Muon",
    "002": "Seed 002 — Rhee, Simon, Karkada, Muon dynamics in matrix factorization",
    "003": "Seed 003 — open questions and next checks on seed 001",
    "beyond": "Beyond the papers — our own questions",
}


def _seed_groups(rows: Sequence[ClaimRow]) -> list[SeedGroup]:
    """The rows grouped by seed: the paper seeds in order, then other seeds (sorted), then
    claims without a seed, then "beyond"; within a group, the claims.json order."""
    groups: dict[str, list[ClaimRow]] = {}
    for r in rows:
        key = r.seed if isinstance(r.seed, str) and r.seed.strip() else ""
        groups.setdefault(key, []).append(r)

    def order(key: str) -> tuple[int, str]:
        if key in ("000", "001", "002", "003"):
            return (0, key)
        if key == "beyond":
            return (3, key)
        return (2, key) if key == "" else (1, key)

    out = []
    for key in sorted(groups, key=order):
        title = SEED_TITLES.get(key) or (f"Seed {key}" if key else "Claims without a seed")
        rows_ = groups[key]
        # At most MAX_VISIBLE_ROWS rows in view: every failing claim, then passing ones in
        # order; the passing ones past that are folded under the table.
        room = max(MAX_VISIBLE_ROWS - sum(not r.passed for r in rows_), 0)
        shown_ids: set[int] = set()
        for i, r in enumerate(rows_):
            if not r.passed:
                shown_ids.add(i)
            elif room > 0:
                shown_ids.add(i)
                room -= 1
        shown = [r for i, r in enumerate(rows_) if i in shown_ids]
        folded = [r for i, r in enumerate(rows_) if i not in shown_ids]
        out.append(SeedGroup(key, title, shown, sum(r.passed for r in rows_), len(rows_), folded))
    return out


#: Figures are drawn at 150 dpi; the page shows them at this many CSS px per PNG pixel
#: (≈ 120 dpi: the papers' 10 pt type reads at about 17 px), never wider than the page.
_FIGURE_SCALE = 0.8


def _png_width(png: Path) -> int | None:
    """The PNG's width in pixels (from its IHDR chunk), None if it cannot be read."""
    try:
        with png.open("rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big")


def _figure_ref(png: Path, alt: str, caption: str) -> FigureRef:
    px = _png_width(png)
    return FigureRef(src=png.name, svg=png.with_suffix(".svg").name, alt=alt, caption=caption,
                     id="fig-" + png.stem, width=None if px is None else round(px * _FIGURE_SCALE))


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
        runs: pd.DataFrame | None = ResultStore(store_dir).runs()  # read once: the section and its footer
    except (StoreError, OSError, ValueError) as e:
        sec.notice = f"The results store could not be read: {e}"
        runs = None
    try:
        if runs is not None:
            _fill_section(sec, name, store_dir, runs, spec, slug, out_dir)
        sec.provenance = _provenance(store_dir, spec, pd.DataFrame() if runs is None else runs)
    except (StoreError, OSError) as e:
        sec.notice = f"The results store could not be read: {e}"
    sec.figures[:0] = [f"Damaged store: {line}" for line in sec.damage]
    return sec


def _fill_section(
    sec: Section,
    name: str,
    store_dir: Path,
    runs: pd.DataFrame,
    spec: Mapping[str, Any] | None,
    slug: str,
    out_dir: Path,
) -> Section:
    from muonlab.report.lora_figures import is_lora_store

    if len(runs) and is_lora_store(runs):
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
    except NothingToPlot:
        status = runs["status"].astype(str).value_counts()
        counts = ", ".join(f"{status.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
        sec.figures.append(f"No figure: no run logged a finite {full['y']} ({counts}).")
    except (KeyError, ValueError, TypeError) as e:
        # A figure that cannot be drawn from this store is a notice on the page; the
        # claims, tables and the other figures are still worth reading.
        sec.figures.append(f"The main figure could not be drawn: {type(e).__name__}: {e}")
    sec.figures.extend(_extra_figures(full.get("extra_figures") or [], store_dir, out_dir, slug))
    long_form = steps_table(store_dir, full)
    sec.table = _table(long_form, cls="steps", experiment=name)
    csv = out_dir / f"{slug}_steps.csv"
    write_atomic(csv, long_form.to_csv(index=False).encode("utf-8"))
    sec.downloads.append(Download(csv.name, "iterations to ε, long form (CSV)"))
    head = pivot(runs, full)
    if head is not None:
        sec.pivot = _table(head.table, cls="pivot", experiment=name)
        sec.pivot_caption = (f"{head.quantity}: median [min–max] over seeds; (k/n): runs that reached it, "
                             "— when the median run did not.")
    if "error" in runs.columns:
        errors = runs.loc[runs["status"].astype(str) == "failed", "error"].dropna().astype(str)
        sec.errors = [(str(msg), int(n)) for msg, n in errors.value_counts().items()]
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
    csv = out_dir / f"{sec.slug}_runs.csv"
    write_atomic(csv, table.to_csv(index=False).encode("utf-8"))
    sec.downloads.append(Download(csv.name, "every run (CSV)"))
    if "optimizer" in runs.columns:
        sec.pivot = _table(_lora_pivot(runs), cls="pivot", experiment=sec.name)
        sec.pivot_caption = "Per optimizer: median [min–max] over seeds."
    try:
        for name, fig, caption in lora_figures(store_dir):
            png = save_figure(fig, out_dir / f"{sec.slug}_{name}.png")
            sec.figures.append(_figure_ref(png, alt=caption, caption=caption))
    except NothingToPlot as e:
        sec.figures.append(str(e))
    return sec


def _lora_pivot(runs: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer (Muon first): median [min–max] over its runs of the LoRA numbers."""
    cols = {"eval_accuracy": "eval accuracy", "eval_loss": "eval loss", "final_loss": "train loss",
            "final_effective_rank_mean": "mean eff. rank (end)", "wall_s": "wall s"}
    records = []
    for opt, g in sorted(runs.groupby("optimizer", sort=False), key=lambda kv: ({"muon": 0, "adamw": 1}.get(
            str(kv[0]), 9), str(kv[0]))):
        rec: dict[str, Any] = {"optimizer": {"muon": "Muon", "adamw": "AdamW"}.get(str(opt), str(opt)),
                               "runs": len(g)}
        for col, title in cols.items():
            if col not in g.columns:
                continue
            v = pd.to_numeric(g[col], errors="coerce").dropna().astype(float)
            rec[title] = ("—" if v.empty else f"{v.median():.4g}" if len(v) == 1
                          else f"{v.median():.4g} [{v.min():.4g}–{v.max():.4g}]")
        records.append(rec)
    return pd.DataFrame(records)


def _seeds_text(runs: pd.DataFrame) -> str:
    if "seed" not in runs.columns:
        return "—"
    seeds = sorted({int(s) for s in pd.to_numeric(runs["seed"], errors="coerce").dropna()})
    if not seeds:
        return "—"
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)} seeds)"
    return ", ".join(map(str, seeds)) + f" ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _machine_text(machine: Mapping[str, Any]) -> str:
    cpu = str(machine.get("cpu") or "unknown CPU")
    if machine.get("cpus"):
        cpu += f" ({machine['cpus']} logical CPUs)"
    flags = machine.get("cpu_flags") or []
    text = cpu + (f"; flags: {' '.join(map(str, flags))}" if flags else "")
    if machine.get("gpu"):
        text += f"; GPU: {machine['gpu']}"
    return text


def _provenance(store_dir: Path, spec: Mapping[str, Any] | None, runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The experiment's provenance footer: from its provenance.json (written by ``muonlab
    reproduce`` and ``muonlab run``), its meta.json (versions, config hash, overrides),
    experiments.json (scale, overrides) and its ``runs`` (seeds, run time); what none
    records is left out."""
    from muonlab import provenance

    spec = spec or {}
    rec = provenance.read(store_dir)
    meta: dict[str, Any] = {}
    try:
        meta = ResultStore(store_dir).read_metadata()
    except (StoreError, OSError, ValueError):
        meta = {}
    raw_versions = meta.get("versions")
    versions: Mapping[str, Any] = raw_versions if isinstance(raw_versions, Mapping) else {}
    out: list[tuple[str, str]] = []
    version = rec.get("muonlab") or versions.get("muonlab")
    if version:
        commit = rec.get("git_commit")
        out.append(("muonlab", f"{version}" + (f" (commit {commit})" if commit else "")))
    config_hash = spec.get("config_hash") or meta.get("config_hash")
    if config_hash:
        out.append(("config hash", str(config_hash)))
    overrides = spec.get("overrides") if spec.get("overrides") is not None else meta.get("overrides")
    if overrides is not None:
        out.append(("overrides", " ".join(map(str, overrides)) if overrides else "none"))
    if spec.get("scale"):
        out.append(("scale", str(spec["scale"])))
    if len(runs):
        out.append(("seeds", _seeds_text(runs)))
    machine = rec.get("machine")
    if isinstance(machine, Mapping):
        out.append(("machine", _machine_text(machine)))
    torch_version = rec.get("torch") or versions.get("torch")
    if torch_version:
        out.append(("torch", str(torch_version) + (f", python {rec.get('python') or versions.get('python')}"
                                                  if rec.get("python") or versions.get("python") else "")))
    wall = rec.get("wall_s")
    run_wall = pd.to_numeric(runs["wall_s"], errors="coerce").sum() if "wall_s" in runs.columns else math.nan
    if isinstance(wall, (int, float)) and not isinstance(wall, bool):
        text = _duration(float(wall)) + " (this reproduction)"
        if rec.get("finished_at"):
            text += f", finished {rec['finished_at']}"
        out.append(("wall time", text))
    elif math.isfinite(float(run_wall)) and run_wall > 0:
        out.append(("wall time", f"{_duration(float(run_wall))} (sum over runs)"))
    if meta.get("written_at") and not rec:
        out.append(("written", str(meta["written_at"])))
    return out


def _report_provenance(root: Path, sections: Sequence[Section]) -> list[tuple[str, str]]:
    """The report's footer: the builder's version and commit, torch, the machines the
    experiments ran on, their total wall time."""
    import platform

    from muonlab import provenance

    out = [("muonlab", _version() + (f" (commit {c})" if (c := provenance.git_commit()) else ""))]
    try:
        import torch

        out.append(("torch", f"{torch.__version__}, python {platform.python_version()}"))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    machines: list[str] = []
    total, timed = 0.0, 0
    for sec in sections:
        facts = dict(sec.provenance)
        if facts.get("machine") and facts["machine"] not in machines:
            machines.append(facts["machine"])
        wall = facts.get("wall time", "")
        m = re.match(r"([\d.]+) (s|min|h)", wall)
        if m:
            total += float(m.group(1)) * {"s": 1, "min": 60, "h": 3600}[m.group(2)]
            timed += 1
    for i, text in enumerate(machines):
        out.append(("machine" if len(machines) == 1 else f"machine {i + 1}", text))
    if total:
        out.append(("wall time", f"{_duration(total)} over {timed} experiment{'s' if timed > 1 else ''}"))
    out.append(("folder", str(root.resolve())))
    return out


def _data_uri(path: Path) -> str:
    kinds = {".png": "image/png", ".svg": "image/svg+xml", ".csv": "text/csv"}
    kind = kinds.get(path.suffix, "application/octet-stream")
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def build_report(dir: str | Path, *, single_file: bool = False) -> Path:
    """Write ``dir/report/index.html`` (and its figures and CSV files) and return its path;
    with ``single_file``, write one self-contained ``dir/report.html`` instead (figures
    and CSV embedded as ``data:`` URIs) and return that.

    The page opens with the verdicts (summary, failing claims and their findings, every
    claim by paper seed), then one section per experiment (its claims, figures, headline
    pivot, the long-form table folded, provenance), then the report's provenance. Missing
    ``claims.json`` or ``experiments.json`` and experiments whose runs all failed are
    reported in the page rather than raised.

    Raises:
        FileNotFoundError: ``dir`` is not a directory.
    """
    from muonlab.report import claim_text

    root = Path(dir)
    if not root.is_dir():
        raise FileNotFoundError(f"report: {root} is not a directory")
    with contextlib.ExitStack() as stack:
        if single_file:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="muonlab-report-")))
        else:
            out_dir = root / REPORT_DIR
            out_dir.mkdir(parents=True, exist_ok=True)

        specs, spec_error = load_experiment_specs(root)
        stores = dict(find_experiments(root))
        order: list[tuple[str, Mapping[str, Any] | None]] = [(str(s["name"]), s) for s in specs]
        listed = {n for n, _ in order}
        order += [(n, None) for n in stores if n not in listed]
        claims, claims_error = load_claims(root)
        claim_list = claims or []

        taken: set[str] = {"index", "claims", "verdicts", "findings", "experiments", "provenance", "failing"}
        slugs = {name: _slug(name, taken) for name, _ in order}
        sections = [_section(name, stores.get(name), spec, slugs[name], out_dir) for name, spec in order]

        found, findings_file = claim_text.load_findings(root)
        known = {f.id: (f, f"finding-{f.id}") for f in found}
        figures = {sec.name: next((f.id for f in sec.figures if isinstance(f, FigureRef)), sec.slug)
                   for sec in sections}
        rows = _claim_rows(claim_list, slugs, figures, known)
        for sec in sections:
            sec.claims = [r for r in rows if str(r.where) == sec.name and r.anchor == sec.slug]
        bearing: dict[str, list[str]] = {}
        for r in rows:
            for ref in r.findings:
                bearing.setdefault(ref.id, []).append(str(r.name))
        findings = [Finding(f.id, known[f.id][1], f.title, f.summary, bearing[f.id]) for f in found
                    if f.id in bearing]

        damaged = [f"{sec.name}: damaged results store: {line}" for sec in sections for line in sec.damage]
        for line in damaged:
            _log.warning(line)

        def asset(name: str) -> str:
            """A file of the report as the page links it: its name, or its bytes inline."""
            return _data_uri(out_dir / name) if single_file else name

        page = _environment().get_template("report.html.j2").render(
            folder=root.resolve().name,
            version=_version(),
            generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            claims=None if claims is None else rows,
            groups=_seed_groups(rows),
            failing_rows=[r for r in rows if not r.passed],
            findings=findings,
            findings_file=None if findings_file is None else (
                "docs/findings.md" if findings_file.parent.name == "docs" else findings_file.name),
            n_pass=sum(_passed(c) for c in claim_list),
            scales=scale_counts(claim_list),
            failing=[c.get("name") for c in claim_list if not _passed(c)],
            notices=[m for m in (spec_error, claims_error) if m] + damaged,
            toc=[(slugs[n], (s or {}).get("title") or n) for n, s in order],
            sections=sections,
            provenance=_report_provenance(root, sections),
            asset=asset,
            single_file=single_file,
        )
        index = root / "report.html" if single_file else out_dir / "index.html"
        write_atomic(index, page)
    return index
