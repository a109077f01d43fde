"""Seed 002 dynamics claims: each passes where its property holds and fails where not."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from muonlab.claims.seed002_dynamics import (
    T1,
    T2,
    _planted_spectrum,
    balanced_solution,
    conservation_matrix_form,
    count_plateaus,
    gd_alignment_linear_theory,
    gd_one_plateau_per_mode,
    muon_alignment_rate,
    muon_no_saddle_to_saddle,
    muon_slope_interval,
)
from muonlab.engine.dynamics_metrics import pack_symmetric


def _long(rid: str, metric: str, steps, values) -> pd.DataFrame:
    values = np.asarray(values, float)
    if values.ndim == 1:
        values = values[:, None]
    rows = [(rid, int(s), metric, j, float(v)) for s, row in zip(steps, values) for j, v in enumerate(row)]
    return pd.DataFrame(rows, columns=["run_id", "step", "metric", "index", "value"])


def _staircase(levels, plateau=60, drop=8, tail=200):
    out = [levels[0]] * plateau
    for a, b in itertools.pairwise(levels):
        out += list(np.geomspace(a, b, drop))
        out += [b] * plateau
    return np.array(out + list(np.geomspace(levels[-1], levels[-1] * 1e-8, tail)))


def test_count_plateaus_on_a_staircase_and_a_smooth_curve():
    assert len(count_plateaus(_staircase([40.0, 10.0, 2.5, 0.5]))) == 4
    smooth = 40.0 * np.exp(-np.linspace(0, 20, 600))
    assert count_plateaus(smooth) == []
    assert count_plateaus(np.ones(5)) == []


def _plateau_store(gd_levels_plateau: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, traj = [], []
    for seed in range(5):
        for opt in ("gd", "muon"):
            rid = f"{opt}{seed}"
            runs.append({"run_id": rid, "seed": seed, "optimizer.name": opt, "status": "ok",
                         "problem.values": "[8, 4, 2, 1]"})
            if opt == "gd":
                loss = _staircase([42.5, 10.5, 2.5, 0.5], plateau=gd_levels_plateau)
            else:
                t = np.arange(700.0)
                loss = 42.5 * np.clip(1 - (t / 600) ** 2, 1e-9, None) ** 2
            traj.append(_long(rid, "loss", range(len(loss)), loss))
    return pd.DataFrame(runs), pd.concat(traj)


def test_plateau_claims_pass_and_fail():
    runs, traj = _plateau_store(60)
    assert gd_one_plateau_per_mode(runs, traj).passed
    assert muon_no_saddle_to_saddle(runs, traj).passed
    runs_short, traj_short = _plateau_store(10)  # plateaus too short: GD shows only the first
    assert not gd_one_plateau_per_mode(runs_short, traj_short).passed
    # Muon given GD's staircase fails
    swapped = runs.assign(**{"optimizer.name": runs["optimizer.name"].map({"gd": "muon", "muon": "gd"})})
    assert not muon_no_saddle_to_saddle(swapped, traj).passed
    assert not muon_no_saddle_to_saddle(runs.iloc[:0], traj).passed


def _balance_store(muon_final_small: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, traj = [], []
    for seed in range(5):
        for opt in ("gd", "muon"):
            for alpha, b in ((0.1, 0.05), (1e-4, 1e-5 if opt == "gd" else muon_final_small)):
                rid = f"{opt}{seed}{alpha}"
                runs.append({"run_id": rid, "seed": seed, "optimizer.name": opt, "status": "ok",
                             "problem.alpha": alpha, "final_rel_err": 1e-4})
                traj.append(_long(rid, "balance", [0, 50], [1e-6, b]))
    return pd.DataFrame(runs), pd.concat(traj)


def test_balanced_solution_pass_and_fail():
    assert balanced_solution(*_balance_store(1e-4)).passed
    assert not balanced_solution(*_balance_store(0.02)).passed   # above the 1 % tolerance
    assert not balanced_solution(pd.DataFrame(), pd.DataFrame()).passed


def _conservation_store(muon_rotates: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    runs, traj = [], []
    steps = np.arange(0, 1201, 40)
    for seed in range(5):
        A = rng.standard_normal((4, 4))
        A = A + A.T
        Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
        for opt in ("gd", "muon"):
            rid = f"{opt}{seed}"
            runs.append({"run_id": rid, "seed": seed, "optimizer.name": opt, "status": "ok"})
            own, other = [], []
            for t in steps:
                th = t / 1200 * np.pi / 2 if (opt == "muon" and muon_rotates) else 0.0
                R = np.cos(th) * np.eye(4) + np.sin(th) * (Q - Q.T) / np.linalg.norm(Q - Q.T, 2)
                own.append(pack_symmetric(torch.tensor(R @ A @ R.T)).numpy())
                other.append(pack_symmetric(torch.tensor(A * (1 + t / 100))).numpy())
            names = ("gf_invariant_entries", "muon_invariant_entries")
            mine, theirs = names if opt == "gd" else names[::-1]
            traj += [_long(rid, mine, steps, own), _long(rid, theirs, steps, other)]
    return pd.DataFrame(runs), pd.concat(traj)


def test_conservation_matrix_form_sees_a_rotation_the_norm_misses():
    assert conservation_matrix_form(*_conservation_store(False)).passed
    # a rotating invariant keeps its norm (the norm check would pass) but not its matrix
    assert not conservation_matrix_form(*_conservation_store(True)).passed


def test_pack_symmetric_preserves_the_frobenius_product():
    rng = np.random.default_rng(1)
    A, B = (torch.tensor(x + x.T) for x in rng.standard_normal((2, 5, 5)))
    assert float(pack_symmetric(A) @ pack_symmetric(B)) == pytest.approx(float((A * B).sum()), rel=1e-12)


def _planted_runs(opt: str, lr_ratio: float) -> pd.DataFrame:
    rows = []
    for seed in range(5):
        for d in (16, 64):
            for alpha in (1e-5, 1e-3):
                rows.append({"run_id": f"{opt}{seed}{d}{alpha}", "seed": seed, "optimizer.name": opt,
                             "optimizer.lr": lr_ratio * alpha if opt == "muon" else 0.05, "problem.alpha": alpha,
                             "problem.d": d, "problem.n_out": 64, "problem.rank": 16, "problem.snr": 4.0,
                             "status": "ok"})
    return pd.DataFrame(rows)


def test_muon_alignment_rate_judges_the_slope_against_the_prediction():
    runs = _planted_runs("muon", 0.2)
    traj = []
    steps = np.arange(1, 101)
    for _, r in runs.iterrows():
        lo, hi, _ = muon_slope_interval(_planted_spectrum(r), 64, int(r["problem.d"]), 16)
        traj.append(_long(r["run_id"], "block_misalignment", steps, 0.1 * (steps / T1) ** ((lo + hi) / 2)))
    traj = pd.concat(traj)
    assert muon_alignment_rate(runs, traj).passed
    flat = traj.assign(value=np.where(traj["step"] >= T1, 0.1 * (traj["step"] / T1) ** -0.5, traj["value"]))
    assert not muon_alignment_rate(runs, flat).passed            # slope -0.5: too slow
    assert not muon_alignment_rate(_planted_runs("muon", 2.0), traj).passed  # no η = 0.2α run
    assert T2 == 100


def test_gd_alignment_linear_theory_on_tiny_real_runs():
    from muonlab.claims.seed002_dynamics import gd_linear_misalignment
    from muonlab.problems.two_factor_mf import TwoFactorMF

    runs = _planted_runs("gd", 0.0)
    runs = runs[runs["problem.d"] == 16]
    traj = []
    for _, r in runs.iterrows():
        P = TwoFactorMF(64, 64, 16, seed=[int(r["seed"])], rank=16, spectrum="planted", snr=4.0,
                        alpha=float(r["problem.alpha"]))
        from muonlab.engine.metrics import compute_metrics
        W = P.init_params()
        mus, rels = [], []
        for _ in range(31):
            m = compute_metrics(P, W, ["block_misalignment", "rel_err"])
            mus.append(float(m["block_misalignment"][0]))
            rels.append(float(m["rel_err"][0]))
            _, g, _ = P.evaluate(W)
            W = [w - 0.05 * gw for w, gw in zip(W, g)]
        traj += [_long(r["run_id"], "block_misalignment", range(31), mus),
                 _long(r["run_id"], "rel_err", range(31), rels)]
    traj = pd.concat(traj)
    assert gd_alignment_linear_theory(runs, traj).passed
    s = _planted_spectrum(runs.iloc[0])
    assert gd_linear_misalignment(s, np.array([0.0]), 0.05, 16, 64, 1e-5)[0] > 0.5
    wrong = traj.assign(value=np.where(traj["metric"] == "block_misalignment", traj["value"] * 10, traj["value"]))
    assert not gd_alignment_linear_theory(runs, wrong).passed
