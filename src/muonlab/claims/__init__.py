"""Claims as code: the published statements of the seeds, checked against results stores.

A claim is a function ``claim(runs: pandas.DataFrame) -> Claim`` over the ``runs``
table of one experiment's store (:meth:`muonlab.engine.store.ResultStore.runs`); a
claim with the attribute ``needs_trajectories = True`` is called as
``claim(runs, trajectories)`` with the store's long-form trajectories as well. It
states its threshold, measures, and returns a :class:`Claim` whose ``detail`` gives the
measured numbers and the threshold as text. No claim passes by construction: an
empty or incomplete store fails with a detail that says what is missing.

:data:`CLAIMS` maps an experiment name to its claims; :func:`evaluate_claims` runs every
registered claim over the stores found in a reproduction directory and writes
``DIR/claims.json`` (SPEC §6).
"""

from __future__ import annotations

import json
from importlib import import_module
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.claims.base import Claim
from muonlab.claims import seed000, seed001, seed002

__all__ = ["CLAIMS", "Claim", "evaluate_claims", "evaluate_experiment"]

ClaimFn = Callable[[pd.DataFrame], Claim]

#: Experiment name → the claims evaluated on its store.
CLAIMS: dict[str, list[ClaimFn]] = {
    "p1_kappa_sweep": [seed001.muon_kappa_free, seed001.signgd_kappa_dependent],
    "p1_rank_sweep": [seed001.rank_insensitive],
    "p2_icl_kappa_sweep": [seed001.icl_kappa_free],
    "p1_geometric_thm1": [seed001.geometric_schedule_converges],
    "p1_signgd_hard_instance": [seed001.signgd_hard_instance],
    "p2_icl_signgd_hard_instance": [seed001.icl_signgd_hard_instance],
    "p1_scalar_recursions": [seed001.scalar_recursions_decouple],
    "s002_mode_order": [seed002.muon_equal_rate, seed002.muon_smallest_first, seed002.gd_largest_first],
    "s002_lr_stability": [seed002.muon_stable_above_gd_edge],
    "s002_conservation": [seed002.conservation_laws],
    "s002_two_step": [seed002.two_step_alignment],
    "s000_equal_rate": [seed000.specgd_equal_rate, seed000.underparameterized_top_modes, seed000.gd_largest_first],
    "s000_specgf": [seed000.specgf_equal_rate],
    "s000_convergence": [seed000.specgf_converges_globally],
}


def evaluate_experiment(name: str, store_dir: str | Path) -> list[Claim]:
    """Every claim registered for ``name``, over the store at ``store_dir``."""
    from muonlab.engine.store import ResultStore

    fns = CLAIMS.get(name, [])
    if not fns:
        return []
    path = Path(store_dir)
    store = ResultStore(path) if path.exists() else None
    runs = store.runs() if store is not None else pd.DataFrame()
    traj: pd.DataFrame | None = None
    out = []
    for fn in fns:
        try:
            if getattr(fn, "needs_trajectories", False):
                if traj is None:
                    traj = store.trajectories() if store is not None else pd.DataFrame()
                claim = fn(runs, traj)
            else:
                claim = fn(runs)
        except Exception as e:  # a broken claim is a failed claim, never a crash
            seed = getattr(import_module(fn.__module__), "SEED", "beyond")
            claim = Claim(name=fn.__name__, seed=seed, passed=False,
                          detail=f"claim raised {type(e).__name__}: {e}", experiment=name)
        out.append(claim.with_experiment(name))
    return out


def evaluate_claims(directory: str | Path, experiments: list[str] | None = None) -> list[dict[str, Any]]:
    """Evaluate the claims of every experiment store under ``directory``; write claims.json.

    ``experiments``: the names to evaluate (default: every registered name whose store
    ``directory/<name>/`` exists). Returns the list written: one object per claim with
    ``name``, ``seed``, ``passed``, ``detail`` and ``experiment``.
    """
    directory = Path(directory)
    names = experiments if experiments is not None else [n for n in CLAIMS if (directory / n).is_dir()]
    results = [c.to_dict() for n in names for c in evaluate_experiment(n, directory / n)]
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".claims.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
    os.replace(tmp, directory / "claims.json")
    return results
