"""Issue 15 item 7 (muonlab.claims.beyond_t_beta): T_β's growth rate against β and the β*
where the equal-rate law breaks — the scalar model, and each claim passing where its
property holds and failing where it does not (synthetic trajectories from the scalar
model; one tiny real run)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.claims.beyond_t_beta import (
    RATE_RATIO_TOL,
    _crossing,
    predicted_beta_star,
    scalar_growth,
    t_beta_equal_rate_breaks_at_beta_star,
    t_beta_generic_init_only_slower,
    t_beta_growth_follows_scalar_law,
    t_beta_two_cycle_floor,
    two_cycle_floor,
    universal_slope,
)

ETA = 0.01
VALUES = [1.0, 0.5, 0.25]
BETAS = [0.0, 1e-5, 1e-4, 1e-3, 3e-3]  # β* ≈ 1.9e-4 for σ*_min = 0.25


# ----------------------------------------------------------------------------- the model


def test_msign_slope_is_one() -> None:
    slope, _ = scalar_growth(0.5, 0.0, ETA)
    assert slope == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(s=st.floats(0.1, 4.0), u=st.floats(1e-4, 1.0), c=st.sampled_from([0.25, 4.0]))
def test_slope_depends_on_beta_over_sigma_cubed(s: float, u: float, c: float) -> None:
    """x = √σ*·y, τ = √σ*·t: (σ*, β, η) and (cσ*, c³β, √c·η) give the same window slope."""
    a = scalar_growth(s, u * s**3, ETA)[0]
    b = scalar_growth(c * s, u * (c * s) ** 3, ETA * math.sqrt(c))[0]
    assert a == pytest.approx(b, rel=1e-9)


def test_universal_curve_falls_and_u_star() -> None:
    us = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    s = [universal_slope(u, dt=1e-3) for u in us]
    assert all(x > y for x, y in itertools.pairwise(s))
    assert s[0] > 0.999 and s[-1] < 0.5
    # u* (S = 1/1.05) lies between 0.01 and 0.02
    assert universal_slope(0.01, dt=1e-3) > 1 / RATE_RATIO_TOL > universal_slope(0.02, dt=1e-3)


def test_beta_star_scales_as_cube() -> None:
    b1 = predicted_beta_star((4.0, 2.0, 1.0, 0.5, 0.25), ETA)
    b2 = predicted_beta_star((8.0, 4.0, 2.0, 1.0, 0.5), ETA)
    assert b2 / b1 == pytest.approx(8.0, rel=0.05)
    assert b1 / 0.25**3 == pytest.approx(0.0124, rel=0.05)


def test_crossing_interpolates_in_log_log() -> None:
    # ratio − 1 = 0.05 at β = 1e-4 exactly when ratio − 1 = 500·β
    pts = [(b, 1 + 500 * b) for b in (1e-6, 1e-5, 1e-3)]
    assert _crossing(pts) == pytest.approx(1e-4, rel=1e-6)
    assert math.isnan(_crossing([(1e-6, 1.001)]))
    assert _crossing([(1e-6, 2.0)]) == 0.0


# ----------------------------------------------------------------------------- synthetic stores


def _path(s: float, beta: float, steps: int, speed: float = 1.0, x0: float = 1e-3) -> np.ndarray:
    """c = x² along the scalar recursion (speed scales each step: a faster or slower law)."""
    x, out = x0, [x0 * x0]
    for _ in range(steps):
        g = (s - x * x) * x
        x += speed * ETA * (g / math.sqrt(g * g + beta) if beta > 0 else math.copysign(1.0, g))
        out.append(x * x)
    return np.asarray(out)


def _store(kind: str = "symmetric_mf", init: str | None = "aligned", seeds: int = 2, steps: int = 700,
           speed: float = 1.0, equal: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs and trajectories whose modes follow the scalar T_β law (``equal``: the msign
    law at every β, i.e. no slowdown; ``speed``: every step scaled)."""
    rows, traj = [], []
    lam = np.logspace(0, -math.log10(4.0), 3)
    sigma = VALUES if kind == "lora_mf" else list(lam)
    for seed in range(seeds):
        for beta in BETAS:
            rid = f"{kind}-{init}-{beta}-{seed}"
            row = {"run_id": rid, "seed": seed, "status": "ok", "optimizer.lr": ETA,
                   "optimizer.name": "specgd" if beta == 0 else "specgd_beta",
                   "optimizer.beta": math.nan if beta == 0 else beta, "problem.kind": kind, "problem.r": 3,
                   "problem.init": init}
            if kind == "lora_mf":
                row["problem.values"] = json.dumps(VALUES)
            else:
                row.update({"problem.r_star": 3, "problem.kappa": 4.0, "problem.spectrum": "logspace"})
            rows.append(row)
            for i, s in enumerate(sigma):
                c = _path(s, 0.0 if equal else beta, steps, speed)
                traj.append(pd.DataFrame({"run_id": rid, "metric": "target_mode_values" if kind == "lora_mf"
                                          else "eigen_coordinates", "step": np.arange(len(c)), "index": i,
                                          "value": c}))
    return pd.DataFrame(rows), pd.concat(traj, ignore_index=True)


