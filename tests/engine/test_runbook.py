"""The engine's online ε bookkeeping (RunBook) agrees with steps_to on the logged curve."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
