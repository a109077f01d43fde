"""Claims of seed 001 over synthetic results tables and stores (muonlab.claims)."""

from __future__ import annotations

import json

import pandas as pd

from muonlab.claims import evaluate_claims
from muonlab.claims.base import level_for
from muonlab.claims.seed001 import (
    geometric_schedule_converges,
    icl_kappa_free,
    muon_kappa_free,
    rank_insensitive,
    signgd_kappa_dependent,
)
from muonlab.reproduce import discover

KAPPAS = [1.0, 10.0, 100.0, 1000.0, 10000.0]


def _row(opt, kappa, seed, steps, *, budget=5000, lr=0.5, r=10, init="gaussian", schedule="plateau", target=1e-12):
    reached = steps is not None and steps <= budget
    return {
        "run_id": f"{opt}-{kappa}-{seed}-{r}-{init}-{lr}", "experiment": "x",
        "optimizer.name": opt, "optimizer.lr": lr, "problem.kappa": kappa, "problem.r": r, "problem.r_star": 10,
        "problem.init": init, "schedule.name": schedule, "schedule.threshold": 1e-3, "schedule.q": 0.97,
        "stop.target": target, "max_steps": budget, "seed": seed, "status": "ok",
        "steps": steps if reached else budget,
        "steps_to_1e-12": steps if reached else None,
        "steps_to_1e-8": int(steps * 0.6) if reached else None,
        "steps_to_1e-4": int(steps * 0.3) if reached else None,
    }


def _frame(rows):
    df = pd.DataFrame(rows)
    for c in ("steps_to_1e-12", "steps_to_1e-8", "steps_to_1e-4"):
        df[c] = df[c].astype("Int64")
    return df


def _sweep(muon, gd, signgd=None, seeds=3, budget=5000):
    rows = []
    for k in KAPPAS:
        for s in range(seeds):
            rows.append(_row("muon", k, s, muon(k) + s, budget=budget))
            rows.append(_row("gd", k, s, gd(k), budget=budget))
            if signgd is not None:
                rows.append(_row("signgd", k, s, signgd(k), budget=budget))
    return _frame(rows)


def test_muon_flat_gd_linear_passes_with_numbers_in_detail():
    runs = _sweep(lambda k: 212, lambda k: int(100 * k) if 100 * k <= 5000 else None)
    c = muon_kappa_free(runs)
    assert c.passed, c.detail
    assert c.seed == "001"
    assert "κ=1: 213" in c.detail and "κ=10000: 213" in c.detail  # median over seeds 212..214
    assert "slope 0.000" in c.detail
    assert "not reached (>5000)" in c.detail
    assert "1e-12" in c.detail and "0.1" in c.detail


def test_gd_slope_measured_when_all_reached():
    runs = _sweep(lambda k: 212, lambda k: int(50 * k ** 0.98) + 1, budget=10**6)
    c = muon_kappa_free(runs)
    assert c.passed, c.detail
    assert "slope 0.978" in c.detail  # int() truncation of 50·κ^0.98 + 1


def test_muon_growing_with_kappa_fails():
    runs = _sweep(lambda k: int(100 * k ** 0.3), lambda k: int(100 * k) if 100 * k <= 5000 else None)
    c = muon_kappa_free(runs)
    assert not c.passed
    assert "FAIL" in c.detail and "Muon |slope|" in c.detail


def test_gd_flat_fails_the_separation():
    runs = _sweep(lambda k: 212, lambda k: 300)
    c = muon_kappa_free(runs)
    assert not c.passed
    assert "gd slope 0.000 <= 0.5" in c.detail


def test_muon_unreached_fails_and_median_needs_half_the_seeds():
    runs = _sweep(lambda k: 212 if k < 10000 else 6000, lambda k: None)
    c = muon_kappa_free(runs)
    assert not c.passed and "Muon did not reach 1e-12 at κ=10000" in c.detail
    # GD reaching nothing at all is no baseline either
    assert "gd did not reach" in c.detail


def test_empty_and_too_few_kappas_fail():
    assert not muon_kappa_free(pd.DataFrame()).passed
    runs = _sweep(lambda k: 212, lambda k: int(100 * k) if 100 * k <= 5000 else None)
    few = runs[runs["problem.kappa"] <= 10]
    c = muon_kappa_free(few)
    assert not c.passed and "need Muon at >= 3 (non-trivial) values" in c.detail


def test_signgd_claim():
    runs = _sweep(lambda k: 212, lambda k: 100, signgd=lambda k: int(300 * k) if 300 * k <= 5000 else None)
    assert signgd_kappa_dependent(runs).passed
    flat = _sweep(lambda k: 212, lambda k: 100, signgd=lambda k: 400)
    assert not signgd_kappa_dependent(flat).passed


def test_icl_threshold_is_steeper():
    runs = _sweep(lambda k: 300, lambda k: int(30 * k), budget=10**6)  # slope 1 < 1.5, always reached
    c = icl_kappa_free(runs)
    assert not c.passed and "gd slope 1.000 <= 1.5" in c.detail