def test_claims_pass_on_the_scalar_law() -> None:
    runs, traj = _store()
    a = t_beta_growth_follows_scalar_law(runs, traj)
    b = t_beta_equal_rate_breaks_at_beta_star(runs, traj)
    assert a.passed, a.detail
    assert b.passed, b.detail
    assert (a.n_pass, a.n_total) == (2, 2)


def test_claims_fail_when_growth_stays_equal() -> None:
    """No slowdown (msign's law at every β): the slopes miss the prediction above β*, and
    the equal-rate rule never breaks."""
    runs, traj = _store(equal=True)
    assert not t_beta_growth_follows_scalar_law(runs, traj).passed
    b = t_beta_equal_rate_breaks_at_beta_star(runs, traj)
    assert not b.passed and "keeps the rule" in b.detail


def test_scalar_law_fails_when_slower_by_five_percent() -> None:
    runs, traj = _store(speed=0.95)
    assert not t_beta_growth_follows_scalar_law(runs, traj).passed


def test_generic_init_claim() -> None:
    slower_runs, slower = _store(kind="symmetric_mf", init="gaussian", speed=0.97)
    c = t_beta_generic_init_only_slower(slower_runs, slower)
    assert c.passed, c.detail
    faster_runs, faster = _store(kind="symmetric_mf", init="gaussian", speed=1.05)
    assert not t_beta_generic_init_only_slower(faster_runs, faster).passed
    # and the aligned-init claims ignore generic-init runs
    assert not t_beta_growth_follows_scalar_law(slower_runs, slower).passed


def test_p4_lora_init_is_judged_as_generic() -> None:
    runs, traj = _store(kind="lora_mf", init="zero_a", seeds=1)
    c = t_beta_generic_init_only_slower(runs, traj)
    assert c.passed, c.detail
    a = t_beta_growth_follows_scalar_law(runs, traj)
    assert not a.passed and "no runs from an aligned init" in a.detail
    runs, traj = _store(kind="lora_mf", init="zero_a", seeds=1, speed=1.05)
    assert not t_beta_generic_init_only_slower(runs, traj).passed


def test_empty_store_fails() -> None:
    empty = pd.DataFrame()
    for fn in (t_beta_growth_follows_scalar_law, t_beta_equal_rate_breaks_at_beta_star,
               t_beta_generic_init_only_slower):
        c = fn(empty, empty)
        assert not c.passed and "no runs" in c.detail


# ----------------------------------------------------------------------------- a real run


