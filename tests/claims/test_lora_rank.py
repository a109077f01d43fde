"""Seed 000 Fig. 1 / E.2 claims (muonlab.claims.lora_rank) on synthetic fine-tuning stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from muonlab.claims import evaluate_experiment
from muonlab.claims.lora_rank import FULL_RANK_FRACTION, RANK_GAP, lora_muon_full_rank, lora_muon_rank_above_adamw

R = 8
MODULES = [f"base_model.model.bert.encoder.layer.{i}.attention.self.{q}" for i in range(3) for q in ("query", "value")]


def _erank(s: np.ndarray) -> float:
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _tables(spectra: dict[tuple[str, int], list[np.ndarray]], steps: int = 20, status: dict | None = None):
    """Runs and trajectories: each (optimizer, seed) run ends with the given spectrum per
    adapter (earlier steps: scaled-down copies)."""
    rows, traj = [], []
    for (opt, seed), specs in spectra.items():
        rid = f"{opt}-{seed}"
        st = (status or {}).get((opt, seed), "ok")
        rows.append({"run_id": rid, "optimizer": opt, "seed": seed, "rank": R, "target_modules": "query,value",
                     "status": st, "steps": steps, "config_hash": "h"})
        for m, s in zip(MODULES, specs):
            for step in (1, steps // 2, steps):
                v = s * step / steps
                traj.append({"run_id": rid, "step": step, "metric": f"{m}:effective_rank", "index": 0,
                             "value": _erank(v)})
                traj += [{"run_id": rid, "step": step, "metric": f"{m}:singular_values", "index": i,
                          "value": float(x)} for i, x in enumerate(v)]
    return pd.DataFrame(rows), pd.DataFrame(traj)


UNIFORM = np.linspace(2.0, 1.0, R)  # σ1/σ8 = 2: erank 7.81
SKEWED = np.array([10.0, 4.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.01])  # erank ≈ 3.3


def _store(muon, adamw, seeds=(0, 1, 2)):
    return {**{("muon", s): [muon] * len(MODULES) for s in seeds},
            **{("adamw", s): [adamw] * len(MODULES) for s in seeds}}


def test_both_claims_pass_when_muon_is_uniform_and_adamw_skewed():
    runs, traj = _tables(_store(UNIFORM, SKEWED))
    for fn in (lora_muon_full_rank, lora_muon_rank_above_adamw):
        c = fn(runs, traj)
        assert c.passed, c.detail
        assert (c.n_pass, c.n_total, c.unit, c.seed) == (3, 3, "seed", "000")
    assert "Measured" in lora_muon_full_rank(runs, traj).detail


def test_full_rank_fails_for_the_seed_with_one_missing_direction():
    spectra = _store(UNIFORM, SKEWED)
    dead = np.array([1.0] * (R - 1) + [0.0])  # erank exactly r - 1 = 7 < 0.9·8
    assert _erank(dead) < FULL_RANK_FRACTION * R
    spectra[("muon", 1)] = [UNIFORM] * (len(MODULES) - 1) + [dead]
    c = lora_muon_full_rank(*_tables(spectra))
    assert not c.passed and (c.n_pass, c.n_total) == (2, 3) and c.failing_seeds == ("1",)
    assert "layer.2.attention.self.value" in c.detail and "7.00" in c.detail


def test_gap_fails_when_adamw_is_as_uniform_as_muon():
    c = lora_muon_rank_above_adamw(*_tables(_store(UNIFORM, UNIFORM)))
    assert not c.passed and c.n_pass == 0 and "gap 0.00" in c.detail
    # AdamW missing one whole direction (erank 7) is less than one direction below Muon's 7.81
    almost = np.array([1.0] * (R - 1) + [0.0])
    gap = _erank(UNIFORM) - _erank(almost)
    assert 0 < gap < RANK_GAP
    assert not lora_muon_rank_above_adamw(*_tables(_store(UNIFORM, almost))).passed


def test_missing_failed_or_truncated_runs_fail_with_a_reason():
    spectra = _store(UNIFORM, SKEWED)
    del spectra[("adamw", 2)]
    c = lora_muon_rank_above_adamw(*_tables(spectra))
    assert not c.passed and c.failing_seeds == ("2",) and "no adamw run" in c.detail
    runs, traj = _tables(_store(UNIFORM, SKEWED), status={("muon", 0): "failed"})
    c = lora_muon_full_rank(runs, traj)
    assert not c.passed and "run failed" in c.detail
    runs, traj = _tables(_store(UNIFORM, SKEWED))
    runs.loc[runs["run_id"] == "muon-0", "steps"] = 40  # monitor stopped before the end
    c = lora_muon_full_rank(runs, traj)
    assert not c.passed and "last record at step 20, run has 40 steps" in c.detail
    c = lora_muon_full_rank(runs, traj[traj["run_id"] != "muon-1"])
    assert not c.passed and "no effective-rank records" in c.detail


@pytest.mark.parametrize("fn", [lora_muon_full_rank, lora_muon_rank_above_adamw])
def test_empty_store_fails(fn):
    c = fn(pd.DataFrame(), pd.DataFrame())
    assert not c.passed and "no seeds to judge" in c.detail
    c = fn(pd.DataFrame({"run_id": ["a"]}), pd.DataFrame())
    assert not c.passed and "runs table lacks" in c.detail


def test_through_a_real_store(tmp_path):
    from muonlab.engine.store import ResultStore

    runs, traj = _tables(_store(UNIFORM, SKEWED))
    ResultStore(tmp_path / "lora").append(runs.to_dict("records"), traj)
    out = evaluate_experiment("lora", tmp_path / "lora", ["lora_muon_full_rank", "lora_muon_rank_above_adamw"],
                              config_hash="h", scale="quick")
    assert [c.passed for c in out] == [True, True] and all(c.n_total == 3 for c in out)
    stale = evaluate_experiment("lora", tmp_path / "lora", ["lora_muon_full_rank"], config_hash="other")
    assert not stale[0].passed and "no seeds to judge" in stale[0].detail
