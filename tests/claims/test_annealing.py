"""Seed 002, claim (b), annealing without κ (muonlab.claims.annealing): per-seed verdicts on
synthetic stores, the helpers, and one tiny real sweep."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from muonlab.claims.annealing import (
    TOP_TOL,
    cost_per_efold,
    gd_rate_bound,
    local_level,
    muon_anneal_kappa_free,
    target_spectrum,
    top_mode_error,
)
from muonlab.problems.targets import spectrum

KAPPAS = [1.0, 3.0, 30.0, 300.0]
SEEDS = range(5)
RANK = 8
BUDGET = 2500


def gd_rate(eta, kappa):
    """GD's local rate at the balanced minimizer: −ln max(|1 − 2ησ*_1|, 1 − 2ησ*_N)."""
    return -math.log(max(abs(1 - 2 * eta), 1 - 2 * eta / kappa))


def _base(rid, opt, k, s, lr, sched, status="ok"):
    return {"run_id": rid, "optimizer.name": opt, "optimizer.lr": lr, "problem.kappa": k, "problem.rank": RANK,
            "problem.spectrum": "logspace", "problem.alpha": 0.1, "schedule.name": sched, "schedule.q": 0.9,
            "schedule.c_lo": 0.5, "schedule.c_hi": 1.0, "stop.target": 1e-8, "max_steps": BUDGET, "seed": s,
            "status": status, "log_every": 10}