def test_real_p1_aligned_run_matches_scalar_model(tmp_path) -> None:
    """One P1 run from the aligned init (X_0 = α·U Oᵀ, every x_i = α) under T_β: its
    eigen-coordinates follow the scalar recursion from x_0 = α step for step."""
    from muonlab.config.grid import ExperimentConfig
    from muonlab.engine.experiment import run
    from muonlab.engine.store import ResultStore

    beta = 1e-3
    cfg = ExperimentConfig.model_validate({
        "name": "tb", "problem": {"kind": "symmetric_mf", "n": 12, "r": 3, "kappa": 4, "init": "aligned",
                                  "alpha": 1e-3},
        "optimizer": {"name": "specgd_beta", "lr": ETA, "beta": beta}, "schedule": {"name": "constant"},
        "steps": 150, "dtype": "float64", "seeds": 1, "metrics": ["eigen_coordinates"], "log_every": 1,
        "stop": {"target": 0.0}})
    run(cfg, tmp_path / "s")
    store = ResultStore(tmp_path / "s")
    t = store.trajectories(metrics="eigen_coordinates")
    lam = np.logspace(0, -math.log10(4.0), 3)
    for i, s in enumerate(lam):
        got = t[t["index"] == i].sort_values("step")["value"].to_numpy()
        want = _path(float(s), beta, len(got) - 1, x0=1e-3)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-14)


# ----------------------------------------------------------------------------- the 2-cycle floor


@settings(max_examples=10, deadline=None)
@given(s=st.floats(0.5, 4.0), frac=st.floats(0.1, 0.8))
def test_two_cycle_floor_is_the_scalar_maps_limit(s: float, frac: float) -> None:
    """β = frac·(ησ*)²: the scalar map settles on x = √σ* ± d with ½(x² − σ*)² averaging
    to F (P4's ½‖·‖²), and to F/2 under P1's ¼‖·‖²."""
    beta = frac * (ETA * s) ** 2
    c = _path(s, beta, 4000 + int(40 / frac), x0=0.5 * math.sqrt(s))
    gap = 0.5 * (c[-2:] - s) ** 2
    sig = np.array([s])
    assert float(gap.mean()) == pytest.approx(two_cycle_floor(sig, 1, beta, ETA, "lora_mf"), rel=0.03)
    assert two_cycle_floor(sig, 1, beta, ETA, "symmetric_mf") == pytest.approx(
        0.5 * two_cycle_floor(sig, 1, beta, ETA, "lora_mf"))
    assert two_cycle_floor(sig, 1, 1.01 * (ETA * s) ** 2, ETA, "lora_mf") == 0.0


def _floor_store(scale: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    sigma = np.array([4.0, 2.0, 1.0])
    rows, traj = [], []
    for seed in range(2):
        for beta in (1e-4, 1e-3, 3e-3):
            rid = f"f-{beta}-{seed}"
            rows.append({"run_id": rid, "seed": seed, "status": "ok", "optimizer.lr": ETA,
                         "optimizer.name": "specgd_beta", "optimizer.beta": beta, "problem.kind": "lora_mf",
                         "problem.r": 3, "problem.init": "zero_a", "problem.values": json.dumps(list(sigma))})
            floor = two_cycle_floor(sigma, 3, beta, ETA, "lora_mf")
            end = scale * floor if floor > 0 else 1e-20
            gap = np.geomspace(10.0, end, 1000)
            traj.append(pd.DataFrame({"run_id": rid, "metric": "dist_to_opt", "step": np.arange(1000), "index": 0,
                                      "value": gap}))
    return pd.DataFrame(rows), pd.concat(traj, ignore_index=True)


def test_floor_claim_passes_on_the_floor_and_fails_off_it() -> None:
    runs, traj = _floor_store(1.0)
    c = t_beta_two_cycle_floor(runs, traj)
    assert c.passed, c.detail
    runs, traj = _floor_store(0.5)
    assert not t_beta_two_cycle_floor(runs, traj).passed
    empty = pd.DataFrame()
    assert not t_beta_two_cycle_floor(empty, empty).passed
