"""Claims as code: the published statements of the seeds, checked against results stores.

A claim is a function over tables of one experiment's store, registered with
:func:`claim`, which states what it reads::

    @claim(reads=("runs",))
    def muon_kappa_free(runs: pd.DataFrame) -> Claim: ...

    @claim(reads=("runs", "trajectories"))
    def muon_equal_rate(runs: pd.DataFrame, trajectories: pd.DataFrame) -> Claim: ...

``runs`` is :meth:`muonlab.engine.store.ResultStore.runs`, ``trajectories`` the long-form
:meth:`~muonlab.engine.store.ResultStore.trajectories` (read only when a claim asks for
them). A claim states its threshold, measures, and returns a :class:`Claim` whose
``detail`` gives the measured numbers and the threshold as text. No claim passes by
construction: an empty or incomplete store fails with a detail that says what is missing.

An experiment names its claims in its YAML (``reproduce.claims``); importing this
package imports every module in it, and each registers its claims. :func:`evaluate_claims` runs the
claims of every experiment store in a reproduction directory and writes
``DIR/claims.json`` (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from muonlab.atomic import write_json
from muonlab.claims.base import Claim, ClaimDef, Outcome, claim, clopper_pearson, decide, registered_claims, verdict


def _load_claim_modules() -> None:
    """Import every module of this package: each registers its claims with :func:`claim`
    (seed000, seed001, seed002, and one module per topic added since)."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name not in ("base", "modes"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_claim_modules()

__all__ = ["Claim", "ClaimDef", "Outcome", "claim", "clopper_pearson", "decide", "evaluate_claims",
           "evaluate_experiment", "registered_claims", "verdict"]


def evaluate_experiment(name: str, store_dir: str | Path, claims: Sequence[str], *,
                        config_hash: str | None = None, scale: str = "") -> list[Claim]:
    """The claims named ``claims`` (registered names), over experiment ``name``'s store at
    ``store_dir``; a claim that raises is a failed claim whose detail names the exception.

    ``config_hash``: read only the runs of that configuration (rows whose
    ``config_hash`` column equals it; a store without the column has none of them),
    and only their trajectories, so a claim never judges stale runs. None reads every run.
    ``scale`` is copied into each claim.

    Raises:
        KeyError: a name that is not registered (experiment YAMLs are checked at load time).
    """
    from muonlab.engine.store import ResultStore

    registry = registered_claims()
    defs: list[ClaimDef] = [registry[c] for c in claims]
    if not defs:
        return []
    path = Path(store_dir)
    store = ResultStore(path) if path.exists() else None
    runs = store.runs() if store is not None else pd.DataFrame()
    if config_hash is not None and len(runs):
        keep = runs["config_hash"] == config_hash if "config_hash" in runs else pd.Series(False, index=runs.index)
        runs = runs[keep.fillna(False).astype(bool)].reset_index(drop=True)
    tables: dict[str, pd.DataFrame] = {"runs": runs}
    if any("trajectories" in d.reads for d in defs):  # read once, and only when asked for
        if store is None:
            tables["trajectories"] = pd.DataFrame()
        elif config_hash is None:
            tables["trajectories"] = store.trajectories()
        else:
            tables["trajectories"] = store.trajectories(run_ids=list(runs["run_id"])) if len(runs) else pd.DataFrame()
    out = []
    for d in defs:
        try:
            result = d(tables)
        except Exception as e:  # noqa: BLE001 - a broken claim is a failed claim, never a crash
            result = Claim(name=d.name, seed=d.seed, passed=False,
                           detail=f"claim raised {type(e).__name__}: {e}", experiment=name)
        out.append(result.counted().with_experiment(name).with_scale(scale))
    return out


def evaluate_claims(directory: str | Path, experiments: Mapping[str, Sequence[str]], *,
                    provenance: Mapping[str, tuple[str | None, str]] | None = None) -> list[dict[str, Any]]:
    """Evaluate the claims of experiment stores under ``directory``; write claims.json.

    ``experiments``: experiment name → the names of its claims, in the order wanted in
    claims.json (the store of ``name`` is ``directory/<name>/``). ``provenance``: name →
    (config hash whose runs the claims read, scale label); see
    :func:`evaluate_experiment`. Returns the list written: one object per claim
    (:meth:`Claim.to_dict`: name, seed, passed, detail, experiment, n_pass, n_total,
    ci_low, ci_high, required, unit, failing_seeds, seeds, scale).
    """
    directory = Path(directory)
    prov = provenance or {}
    results = [c.to_dict() for n, names in experiments.items()
               for c in evaluate_experiment(n, directory / n, names, config_hash=prov.get(n, (None, ""))[0],
                                            scale=prov.get(n, (None, ""))[1])]
    write_json(directory / "claims.json", results)
    return results
