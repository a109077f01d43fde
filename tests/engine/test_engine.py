"""The batched engine: batch ≡ loop of single runs, κ-free Muon on P1, divergence, resume, CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.config import ExperimentConfig, expand
from muonlab.engine import backends as backends_mod
from muonlab.engine.experiment import group_runs, run
from muonlab.engine.solvers import run_batch
from muonlab.engine.store import StoreConfigError


def config(**overrides) -> ExperimentConfig:
    raw = {
        "name": "t",
        "problem": {"kind": "symmetric_mf", "n": 12, "r": 3, "alpha": 1e-2},
        "optimizer": {"name": "muon", "lr": 0.3, "method": "svd"},
        "schedule": {"name": "geometric", "q": 0.97, "c_lo": 0.5, "c_hi": 1.0},
        "steps": 60,
        "seeds": 2,
        "grid": {"problem.kappa": [1.0, 30.0]},
        "metrics": ["loss", "rel_err", "singular_values"],
        "log_every": 5,
    }
    raw.update(overrides)
    return ExperimentConfig.model_validate(raw)


OPTIMIZERS = [
    ("symmetric_mf", {"name": "muon", "lr": 0.3, "method": "svd", "momentum": 0.5}),
    ("symmetric_mf", {"name": "muon", "lr": 0.3, "method": "newton_schulz"}),
    ("symmetric_mf", {"name": "gd", "lr": 0.2, "momentum": 0.5}),
    ("symmetric_mf", {"name": "signgd", "lr": 0.01}),
    ("symmetric_mf", {"name": "adam", "lr": 0.01}),
    ("symmetric_mf", {"name": "scaledgd", "lr": 0.3, "damping": 1e-6}),
    ("two_factor_mf", {"name": "specgd_beta", "lr": 0.05, "beta": 1e-3}),
    ("lora_mf", {"name": "specgd", "lr": 0.05}),
    ("icl", {"name": "muon", "lr": 0.1, "method": "svd"}),
    ("regression", {"name": "gd", "lr": 0.5}),
]
PROBLEMS = {
    "symmetric_mf": {"kind": "symmetric_mf", "n": 12, "r": 3, "alpha": 1e-2},
    "two_factor_mf": {"kind": "two_factor_mf", "n_out": 8, "n_in": 7, "d": 5, "rank": 3, "alpha": 1e-2},
    "lora_mf": {"kind": "lora_mf", "m": 9, "n": 8, "r": 3, "gamma": 1e-2},
    "icl": {"kind": "icl", "d": 6},
    "regression": {"kind": "regression", "d_out": 4, "d_in": 6, "n_samples": 20},
}


@pytest.mark.parametrize("kind,opt", OPTIMIZERS, ids=[f"{k}-{o['name']}" for k, o in OPTIMIZERS])
def test_batch_equals_loop_of_single_runs(kind, opt):
    grid = {"problem.kappa": [1.0, 30.0], "optimizer.lr": [opt["lr"], opt["lr"] / 2]}
    cfg = config(problem=PROBLEMS[kind], optimizer=opt, grid=grid)
    runs = expand(cfg)
    (batch,) = group_runs(runs)  # seeds, κ and lr all batch together
    assert len(batch) == 8
    together = run_batch(batch)
    for i, r in enumerate(batch):
        alone = run_batch([r])
        a, b = together.runs[i], alone.runs[0]
        assert a["run_id"] == b["run_id"] and a["status"] == b["status"] and a["steps"] == b["steps"]
        assert math.isclose(a["final_rel_err"], b["final_rel_err"], rel_tol=1e-12, abs_tol=1e-300)
        ta = together.trajectories[together.trajectories.run_id == r.run_id].reset_index(drop=True)
        tb = alone.trajectories.reset_index(drop=True)
        assert len(ta) == len(tb) > 0
        assert ta[["step", "metric", "index"]].equals(tb[["step", "metric", "index"]])
        assert ((ta.value - tb.value).abs() <= 1e-12 * tb.value.abs().clip(lower=1e-300)).all()


def test_p1_muon_is_kappa_free_and_gd_is_not():
    """SPEC P1 claim at n = 50, r = 5: steps to 1e-10 for κ = 10 vs 1e4."""
    cfg = config(
        problem={"kind": "symmetric_mf", "n": 50, "r": 5, "alpha": 1e-3},
        schedule={"name": "plateau", "factor": 0.5, "patience": 10, "threshold": 1e-3},
        steps=6000,
        seeds=1,
        stop={"target": 1e-10},
        grid={
            "problem.kappa": [10.0, 1e4],
            "optimizer": [{"name": "muon", "lr": 0.5, "method": "svd"}, {"name": "gd", "lr": 0.3}],
        },
        metrics=["rel_err"],
        log_every=1000,
    )
    steps = {}
    for batch in group_runs(expand(cfg)):
        for r, row in zip(batch, run_batch(batch).runs):
            # stop.target = 1e-10, so a run that got there stopped at its first hitting step.
            steps[(r.optimizer.name, r.problem.kappa)] = row["steps"] if row["final_rel_err"] <= 1e-10 else None
    muon_10, muon_1e4 = steps[("muon", 10.0)], steps[("muon", 1e4)]
    assert muon_10 is not None and muon_1e4 is not None
    assert max(muon_10, muon_1e4) / min(muon_10, muon_1e4) < 1.5  # κ grew 1000×
    gd_10, gd_1e4 = steps[("gd", 10.0)], steps[("gd", 1e4)]
    assert gd_10 is not None  # GD works at small κ ...
    # ... but at κ = 1e4 it is not done after 6000 steps, more than 10× Muon's count.
    assert gd_1e4 is None and 10 * muon_1e4 < 6000


def test_divergent_run_is_recorded_and_others_continue(tmp_path):
    cfg = config(
        optimizer={"name": "gd", "lr": 0.2},
        schedule={"name": "constant"},
        grid={"optimizer.lr": [0.2, 500.0]},
        seeds=1,
        steps=400,
        stop={"target": 1e-6, "blowup": 1e6},
    )
    result = run(cfg, tmp_path / "store")
    by_lr = result.runs.set_index("optimizer.lr")
    assert by_lr.loc[500.0, "status"] == "diverged"
    assert by_lr.loc[0.2, "status"] == "ok" and by_lr.loc[0.2, "final_rel_err"] <= 1e-6


def test_resume_skips_completed_runs_and_keeps_them(tmp_path):
    out = tmp_path / "store"
    first = run(config(seeds=1), out)
    assert first.executed == 2 and first.skipped == 0
    again = run(config(seeds=1), out)
    assert again.executed == 0 and again.skipped == 2
    with pytest.raises(StoreConfigError):  # one more seed is another configuration: a new store
        run(config(seeds=2), out)
    runs = again.runs
    assert len(runs) == 2 and runs.run_id.is_unique
    old = first.runs.set_index("run_id")["wall_s"]
    assert (runs.set_index("run_id").loc[old.index, "wall_s"] == old).all()  # never overwritten
    traj = pd.read_parquet(out / "trajectories.parquet")
    assert set(traj.run_id) == set(runs.run_id)


def test_failing_batch_is_recorded_as_failed_and_retried_on_resume(tmp_path, monkeypatch):
    real = backends_mod.solve

    def flaky(batch, on_step=None):
        if batch.spec.optimizer.name == "gd":
            raise RuntimeError("boom")
        return real(batch, on_step=on_step)

    monkeypatch.setattr(backends_mod, "solve", flaky)
    cfg = config(seeds=1, grid={"optimizer": [{"name": "muon", "lr": 0.3, "method": "svd"}, {"name": "gd", "lr": 0.2}]})
    runs = run(cfg, tmp_path / "s").runs.set_index("optimizer.name")
    assert runs.loc["gd", "status"] == "failed" and "boom" in runs.loc["gd", "error"]
    assert runs.loc["muon", "status"] == "ok"
    monkeypatch.setattr(backends_mod, "solve", real)  # the cause is gone: resume retries only the failure
    again = run(cfg, tmp_path / "s")
    assert (again.executed, again.skipped) == (1, 1)
    runs = again.runs.set_index("optimizer.name")
    assert len(runs) == 2 and runs.loc["gd", "status"] == "ok"


def test_one_failing_run_does_not_fail_its_batch_mates(tmp_path, monkeypatch):
    """A run whose solve raises (say, an SVD that does not converge on its iterate) is
    found by splitting its batch; only it is recorded failed, the others keep their results."""
    real = backends_mod.solve
    calls: list[int] = []

    def one_bad_seed(batch, on_step=None):
        calls.append(len(batch.runs))
        if any(r.seed == 2 for r in batch.runs):
            raise RuntimeError("linalg.svd: the algorithm failed to converge")
        return real(batch, on_step=on_step)

    monkeypatch.setattr(backends_mod, "solve", one_bad_seed)
    runs = run(config(seeds=5, grid={}), tmp_path / "s").runs.set_index("seed")
    assert runs.loc[2, "status"] == "failed" and "failed to converge" in runs.loc[2, "error"]
    assert (runs.drop(index=2)["status"] == "ok").all() and len(runs) == 5
    assert calls[0] == 5 and max(calls[1:]) < 5 and calls.count(1) >= 1  # split, not rerun whole


def test_cli_run_and_bad_config(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text(
        "name: cli\nproblem: {kind: symmetric_mf, n: 8, r: 2}\noptimizer: {name: gd, lr: 0.2}\n"
        "steps: 20\nseeds: 1\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(good), "--out", str(tmp_path / "o"), "--set", "steps=10"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "runs.parquet").exists()
    assert pd.read_parquet(tmp_path / "o" / "runs.parquet")["max_steps"].tolist() == [10]
    prov = json.loads((tmp_path / "o" / "provenance.json").read_text(encoding="utf-8"))  # the report's footer
    assert prov["wall_s"] > 0 and prov["machine"]["cpus"] >= 1 and prov["torch"]
    for text, field in [
        ("name: x\nproblem: {kind: symmetric_mf, n: 8, r: 20}\n"
         "optimizer: {name: gd, lr: 0.1}\nsteps: 5\n", "problem.r"),
        ("name: x\nproblem: {kind: symmetric_mf, n: 8, r: 2}\n"
         "optimizer: {name: sgd, lr: 0.1}\nsteps: 5\n", "optimizer.name"),
        ("name: x\nproblem: {kind: symmetric_mf, n: -8, r: 2}\n"
         "optimizer: {name: gd, lr: 0.1}\nsteps: 5\n", "problem.n"),
        ("name: x\nproblem: {kind: symmetric_mf, n: 8, r: 2, foo: 1}\n"
         "optimizer: {name: gd, lr: 0.1}\nsteps: 5\n", "problem.foo"),
        ("name: x\nproblem: {kind: symmetric_mf, n: 8, r: 2}\n"
         "optimizer: {name: gd, lr: 0.1}\nsteps: 5\ndevice: cuda:7\n", "device"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        res = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "b")])
        assert res.exit_code == 2, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and field in lines[0] and "Traceback" not in res.output


def test_shipped_experiment_configs_validate():
    from pathlib import Path

    import yaml

    from muonlab.config import load_config
    from muonlab.lora.experiment import load_finetune_experiment

    files = sorted((Path(__file__).resolve().parents[2] / "experiments").rglob("*.yaml"))
    assert files
    kinds = {f: (yaml.safe_load(f.read_text(encoding="utf-8")).get("reproduce") or {}).get("kind", "sweep")
             for f in files}
    for f in files:
        if kinds[f] == "finetune":  # LoRA fine-tuning experiments: their own loader (muonlab.lora.experiment)
            assert load_finetune_experiment(f).n_runs >= 2, f
        else:
            assert expand(load_config(f)), f
    assert sum(k == "finetune" for k in kinds.values()) == 3


def test_top_level_run_is_the_engine():
    import muonlab

    assert muonlab.run is run
