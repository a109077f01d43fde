"""Paper-scale reproductions (``-m slow``; not in CI): the seeds' own sizes and seed counts.

``python -m pytest -m slow tests/e2e/test_paper_scale.py`` runs them; so does
``muonlab reproduce NAME`` (without ``--quick``). Each experiment here must pass every
claim it declares at the paper's scale.
"""

from __future__ import annotations

import json

import pytest

from muonlab.reproduce import reproduce


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s000_equal_rate", "s002_conservation", "s002_two_step"])
def test_experiment_passes_its_claims_at_paper_scale(name, tmp_path):
    result = reproduce(name, tmp_path, scale="paper", report=False)
    claims = json.loads((tmp_path / "claims.json").read_text(encoding="utf-8"))
    assert claims and result.executed[name] > 0
    failed = [f"{c['name']}: {c['detail']}" for c in claims if not c["passed"]]
    assert not failed, failed
