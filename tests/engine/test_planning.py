"""Planning before running: run-count limit, memory estimate, batches sized to a budget,
refusals before anything is written, out-of-memory batches retried smaller (never stored
as failed), and the progress lines a log shows."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.config import ConfigError, ExperimentConfig, expand
from muonlab.config.limits import DEFAULT_MAX_RUNS, max_runs
from muonlab.engine import backends
from muonlab.engine.experiment import ResourceError, run
from muonlab.engine.memory import batch_bytes, format_bytes, parse_bytes, run_bytes
from muonlab.engine.plan import PlanError, plan, split_for_workers
from muonlab.engine.store import ResultStore
from muonlab.progress import RunProgress

runner = CliRunner()


def raw(**overrides) -> dict:
    cfg = {
        "name": "p",
        "problem": {"kind": "symmetric_mf", "n": 10, "r": 3, "alpha": 1e-2},
        "optimizer": {"name": "muon", "lr": 0.3, "method": "svd"},
        "steps": 40,
        "seeds": 4,
        "grid": {"problem.kappa": [1.0, 10.0]},
        "metrics": ["loss", "rel_err", "singular_values"],
    }
    cfg.update(overrides)
    return cfg


def config(**overrides) -> ExperimentConfig:
    return ExperimentConfig.model_validate(raw(**overrides))


# ----------------------------------------------------------------------------- run count


@pytest.mark.parametrize(
    "extra,field,count",
    [
        ({"seeds": 1_000_000}, "seeds", "1,000,000 seeds"),
        ({"seeds": 10**15}, "seeds", "1,000,000,000,000,000 seeds"),
        ({"seeds": 10, "grid": {"problem.kappa": [float(k) for k in range(1, 10_001)],
                                "optimizer.lr": [0.1 * (i + 1) for i in range(10_000)]}},
         "grid", "= 1,000,000,000 runs"),
    ],
)
def test_huge_experiment_is_refused_at_once(extra, field, count):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        config(**extra)
    assert time.perf_counter() - t0 < 2.0  # refused before expanding, not after
    assert e.value.field == field and count in str(e.value) and "--max-runs" in str(e.value)


def test_run_limit_can_be_raised_for_a_block():
    with max_runs(5), pytest.raises(ConfigError, match="8 runs exceed the run limit of 5"):
        config()
    assert len(expand(config())) == 8  # back to the default outside the block
    with max_runs(DEFAULT_MAX_RUNS * 2):
        assert len(expand(config(seeds=DEFAULT_MAX_RUNS + 1, grid={}))) == DEFAULT_MAX_RUNS + 1


def test_cli_huge_grid_is_one_line_exit_2_and_writes_nothing(tmp_path):
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw()))
    t0 = time.perf_counter()
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--set", "seeds=100000000"])
    assert time.perf_counter() - t0 < 10
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "100,000,000 seeds exceed the run limit" in result.output
    assert not (tmp_path / "o").exists()
    ok = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o2"), "--max-runs", "7"])
    assert ok.exit_code == 2 and "8 runs exceed the run limit of 7" in ok.output


# ----------------------------------------------------------------------------- memory


def test_parse_and_format_bytes():
    assert parse_bytes("4GiB") == 4 * 2**30
    assert parse_bytes("500MB") == 500 * 10**6
    assert parse_bytes("2e9") == 2 * 10**9
    assert parse_bytes(1024) == 1024
    for bad in ("lots", "-1GB", "0", "3 parsecs"):
        with pytest.raises(Exception, match="max_memory"):
            parse_bytes(bad)
    assert format_bytes(1.5 * 2**30) == "1.5 GiB" and format_bytes(512) == "512 B"


def test_estimate_grows_with_shapes_runs_and_logging():
    small = config(problem={"kind": "symmetric_mf", "n": 100, "r": 3}, metrics=["loss"])
    big = config(problem={"kind": "symmetric_mf", "n": 400, "r": 3}, metrics=["loss"])
    r_small, r_big = run_bytes(expand(small)[0]), run_bytes(expand(big)[0])
    assert 12 * r_small < r_big < 16 * r_small  # n² terms dominate: (400/100)² = 16
    runs = expand(small)
    assert batch_bytes(runs[:4]) - batch_bytes(runs[:2]) == 2 * r_small
    more_logs = run_bytes(expand(config(problem={"kind": "symmetric_mf", "n": 100, "r": 3}, metrics=["loss"],
                                        steps=4000))[0])
    assert more_logs > r_small  # every logged value is kept until the batch ends


_MEASURE = """
import ctypes, gc, json, sys
import torch
torch.set_num_threads(1)
from muonlab.config import ExperimentConfig, expand
from muonlab.engine.solvers import run_batch
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
runs = expand(ExperimentConfig.model_validate(json.loads(sys.argv[1])))
run_batch(runs[:1])  # lazy imports and first-call allocations are not the batch's
gc.collect(); ctypes.CDLL('libc.so.6').malloc_trim(0)
before = status('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')  # reset the high-water mark
run_batch(runs)
print(status('VmHWM') - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self (Linux)")
@pytest.mark.parametrize(
    "cfg",
    [
        raw(problem={"kind": "symmetric_mf", "n": 300, "r": 300}, optimizer={"name": "gd", "lr": 0.1},
            steps=10, seeds=3, grid={}),
        raw(problem={"kind": "two_factor_mf", "n_out": 300, "n_in": 300, "d": 300},
            optimizer={"name": "muon", "lr": 0.01}, steps=10, seeds=4, grid={}),
        raw(problem={"kind": "regression", "d_out": 100, "d_in": 200, "n_samples": 2000},
            optimizer={"name": "muon", "lr": 0.01}, steps=10, seeds=8, grid={}),
    ],
    ids=["symmetric_mf", "two_factor_mf", "regression"],
)
def test_estimate_bounds_the_measured_peak(cfg):
    """The estimate is an upper bound of the batch's peak resident memory (measured in a
    fresh process), and not a wild one."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(cfg)], capture_output=True, text=True,
                         check=True, timeout=300)
    measured = int(out.stdout.strip().splitlines()[-1])
    estimate = batch_bytes(expand(ExperimentConfig.model_validate(cfg)))
    assert measured > 2**20  # the batch did allocate (the probe works)
    assert measured <= estimate <= 20 * measured, (format_bytes(measured), format_bytes(estimate))


def test_batches_are_sized_to_the_budget():
    cfg = config(seeds=10)
    per_run = run_bytes(expand(cfg)[0])
    budget = batch_bytes(expand(cfg)[:3])  # room for exactly three runs
    p = plan(cfg, max_memory=budget)
    assert p.todo == 20 and max(len(b) for b in p.batches) == 3
    assert all(b <= budget for b in p.batch_bytes) and p.peak_bytes == batch_bytes(expand(cfg)[:3])
    assert per_run > 0 and "20 runs in" in p.describe() and "budget" in p.describe()


def test_too_large_a_run_is_refused_before_anything_is_written(tmp_path):
    cfg = config(problem={"kind": "symmetric_mf", "n": 200_000, "r": 10}, seeds=1, grid={})
    with pytest.raises(PlanError) as e:
        run(cfg, tmp_path / "o", max_memory=parse_bytes("8GiB"))
    assert e.value.field == "max_memory"
    assert "needs ≈" in str(e.value) and "TiB" in str(e.value) and "n=200000" in str(e.value)
    assert not (tmp_path / "o").exists()  # not even the lock file


def test_cli_too_large_plan_is_one_line_naming_the_estimate(tmp_path):
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw()))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--set", "problem.n=200000",
                                 "--set", "grid={}", "--set", "seeds=1"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'--max-memory'" in lines[0] and "needs ≈" in lines[0]
    assert not (tmp_path / "o").exists()


def test_split_for_workers_gives_every_worker_work():
    runs = tuple(expand(config(seeds=5, grid={})))
    assert [len(b) for b in split_for_workers([runs], 1)] == [5]
    assert [len(b) for b in split_for_workers([runs], 2)] == [2, 1, 2] or sum(
        len(b) for b in split_for_workers([runs], 2)) == 5
    parts = split_for_workers([runs], 2)
    assert len(parts) >= 4 or all(len(b) == 1 for b in parts)
    assert [r.run_id for b in parts for r in b] == [r.run_id for r in runs]  # order kept
    assert len(split_for_workers([runs[:1]], 8)) == 1


# ----------------------------------------------------------------------------- out of memory


def _oom_above(limit: int, monkeypatch) -> list[int]:
    """Make every batch larger than ``limit`` runs fail as torch does when memory runs out."""
    real, sizes = backends.solve, []

    def solve(batch, on_step=None):
        sizes.append(batch.size)
        if batch.size > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(batch, on_step=on_step)

    monkeypatch.setattr(backends, "solve", solve)
    return sizes


def test_oom_batch_is_retried_smaller_and_never_stored_as_failed(tmp_path, monkeypatch):
    sizes = _oom_above(2, monkeypatch)
    result = run(config(), tmp_path / "o")
    assert result.executed == 8 and set(result.runs.status) == {"ok"}
    assert sizes == [8, 4, 2, 2, 4, 2, 2]  # halved until it fit, each half retried first
    assert "error" not in result.runs or result.runs["error"].isna().all()


def test_run_that_never_fits_is_not_stored_and_a_resume_retries_it(tmp_path, monkeypatch):
    real = backends.solve
    _oom_above(0, monkeypatch)  # nothing fits, not even one run
    with pytest.raises(ResourceError, match="8 run\\(s\\) ran out of memory even one at a time"):
        run(config(), tmp_path / "o")
    assert ResultStore(tmp_path / "o").completed_ids() == set()
    assert len(ResultStore(tmp_path / "o").runs()) == 0  # no `failed` rows either
    monkeypatch.setattr(backends, "solve", real)  # memory freed: a rerun stores them
    again = run(config(), tmp_path / "o")
    assert again.executed == 8 and set(again.runs.status) == {"ok"}


def test_ordinary_errors_are_not_resource_errors():
    assert backends.is_resource_error(MemoryError())
    assert backends.is_resource_error(torch.OutOfMemoryError("x"))
    assert backends.is_resource_error(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                                   "can't allocate memory: you tried to allocate 320000000000 bytes"))
    assert not backends.is_resource_error(RuntimeError("linalg.svd: The algorithm failed to converge"))
    assert not backends.is_resource_error(ValueError("out of memory"))


# ----------------------------------------------------------------------------- progress


def test_plain_progress_prints_lines_while_running():
    stream = io.StringIO()
    with RunProgress(stream, interval=0.05, live=False) as progress:
        progress.start("exp", 10, steps=100)
        progress.on_batch(4, 10)
        time.sleep(0.2)
        progress.on_step(200)  # two runs' worth of steps in this process
        assert progress.done == pytest.approx(6.0)
        assert progress.eta() is not None and progress.eta() > 0
        progress.finish()
    lines = stream.getvalue().splitlines()
    assert any("exp: 4.0/10 runs (40 %), ETA" in line for line in lines)
    assert lines[-1].endswith("exp: 10.0/10 runs (100 %), done")
