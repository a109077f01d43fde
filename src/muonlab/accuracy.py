r"""Accuracy levels ε and steps-to-ε: the one definition (SPEC §6).

A run *reaches* ε at the first step t whose relative error is ≤ ε; the results store
keeps that step per level in the column :func:`eps_column` (``steps_to_1e-8``), or
null when the run never got there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["EPSILONS", "EPSILON_COLUMNS", "eps_column", "eps_label", "steps_to"]

#: Accuracies whose first-hitting step is stored for every run, coarse to fine.
EPSILONS: tuple[float, ...] = (1e-4, 1e-8, 1e-12)


def eps_label(eps: float) -> str:
    """``1e-08`` → ``"1e-8"`` (the spelling used in column names and reports)."""
    return f"{eps:.0e}".replace("e-0", "e-")


def eps_column(eps: float) -> str:
    """The store column holding the first step at which rel_err ≤ ``eps``."""
    return f"steps_to_{eps_label(eps)}"


#: Store columns for :data:`EPSILONS`, in the same order.
EPSILON_COLUMNS: tuple[str, ...] = tuple(eps_column(e) for e in EPSILONS)


def steps_to(curve: Iterable[float], eps: float) -> int | None:
    """First index t with ``curve[t] <= eps`` (non-finite values never count); None if none."""
    for t, v in enumerate(curve):
        if math.isfinite(v) and v <= eps:
            return t
    return None