def test_best_variant_per_kappa_is_used():
    rows = []
    for k in KAPPAS:
        for s in range(3):
            rows.append(_row("muon", k, s, 250, lr=k))          # the well-scaled lr
            rows.append(_row("muon", k, s, None, lr=k * 1e3))   # a bad lr: never reached
            rows.append(_row("gd", k, s, int(100 * k) if 100 * k <= 5000 else None, lr=0.3))
    c = icl_kappa_free(_frame(rows))
    assert c.passed, c.detail


def test_rank_insensitive():
    rows = [_row("muon", 100.0, s, 500 + 10 * (r // 10), r=r) for r in (10, 20, 40, 80) for s in range(3)]
    rows += [_row("gd", 100.0, s, None, r=r) for r in (10, 20, 40, 80) for s in range(3)]
    c = rank_insensitive(_frame(rows))
    assert c.passed, c.detail
    assert "r=80: 580" in c.detail and "max/min 1.14" in c.detail
    rows = [_row("muon", 100.0, s, 500 * (r // 10), r=r) for r in (10, 20, 40, 80) for s in range(3)]
    c = rank_insensitive(_frame(rows))
    assert not c.passed and "max/min 8.00 > 1.5" in c.detail


def test_geometric_schedule_converges():
    rows = [_row("muon", k, s, 860 + s, r=r, init=i, schedule="geometric")
            for k in (1.0, 100.0, 10000.0) for s in range(3) for r in (10, 20) for i in ("gaussian", "orthonormal")]
    c = geometric_schedule_converges(_frame(rows))
    assert c.passed, c.detail
    assert "orthonormal, r=20: κ=1: 861" in c.detail
    # one unreached seed of three still passes (median); two do not
    rows[0]["steps_to_1e-12"] = None
    assert geometric_schedule_converges(_frame(rows)).passed
    bad = [dict(r) for r in rows]
    for r in bad:
        if (r["problem.kappa"] == 10000.0 and r["problem.init"] == "orthonormal" and r["problem.r"] == 20
                and r["seed"] < 2):
            r["steps_to_1e-12"] = None
    c = geometric_schedule_converges(_frame(bad))
    assert not c.passed and "1/3 seeds reached" in c.detail


def test_level_follows_stop_target():
    runs = _sweep(lambda k: 212, lambda k: None)
    assert level_for(runs) == 1e-12
    runs["stop.target"] = 1e-10
    assert level_for(runs) == 1e-8
    runs["stop.target"] = None
    assert level_for(runs) == 1e-12


def test_evaluate_claims_writes_json_from_stores(tmp_path):
    from muonlab.engine.store import ResultStore

    runs = _sweep(lambda k: 212, lambda k: int(100 * k) if 100 * k <= 5000 else None, signgd=lambda k: None)
    rows = runs.drop(columns=["experiment"]).to_dict("records")
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in rows]
    store = ResultStore(tmp_path / "p1_kappa_sweep")
    with store.lock():
        store.append(rows, None)
    declared = discover()["p1_kappa_sweep"].spec.claims  # the experiment YAML names its claims
    out = evaluate_claims(tmp_path, {"p1_kappa_sweep": declared})
    data = json.loads((tmp_path / "claims.json").read_text())
    assert data == out
    names = {c["name"]: c for c in data}
    assert list(names) == declared == ["muon_kappa_free", "signgd_kappa_dependent"]
    assert names["muon_kappa_free"]["passed"] is True
    assert names["muon_kappa_free"]["experiment"] == "p1_kappa_sweep"
    assert names["muon_kappa_free"]["seed"] == "001"
    assert names["signgd_kappa_dependent"]["passed"] is False  # SignGD reaches nothing: no baseline


def test_icl_claim_leaves_the_trivial_kappa_out_of_muons_slope():
    """At κ = 1 (Σ = I) one step solves ICL; that point must not decide Muon's slope."""
    one_step_at_1 = _sweep(lambda k: 1 if k == 1 else 340, lambda k: 1 if k == 1 else None)
    c = icl_kappa_free(one_step_at_1)
    assert c.passed, c.detail
    assert "κ=1: 2" in c.detail and "over κ ≠ 1" in c.detail  # listed (median of 1..3), not fitted
    growing = _sweep(lambda k: 1 if k == 1 else int(30 * k ** 0.5), lambda k: 1 if k == 1 else None)
    c = icl_kappa_free(growing)
    assert not c.passed and "Muon |slope| 0.500" in c.detail  # ½ over κ = 10..1e4


def test_verdict_formats_the_failure_reasons():
    from muonlab.claims.base import verdict

    ok = verdict("c", "001", "measured 3.", [])
    assert ok.passed and ok.detail == "measured 3."
    bad = verdict("c", "001", "measured 3.", ["a", "b", "c"], most=2, see="see docs/findings.md F4")
    assert not bad.passed
    assert bad.detail == "measured 3. FAIL: a; b (+1 more) (see docs/findings.md F4)."
