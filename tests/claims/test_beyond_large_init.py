"""Claims of issue 15 item 4, larger initialization (muonlab.claims.beyond_large_init), over
synthetic tables, plus the shipped experiments' wiring."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.claims.base import registered_claims
from muonlab.claims.beyond_large_init import (
    THEOREM1_TRAVEL,
    geometric_reach_rule,
    large_init_aligns_after_shrinking,
    large_init_kappa_dependent_mf,
    large_init_kappa_free,
    misalignment_paths,
)

KAPPAS = [1.0, 100.0, 10000.0]
ALPHAS = [1e-6, 1e-3, 1.0, 10.0, 100.0]
SEEDS = range(5)
LEVELS = ("steps_to_1e-12", "steps_to_1e-8", "steps_to_1e-4")


def _row(alpha, kappa, seed, steps, *, schedule="plateau", lr=0.5, budget=3000, final=None):
    reached = steps is not None
    return {
        "run_id": f"{schedule}-{lr}-{alpha}-{kappa}-{seed}", "problem.alpha": alpha, "problem.kappa": kappa,
        "problem.r": 4, "problem.r_star": 4, "optimizer.name": "muon", "optimizer.lr": lr,
        "schedule.name": schedule, "schedule.q": 0.97, "schedule.c_lo": 0.5, "schedule.c_hi": 1.0,
        "stop.target": 1e-12, "max_steps": budget, "log_every": 10, "seed": seed, "status": "ok",
        "final_rel_err": 1e-13 if reached else (0.3 if final is None else final),
        "steps_to_1e-12": steps, "steps_to_1e-8": int(steps * 0.6) if reached else None,
        "steps_to_1e-4": int(steps * 0.3) if reached else None,
    }


def _frame(rows):
    df = pd.DataFrame(rows)
    for c in LEVELS:
        df[c] = df[c].astype("Int64")
    return df


def _sweep(steps_fn, **kw):
    return _frame([_row(a, k, s, steps_fn(a, k, s), **kw) for a in ALPHAS for k in KAPPAS for s in SEEDS])


# --- κ-free at every α ------------------------------------------------------------------------

def test_kappa_free_passes_when_steps_do_not_grow_with_kappa():
    c = large_init_kappa_free(_sweep(lambda a, k, s: 500 + int(250 * (a >= 100)) + s))
    assert c.passed and c.n_total == 5, c.detail
    assert "Largest α converged at every κ: 100" in c.detail


def test_kappa_free_fails_when_large_init_grows_with_kappa():
    # at α = 100 the steps grow ∝ κ^0.3
    c = large_init_kappa_free(_sweep(lambda a, k, s: int(500 * (k ** 0.3 if a >= 100 else 1))))
    assert not c.passed and c.n_pass == 0
    assert "α=100" in c.detail


def test_a_stall_at_every_kappa_is_reported_not_failed_but_large_alpha_is_needed():
    stall_100 = _sweep(lambda a, k, s: None if a >= 100 else 500)
    c = large_init_kappa_free(stall_100)
    assert c.passed, c.detail  # α = 10 converges everywhere
    stall_10 = _sweep(lambda a, k, s: None if a >= 10 else 500)
    c = large_init_kappa_free(stall_10)
    assert not c.passed and "no α >= 10" in c.detail


def _mf_sweep(steps_fn):
    rows = []
    for a in (1e-3, 10.0, 30.0):
        for k in (10.0, 100.0, 10000.0):
            for s in SEEDS:
                st_ = steps_fn(a, k, s)
                r = _row(a, k, s, st_, schedule="geometric", lr=10.0, final=1e-3)
                rows.append(r)
    return _frame(rows)


def test_kappa_dependent_mf_passes_on_the_found_pattern():
    c = large_init_kappa_dependent_mf(_mf_sweep(lambda a, k, s: None if (a == 30 and k == 10000) else 980 + s))
    assert c.passed and c.n_total == 5, c.detail


def test_kappa_dependent_mf_fails_when_the_largest_alpha_converges_everywhere():
    c = large_init_kappa_dependent_mf(_mf_sweep(lambda a, k, s: 980))
    assert not c.passed and "not κ-dependent" in c.detail


def test_kappa_dependent_mf_fails_when_a_smaller_alpha_stalls_or_grows():
    c = large_init_kappa_dependent_mf(_mf_sweep(lambda a, k, s: None if (a >= 10 and k == 10000) else 980))
    assert not c.passed and "no level at α=10" in c.detail
    c = large_init_kappa_dependent_mf(
        _mf_sweep(lambda a, k, s: None if (a == 30 and k == 10000) else int(980 * (k ** 0.2 if a == 10 else 1))))
    assert not c.passed and "α=10" in c.detail


def test_kappa_dependent_mf_fails_when_the_smallest_kappa_also_stalls():
    c = large_init_kappa_dependent_mf(_mf_sweep(lambda a, k, s: None if a == 30 else 980))
    assert not c.passed and "misses" in c.detail


def test_empty_or_too_narrow_stores_fail():
    assert not large_init_kappa_free(pd.DataFrame()).passed
    narrow = _sweep(lambda a, k, s: 500)
    narrow = narrow[narrow["problem.kappa"] < 1000]
    c = large_init_kappa_free(narrow)
    assert not c.passed and "κ" in c.detail
    assert not large_init_kappa_dependent_mf(pd.DataFrame()).passed
    small = _sweep(lambda a, k, s: 500)
    c = large_init_kappa_free(small[small["problem.alpha"] < 10])
    assert not c.passed and "no large init" in c.detail


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=-0.5, max_value=0.5))
def test_kappa_slope_rule_matches_the_threshold(exponent):
    c = large_init_kappa_free(_sweep(lambda a, k, s: round(1000 * k ** exponent)))
    # the fitted slope equals exponent up to rounding of the step counts
    if abs(exponent) < 0.095:
        assert c.passed, c.detail
    elif abs(exponent) > 0.105:
        assert not c.passed


# --- alignment ------------------------------------------------------------------------------

def _align_traj(run_id, smax, smin, m_fn, *, steps=300, every=10, r=4):
    rows = []
    for t in range(0, steps + 1, every):
        m = m_fn(t)
        svs = [smax**2] + [smin**2] * (r - 1) if t == 0 else [1.0] * r
        total = sum(svs)
        for i, v in enumerate(svs):
            rows.append((run_id, t, "singular_values", i, v))
        for i in range(r):
            rows.append((run_id, t, "eigen_coordinates", i, (1 - m) * total / r))
    return pd.DataFrame(rows, columns=["run_id", "step", "metric", "index", "value"])


def _alignment_store(large_m, small_m):
    runs, traj = [], []
    for s in SEEDS:
        for a, (smax, smin), m_fn in ((1e-3, (1.3e-3, 0.7e-3), small_m), (100.0, (130.0, 68.0), large_m)):
            r = _row(a, 100.0, s, 700)
            runs.append(r)
            traj.append(_align_traj(r["run_id"], smax, smin, m_fn))
    return _frame(runs), pd.concat(traj, ignore_index=True)


def test_misalignment_from_the_logged_metrics():
    t = _align_traj("r", 2.0, 1.0, lambda t: 0.25)
    m = misalignment_paths(t)["r"]
    assert m.iloc[0] == pytest.approx(0.25) and m.iloc[-1] == pytest.approx(0.25)


def test_alignment_claim_passes_when_large_init_waits_and_small_aligns_fast():
    runs, traj = _alignment_store(lambda t: 0.9 if t < 250 else 1e-4, lambda t: 0.9 if t == 0 else 1e-5)
    c = large_init_aligns_after_shrinking(runs, traj)
    assert c.passed and c.n_total == 5, c.detail


def test_alignment_claim_fails_when_large_init_aligns_early():
    runs, traj = _alignment_store(lambda t: 0.9 if t < 20 else 1e-4, lambda t: 0.9 if t == 0 else 1e-5)
    c = large_init_aligns_after_shrinking(runs, traj)
    assert not c.passed and "t_keep" in c.detail


def test_alignment_claim_fails_when_small_init_is_slow():
    runs, traj = _alignment_store(lambda t: 0.9 if t < 250 else 1e-4, lambda t: 0.9 if t < 200 else 1e-5)
    c = large_init_aligns_after_shrinking(runs, traj)
    assert not c.passed and "small init" in c.detail


def test_alignment_claim_needs_trajectories():
    runs, _ = _alignment_store(lambda t: 0.9, lambda t: 0.0)
    assert not large_init_aligns_after_shrinking(runs, pd.DataFrame(columns=["run_id", "step", "metric", "index",
                                                                             "value"])).passed


# --- the reach rule -----------------------------------------------------------------------------

def _reach_store(out_err, in_steps):
    """lr = 1 (travel 16.7–33) and lr = 10 (167–333) at α = 1e-3 (σ_max ≈ 0) and α = 100
    (σ_max = 130): lr = 1 at α = 100 is out of reach; lr = 10 everywhere within reach."""
    runs, traj = [], []
    for s in SEEDS:
        for lr in (1.0, 10.0):
            for a, smax in ((1e-3, 1.3e-3), (100.0, 130.0)):
                for k in KAPPAS:
                    out = lr * 1.0 / 0.03 < smax - 1
                    steps = None if out else in_steps(lr, a, k)
                    r = _row(a, k, s, steps, schedule="geometric", lr=lr, final=out_err if out else None)
                    runs.append(r)
                    t = _align_traj(r["run_id"], smax, smax / 2, lambda t: 0.5, steps=100)
                    err = out_err if out else 1e-13
                    t = pd.concat([t, pd.DataFrame([(r["run_id"], st, "rel_err", 0, err) for st in range(0, 101, 10)],
                                                   columns=t.columns)], ignore_index=True)
                    traj.append(t)
    return _frame(runs), pd.concat(traj, ignore_index=True)


def test_reach_rule_passes_with_the_bound_and_kappa_free_within_reach():
    # bound at σ_max = 130, S = 33.3: ((96.7)² − 1)/2 ≈ 4675
    runs, traj = _reach_store(1e4, lambda lr, a, k: 950)
    c = geometric_reach_rule(runs, traj)
    assert c.passed and c.n_total == 5, c.detail


def test_reach_rule_fails_below_the_bound():
    runs, traj = _reach_store(10.0, lambda lr, a, k: 950)
    c = geometric_reach_rule(runs, traj)
    assert not c.passed and "reach bound" in c.detail


def test_reach_rule_fails_when_within_reach_is_kappa_dependent():
    runs, traj = _reach_store(1e4, lambda lr, a, k: int(950 * k ** 0.2))
    c = geometric_reach_rule(runs, traj)
    assert not c.passed and "κ-slope" in c.detail


def test_reach_margin_is_theorem1_budget():
    assert THEOREM1_TRAVEL == pytest.approx(0.5 / 0.03)


# --- wiring ---------------------------------------------------------------------------------

def test_claims_are_registered_under_seed_beyond():
    reg = registered_claims()
    for name in ("large_init_kappa_free", "large_init_kappa_dependent_mf", "large_init_aligns_after_shrinking",
                 "geometric_reach_rule"):
        assert reg[name].seed == "beyond"


def test_experiments_are_in_the_beyond_group():
    from muonlab.reproduce import discover

    found = discover()
    for name, order in (("beyond_large_init", 230), ("beyond_large_init_mf", 231)):
        spec = found[name].spec
        assert (spec.seed, spec.group, spec.order) == ("beyond", "beyond", order)


# --- a tiny real store ------------------------------------------------------------------------

def test_tiny_real_store_aligns_after_shrinking_and_obeys_the_reach_bound(tmp_path):
    """Muon on P1 (n = 12, r = 2) from α = 1e-3 and α = 100, plateau and Theorem 1's
    geometric schedule: the large init keeps its random subspace while it shrinks, the
    small one aligns fast, and lr = 1 at α = 100 stays above the reach bound."""
    import muonlab
    from muonlab.engine.experiment import run
    from muonlab.engine.store import ResultStore

    yaml = Path(muonlab.__file__).parent / "experiments" / "beyond" / "beyond_large_init.yaml"
    run(yaml, tmp_path, overrides=["problem.n=12", "problem.r=2", "seeds=1", "steps=1200",
                                   "grid.problem.alpha=[1.0e-3, 100.0]"], workers=1)
    store = ResultStore(tmp_path)
    runs, traj = store.runs(), store.trajectories()
    c = large_init_aligns_after_shrinking(runs, traj)
    assert c.passed, c.detail
    c = geometric_reach_rule(runs, traj)
    assert c.passed, c.detail
    assert large_init_kappa_free(runs).passed
