"""``build_report(DIR)``: the self-contained HTML report of a reproduction directory.

``DIR`` holds one results store per experiment (``DIR/<name>/runs.parquet``), an
optional ``DIR/experiments.json`` (per experiment: name, title, description, x, y,
curve_by, panel_by) and an optional ``DIR/claims.json`` (a list of {name, seed,
passed, detail, experiment?, figure?}). The report goes to ``DIR/report/``:
``index.html`` plus one PNG and one SVG per experiment, referenced by relative path,
so the folder can be moved or served as is. Every file is written atomically
(temporary file + ``os.replace``), and every piece of text from the inputs is
HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.atomic import write_atomic
from muonlab.engine.store import ResultStore, StoreError
from muonlab.report.figures import NothingToPlot, error_curves, resolve_spec, steps_table

__all__ = ["build_report", "load_claims", "load_experiment_specs", "find_experiments"]

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

_CSS = """
body { font-family: Georgia, 'Times New Roman', serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 3em; background: #fff; }
header { border-bottom: 2px solid #333; margin-bottom: 1em; }
header h1 { margin: 0.2em 0; font-size: 1.8em; }
.meta { color: #666; font-size: 0.9em; margin: 0.2em 0 0.8em; }
.summary { font-size: 1.15em; padding: 0.6em 1em; border-radius: 6px; margin: 1em 0; }
.summary.allpass { background: #e8f5e9; border: 1px solid #66bb6a; }
.summary.somefail { background: #ffebee; border: 1px solid #e57373; }
.summary.none { background: #f3f3f3; border: 1px solid #bbb; }
nav ul { columns: 2; padding-left: 1.2em; }
section, .claims-section { margin: 2em 0; padding-top: 0.5em; border-top: 1px solid #ddd; }
section h2 { font-size: 1.35em; margin: 0.3em 0; }
.description { color: #444; }
figure { margin: 1em 0; text-align: center; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fff0f0; }
.badge { display: inline-block; padding: 0.1em 0.6em; border-radius: 3px; font-weight: bold;
         font-family: Helvetica, Arial, sans-serif; font-size: 0.85em; color: #fff; }
.badge.pass { background: #2e7d32; }
.badge.fail { background: #c62828; }
.notice { background: #fff8e1; border: 1px solid #ffca28; padding: 0.5em 1em; border-radius: 4px; }
.detail { font-family: Menlo, Consolas, monospace; font-size: 0.85em; white-space: pre-wrap; }
code { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def _cell(value: Any) -> tuple[str, bool]:
    """(escaped text, numeric?) of a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—", False
    if isinstance(value, bool):
        return _e(value), False
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return _e(f"{float(value):g}"), True
        except (TypeError, ValueError):
            pass
    text = str(value)
    return _e(text), bool(re.match(r"^[\d.eE+-]+( \(\d+/\d+\))?$", text))


def _table(df: pd.DataFrame, *, cls: str, attrs: str = "") -> str:
    head = "".join(f'<th data-col="{_e(c)}">{_e(_COLUMN_TITLES.get(c, c))}</th>' for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False, name=None):
        cells = []
        for col, value in zip(df.columns, rec):
            text, numeric = _cell(value)
            cells.append(f'<td data-col="{_e(col)}"{" class=num" if numeric else ""}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{_e(cls)}"{attrs}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _claims_table(claims: Sequence[Mapping[str, Any]], anchors: Mapping[str, str], *, cls: str = "claims") -> str:
    rows = []
    for c in claims:
        ok = _passed(c)
        where = c.get("experiment") or c.get("figure")
        if c.get("experiment") and str(c["experiment"]) in anchors:
            where_html = f'<a href="#{_e(anchors[str(c["experiment"])])}">{_e(c["experiment"])}</a>'
        else:
            where_html = _e(where) if where else ""
        rows.append(
            f'<tr class="{"pass" if ok else "fail"}" data-claim="{_e(c.get("name"))}">'
            f'<td>{_e(c.get("name"))}</td><td>{_e(c.get("seed"))}</td>'
            f'<td data-col="status">{_badge(ok)}</td>'
            f'<td class="detail">{_e(c.get("detail"))}</td><td>{where_html}</td></tr>'
        )
    return (
        f'<table class="{_e(cls)}"><thead><tr><th>claim</th><th>seed</th><th>status</th>'
        f'<th>detail</th><th>experiment</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    slug, i = base, 2
    while slug.lower() in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug.lower())
    return slug


def _experiment_section(
    name: str,
    store_dir: Path | None,
    spec: Mapping[str, Any] | None,
    slug: str,
    out_dir: Path,
    claims: Sequence[Mapping[str, Any]],
) -> str:
    title = (spec or {}).get("title") or name
    parts = [f'<section id="{_e(slug)}" data-experiment="{_e(name)}">', f"<h2>{_e(title)}</h2>"]
    if spec and spec.get("description"):
        parts.append(f'<p class="description">{_e(spec["description"])}</p>')
    if store_dir is None:
        parts.append('<p class="notice">No results store for this experiment yet.</p></section>')
        return "\n".join(parts)
    try:
        runs = ResultStore(store_dir).runs()
    except (StoreError, OSError, ValueError) as e:
        parts.append(f'<p class="notice">The results store could not be read: {_e(e)}</p></section>')
        return "\n".join(parts)
    from muonlab.report.lora_figures import is_lora_store

    if len(runs) and is_lora_store(runs):
        return _lora_section(name, store_dir, runs, slug, out_dir, parts)
    if not len(runs):
        parts.append('<p class="notice">The results store holds no runs yet.</p></section>')
        return "\n".join(parts)
    full = resolve_spec(runs, spec, name=name)
    parts.append(
        f'<p class="meta">{len(runs)} runs · store <code>{_e(store_dir.name)}/</code> · '
        f"curves by {_e(', '.join(full['curve_by']) or '—')} · panels by {_e(full['panel_by'] or '—')}</p>"
    )
    png = out_dir / f"{slug}.png"
    try:
        error_curves(store_dir, full, png)
        alt = f"{title}: {full['y']} against {full['x']}"
        best = (f"Each curve is the best variant over {_e(', '.join(full['best_of']))} "
                "(fewest median steps to ε, the claims' rule). ") if full.get("best_of") else ""
        parts.append(
            f'<figure><img src="{_e(png.name)}" alt="{_e(alt)}">'
            f'<figcaption>Median over seeds (band: min–max). {best}'
            f'<a href="{_e(png.with_suffix(".svg").name)}">SVG</a></figcaption></figure>'
        )
        parts.extend(_extra_figures(full.get("extra_figures") or [], store_dir, out_dir, slug))
    except NothingToPlot:
        status = runs["status"].astype(str).value_counts()
        counts = ", ".join(f"{status.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
        parts.append(f'<p class="notice">No figure: no run logged a finite {_e(full["y"])} ({_e(counts)}).</p>')
    table = steps_table(store_dir, full)
    parts.append("<h3>Iterations to ε</h3>")
    parts.append(_table(table, cls="steps", attrs=f' data-experiment="{_e(name)}"'))
    if "error" in runs.columns:
        errors = runs.loc[runs["status"].astype(str) == "failed", "error"].dropna().astype(str)
        if len(errors):
            items = "".join(f"<li><code>{_e(msg)}</code> ({n} runs)</li>" for msg, n in errors.value_counts().items())
            parts.append(f'<h3>Errors</h3><ul class="errors">{items}</ul>')
    mine = [c for c in claims if str(c.get("experiment", "")) == name]
    if mine:
        parts.append("<h3>Claims on this experiment</h3>")
        parts.append(_claims_table(mine, {}, cls="claims-local"))
    parts.append("</section>")
    return "\n".join(parts)


def _version() -> str:
    try:
        from muonlab import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "unknown"


def _extra_figures(names: Sequence[str], store_dir: Path, out_dir: Path, slug: str) -> list[str]:
    """The experiment's extra figures (muonlab.report.extra_figures); a failure is a notice."""
    from muonlab.report.extra_figures import EXTRA_FIGURES

    out = []
    for fig_name in names:
        fn = EXTRA_FIGURES.get(str(fig_name))
        if fn is None:
            out.append(f'<p class="notice">unknown extra figure {_e(fig_name)}</p>')
            continue
        png = out_dir / f"{slug}_{fig_name}.png"
        try:
            caption = fn(store_dir, png)
        except (NothingToPlot, KeyError, ValueError) as e:
            out.append(f'<p class="notice">{_e(fig_name)}: {_e(e)}</p>')
            continue
        out.append(f'<figure><img src="{_e(png.name)}" alt="{_e(caption)}"><figcaption>{_e(caption)} '
                   f'<a href="{_e(png.with_suffix(".svg").name)}">SVG</a></figcaption></figure>')
    return out


_LORA_COLUMNS = {
    "optimizer": "optimizer", "status": "status", "steps": "steps", "final_loss": "train loss",
    "eval_loss": "eval loss", "eval_accuracy": "eval accuracy", "final_effective_rank_mean": "mean eff. rank (end)",
    "monitor_overhead": "monitor / step", "wall_s": "wall s",
}


def _lora_section(name: str, store_dir: Path, runs: pd.DataFrame, slug: str, out_dir: Path, parts: list[str]) -> str:
    """A ``muonlab finetune`` store: settings, the run table and the spectral figures."""
    from muonlab.report.lora_figures import lora_figures

    if parts[1] == f"<h2>{_e(name)}</h2>":  # no title from experiments.json
        parts[1] = "<h2>LoRA fine-tuning: Muon vs AdamW, spectra of every adapter</h2>"
    if len(parts) == 2:  # no description from experiments.json
        parts.append('<p class="description">LoRA fine-tuning, Muon on each adapter factor vs AdamW, same '
                     "schedule; every adapter's ΔW spectrum recorded by the spectral monitor (seed 000 §3).</p>")
    first = runs.iloc[0]
    settings = ", ".join(f"{k} = {first.get(k)}" for k in ("model", "data", "task", "rank", "alpha", "target_modules",
                                                           "lr", "batch_size", "epochs", "max_steps", "seed")
                         if k in runs.columns)
    parts.append(f'<p class="meta">{len(runs)} runs · store <code>{_e(store_dir.name)}/</code> · {_e(settings)}</p>')
    table = runs[[c for c in _LORA_COLUMNS if c in runs.columns]].rename(columns=_LORA_COLUMNS).copy()
    if "monitor / step" in table:
        table["monitor / step"] = [f"{v:.2%}" if not math.isnan(v) else "—" for v in table["monitor / step"].astype(float)]
    for col in ("train loss", "eval loss", "eval accuracy", "mean eff. rank (end)", "wall s"):
        if col in table:
            table[col] = [f"{v:.4g}" if not math.isnan(v) else "—" for v in table[col].astype(float)]
    parts.append(_table(table, cls="steps"))
    try:
        for png, caption in lora_figures(store_dir, out_dir, slug):
            parts.append(
                f'<figure><img src="{_e(png.name)}" alt="{_e(caption)}">'
                f'<figcaption>{_e(caption)} <a href="{_e(png.with_suffix(".svg").name)}">SVG</a></figcaption></figure>'
            )
    except NothingToPlot as e:
        parts.append(f'<p class="notice">{_e(e)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def build_report(dir: str | Path) -> Path:  # noqa: A002 - the CLI's argument name
    """Write ``dir/report/index.html`` (and its figures) and return its path.

    One section per experiment (title, description, figure, iterations-to-ε table),
    a claims summary at the top and the claims table at the bottom. Missing
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
    sections = [
        _experiment_section(name, stores.get(name), spec, slugs[name], out_dir, claim_list) for name, spec in order
    ]

    n_pass = sum(_passed(c) for c in claim_list)
    if claims is None:
        summary = '<div class="summary none">No claims yet (no <code>claims.json</code>).</div>'
    else:
        cls = "allpass" if n_pass == len(claim_list) else "somefail"
        failing = [c for c in claim_list if not _passed(c)]
        extra = (
            " · failing: " + ", ".join(f"<strong>{_e(c.get('name'))}</strong>" for c in failing) if failing else ""
        )
        summary = f'<div class="summary {cls}" id="claims-summary"><strong>{n_pass} / {len(claim_list)}</strong> claims passed{extra}</div>'
    notices = "".join(f'<p class="notice">{_e(m)}</p>' for m in (spec_error, claims_error) if m)
    toc = "".join(f'<li><a href="#{_e(slugs[n])}">{_e((s or {}).get("title") or n)}</a></li>' for n, s in order)
    if claims is None:
        claims_html = "<p>No claims yet: <code>claims.json</code> has not been written.</p>"
    elif not claim_list:
        claims_html = "<p>claims.json holds no claims.</p>"
    else:
        claims_html = _claims_table(claim_list, slugs)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(sections) if sections else '<p class="notice">No results stores found in this directory.</p>'
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>muonlab report — {_e(root.resolve().name)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header>
<h1>muonlab report</h1>
<p class="meta">muonlab {_e(_version())} · generated {_e(now)} · <code>{_e(root.resolve().name)}</code></p>
</header>
{summary}
{notices}
<nav><h2>Experiments</h2><ul>{toc}</ul></nav>
{body}
<div id="claims" class="claims-section">
<h2>Claims</h2>
{claims_html}
</div>
</main>
</body>
</html>
"""
    index = out_dir / "index.html"
    write_atomic(index, page)
    return index
