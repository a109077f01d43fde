"""Figures and tables of one experiment's results store, in the papers' style.

* :func:`error_curves` — error (log scale) against iteration, one panel per value of
  ``spec["panel_by"]`` (shared y axis), one curve per combination of
  ``spec["curve_by"]``: the median over seeds, with a light min–max band. It returns a
  :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it as PNG and SVG.
* :func:`steps_table` — per curve group, the median number of steps to reach the
  relative errors 1e-4, 1e-8 and 1e-12, and how many runs ended ok / diverged / failed.

A *spec* is a mapping (one entry of ``DIR/experiments.json``) with the keys ``name``,
``title``, ``description``, ``x`` (``"step"``), ``y`` (a metric, ``"rel_err"``),
``curve_by`` (list of run columns), ``panel_by`` (a run column or ``None``) and
optionally ``target``; missing keys are inferred by :func:`resolve_spec`.

Figures are plain :class:`~matplotlib.figure.Figure` objects, never pyplot ones: nothing
here selects a backend or touches pyplot's global figure list, so importing this module
leaves the caller's matplotlib setup alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from muonlab.atomic import atomic_file
from muonlab.engine.store import EPSILON_COLUMNS, RESULT_COLUMNS, ResultStore
from muonlab.errors import MuonlabError

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

__all__ = [
    "DPI",
    "EM_DASH",
    "STYLE",
    "NothingToPlot",
    "axis_label",
    "best_variant_runs",
    "error_curves",
    "format_value",
    "new_figure",
    "resolve_spec",
    "save_figure",
    "steps_table",
    "styled",
]

EM_DASH = "—"
DPI = 150
#: Legend entries per column before the legend wraps into another column.
LEGEND_ROWS = 16

#: Columns that never define a curve or a panel.
_NOT_AXES = {"run_id", "experiment", "seed", "metrics", *RESULT_COLUMNS}

#: Pretty (mathtext) names of the usual grid axes.
_AXIS_NAMES = {
    "problem.kappa": r"\kappa",
    "problem.r": "r",
    "problem.r_star": "r^\\ast",
    "problem.alpha": r"\alpha",
    "problem.gamma": r"\gamma",
    "problem.n": "n",
    "problem.d": "d",
    "problem.rank": "r",
    "optimizer.lr": r"\eta",
    "optimizer.momentum": r"\mu",
    "optimizer.beta": r"\beta",
    "optimizer.weight_decay": r"\lambda",
}
_OPTIMIZER_NAMES = {
    "muon": "Muon",
    "gd": "GD",
    "specgd": "SpecGD",
    "specgd_beta": "SpecGD-β",
    "signgd": "SignGD",
    "adam": "Adam",
    "scaledgd": "ScaledGD",
}
_METRIC_LABELS = {"rel_err": "relative error", "loss": "loss", "dist_to_opt": "distance to optimum"}

#: The papers' look; applied while a figure is built *and* while it is saved, since some
#: settings (tick labels, ``svg.fonttype``) are only read when the figure is drawn.
STYLE: dict[RcKeyType, Any] = {
    "font.family": "serif",
    "font.serif": ["DejaVu Serif", "Times New Roman", "Times", "serif"],
    "mathtext.fontset": "dejavuserif",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linestyle": "-",
    "lines.linewidth": 1.6,
    "svg.fonttype": "none",
}


class NothingToPlot(MuonlabError):
    """The store holds no finite trajectory of the requested metric (e.g. all runs failed)."""


# ----------------------------------------------------------------------------- specs


def _config_axes(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c not in _NOT_AXES]


def _nunique(s: pd.Series) -> int:
    return s.astype(str).nunique(dropna=False)


def resolve_spec(runs: pd.DataFrame, spec: Mapping[str, Any] | None = None, name: str | None = None) -> dict[str, Any]:
    """``spec`` with its missing keys filled in from the runs.

    Defaults: one panel per ``optimizer.name`` (if the column exists), and one curve
    per combination of the config columns that still vary *within* a panel (so the
    fields that change together with the optimizer, such as its lr, do not split
    curves). Columns named in the spec but absent from the runs are dropped.
    """
    out: dict[str, Any] = dict(spec or {})
    default_name = str(runs["experiment"].iloc[0]) if "experiment" in runs and len(runs) else "experiment"
    out.setdefault("name", name or default_name)
    out.setdefault("title", out["name"])
    out.setdefault("description", "")
    out.setdefault("x", "step")
    out.setdefault("y", "rel_err")
    if "panel_by" not in out:
        out["panel_by"] = "optimizer.name" if "optimizer.name" in runs.columns else None
    if out["panel_by"] is not None and out["panel_by"] not in runs.columns:
        out["panel_by"] = None
    if out.get("curve_by") is None:
        panel = out["panel_by"]
        groups = [g for _, g in runs.groupby(panel, dropna=False, sort=False)] if panel else [runs]
        out["curve_by"] = [
            c for c in _config_axes(runs) if c != panel and any(_nunique(g[c]) > 1 for g in groups)
        ]
    elif isinstance(out["curve_by"], str):
        out["curve_by"] = [out["curve_by"]]
    out["curve_by"] = [c for c in out["curve_by"] if c in runs.columns]
    if out.get("target") is None:
        out["target"] = _known_target(runs)
    return out


def _known_target(runs: pd.DataFrame) -> float | None:
    if "stop.target" not in runs.columns:
        return None
    vals = pd.to_numeric(runs["stop.target"], errors="coerce").dropna().unique()
    return float(vals[0]) if len(vals) == 1 and vals[0] > 0 else None


# ----------------------------------------------------------------------------- labels


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def format_value(v: Any) -> str:
    """A value as mathtext: powers of ten as ``10^{k}``, other numbers compactly."""
    if _is_number(v):
        f = float(v)
        if f > 0:
            k = math.log10(f)
            if abs(k - round(k)) < 1e-9 and abs(k) >= 2:
                return f"10^{{{round(k)}}}"
        return f"{f:g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "none"
    return str(v)


def _mathtext_escape(s: str) -> str:
    return s.replace("$", r"\$")


def axis_label(column: str, value: Any) -> str:
    """A legend/title label such as ``$\\kappa = 10^{2}$`` or ``Muon``."""
    if column == "optimizer.name":
        return _mathtext_escape(_OPTIMIZER_NAMES.get(str(value), str(value)))
    name = _AXIS_NAMES.get(column)
    if name is not None and _is_number(value):
        return f"${name} = {format_value(value)}$"
    short = column.rsplit(".", 1)[-1]
    if _is_number(value):
        return f"{_mathtext_escape(short)} $= {format_value(value)}$"
    return _mathtext_escape(f"{short} = {value}")


def _curve_label(columns: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(axis_label(c, v) for c, v in zip(columns, key)) or "all runs"


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if _is_number(v) else (1, str(v))


def _keys(df: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    if not columns:
        return [()]
    # NaN (a column some runs lack, e.g. a momentum only some optimizers have) becomes
    # None: NaN ≠ NaN, so as a dict key it would never be found again.
    seen = {tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row): None
            for row in df[list(columns)].itertuples(index=False, name=None)}
    return sorted(seen, key=lambda k: tuple(_sort_key(v) for v in k))


def _select(df: pd.DataFrame, columns: Sequence[str], key: tuple[Any, ...]) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for c, v in zip(columns, key):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            mask &= df[c].isna()
        else:
            mask &= df[c] == v
    return df[mask]


# ----------------------------------------------------------------------------- table


def steps_table(store_dir: str | Path, spec: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per curve group (panel × curve): its group columns, ``runs``, ``ok``,
    ``diverged``, ``failed``, and per ε in 1e-4, 1e-8, 1e-12 the median over the
    runs that reached ε of the steps they needed.

    A cell is ``"—"`` when no run of the group reached ε, the median (``"%g"``) when
    all did, and ``"<median> (k/N)"`` when only k of the N runs did.
    """
    runs = ResultStore(store_dir).runs()
    spec = resolve_spec(runs, spec, name=Path(store_dir).name)
    cols = _group_columns(spec)
    rows = []
    for key in _keys(runs, cols):
        g = _select(runs, cols, key)
        row: dict[str, Any] = dict(zip(cols, key))
        status = g["status"].astype(str)
        row["runs"] = len(g)
        for s in ("ok", "diverged", "failed"):
            row[s] = int((status == s).sum())
        for col in EPSILON_COLUMNS:
            reached = pd.to_numeric(g[col], errors="coerce").dropna() if col in g else pd.Series(dtype=float)
            if reached.empty:
                row[col] = EM_DASH
            else:
                med = f"{float(reached.median()):g}"
                row[col] = med if len(reached) == len(g) else f"{med} ({len(reached)}/{len(g)})"
        rows.append(row)
    return pd.DataFrame(rows, columns=[*cols, "runs", "ok", "diverged", "failed", *EPSILON_COLUMNS])


