"""The verdict core: Clopper–Pearson intervals, per-replicate decisions, claims.json fields."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from muonlab.claims import Claim, Outcome, clopper_pearson, decide, verdict
from muonlab.errors import MuonlabError


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_clopper_pearson_equals_scipys_exact_interval(kn):
    k, n = kn
    lo, hi = clopper_pearson(k, n)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_clopper_pearson_closed_forms_at_the_ends():
    # all n succeed: lower end (α/2)^(1/n); none: upper end 1 − (α/2)^(1/n)
    for n in (1, 5, 10, 32):
        assert clopper_pearson(n, n) == pytest.approx((0.025 ** (1 / n), 1.0))
        assert clopper_pearson(0, n) == pytest.approx((0.0, 1 - 0.025 ** (1 / n)))
    assert all(math.isnan(x) for x in clopper_pearson(0, 0))
    with pytest.raises(MuonlabError):
        clopper_pearson(6, 5)


def _outcomes(n, failing=()):
    return [Outcome(str(i), i not in failing, f"reason {i}") for i in range(n)]


def test_every_seed_must_hold_by_default_and_failing_seeds_are_named():
    ok = decide("c", "001", "Statement.", _outcomes(5))
    assert ok.passed and (ok.n_pass, ok.n_total) == (5, 5) and ok.failing_seeds == ()
    assert ok.seeds == ("0", "1", "2", "3", "4") and ok.ci_low == pytest.approx(0.025 ** 0.2)
    assert "5/5 seeds hold (95% CI [0.48, 1.00]; need all)" in ok.detail
    bad = decide("c", "001", "Statement.", _outcomes(10, failing={3, 7}))
    assert not bad.passed and (bad.n_pass, bad.n_total) == (8, 10) and bad.failing_seeds == ("3", "7")
    assert "Failing seeds: 3 (reason 3); 7 (reason 7)." in bad.detail and bad.detail.endswith("FAIL.")


def test_a_most_statement_passes_on_the_interval_lower_end():
    most = decide("c", "001", "Most seeds.", _outcomes(40, failing={3}), required=0.8)
    assert most.passed and most.ci_low >= 0.8 and most.required == 0.8  # 39/40: lower end 0.868
    few = decide("c", "001", "Most seeds.", _outcomes(10, failing={3}), required=0.8)
    assert not few.passed and few.ci_low < 0.8  # 9/10 is not enough evidence for >= 0.8
    with pytest.raises(MuonlabError, match="^required"):
        decide("c", "001", "x", _outcomes(3), required=0.0)


def test_store_level_reasons_and_no_replicates_fail():
    held = decide("c", "001", "x.", _outcomes(5), reasons=["no GD runs"])
    assert not held.passed and held.n_pass == 5 and "FAIL: no GD runs." in held.detail
    empty = decide("c", "001", "x.", [])
    assert not empty.passed and empty.n_total == 0 and "no seeds to judge" in empty.detail


def test_claims_json_fields_and_plain_claims_count_as_one_instance():
    d = decide("c", "001", "x.", _outcomes(3, failing={1}), unit="run").with_experiment("e").with_scale("quick")
    assert d.to_dict() == {
        "name": "c", "seed": "001", "passed": False, "detail": d.detail, "experiment": "e", "n_pass": 2,
        "n_total": 3, "ci_low": round(d.ci_low, 6), "ci_high": round(d.ci_high, 6), "required": 1.0,
        "unit": "run", "failing_seeds": ["1"], "seeds": ["0", "1", "2"], "scale": "quick"}
    plain = Claim("p", "beyond", True, "ok").counted()
    assert (plain.n_pass, plain.n_total, plain.unit, plain.seeds) == (1, 1, "instance", ("instance",))
    failed = Claim("p", "beyond", False, "no").counted()
    assert (failed.n_pass, failed.failing_seeds) == (0, ("instance",))
    one = verdict("v", "001", "Deterministic.", ["too slow"])
    assert not one.passed and (one.n_pass, one.n_total, one.unit) == (0, 1, "instance")
