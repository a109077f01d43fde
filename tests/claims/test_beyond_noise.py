"""Claims of issue 15 [beyond], item 2 (muonlab.claims.beyond_noise), on synthetic stores
whose floors follow (or break) the derived laws."""

import math

import numpy as np
import pandas as pd
import pytest

from muonlab.claims.beyond_noise import (
    adam_noise_floor_sqrt,
    floor_cap,
    muon_kappa_free_under_noise,
    muon_momentum_raises_floor,
    noise_floor_slopes,
    noise_window,
)

SIGMAS = [0.0, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
STEPS = 300


def _law(variant, sigma, seed, slopes):
    """The floor: a deterministic part f0 and a noise part A·σ^slope added in quadrature."""
    f0, A, _ = {"gd": (0.0, 3.5, 1), "muon": (4.7e-3, 0.26, 0), "muon μ=0.9": (6e-3, 0.26 * 2.0, 0.9),
                "signgd": (6e-3, 0.3, 0), "adam": (1e-4, 0.23, 0)}[variant]
    s = slopes.get(variant.split()[0] if "μ" not in variant else "muon", 0.5)
    A *= 1e-2 ** ((1.0 if variant == "gd" else 0.5) - s)  # the same floor at σ = 1e-2 for any slope
    jitter = 1 + 0.02 * math.sin(7 * seed + 100 * sigma)
    return math.sqrt(f0**2 + (A * sigma**s * jitter) ** 2) if sigma > 0 else max(f0, 1e-13)


def _floor_store(slopes=None, seeds=5, variants=("gd", "muon", "muon μ=0.9", "signgd", "adam")):
    slopes = {"gd": 1.0, "muon": 0.5, "signgd": 0.5, "adam": 0.5, **(slopes or {})}
    rows, traj = [], []
    for seed in range(seeds):
        for v in variants:
            name, mu = (v.split()[0], float(v.split("=")[1])) if "μ" in v else (v, 0.0)
            for sigma in SIGMAS:
                rid = f"{v}-{sigma}-{seed}"
                f = _law(v, sigma, seed, slopes)
                rows.append({"run_id": rid, "seed": seed, "optimizer.name": name, "optimizer.momentum": mu,
                             "gradient_noise.sigma": sigma, "problem.kappa": 10.0, "problem.r_star": 4,
                             "problem.r": 4, "max_steps": STEPS, "status": "ok", "final_rel_err": f})
                for step in range(0, STEPS + 1, 10):
                    traj.append({"run_id": rid, "step": step, "metric": "rel_err", "index": 0,
                                 "value": f * (1 + 50 * math.exp(-step / 20))})
    return pd.DataFrame(rows), pd.DataFrame(traj)


def test_floor_cap_is_half_the_smallest_mode_share():
    runs = pd.DataFrame({"problem.kappa": [10.0], "problem.r_star": [4], "problem.r": [4]})
    lam = np.logspace(0, -1, 4)
    assert floor_cap(runs) == pytest.approx(0.5 * lam[-1] / np.linalg.norm(lam))


def test_noise_window_subtracts_the_deterministic_floor():
    win, why = noise_window({0.0: 3e-3, 1e-3: 4e-3, 2e-3: 5e-3, 5e-3: 1e-2, 1e-2: 2e-2, 2e-2: 0.5}, 0.044)
    assert why is None and set(win) == {2e-3, 5e-3, 1e-2}  # 1e-3 below 1.5·f(0); 2e-2 above the cap
    assert win[2e-3] == 5e-3
    _, why = noise_window({0.0: 1e-2, 1e-3: 1.1e-2}, 0.044)
    assert "need >= 3" in why


def test_slopes_pass_on_the_derived_laws():
    runs, traj = _floor_store()
    c = noise_floor_slopes(runs, traj)
    assert c.passed and c.n_pass == c.n_total == 5, c.detail
    assert adam_noise_floor_sqrt(runs, traj).passed


def test_slopes_fail_when_muon_floor_grows_like_gd():
    runs, traj = _floor_store({"muon": 1.0})
    c = noise_floor_slopes(runs, traj)
    assert not c.passed and "muon slope 0.8" in c.detail


def test_adam_fails_on_a_steeper_floor():
    runs, traj = _floor_store({"adam": 0.75})
    assert not adam_noise_floor_sqrt(runs, traj).passed
    assert noise_floor_slopes(runs, traj).passed  # GD, Muon, SignGD unaffected


def test_momentum_claim_passes_at_the_predicted_ratio_and_fails_below_one():
    runs, traj = _floor_store()
    c = muon_momentum_raises_floor(runs, traj)
    assert c.passed, c.detail
    runs2 = runs.copy()
    low = (runs2["optimizer.momentum"] > 0) & (runs2["gradient_noise.sigma"] > 0)
    ids = set(runs2.loc[low, "run_id"])
    traj2 = traj.copy()
    traj2.loc[traj2["run_id"].isin(ids), "value"] *= 0.4  # momentum LOWERS the floor: ratio 0.8
    c2 = muon_momentum_raises_floor(runs2, traj2)
    assert not c2.passed and "ratio 0.7" in c2.detail


def test_floor_claims_fail_on_empty_or_incomplete_stores():
    empty = pd.DataFrame()
    for fn in (noise_floor_slopes, adam_noise_floor_sqrt, muon_momentum_raises_floor):
        assert not fn(empty, empty).passed
    runs, traj = _floor_store(variants=("gd", "muon"))
    assert "no runs of signgd" in noise_floor_slopes(runs, traj).detail
    assert not muon_momentum_raises_floor(runs, traj).passed


KAPPAS = [1.0, 10.0, 100.0, 1000.0, 10000.0]
NOISES = [({}, 1e-4), ({"gradient_noise.scale": "absolute", "gradient_noise.sigma": 1e-4}, 1e-2),
          ({"gradient_noise.scale": "relative", "gradient_noise.sigma": 0.5}, 1e-2),
          ({"problem.entry_fraction": 0.1}, 1e-3)]


def _kappa_store(steps_fn, seeds=5):
    rows, traj = [], []
    for seed in range(seeds):
        for i, (cols, eps) in enumerate(NOISES):
            for kappa in KAPPAS:
                rid = f"{i}-{kappa}-{seed}"
                rows.append({"run_id": rid, "seed": seed, "optimizer.name": "muon", "problem.kappa": kappa,
                             "gradient_noise.scale": None, "gradient_noise.sigma": None,
                             "problem.entry_fraction": None, **cols})
                hit = steps_fn(i, kappa, seed)
                for step in range(0, 600, 2):
                    value = 1.0 if hit is None or step < hit else eps / 2
                    traj.append({"run_id": rid, "step": step, "metric": "rel_err", "index": 0, "value": value})
    return pd.DataFrame(rows), pd.DataFrame(traj)


def test_kappa_claim_passes_when_steps_are_flat():
    runs, traj = _kappa_store(lambda i, k, s: 100 + 10 * i + 2 * s)
    c = muon_kappa_free_under_noise(runs, traj)
    assert c.passed and c.n_total == 5, c.detail


def test_kappa_claim_fails_on_growth_or_a_missed_level():
    runs, traj = _kappa_store(lambda i, k, s: int(100 * k ** (0.15 if i == 2 else 0.0)))
    c = muon_kappa_free_under_noise(runs, traj)
    assert not c.passed and "relative σ=0.5: κ-slope" in c.detail
    runs, traj = _kappa_store(lambda i, k, s: None if (i == 3 and k == 1e4 and s == 1) else 100)
    c = muon_kappa_free_under_noise(runs, traj)
    assert not c.passed and c.n_pass == 4 and "not reached at κ=10000" in c.detail
    assert not muon_kappa_free_under_noise(pd.DataFrame(), pd.DataFrame()).passed


def test_tolerated_sigma_is_the_last_sigma_before_the_first_failure():
    from muonlab.claims.beyond_noise import tolerated_sigma

    assert tolerated_sigma({0.0: 1e-4, 1e-3: 0.1, 1e-2: 0.2, 1e-1: 0.5, 1.0: 0.1}) == 1e-2
    assert tolerated_sigma({0.0: 1e-4, 1e-3: 0.5}) is None
    assert tolerated_sigma({0.0: 1e-4, 1e-3: 1e-3}) == 1e-3
    assert tolerated_sigma({0.0: math.inf, 1e-3: 1e-3}) is None


def _icl_store(exponent, seeds=5, at10=0.2):
    sigmas = [0.0] + [10.0 ** (e / 2) for e in range(-22, 1)]
    rows = []
    for seed in range(seeds):
        for kappa in (10.0, 100.0, 1000.0):
            star = at10 * (kappa / 10) ** exponent * (1.5 if seed % 2 else 1.0)
            for s in sigmas:
                rows.append({"run_id": f"{seed}-{kappa}-{s}", "seed": seed, "optimizer.name": "muon",
                             "problem.kappa": kappa, "gradient_noise.sigma": s, "status": "ok",
                             "final_rel_err": 1e-4 if s <= star else 1.0})
    return pd.DataFrame(rows)


def test_icl_tolerance_claim_passes_on_kappa_cubed_and_fails_otherwise():
    from muonlab.claims.beyond_noise import icl_noise_tolerance_kappa3

    c = icl_noise_tolerance_kappa3(_icl_store(-3.0))
    assert c.passed and c.n_total == 5, c.detail
    c = icl_noise_tolerance_kappa3(_icl_store(-1.0))
    assert not c.passed and "slope -1.0" in c.detail
    c = icl_noise_tolerance_kappa3(_icl_store(-6.0))  # κ = 1000 tolerates no σ of the grid
    assert not c.passed and "grid too coarse" in c.detail
    c = icl_noise_tolerance_kappa3(_icl_store(0.0, at10=10.0))  # nothing fails: the grid is too narrow
    assert not c.passed and "grid too narrow" in c.detail
    assert not icl_noise_tolerance_kappa3(pd.DataFrame()).passed
