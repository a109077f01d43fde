"""The engine's online ε bookkeeping (RunBook) agrees with steps_to on the logged curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from muonlab.accuracy import EPSILON_COLUMNS, EPSILONS, eps_column, steps_to
from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run


def test_runbook_first_hits_equal_steps_to_on_the_logged_error(tmp_path):
    cfg = ExperimentConfig.model_validate({
        "name": "hits", "problem": {"kind": "symmetric_mf", "n": 8, "r": 2, "kappa": 10.0},
        "optimizer": {"name": "muon", "lr": 0.2, "method": "svd"},
        "schedule": {"name": "plateau", "factor": 0.5, "patience": 5}, "steps": 400, "seeds": 3,
        "stop": {"target": 1e-12}, "metrics": ["rel_err"], "log_every": 1,
        "grid": {"optimizer": [{"name": "muon", "lr": 0.2, "method": "svd"}, {"name": "gd", "lr": 0.1}]},
    })
    result = run(cfg, tmp_path / "s")
    traj = result.trajectories(metrics="rel_err")
    reached = 0
    for _, row in result.runs.iterrows():
        curve = traj[traj.run_id == row.run_id].sort_values("step")
        for eps in EPSILONS:
            expected = steps_to(curve["value"].to_numpy(), eps, steps=curve["step"].to_numpy())[0]
            got = row[eps_column(eps)]
            assert (None if pd.isna(got) else int(got)) == expected
            reached += expected is not None
    assert reached > 0 and reached < len(result.runs) * len(EPSILONS)  # both outcomes occur


def test_epsilon_columns_follow_the_levels():
    assert EPSILON_COLUMNS == ("steps_to_1e-4", "steps_to_1e-8", "steps_to_1e-12")
    assert list(EPSILONS) == sorted(EPSILONS, reverse=True)
    assert steps_to(np.array([1.0, np.nan, 1e-5, 1e-3]), 1e-4) == [2]


def test_step_clock_reads_dt_for_a_flow_and_lr_otherwise():
    from muonlab.config.run import step_clock

    rows = pd.DataFrame({"optimizer.name": ["specgf", "specgd"], "optimizer.dt": [0.01, float("nan")],
                         "optimizer.lr": [float("nan"), 0.05]})
    assert [step_clock(r) for _, r in rows.iterrows()] == [0.01, 0.05]
    assert step_clock(pd.Series({"optimizer.lr": 0.2})) == 0.2


def test_trajectories_long_form_is_step_then_run_then_index_and_keeps_only_ok_rows():
    from muonlab.engine.runbook import _trajectories

    class Run:
        def __init__(self, i):
            self.run_id = f"run{i}"

    runs = [Run(i) for i in range(3)]
    g = torch.Generator().manual_seed(0)
    records = [(t, torch.tensor([True, t < 4, False]), torch.randn(3, 2, generator=g, dtype=torch.float64))
               for t in (0, 2, 4)]
    out = _trajectories(runs, {"sv": records, "none": [(0, torch.zeros(3, dtype=torch.bool), torch.ones(3, 1))]})
    expected = [("run0" if r == 0 else "run1", t, "sv", i, float(v[r, i]))
                for t, ok, v in records for r in range(3) if ok[r] for i in range(2)]
    assert list(out.itertuples(index=False, name=None)) == expected
    assert out["step"].dtype == np.int64 and out["index"].dtype == np.int64
    assert len(_trajectories(runs, {"x": []})) == 0 and isinstance(_trajectories(runs, {}), pd.DataFrame)
