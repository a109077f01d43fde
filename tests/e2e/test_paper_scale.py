"""Paper-scale reproductions (``-m slow``; not in CI): the seeds' own sizes and seed counts.

``python -m pytest -m slow tests/e2e/test_paper_scale.py`` runs them; so does
``muonlab reproduce NAME --scale paper``. At the paper's scale every per-seed claim
counts at least 10 seeds, and each claim reaches the verdict that docs/reproduction.md
records: every claim passes except those listed in :data:`FAILS_AT_PAPER_SCALE`, which
must still fail (a finding that stops reproducing is news too).
"""

from __future__ import annotations

import json

import pytest

from muonlab.reproduce import reproduce

#: Claims that fail at the paper's scale, with the finding that explains it.
FAILS_AT_PAPER_SCALE = {
    # ours, not the seed's statement: 13/20 seeds; the others start with the product's
    # orientation opposite to the target's (docs/findings.md, two-step convergence)
    "spike_anneal_converges",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s000_equal_rate", "s002_conservation", "s002_two_step", "s002_mode_lag"])
def test_experiment_reaches_its_recorded_verdicts_at_paper_scale(name, tmp_path):
    result = reproduce(name, tmp_path, scale="paper", report=False)
    claims = json.loads((tmp_path / "claims.json").read_text(encoding="utf-8"))
    assert claims and result.executed[name] > 0
    for c in claims:
        assert c["scale"] == "paper"
        if c["unit"] == "seed":
            assert c["n_total"] >= 10, c
        expected = c["name"] not in FAILS_AT_PAPER_SCALE
        assert c["passed"] is expected, f"{c['name']}: {c['detail']}"
