"""Backends: a process pool and Ray tasks give the store the in-process run gives, bit for bit."""

from __future__ import annotations

import pandas as pd
import pytest
import ray
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.config import ExperimentConfig
from muonlab.engine.backends import InProcess, LocalPool, make_executor
from muonlab.engine.experiment import run
from muonlab.engine.store import ResultStore
from muonlab.errors import MuonlabError

runner = CliRunner()


def config(**overrides) -> ExperimentConfig:
    raw = {
        "name": "b",
        "problem": {"kind": "symmetric_mf", "n": 10, "r": 3, "alpha": 1e-2},
        "optimizer": {"name": "muon", "lr": 0.3, "method": "svd"},
        "schedule": {"name": "geometric", "q": 0.97, "c_lo": 0.5, "c_hi": 1.0},
        "steps": 80,
        "seeds": 3,
        "grid": {"problem.kappa": [1.0, 100.0], "optimizer": [{"name": "muon", "lr": 0.3, "method": "svd"},
                                                             {"name": "gd", "lr": 0.2}]},
        "metrics": ["loss", "rel_err", "singular_values"],
        "log_every": 4,
    }
    raw.update(overrides)
    return ExperimentConfig.model_validate(raw)


def contents(out) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every stored value but the timing (``wall_s``), in a fixed row order."""
    store = ResultStore(out)
    runs = store.runs().drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)
    traj = store.trajectories().sort_values(["run_id", "metric", "step", "index"]).reset_index(drop=True)
    return runs, traj


def assert_same_store(a, b) -> None:
    (ra, ta), (rb, tb) = contents(a), contents(b)
    assert len(ra) == 12 and len(ta) > 0
    pd.testing.assert_frame_equal(ra, rb, check_exact=True)
    pd.testing.assert_frame_equal(ta, tb, check_exact=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "store"
    run(config(), out, workers=1)
    return out


def test_process_pool_store_equals_in_process_store(reference, tmp_path):
    result = run(config(), tmp_path / "pool", workers=2)
    assert result.executed == 12
    assert_same_store(reference, tmp_path / "pool")


def test_ray_store_equals_local_store(reference, tmp_path):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run(config(), tmp_path / "ray", backend="ray", workers=2)
        assert result.executed == 12
        assert_same_store(reference, tmp_path / "ray")
        # resume through Ray: nothing left to do, nothing rewritten
        again = run(config(), tmp_path / "ray", backend="ray", workers=2)
        assert again.executed == 0 and again.skipped == 12
    finally:
        ray.shutdown()


def test_pool_resumes_an_interrupted_store_and_matches(reference, tmp_path, monkeypatch):
    from muonlab.engine import backends

    real, calls = backends.solve, []

    def interrupted(batch, on_step=None):
        calls.append(batch.size)
        if len(calls) > 1:
            raise KeyboardInterrupt  # Ctrl-C after the first batch
        return real(batch, on_step=on_step)

    monkeypatch.setattr(backends, "solve", interrupted)
    out = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        run(config(), out, workers=1)
    monkeypatch.setattr(backends, "solve", real)
    stored = len(ResultStore(out).completed_ids())
    assert stored == calls[0] and 0 < stored < 12
    result = run(config(), out, workers=2)
    assert result.executed == 12 - stored and result.skipped == stored
    assert_same_store(reference, out)


def test_make_executor_choices():
    assert isinstance(make_executor("local", 1), InProcess)
    pool = make_executor("local", 2)
    assert isinstance(pool, LocalPool) and pool.slots == 2
    pool.close()
    with pytest.raises(MuonlabError, match="backend: unknown 'dask'; allowed: local, ray"):
        make_executor("dask", 1)
    with pytest.raises(MuonlabError, match="address: only with --backend ray"):
        make_executor("local", 1, address="1.2.3.4:6379")
    with pytest.raises(MuonlabError, match="workers: must be a positive integer"):
        make_executor("local", 0)


def test_cli_workers_2_equals_in_process(reference, tmp_path):
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config().model_dump(mode="json", exclude={"reproduce"})))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "cli"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "12 runs in" in result.output and "2 workers" in result.output
    assert_same_store(reference, tmp_path / "cli")


@pytest.mark.parametrize(
    "args,option,text",
    [
        (["--backend", "dask"], "'--backend'", "allowed: local, ray"),
        (["--address", "1.2.3.4:6379"], "'--address'", "only with --backend ray"),
        (["--max-memory", "lots"], "'--max-memory'", "expected a size such as 4GiB"),
        (["--workers", "0"], "'--workers'", ""),
    ],
)
def test_cli_bad_execution_options_are_one_line_exit_2(tmp_path, args, option, text):
    import yaml

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config().model_dump(mode="json", exclude={"reproduce"})))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and text in lines[0], result.output
    assert not (tmp_path / "o").exists()


def test_worker_killed_mid_batch_is_retried_not_stored_as_failed(tmp_path, monkeypatch):
    """The kernel's OOM killer takes a pool worker (SIGKILL): the batches it held are
    retried smaller on a new pool, and the store ends complete with no failed rows."""
    import os
    import signal
    import threading
    import time

    from muonlab.engine import backends

    pools: list = []
    real_executor = backends.LocalPool._executor

    def spy(self):
        pool = real_executor(self)
        if pool not in pools:
            pools.append(pool)
        return pool

    killed: list[int] = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            procs = list(getattr(pools[0], "_processes", {}).values()) if pools else []
            if procs and time.time() - start > 2.0:
                os.kill(procs[0].pid, signal.SIGKILL)
                killed.append(procs[0].pid)
            time.sleep(0.05)

    cfg = config(steps=6000, stop={"target": 0.0}, seeds=2, log_every=500)
    monkeypatch.setattr(backends.LocalPool, "_executor", spy)
    start = time.time()
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run(cfg, tmp_path / "k", workers=2)
    thread.join()
    assert killed, "the test did not manage to kill a worker"
    assert len(pools) >= 2  # the broken pool was replaced
    assert result.executed == 8 and set(result.runs.status) <= {"ok", "diverged"}


@pytest.mark.parametrize("device,text", [("tpu", "device: must be cpu, cuda or cuda:N, got 'tpu'"),
                                         ("cuda:7", "device: 'cuda:7' is not available on this machine")])
def test_cli_bad_device_is_one_line_naming_the_option(tmp_path, device, text):
    import torch
    import yaml

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config().model_dump(mode="json", exclude={"reproduce"})))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--device", device])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'--device'" in lines[0] and text in lines[0], result.output
    assert not (tmp_path / "o").exists()
