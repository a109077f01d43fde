"""The headline table of a sweep: a pivot of its runs, one row per optimizer (and variant),
one column per value of the experiment's main axis (κ, r, α, …), each cell the median
over seeds with its [min–max].

The quantity is the steps to the finest level ε every run was asked to reach (the
claims' level, :func:`muonlab.claims.base.level_for`), else the coarsest level some run
reached, else the final relative error. A run that did not reach ε counts as +∞: a
median of ∞ is shown as ``—``, a max of ∞ as ``∞``, and ``(k/n)`` says how many of the
cell's n runs reached ε. The long-form table (:func:`muonlab.report.figures.steps_table`)
holds every count; the report folds it away and offers it as CSV.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from muonlab.accuracy import EPSILONS

__all__ = ["Pivot", "main_axis", "pivot"]


@dataclass(frozen=True)
class Pivot:
    table: pd.DataFrame  # row-label columns, then one column per main-axis value; text cells
    quantity: str  # what the cells are, in words ("steps to 1e-12")
    axis: str | None  # the main axis column (the table's columns), None for one column


def _numeric(values: pd.Series) -> bool:
    return bool(len(values)) and bool(pd.to_numeric(values, errors="coerce").notna().all())


def main_axis(runs: pd.DataFrame, spec: Mapping[str, Any]) -> str | None:
    """The column the pivot spreads across: ``problem.kappa`` when it varies, else the first
    ``curve_by`` column with numeric values, else the first one; None without curves."""
    curve_by = [c for c in spec.get("curve_by") or [] if c in runs.columns and c != spec.get("panel_by")]
    varying = [c for c in curve_by if runs[c].astype(str).nunique() > 1]
    if "problem.kappa" in varying:
        return "problem.kappa"
    for c in varying:
        if _numeric(runs[c]):
            return c
    return varying[0] if varying else None


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "∞"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3g}".replace("e+0", "e").replace("e+", "e")


def _steps_cell(values: list[float]) -> str:
    if not values:
        return ""
    arr = np.asarray(values, float)
    reached = int(np.isfinite(arr).sum())
    med = float(np.median(arr))
    if math.isinf(med):
        return f"— ({reached}/{len(arr)})"
    lo, hi = float(arr.min()), float(arr.max())
    text = f"{med:.6g} [{lo:.6g}–{'∞' if math.isinf(hi) else f'{hi:.6g}'}]" if len(arr) > 1 else f"{med:.6g}"
    return text if reached == len(arr) else f"{text} ({reached}/{len(arr)})"


def _value_cell(values: list[float]) -> str:
    arr = np.asarray([v for v in values if math.isfinite(v)], float)
    if not len(arr):
        return "—"
    med = float(np.median(arr))
    return f"{_fmt(med)} [{_fmt(float(arr.min()))}–{_fmt(float(arr.max()))}]" if len(arr) > 1 else _fmt(med)


def _quantity(runs: pd.DataFrame) -> tuple[str | None, str]:
    """(the runs column, its words): steps to the claims' level, else to the coarsest
    level reached, else the final relative error (None when no run has one)."""
    from muonlab.claims.base import level_for, steps_column

    level = level_for(runs)
    for eps in [level, *sorted(EPSILONS, reverse=True)]:
        col = steps_column(eps)
        if col in runs.columns and pd.to_numeric(runs[col], errors="coerce").notna().any():
            return col, f"steps to {eps:.0e}".replace("e-0", "e-")
    for col, words in (("final_rel_err", "final relative error"), ("final_loss", "final loss")):
        if col in runs.columns and pd.to_numeric(runs[col], errors="coerce").notna().any():
            return col, words
    return None, ""


def pivot(runs: pd.DataFrame, spec: Mapping[str, Any]) -> Pivot | None:
    """The pivot of ``runs`` (completed ones: ok or diverged) by ``spec``'s panel and curves;
    None when there is nothing to show."""
    from muonlab.report.figures import axis_label

    if "status" in runs.columns:
        runs = runs[runs["status"].astype(str).isin(["ok", "diverged"])]
    if not len(runs):
        return None
    col, words = _quantity(runs)
    if col is None:
        return None
    axis = main_axis(runs, spec)
    panel = spec.get("panel_by") if spec.get("panel_by") in runs.columns else None
    rows_by = [c for c in [panel, *(spec.get("curve_by") or [])] if c and c in runs.columns and c != axis]
    rows_by = list(dict.fromkeys(rows_by))
    rows_by = [c for c in rows_by if c == panel or runs[c].astype(str).nunique() > 1]
    steps = col.startswith("steps_to")
    values = pd.to_numeric(runs[col], errors="coerce").astype(float)
    values = values.fillna(math.inf) if steps else values.fillna(math.nan)
    runs = runs.assign(_v=values)
    axis_values = sorted(runs[axis].dropna().unique(), key=_order) if axis else [None]
    records = []
    groups = runs.groupby(rows_by, dropna=False, sort=True) if rows_by else [((), runs)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rec: dict[str, Any] = {}
        for c, v in zip(rows_by, key):
            label = _plain(axis_label(c, v))
            rec[_row_title(c)] = label.split(" = ", 1)[1] if " = " in label else label
        for a in axis_values:
            cell = g if a is None else g[g[axis] == a]
            vals = [float(v) for v in cell["_v"]]
            header = "all runs" if a is None else _plain(axis_label(str(axis), a))
            rec[header] = (_steps_cell(vals) if steps else _value_cell(vals)) if vals else ""
        records.append(rec)
    table = pd.DataFrame(records)
    return Pivot(table=table, quantity=words, axis=axis)


def _order(v: Any) -> tuple[int, Any]:
    try:
        return (0, float(v))
    except (TypeError, ValueError):
        return (1, str(v))


def _row_title(column: str) -> str:
    return {"optimizer.name": "optimizer"}.get(column, column.rsplit(".", 1)[-1])


def _plain(label: str) -> str:
    """A mathtext label as plain text: ``$\\kappa = 10^{2}$`` → ``κ = 10²``."""
    sup = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
    out = label.replace("$", "").replace("\\ast", "*")
    greek = {"kappa": "κ", "alpha": "α", "beta": "β", "lambda": "λ", "gamma": "γ", "eta": "η", "mu": "μ"}
    for k, v in greek.items():
        out = out.replace("\\" + k, v)
    out = out.replace("\\", "")

    return re.sub(r"\^\{(-?\d+)\}", lambda m: m.group(1).translate(sup), out)
