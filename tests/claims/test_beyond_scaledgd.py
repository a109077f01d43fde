"""Issue 15 item 5 (Muon ≈ ScaledGD): each claim passes where its property holds and fails where it
does not (synthetic stores), and the uniform-residual prediction is the stated number."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from muonlab.claims.beyond_scaledgd import (
    muon_scaledgd_coincide_to_15_not_5,
    muon_scaledgd_cos_closed_form,
    muon_scaledgd_differ_in_growth,
    muon_scaledgd_local_cos_scale_free,
    muon_scaledgd_local_cos_uniform_model,
    uniform_residual_cos,
    uniform_residual_share,
)

ALL = (muon_scaledgd_cos_closed_form, muon_scaledgd_local_cos_uniform_model, muon_scaledgd_local_cos_scale_free,
       muon_scaledgd_coincide_to_15_not_5, muon_scaledgd_differ_in_growth)


def _store(*, local_cos=None, growth_cos: float = 0.7, gap: float = 0.0, rho: float = 1e-6,
           near_shift: float = 0.0, steps: int = 300, r: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs for 5 seeds × κ ∈ {10, 1000} × α ∈ {1e-3, 1}: the worst mode's residual falls from 10 to
    1e-12 over ``steps``; local cosines drawn from the uniform-residual model (or ``local_cos``),
    ``near_shift`` added where every mode is within 1e-6; growth steps (rel. err > 0.1) at ``growth_cos``."""
    rng = np.random.default_rng(1)
    res = 10 ** (1 - 13 * np.arange(steps) / steps)
    runs, frames = [], []
    for seed in range(5):
        for kappa in (10.0, 1000.0):
            for alpha in (1e-3, 1.0):
                rid = f"{seed}_{kappa:g}_{alpha:g}"
                runs.append({"run_id": rid, "seed": seed, "problem.kappa": kappa, "problem.alpha": alpha,
                             "problem.r": r, "optimizer.name": "muon", "status": "ok"})
                u = rng.random((steps, r))
                cos = u.sum(1) / (math.sqrt(r) * np.linalg.norm(u, axis=1)) if local_cos is None \
                    else np.full(steps, local_cos)
                cos = np.where(res > 0.1, growth_cos, cos)
                cos = np.where(res <= 1e-6, np.minimum(1.0, cos + near_shift), cos)
                vals = {"rel_err": res / 3, "precond_cos_update": cos, "scaledgd_cos_closed_form": cos - gap,
                        "scaledgd_misalignment": np.full(steps, rho), "scaledgd_mode_residual": res}
                for m, v in vals.items():
                    frames.append(pd.DataFrame({"run_id": rid, "step": np.arange(steps), "metric": m, "index": 0,
                                                "value": v}))
    return pd.DataFrame(runs), pd.concat(frames, ignore_index=True)


def test_uniform_residual_prediction() -> None:
    assert abs(uniform_residual_cos(4) - 0.8925) < 0.003
    assert abs(uniform_residual_cos(10) - 0.8755) < 0.003
    assert abs(uniform_residual_cos(400) - math.sqrt(3) / 2) < 0.003  # the r → ∞ limit
    assert 0.6 < uniform_residual_share(4, 0.85) < 0.8 and 0.1 < uniform_residual_share(4, 0.95) < 0.3


def test_all_pass_on_the_predicted_behaviour() -> None:
    runs, traj = _store()
    for fn in ALL:
        c = fn(runs, traj)
        assert c.passed and c.n_total == 5, (fn.__name__, c.detail)


def test_closed_form_claim_fails_off_the_formula_or_when_rarely_aligned() -> None:
    runs, traj = _store(gap=0.05)
    assert not muon_scaledgd_cos_closed_form(runs, traj).passed
    runs, traj = _store(rho=0.5)  # no step aligned: nothing to judge is a failure
    assert not muon_scaledgd_cos_closed_form(runs, traj).passed


def test_local_claim_fails_when_the_cosine_tends_to_one_or_sits_elsewhere() -> None:
    runs, traj = _store(near_shift=0.1)  # Muon → ScaledGD near X*
    c = muon_scaledgd_local_cos_scale_free(runs, traj)
    assert not c.passed and "near" in c.detail
    runs, traj = _store(local_cos=0.75)
    assert not muon_scaledgd_local_cos_uniform_model(runs, traj).passed
    assert muon_scaledgd_local_cos_scale_free(runs, traj).passed


def test_coincide_claim_fails_when_they_coincide_to_5_or_not_to_15() -> None:
    runs, traj = _store(local_cos=0.97)
    assert not muon_scaledgd_coincide_to_15_not_5(runs, traj).passed
    runs, traj = _store(local_cos=0.8)
    assert not muon_scaledgd_coincide_to_15_not_5(runs, traj).passed


def test_growth_claim_fails_when_growth_is_similar() -> None:
    runs, traj = _store(growth_cos=0.9)
    assert not muon_scaledgd_differ_in_growth(runs, traj).passed


def test_empty_store_fails_with_a_reason() -> None:
    runs, traj = _store(steps=5)
    for fn in ALL:
        c = fn(runs.iloc[0:0], traj.iloc[0:0])
        assert not c.passed and "FAIL" in c.detail
    # too few local steps to judge
    assert not muon_scaledgd_local_cos_uniform_model(runs, traj).passed
    assert not muon_scaledgd_local_cos_scale_free(runs, traj).passed
