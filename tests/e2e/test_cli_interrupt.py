"""Ctrl-C (SIGINT) on ``muonlab run`` / ``muonlab reproduce``: one line saying what the
store keeps and the exact command that resumes; exit code 130; the pool's workers are
gone; a rerun resumes to completion.

The signal is sent once the first batch is in the store (its runs part exists), not
after a sleep: each of the 12 runs is its own batch, so 11 are still to do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muonlab.engine.store import ResultStore

SLOW = """\
name: slow
problem: {kind: symmetric_mf, n: 8, r: 2, alpha: 1.0e-3, init: gaussian, kappa: 10}
optimizer: {name: muon, lr: 0.05, method: svd}
steps: 400
dtype: float64
seeds: 12
metrics: [loss]
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["MUONLAB_PROGRESS_SECONDS"] = "3600"
    env.pop("MUONLAB_WORKERS", None)
    return env


def _spawned_workers(pid: int) -> list[int]:
    """Pids of the multiprocessing 'spawn' children of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(int(child))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _interrupt_after_first_batch(args: list[str], out: Path, cwd: Path, workers: int) -> tuple[int, str, list[int]]:
    proc = subprocess.Popen([sys.executable, "-m", "muonlab.cli", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = out / "parts"
    deadline = time.monotonic() + 300  # a hang guard only; the signal waits for the store
    try:
        while not (parts.is_dir() and any(parts.glob("runs-*.parquet"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no batch was stored"
            time.sleep(0.02)
        workers_seen = _spawned_workers(proc.pid) if workers > 1 else []
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err, workers_seen


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_on_run_says_how_to_resume_and_resumes(tmp_path, workers):
    (tmp_path / "slow.yaml").write_text(SLOW)
    out = tmp_path / "o"
    args = ["run", "slow.yaml", "--out", "o", "--max-batch", "1", "--workers", str(workers)]
    rc, err, seen = _interrupt_after_first_batch(args, out, tmp_path, workers)
    assert rc == 130, err
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(line) == 1, err
    assert f"muonlab run slow.yaml --out o --max-batch 1 --workers {workers}" in line[0]
    assert "completed batches are kept in o" in line[0]
    for pid in seen:  # the pool's workers ended with the command
        assert not _alive(pid), pid
    kept = ResultStore(out).completed_ids()
    assert 1 <= len(kept) < 12
    # no partial write: every file in the store is a complete Parquet/JSON file (no temporaries)
    leftovers = [p.name for p in [*out.iterdir(), *(out / "parts").iterdir()] if ".tmp" in p.name]
    assert not leftovers

    again = subprocess.run([sys.executable, "-m", "muonlab.cli", *args], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "already in the store" in again.stdout
    runs = ResultStore(out).runs()
    assert len(runs) == 12 and set(runs["status"]) == {"ok"}
    assert set(kept) <= set(runs["run_id"])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigint_on_reproduce_says_how_to_resume(tmp_path):
    exp = tmp_path / "exps"
    exp.mkdir()
    (exp / "slow.yaml").write_text(SLOW + "reproduce:\n  seed: '001'\n  group: example\n  title: slow\n"
                                   "  description: slow\n  claims: []\n  scales: {quick: [], paper: []}\n")
    args = ["reproduce", "slow", "--out", "r", "--experiments", "exps", "--workers", "1",
            "--set", "seeds=12"]
    rc, err, _ = _interrupt_after_first_batch(args, tmp_path / "r" / "slow", tmp_path, 1)
    assert rc == 130, err
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(line) == 1 and "muonlab reproduce slow --out r --experiments exps" in line[0], err
