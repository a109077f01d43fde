"""Provenance: every run row records its config hash and overrides; a store holds one
configuration; claims read only the configuration being judged (issue 11, item 6)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from muonlab.claims import base as claims_base
from muonlab.claims import evaluate_experiment
from muonlab.claims.base import Claim, claim
from muonlab.cli import app
from muonlab.config import ExperimentConfig, load_config
from muonlab.engine.experiment import run
from muonlab.engine.store import ResultStore, StoreConfigError
from muonlab.reproduce import SHIPPED_ROOT, reproduce

from helpers import tiny_sweep

runner = CliRunner()

RAW = tiny_sweep("prov")


def config(**overrides) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**RAW, **overrides})


def test_rows_record_config_hash_and_overrides(tmp_path):
    cfg = config()
    res = run(cfg, tmp_path / "s", overrides=["steps=30"])
    runs = res.runs
    assert len(runs) == 4
    assert (runs["config_hash"] == cfg.config_hash).all()
    assert all(json.loads(v) == ["steps=30"] for v in runs["overrides"])
    meta = ResultStore(tmp_path / "s").read_metadata()
    assert meta["config_hash"] == cfg.config_hash and meta["overrides"] == ["steps=30"]


def test_the_hash_follows_the_resolved_config_not_the_reproduce_section():
    a, b = config(), config(steps=31)
    assert a.config_hash != b.config_hash
    assert config().config_hash == a.config_hash  # deterministic
    assert config(seeds=[0, 1]).config_hash == a.config_hash  # 2 → [0, 1]: the same resolved config
    assert config(seeds=3).config_hash != a.config_hash
    demo = load_config(SHIPPED_ROOT / "examples" / "demo.yaml")
    raw = demo.model_dump(mode="json")
    raw.pop("reproduce", None)
    assert ExperimentConfig.model_validate(raw).config_hash == demo.config_hash


def test_a_different_config_is_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "s"
    run(config(), out)
    store = ResultStore(out)
    before_runs, before_meta = store.runs(), store.meta_path.read_bytes()
    with pytest.raises(StoreConfigError) as info:
        run(config(steps=3), out, overrides=["steps=3"])
    err = info.value
    assert err.field == "out" and "\n" not in str(err)
    assert config().config_hash in str(err) and config(steps=3).config_hash in str(err)
    assert "new --out" in str(err)
    pd.testing.assert_frame_equal(store.runs(), before_runs)
    assert store.meta_path.read_bytes() == before_meta


def test_the_same_config_resumes(tmp_path):
    out = tmp_path / "s"
    first = run(config(), out)
    again = run(config(), out)
    assert first.executed == 4 and again.executed == 0 and again.skipped == 4


def test_a_store_without_provenance_is_refused(tmp_path):
    store = ResultStore(tmp_path / "old")
    with store.lock():
        store.append([{"run_id": "r0", "seed": 0, "status": "ok", "steps": 3}])
    assert store.config_hashes() == {None}
    with pytest.raises(StoreConfigError, match="none recorded"):
        run(config(), tmp_path / "old")


def test_cli_run_refuses_another_config_with_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(RAW), encoding="utf-8")  # JSON is YAML
    out = tmp_path / "s"
    first = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["run", str(path), "--out", str(out), "--set", "steps=3"])
    assert second.exit_code == 2
    assert "another configuration" in second.output and "'--out'" in second.output
    assert '["steps=3"]' in second.output
    assert len(ResultStore(out).runs()) == 4


def test_claims_read_only_the_configuration_judged(tmp_path, monkeypatch):
    monkeypatch.setattr(claims_base, "_REGISTRY", dict(claims_base._REGISTRY))

    @claim(reads=("runs", "trajectories"))
    def count_runs(runs, trajectories):
        return Claim("count_runs", "beyond", True,
                     f"{len(runs)} runs, {trajectories['run_id'].nunique() if len(trajectories) else 0} traj")

    store = ResultStore(tmp_path / "mixed")
    traj = pd.DataFrame({"run_id": ["a", "b", "c"], "step": [0, 0, 0], "metric": ["loss"] * 3,
                         "index": [0, 0, 0], "value": [1.0, 2.0, 3.0]})
    with store.lock():  # a store written by hand, with two configurations in it
        store.append([{"run_id": "a", "config_hash": "h1", "status": "ok"},
                      {"run_id": "b", "config_hash": "h1", "status": "ok"},
                      {"run_id": "c", "config_hash": "h2", "status": "ok"}], traj)
    (only_h1,) = evaluate_experiment("x", store.path, ["count_runs"], config_hash="h1", scale="quick")
    assert only_h1.detail == "2 runs, 2 traj" and only_h1.scale == "quick"
    (only_h2,) = evaluate_experiment("x", store.path, ["count_runs"], config_hash="h2")
    assert only_h2.detail == "1 runs, 1 traj"
    (none,) = evaluate_experiment("x", store.path, ["count_runs"], config_hash="h3")
    assert none.detail == "0 runs, 0 traj"


def test_stale_reproduction_is_refused_and_keeps_its_record(tmp_path):
    """The issue's case: a 3-step reproduction, then the real one into the same folder."""
    out = tmp_path / "d"
    first = runner.invoke(app, ["reproduce", "s002_two_step", "--quick", "--set", "steps=3", "--out", str(out)])
    assert first.exit_code == 0, first.output
    claims_before = (out / "claims.json").read_bytes()
    (entry,) = json.loads((out / "experiments.json").read_text(encoding="utf-8"))
    assert entry["overrides"][-1] == "steps=3" and entry["scale"] == "custom"
    second = runner.invoke(app, ["reproduce", "s002_two_step", "--quick", "--out", str(out)])
    assert second.exit_code == 2
    lines = [line for line in second.output.splitlines() if line.strip()]
    assert any("another configuration" in line for line in lines) and "'--out'" in second.output
    assert (out / "claims.json").read_bytes() == claims_before
    (entry_after,) = json.loads((out / "experiments.json").read_text(encoding="utf-8"))
    assert entry_after == entry
    # a fresh folder judges the real configuration, with its own hash on every row
    fresh = reproduce("s002_two_step", tmp_path / "fresh", scale="quick", report=False)
    runs = ResultStore(tmp_path / "fresh" / "s002_two_step").runs()
    (h,) = set(runs["config_hash"])
    assert h != entry["config_hash"] and (runs["max_steps"] == 16).all()
    assert {c["scale"] for c in fresh.claims} == {"quick"}


def test_scale_is_checked(tmp_path):
    bad = runner.invoke(app, ["reproduce", "demo", "--scale", "huge", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "'--scale'" in bad.output and "quick, paper" in bad.output
    both = runner.invoke(app, ["reproduce", "demo", "--quick", "--scale", "paper", "--out", str(tmp_path)])
    assert both.exit_code == 2 and "'--quick'" in both.output
    assert not any(tmp_path.iterdir())
