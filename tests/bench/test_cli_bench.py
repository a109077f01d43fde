"""``muonlab bench``: runs the suite (``muonlab.bench.suite.run_suite``) and prints its ratios (rich) or JSON."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch
from typer.testing import CliRunner

import muonlab.bench.engine as engine_mod
import muonlab.bench.engine_scaling as engine_scaling_mod
import muonlab.bench.lora_monitor as lora_mod
import muonlab.bench.matmul_rate as rate_mod
import muonlab.bench.orthogonalize_speed as speed_mod
import muonlab.bench.scaling as workers_mod
from muonlab.bench.common import default_device, machine_info
from muonlab.bench.engine import EngineResult
from muonlab.bench.lora_monitor import MonitorResult
from muonlab.bench.orthogonalize_speed import SpeedResult
from muonlab.bench.scaling import ScalingResult
from muonlab.cli import app

runner = CliRunner()


def test_bench_quick_json_runs_every_benchmark(tiny_bert, monkeypatch):
    """The real functions end to end (the LoRA part on a tiny BERT instead of MiniLM, and the
    worker scaling on a shorter reproduction, to save time)."""
    monkeypatch.setattr(lora_mod, "lora_monitor", functools.partial(
        lora_mod.lora_monitor, model=tiny_bert, batch_size=4, max_length=16, rank=2))
    monkeypatch.setattr(workers_mod, "worker_scaling", functools.partial(
        workers_mod.worker_scaling, overrides=["steps=60", "seeds=2"]))
    res = runner.invoke(app, ["bench", "--quick", "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output.strip().splitlines()[-1])
    assert data["machine"]["cpu_model"] == machine_info().cpu_model
    assert data["machine"]["cpu_flags"] == list(machine_info().cpu_flags)
    assert [e["method"] for e in data["engine"]] == ["svd", "gram"]
    for e in data["engine"]:
        assert (e["runs"], e["steps"]) == (8, 50)
        assert e["max_log10_gap_final_rel_err"] < 1e-6  # same trajectories, batched or not
        assert e["ratio"] == e["baseline_s"] / e["muonlab_s"]
    assert [(o["batch"], o["m"], o["n"], o["dtype"]) for o in data["orthogonalize"]] == [
        (8, 64, 64, "bfloat16"), (8, 64, 64, "float32")]
    for o in data["orthogonalize"]:
        assert o["ratio"] == o["baseline_s"] / o["muonlab_s"]
        assert math.isfinite(o["ratio"]) and o["ratio"] > 0
    if data["orthogonalize"][0]["device"] == "cpu":  # torch.optim.Muon's own operations
        assert data["orthogonalize"][0]["max_abs_diff"] == 0.0
    lm = data["lora_monitor"]
    assert lm["adapters"] == 4 and lm["steps"] == 10 and lm["overhead"] == lm["monitor_s"] / lm["step_s"]
    assert data["engine_scaling"] and data["matmul_rate"]["device"] == "cpu" and data["figures"] == []
    assert [(s["backend"], s["workers"], s["scale"]) for s in data["scaling"]] == [
        ("local", 1, "quick"), ("local", 2, "quick")]
    assert all(s["stores_equal"] is True and s["speedup"] == s["baseline_s"] / s["wall_s"] for s in data["scaling"])


@pytest.fixture
def fake_benchmarks(monkeypatch):
    """Fixed results in place of the measurements, to check what the table shows."""
    calls = {}

    def fake_engine(**kw):
        calls["engine"] = kw
        return [EngineResult(method=m, runs=64, n=100, rank=10, steps=200, baseline_s=9.5, muonlab_s=0.95,
                             max_log10_gap_final_rel_err=3e-13) for m in kw["methods"]]

    def fake_speed(**kw):
        calls["orthogonalize"] = kw
        return [SpeedResult(device="cpu", batch=64, m=256, n=256, method="newton_schulz", dtype="bfloat16",
                            baseline_s=16.9, muonlab_s=17.3, max_abs_diff=0.0, matmul_rate_fraction=0.14)]

    def fake_lora(**kw):
        calls["lora_monitor"] = kw
        return MonitorResult(model="model", adapters=12, rank=8, batch_size=16, max_length=32, device="cpu",
                             steps=30, step_s=0.273, monitor_s=0.00182)

    def fake_engine_scaling(**kw):
        calls["engine_scaling"] = kw
        return []

    def fake_rate(**kw):
        calls["matmul_rate"] = kw
        return None

    def fake_workers(**kw):
        calls["scaling"] = kw
        return [ScalingResult("s002_mode_order", "paper", "local", 2, baseline_s=40.0, wall_s=25.0, run_s=24.0,
                              runs=64, batches=4, stores_equal=True),
                ScalingResult("s002_mode_order", "paper", "ray", 2, baseline_s=40.0, wall_s=None, run_s=None,
                              runs=None, batches=None, stores_equal=None, skipped="Ray is not installed")]

    monkeypatch.setattr(engine_mod, "engine_speed", fake_engine)
    monkeypatch.setattr(speed_mod, "orthogonalize_speed", fake_speed)
    monkeypatch.setattr(lora_mod, "lora_monitor", fake_lora)
    monkeypatch.setattr(engine_scaling_mod, "engine_scaling", fake_engine_scaling)
    monkeypatch.setattr(rate_mod, "matmul_rate", fake_rate)
    monkeypatch.setattr(workers_mod, "worker_scaling", fake_workers)
    return calls


def test_bench_table_shows_each_ratio_and_the_machine(fake_benchmarks, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    res = runner.invoke(app, ["bench", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    # The full-size workloads (SPEC §8) without --quick.
    assert fake_benchmarks == {"engine": {"methods": ("svd", "gram")}, "orthogonalize": {"device": torch.device("cpu")},
                               "lora_monitor": {"steps": 30}, "engine_scaling": {"device": torch.device("cpu")},
                               "matmul_rate": {"device": torch.device("cpu")}, "scaling": {}}
    lines = res.output.splitlines()
    engine_rows = [line for line in lines if "engine, 64 runs of P1 n=100, 200 steps" in line]
    assert len(engine_rows) == 2 and all("9.5" in row and "0.95" in row and "10.00×" in row for row in engine_rows)
    assert "msign=svd" in engine_rows[0] and "msign=gram" in engine_rows[1]
    ortho = next(line for line in lines if "orthogonalize newton_schulz bfloat16, 64×256×256" in line)
    assert "16.9" in ortho and "17.3" in ortho and "0.98×" in ortho
    lora = next(line for line in lines if "LoRA monitor, 12 adapters r=8" in line)
    assert "0.273" in lora and "0.00182" in lora and "0.67%" in lora
    workers = next(line for line in lines if "reproduce s002_mode_order (paper), local × 2 workers" in line)
    assert "64 runs in 4 batches (stores equal; efficiency 80%)" in workers and "25" in workers and "1.60×" in workers
    assert any("reproduce s002_mode_order (paper), ray × 2 workers: skipped (Ray is not installed)" in line
               for line in lines)
    assert f"CPU: {machine_info().cpu_model} (" in res.output


def test_bench_quick_passes_the_small_sizes(fake_benchmarks):
    res = runner.invoke(app, ["bench", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    dev = default_device()
    assert fake_benchmarks == {"engine": {"methods": ("svd", "gram"), "runs": 8, "steps": 50},
                               "orthogonalize": {"shapes": [(8, 64, 64)], "repeats": 1},
                               "lora_monitor": {"steps": 10},
                               "engine_scaling": {"device": dev, **engine_scaling_mod.QUICK},
                               "matmul_rate": {"device": dev, **rate_mod.QUICK},
                               "scaling": {"scale": "quick", "workers": (1, 2), "backends": ("local",)}}
    data = json.loads(res.output.strip().splitlines()[-1])
    assert data["engine"][0]["ratio"] == 10.0 and data["lora_monitor"]["overhead"] == 0.00182 / 0.273


def test_bench_keeps_the_other_results_when_the_lora_model_cannot_load(fake_benchmarks, monkeypatch):
    def no_model(**kw):
        raise ValueError("--model: cannot load 'x': no such file")

    monkeypatch.setattr(lora_mod, "lora_monitor", no_model)
    res = runner.invoke(app, ["bench", "--json"])
    assert res.exit_code == 0, res.output
    assert "lora_monitor skipped: ValueError: --model: cannot load 'x'" in res.output
    data = json.loads(res.output.strip().splitlines()[-1])
    assert "lora_monitor" not in data and len(data["engine"]) == 2 and len(data["orthogonalize"]) == 1
    assert data["skipped"] == {"lora_monitor": "ValueError: --model: cannot load 'x': no such file"}


def test_bench_writes_the_figures_into_out(fake_benchmarks, monkeypatch, tmp_path):
    drawn = []

    def fake_plot(points, out_dir):
        drawn.append(out_dir)
        return [tmp_path / "bench_engine_scaling.png"]

    monkeypatch.setattr(engine_scaling_mod, "plot_engine_scaling", fake_plot)
    res = runner.invoke(app, ["bench", "--json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert drawn == [tmp_path]
    assert json.loads(res.output.strip().splitlines()[-1])["figures"] == [str(tmp_path / "bench_engine_scaling.png")]


def test_bench_refuses_an_unknown_device_in_one_line(fake_benchmarks):
    res = runner.invoke(app, ["bench", "--device", "tpu"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'--device'" in lines[0] and "allowed: cpu, cuda" in lines[0]
    assert fake_benchmarks == {}