def _group_columns(spec: Mapping[str, Any]) -> list[str]:
    cols = [spec["panel_by"]] if spec.get("panel_by") else []
    cols += [c for c in spec.get("curve_by", []) if c not in cols]
    return cols


# ----------------------------------------------------------------------------- figure


@contextmanager
def styled() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of the block (rcParams restored after)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout, detached from pyplot (no global state, no
    backend: saving picks the renderer from the file format). Build it inside
    :func:`styled` so that its artists take the papers' style."""
    return Figure(figsize=figsize, layout="constrained")


def save_figure(fig: Figure, out_png: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``out_png`` (``dpi``) and as SVG next to it (same stem), each
    atomically, creating the folder; returns the PNG's path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with styled():
        with atomic_file(out_png) as f:
            fig.savefig(f, format="png", dpi=dpi)
        with atomic_file(out_png.with_suffix(".svg")) as f:
            fig.savefig(f, format="svg")
    return out_png


def _colors(n: int, numeric: bool) -> list[Any]:
    if numeric and n > 1:
        cmap = matplotlib.colormaps["viridis"]
        return [cmap(0.9 * i / (n - 1)) for i in range(n)]
    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def best_variant_runs(runs: pd.DataFrame, keys: list[str], variant_cols: list[str]) -> pd.DataFrame:
    """Per combination of ``keys``, only the runs of the best variant (a combination of
    ``variant_cols``): the fewest median steps to the finest level every run was asked
    to reach, unreached counting as +∞ — the rule the claims use (muonlab.claims).

    Lets a figure show one curve per κ for an optimizer tuned over an lr/schedule grid.
    """
    from muonlab.claims.base import level_for, median_steps, steps_column

    cols = [c for c in variant_cols if c in runs.columns]
    keys = [k for k in keys if k in runs.columns]
    if not cols or not len(runs):
        return runs
    col = steps_column(level_for(runs))
    if col not in runs.columns:
        return runs
    keep = []
    for _, group in runs.groupby(keys, dropna=False, sort=False) if keys else [((), runs)]:
        best, best_steps = None, math.inf
        for _, g in group.groupby(cols, dropna=False, sort=True):
            m = median_steps(g, col)
            m = math.inf if m is None else m
            if best is None or m < best_steps:
                best, best_steps = g, m
        keep.append(best)
    return pd.concat(keep) if keep else runs


def error_curves(store_dir: str | Path, spec: Mapping[str, Any] | None = None) -> Figure:
    """Plot ``spec["y"]`` (log scale) against ``spec["x"]`` for one results store.

    Returns the figure; :func:`save_figure` writes it as PNG and SVG.

    Raises:
        NothingToPlot: no run has a finite positive value of the metric.
    """
    store = ResultStore(store_dir)
    runs = store.runs()
    spec = resolve_spec(runs, spec, name=Path(store_dir).name)
    metric, x = spec["y"], spec["x"]
    traj = store.trajectories(metrics=[metric]) if len(runs) else pd.DataFrame()
    if len(traj):
        traj = traj[traj["index"] == 0] if "index" in traj else traj
        traj = traj[np.isfinite(traj["value"]) & (traj["value"] > 0)]
    if not len(traj):
        raise NothingToPlot(f"{Path(store_dir).name}: no finite values of {metric!r} to plot", field="y")
    if x != "step":
        raise MuonlabError(f"x: only 'step' is supported, got {x!r}", field='x')
    panel = spec.get("panel_by")
    curve_by = [c for c in spec["curve_by"] if c != panel]
    if spec.get("best_of"):
        runs = best_variant_runs(runs, [c for c in [panel, *curve_by] if c], list(spec["best_of"]))
    # One column per run, one row per step.
    wide = traj.pivot_table(index="step", columns="run_id", values="value", aggfunc="first").sort_index()

    panels = _keys(runs, [panel]) if panel else [()]
    curves = _keys(runs, curve_by)
    # Two or more curve columns (κ × threshold, κ × lr × schedule): colour by the main
    # axis (κ when it varies), line style by the rest, and a legend for each — a reader
    # matches a colour and a dash, not one of twenty entries.
    main = _main_curve_axis(runs, curve_by)
    if main is not None and len(curve_by) > 1:
        mi = curve_by.index(main)
        rest = [c for c in curve_by if c != main]
        main_keys = _keys(runs, [main])
        rest_keys = _keys(runs, rest)
        main_colors = dict(zip(main_keys, _colors(len(main_keys), all(_is_number(k[0]) for k in main_keys))))
        colors = {k: main_colors[(k[mi],)] for k in curves}
        dashes = {rk: _DASHES[i % len(_DASHES)] for i, rk in enumerate(rest_keys)}
        # Variants that differ between panels (each optimizer its own lr grid): each panel
        # numbers its own variants and gets its own line-style legend below it.
        per_panel = {pk: _keys(_select(runs, [panel], pk), rest) for pk in panels} if panel else {}
        split = len({tuple(v) for v in per_panel.values()}) > 1
        panel_dashes = {pk: {rk: _DASHES[i % len(_DASHES)] for i, rk in enumerate(ks)}
                        for pk, ks in per_panel.items()}

        def style_of(pkey: tuple[Any, ...], ckey: tuple[Any, ...]) -> Any:
            rk = tuple(v for j, v in enumerate(ckey) if j != mi)
            return panel_dashes[pkey].get(rk, "-") if split else dashes[rk]

        n_entries = len(main_keys) + 2 if split else len(main_keys) + len(rest_keys) + 2
        below = max((len(ks) for ks in per_panel.values()), default=0) if split else 0
    else:
        numeric = len(curve_by) == 1 and all(_is_number(k[0]) for k in curves)
        colors = dict(zip(curves, _colors(len(curves), numeric)))
        split, below = False, 0

        def style_of(pkey: tuple[Any, ...], ckey: tuple[Any, ...]) -> Any:
            return "-"

        n_entries = len(curves) + 1

    # Many entries: a taller figure and a multi-column legend, so that no entry is cut off.
    rows = min(n_entries, LEGEND_ROWS)
    ncol = -(-n_entries // LEGEND_ROWS)
    with styled():
        below_in = 0.3 + 0.19 * (below + 1) if below else 0.0
        fig = new_figure((1.0 + 3.6 * len(panels) + 1.6 * (ncol - 1), max(3.4, 0.19 * rows + 0.8) + below_in))
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
        handles: dict[str, Any] = {}
        for ax, pkey in zip(axes[0], panels):
            prow = _select(runs, [panel], pkey) if panel else runs
            for ckey in curves:
                ids = [r for r in _select(prow, curve_by, ckey)["run_id"] if r in wide.columns]
                if not ids:
                    continue
                block = wide[ids].dropna(how="all")
                if block.empty:
                    continue
                steps = block.index.to_numpy()
                vals = block.to_numpy(dtype=float)
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps: NaN is the answer
                    med = np.nanmedian(vals, axis=1)
                    lo, hi = np.nanmin(vals, axis=1), np.nanmax(vals, axis=1)
                color = colors[ckey]
                label = _curve_label(curve_by, ckey)
                (line,) = ax.plot(steps, med, color=color, linestyle=style_of(pkey, ckey), label=label)
                if vals.shape[1] > 1:
                    ax.fill_between(steps, lo, hi, color=color, alpha=0.18, linewidth=0)
                handles.setdefault(label, line)
            if panel:
                ax.set_title(axis_label(panel, pkey[0]))
            ax.set_yscale("log")
            ax.set_xlabel("iteration" if x == "step" else x)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.set_xlim(left=0)
            if spec.get("target"):
                ax.axhline(float(spec["target"]), color="0.35", linestyle=":", linewidth=1.0)
        axes[0][0].set_ylabel(_METRIC_LABELS.get(metric, metric))
        if spec.get("target") and handles:
            (tline,) = axes[0][0].plot([], [], color="0.35", linestyle=":", linewidth=1.0)
            handles[f"target ${format_value(float(spec['target']))}$"] = tline
        if main is not None and len(curve_by) > 1 and handles:
            from matplotlib.lines import Line2D

            blank = Line2D([], [], linestyle="none")
            grouped: dict[str, Any] = {_axis_title(main): blank}
            grouped.update({axis_label(main, k[0]): Line2D([], [], color=main_colors[k]) for k in main_keys})
            rest_title = ", ".join(_axis_title(c) for c in rest)
            if split:  # one column per panel, under the panels: "GD: η, threshold", its variants
                h_cols, l_cols = [], []
                for pkey in panels:
                    ks = per_panel[pkey]
                    hs = [Line2D([], [], linestyle="none")]
                    hs += [Line2D([], [], color="0.3", linestyle=panel_dashes[pkey][rk]) for rk in ks]
                    ls = [f"{axis_label(str(panel), pkey[0])}: {rest_title}"] + [_curve_label(rest, rk) for rk in ks]
                    hs += [Line2D([], [], linestyle="none")] * (below + 1 - len(hs))
                    ls += [""] * (below + 1 - len(ls))
                    h_cols += hs
                    l_cols += ls
                bottom = fig.legend(h_cols, l_cols, loc="outside lower center", ncol=len(panels), frameon=False,
                                    handlelength=2.6, columnspacing=3.0)
                for text in bottom.get_texts()[:: below + 1]:
                    text.set_fontweight("bold")
            else:
                grouped[rest_title] = Line2D([], [], linestyle="none")
                grouped.update({_curve_label(rest, rk): Line2D([], [], color="0.3", linestyle=dashes[rk])
                                for rk in rest_keys})
            grouped.update({k: v for k, v in handles.items() if k.startswith("target")})
            handles = grouped
        if handles and (len(handles) > 1 or curve_by):
            legend = axes[0][-1].legend(
                list(handles.values()), list(handles.keys()), frameon=False, loc="upper left",
                bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncol=ncol, handlelength=2.6,
            )
            for text, handle in zip(legend.get_texts(), handles.values()):
                if handle.get_linestyle() in ("None", "none", ""):
                    text.set_fontweight("bold")
    return fig


#: Line styles for the variants (the curve columns other than the main axis).
_DASHES: list[Any] = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2))]


def _main_curve_axis(runs: pd.DataFrame, curve_by: Sequence[str]) -> str | None:
    """The curve column coloured (κ when it is one, else the first numeric one)."""
    if "problem.kappa" in curve_by:
        return "problem.kappa"
    for c in curve_by:
        if all(_is_number(v) for v in runs[c].dropna().unique()) and runs[c].notna().any():
            return c
    return curve_by[0] if curve_by else None


def _axis_title(column: str) -> str:
    name = _AXIS_NAMES.get(column)
    return f"${name}$" if name else _mathtext_escape(column.rsplit(".", 1)[-1])