def _store(muon_steps=lambda k, s: 180 + s, rate=lambda eta, k, s: gd_rate(eta, k),
           top=lambda eta, k, s: 1.0 if eta < 1 else 1.3, diverged=lambda eta, k, s: eta >= 1.5,
           gd_lrs=(0.9, 1.5), muon_lr=3.0, budget=BUDGET, progress=True):
    rows, traj = [], []
    for k in KAPPAS:
        for s in SEEDS:
            rid = f"muon-{k}-{s}"
            n = muon_steps(k, s)
            rows.append(_base(rid, "muon", k, s, muon_lr, "geometric") | {
                "steps_to_1e-4": None if n is None else n // 2, "steps_to_1e-8": n, "max_steps": budget})
            for eta in gd_lrs:
                rid = f"gd-{eta}-{k}-{s}"
                rho = rate(eta, k, s)
                bad = diverged(eta, k, s)
                stop = budget if bad or rho <= 0 else min(budget, math.ceil(math.log(1e8) / rho))
                steps = np.arange(0, stop + 1, 10)
                rel = np.exp(np.clip(-rho * steps, -700, 0)) if not bad else np.exp(np.minimum(0.05 * steps, 700))
                hits = {f"steps_to_{e:.0e}".replace("e-0", "e-"): (math.ceil(math.log(1 / e) / rho)
                        if not bad and rho > 0 and math.log(1 / e) / rho <= budget else None) for e in (1e-4, 1e-8)}
                rows.append(_base(rid, "gd", k, s, eta, "constant", "diverged" if bad else "ok") | hits
                            | {"max_steps": budget})
                traj.append(pd.DataFrame({"run_id": rid, "step": steps, "metric": "rel_err", "index": 0, "value": rel}))
                if progress:
                    traj.append(pd.DataFrame({"run_id": rid, "step": [0, stop], "metric": "mode_progress",
                                              "index": 0, "value": [0.01, top(eta, k, s)]}))
    df = pd.DataFrame(rows)
    for c in ("steps_to_1e-4", "steps_to_1e-8"):
        df[c] = df[c].astype("Int64")
    return df, pd.concat(traj, ignore_index=True)


# --- helpers -------------------------------------------------------------------------------

def test_target_spectrum_and_local_level():
    row = pd.Series({"problem.spectrum": "logspace", "problem.rank": 8, "problem.kappa": 100.0})
    s = target_spectrum(row)
    assert s[0] == pytest.approx(1.0) and s[-1] == pytest.approx(0.01) and len(s) == 8
    assert local_level(s) == pytest.approx(0.1 * 0.01 / np.linalg.norm(s))
    sym = pd.Series({"problem.spectrum": "logspace", "problem.r_star": 4, "problem.kappa": 10.0})
    assert np.allclose(target_spectrum(sym), spectrum(4, "logspace", 10.0).numpy())
    diag = pd.Series({"problem.spectrum": "diag", "problem.values": "[1, 10, 5]", "problem.kappa": 1.0})
    assert list(target_spectrum(diag)) == [10, 5, 1]


def test_gd_rate_bound_is_the_slowest_curvature_at_the_edge():
    s = spectrum(8, "logspace", 300.0).numpy()
    assert gd_rate_bound(s) == pytest.approx(-math.log(1 - 2.4 / 300))
    assert gd_rate_bound(spectrum(8, "logspace", 1.0).numpy()) == math.inf  # the top curvature limits GD


def test_cost_per_efold_from_levels_then_tail():
    sigma = spectrum(8, "logspace", 30.0).numpy()
    rho = 0.05
    steps = np.arange(0, 400, 10)
    path = (steps, np.exp(-rho * steps))
    both = pd.Series({"steps_to_1e-4": math.ceil(math.log(1e4) / rho), "steps_to_1e-8": math.ceil(math.log(1e8) / rho)})
    c, how = cost_per_efold(both, path, sigma)
    assert how == "levels" and c == pytest.approx(1 / rho, rel=1e-2)
    one = pd.Series({"steps_to_1e-4": math.ceil(math.log(1e4) / rho), "steps_to_1e-8": None})
    c, how = cost_per_efold(one, path, sigma)
    assert how == "tail" and c == pytest.approx(1 / rho, rel=1e-9)
    c, how = cost_per_efold(pd.Series({}), (steps, np.full(len(steps), 0.5)), sigma)
    assert math.isnan(c) and "never below the local level" in how


def test_top_mode_error():
    assert top_mode_error(np.array([0.1, 0.99])) == pytest.approx(0.01)
    assert math.isnan(top_mode_error(None))
    assert top_mode_error(np.array([np.inf])) == math.inf


# --- the claim -------------------------------------------------------------------------------

def test_kappa_free_annealing_and_an_edge_bound_gd_pass():
    c = muon_anneal_kappa_free(*_store())
    assert c.passed, c.detail
    assert (c.n_pass, c.n_total) == (5, 5) and c.unit == "seed"
    assert "GD largest stable η 1: 0.9, 3: 0.9, 30: 0.9, 300: 0.9" in c.detail


@pytest.mark.parametrize("kw, why", [
    ({"muon_steps": lambda k, s: int(180 * k ** 0.2)}, "Muon from η_0 = 3: κ-slope +0.200"),
    ({"muon_steps": lambda k, s: None if k == 300 else 180}, "Muon from η_0 = 3 missed every level at κ = 300"),
    ({"top": lambda eta, k, s: 1.0, "diverged": lambda eta, k, s: False},
     "GD stable at η = 1.5 >= 1.2·η_crit"),
    ({"rate": lambda eta, k, s: 0.2}, "> 1.25·ρ_max"),
    ({"rate": lambda eta, k, s: 0.2, "gd_lrs": (0.9,)}, "no GD step >= 1.2·η_crit"),
    ({"top": lambda eta, k, s: 1.2}, "GD stable at no η < η_crit"),
    ({"progress": False}, "no mode_progress trajectories"),
    ({"budget": 1000}, "budget 1000 < 10× Muon's largest step count"),
    ({"muon_lr": 0.5}, "no annealed Muon run starts above the edge"),
])
def test_the_claim_fails_where_a_part_of_the_statement_fails(kw, why):
    c = muon_anneal_kappa_free(*_store(**kw))
    assert not c.passed and why in c.detail, c.detail


def test_a_gd_run_that_stopped_at_the_target_between_logs_is_stable():
    runs, traj = _store()
    mp = traj["metric"] == "mode_progress"
    only_start = traj[~mp | (traj["step"] == 0)]  # the top mode logged at step 0 only
    gd_ok = runs[(runs["optimizer.name"] == "gd") & (runs["status"] == "ok")]
    assert gd_ok["steps_to_1e-8"].notna().any()
    c = muon_anneal_kappa_free(runs, only_start)
    assert "GD largest stable η 1: 0.9, 3: 0.9" in c.detail
    # …but a run that neither reached the level nor logged a converged top mode is not
    runs2 = runs.copy()
    runs2.loc[runs2["optimizer.name"] == "gd", "steps_to_1e-8"] = pd.NA
    c = muon_anneal_kappa_free(runs2, only_start)
    assert not c.passed and "GD stable at no η < η_crit" in c.detail


def test_gd_rate_independent_of_kappa_fails_on_its_exponent():
    # a κ-free GD within the sharpness bound (fast at every κ would break the bound first)
    c = muon_anneal_kappa_free(*_store(rate=lambda eta, k, s: min(gd_rate(eta, 300.0), 0.005)))
    assert not c.passed and "GD's cost per e-fold ∝ κ^0.00" in c.detail


def test_gd_never_in_its_local_regime_is_not_judged_but_needs_three_kappas():
    c = muon_anneal_kappa_free(*_store(rate=lambda eta, k, s: 1e-6 if k == 300 else gd_rate(eta, k)))
    assert not c.passed and "GD's rate (κ > 1) measured at 2 κ (3, 30)" in c.detail
    assert "5 (seed, κ) points where GD never reached its local regime" in c.detail


def test_an_empty_store_fails():
    c = muon_anneal_kappa_free(pd.DataFrame(), pd.DataFrame())
    assert not c.passed and "no runs" in c.detail


def test_top_tolerance_separates_the_scalar_two_cycle():
    # the scalar reduction of GD on ½(xy − 1)²: converged below the edge, a 2-cycle far from
    # the minimizer just above it (the derivation of TOP_TOL)
    def end(eta):
        x, y = 0.1, 0.12
        for _ in range(3000):
            r = x * y - 1
            x, y = x - eta * r * y, y - eta * r * x
        return abs(x * y - 1)

    assert end(0.9) < 1e-10 < TOP_TOL < 0.1 < end(1.05)


def test_a_tiny_real_sweep_passes(tmp_path):
    from muonlab.engine.experiment import run
    from muonlab.engine.store import ResultStore
    from muonlab.reproduce import discover

    spec = discover()["s002_anneal_kappa"]
    overrides = ["seeds=1", "problem.n_out=4", "problem.n_in=4", "problem.d=4", "steps=2000", "log_every=10",
                 "grid.problem.kappa=[1,3,30,300]",
                 "grid.optimizer=[{name: muon, lr: 3.0, method: svd}, {name: gd, lr: 0.9}, {name: gd, lr: 1.5}]",
                 "grid.schedule=[{name: constant}, {name: geometric, q: 0.9, c_lo: 0.5, c_hi: 1.0}]"]
    run(spec.path, tmp_path, overrides=overrides)
    store = ResultStore(tmp_path)
    c = muon_anneal_kappa_free(store.runs(), store.trajectories())
    assert c.passed, c.detail
    # GD's measured local rate at κ = 30 matches the linearization: 1/ρ = 1/(−ln(1 − 1.8/30))
    assert "30: 16." in c.detail
