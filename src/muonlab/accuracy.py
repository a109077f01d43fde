r"""Accuracy levels ε and steps-to-ε: the one definition (SPEC §6).

A run *reaches* ε at the first step t whose relative error is ≤ ε (NaN never
counts); the results store keeps that step per level in the column :func:`eps_column`
(``steps_to_1e-8``), or null when the run never got there. :func:`steps_to` computes it
from logged curves; the engine's :class:`~muonlab.engine.runbook.RunBook` records the
same first hit online, step by step (tested equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from muonlab.errors import MuonlabError

__all__ = ["EPSILONS", "EPSILON_COLUMNS", "eps_column", "eps_label", "steps_to", "steps_to_many"]

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


def _as_2d(curve: Tensor | Sequence[float]) -> Tensor:
    # a copy: pandas hands out read-only arrays, which torch refuses to wrap without a warning
    curve = curve if isinstance(curve, Tensor) else torch.from_numpy(np.array(curve, dtype=float))
    if curve.ndim == 1:
        return curve[:, None]
    if curve.ndim != 2:
        raise MuonlabError(f"curve: expected shape (T,) or (T, R), got {tuple(curve.shape)}", field="curve")
    return curve


def _map_steps(idx: Tensor, hit: Tensor, steps: Sequence[int] | Tensor | None, T: int) -> list[int | None]:
    if steps is not None:
        steps = steps if isinstance(steps, Tensor) else torch.from_numpy(np.array(steps, dtype=np.int64))
        if steps.shape != (T,):
            raise MuonlabError(
                f"steps: expected {T} step numbers (one per row of curve), got shape {tuple(steps.shape)}",
                field="steps",
            )
        idx = steps[idx.clamp(0, T - 1)] if T > 0 else idx
    return [int(i) if h else None for i, h in zip(idx.tolist(), hit.tolist())]


def steps_to(
    curve: Tensor | Sequence[float], eps: float, steps: Sequence[int] | Tensor | None = None
) -> list[int | None]:
    """First step at which each run's curve is ``≤ eps``; ``None`` if it never is.

    Args:
        curve: ``(T, R)`` (``T`` logged values of ``R`` runs) or ``(T,)`` (one run).
            NaN never counts as reached.
        eps: the threshold.
        steps: optional step number of each of the ``T`` rows (when logging every
            k steps); by default a row's index is its step.

    Returns:
        A list of length ``R`` (length 1 for a ``(T,)`` curve).
    """
    c = _as_2d(curve)
    T = c.shape[0]
    mask = c <= eps
    hit = mask.any(dim=0)
    # argmax over bool→int returns the first maximal index (torch documents this).
    first = mask.to(torch.int8).argmax(dim=0) if T > 0 else torch.zeros(c.shape[1], dtype=torch.int64)
    return _map_steps(first, hit, steps, T)


def steps_to_many(
    curve: Tensor | Sequence[float], eps_list: Iterable[float], steps: Sequence[int] | Tensor | None = None
) -> dict[float, list[int | None]]:
    """:func:`steps_to` for several thresholds: ``{eps: [step or None per run]}``."""
    return {float(eps): steps_to(curve, eps, steps) for eps in eps_list}
