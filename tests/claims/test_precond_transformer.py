"""Claims of seed 001's Fig. 3 (preconditioners) and App. D (transformer on sampled prompts):
each passes where its property holds and fails where it does not (synthetic stores)."""

from __future__ import annotations

import pandas as pd

from muonlab.claims.preconditioners import muon_scaledgd_similar, preconditioners_not_diagonal
from muonlab.claims.transformer import icl_transformer_floor_decreases, icl_transformer_kappa_free


def _precond_store(cos: float, offdiag: float, cos_sign: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, rows = [], []
    for seed in range(5):
        for kappa in (10.0, 100.0):
            rid = f"r{seed}_{kappa:g}"
            runs.append({"run_id": rid, "seed": seed, "problem.kappa": kappa, "optimizer.name": "muon", "status": "ok"})
            for step in range(0, 300, 10):
                rel = 10 ** (-step / 30)
                vals = {"rel_err": rel, "precond_cos_update": cos if rel <= 0.1 else 0.5,
                        "precond_cos_matrix": 0.9, "precond_offdiag_muon": offdiag,
                        "precond_offdiag_scaledgd": offdiag, "precond_cos_sign": cos_sign}
                rows += [{"run_id": rid, "step": step, "metric": m, "index": 0, "value": v} for m, v in vals.items()]
    return pd.DataFrame(runs), pd.DataFrame(rows)


def test_preconditioner_claims_pass_and_fail() -> None:
    runs, traj = _precond_store(0.9, 0.5, 0.5)
    assert muon_scaledgd_similar(runs, traj).passed
    assert preconditioners_not_diagonal(runs, traj).passed
    runs, traj = _precond_store(0.6, 0.5, 0.5)
    assert not muon_scaledgd_similar(runs, traj).passed
    runs, traj = _precond_store(0.9, 0.1, 0.5)  # diagonal preconditioners
    assert not preconditioners_not_diagonal(runs, traj).passed
    runs, traj = _precond_store(0.9, 0.5, 0.85)  # Muon as close to sign(∇f) as to ScaledGD
    assert not preconditioners_not_diagonal(runs, traj).passed
    assert not muon_scaledgd_similar(runs.iloc[0:0], traj.iloc[0:0]).passed


def _icl_store(steps_by_kappa: dict[float, float], floor: dict[float, list[float]]
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    ps = [30, 100, 300]
    runs, rows = [], []
    for seed in range(5):
        for kappa in steps_by_kappa:
            for i, p in enumerate(ps):
                rid = f"{seed}_{kappa:g}_{p}"
                fin = floor[kappa][i]
                runs.append({"run_id": rid, "seed": seed, "problem.kappa": kappa, "problem.prompts": p,
                             "optimizer.name": "muon", "optimizer.lr": kappa, "status": "ok", "final_rel_err": fin,
                             "schedule.q": 0.95, "max_steps": 300})
                hit = steps_by_kappa[kappa]
                for step in range(0, 301, 10):
                    v = 1.0 if step < hit else fin
                    rows.append({"run_id": rid, "step": step, "metric": "rel_err", "index": 0, "value": v})
    return pd.DataFrame(runs), pd.DataFrame(rows)


def test_transformer_claims_pass_and_fail() -> None:
    good = {3.0: [1e-7] * 3, 30.0: [0.5, 1e-3, 1e-7]}
    runs, traj = _icl_store({3.0: 200, 30.0: 200}, good)
    assert icl_transformer_kappa_free(runs, traj).passed
    assert icl_transformer_floor_decreases(runs).passed
    runs, traj = _icl_store({3.0: 100, 30.0: 250}, good)  # steps grow with κ
    assert not icl_transformer_kappa_free(runs, traj).passed
    stuck = {3.0: [1e-7] * 3, 30.0: [0.5, 0.5, 0.5]}  # flat floor, above the level at the largest P
    runs, traj = _icl_store({3.0: 200, 30.0: 200}, stuck)
    assert not icl_transformer_kappa_free(runs, traj).passed
    assert not icl_transformer_floor_decreases(runs).passed
    assert not icl_transformer_floor_decreases(runs.iloc[0:0]).passed
