"""``muonlab demo``: seed 001's headline as a shipped experiment, in about ten seconds.

The demo is the experiment ``demo`` (``experiments/examples/demo.yaml``): symmetric
matrix factorization, Muon against GD over κ ∈ {1, 10², 10⁴} (Ma, Huang, Chi, Chen,
arXiv 2601.13474, Theorem 1), run by the same engine into the same store, judged by the
claim ``muon_kappa_free_ours`` (each optimizer at its better schedule; GD's κ-dependence
from its fitted contraction rate) and drawn by the same report as every paper experiment.
``muonlab demo --out DIR`` is ``muonlab reproduce demo --out DIR`` on the shipped YAMLs.

For Muon in a plain training loop, see the README's example and :mod:`muonlab.optim`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from muonlab.reproduce import SHIPPED_ROOT, ReproduceResult, reproduce

__all__ = ["DEMO", "kappa_override", "run_demo"]

#: The demo experiment's name (its store is ``DIR/demo/``).
DEMO = "demo"


def kappa_override(kappas: str) -> str:
    """``"1,100,1e4"`` → the override ``grid.problem.kappa=[1,100,1e4]`` (validated with the
    rest of the config: κ ≥ 1, numbers only)."""
    return f"grid.problem.kappa=[{kappas}]"


def run_demo(out: str | Path, *, kappas: str | None = None, overrides: Iterable[str] = (),
             report: bool = True) -> ReproduceResult:
    """Reproduce the demo experiment into ``out`` (resuming), with optional κ values and
    ``--set``-style overrides; returns what :func:`muonlab.reproduce.reproduce` returns."""
    sets = [*([kappa_override(kappas)] if kappas is not None else []), *overrides]
    return reproduce(DEMO, out, overrides=sets, report=report, root=SHIPPED_ROOT)
