"""Tests for muonlab.engine.store: Parquet results store, atomic appends, resume, lock."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import muonlab
from muonlab.config import ExperimentConfig, expand
from muonlab.engine import store as store_module
from muonlab.engine.store import (
    RESULT_COLUMNS,
    ResultStore,
    StoreError,
    StoreLockedError,
)
from muonlab.errors import MuonlabError


def row(run_id: str, status: str = "ok", **extra) -> dict:
    out = {
        "run_id": run_id,
        "problem.kind": "symmetric_mf",
        "problem.kappa": 10.0,
        "optimizer.name": "muon",
        "seed": 0,
        "status": status,
        "final_loss": 1e-20,
        "final_rel_err": 1e-13,
        "steps": 42,
        "steps_to_1e-4": 10,
        "steps_to_1e-8": 20,
        "steps_to_1e-12": None,
        "wall_s": 0.5,
    }
    out.update(extra)
    return out


def traj(run_ids, steps=3, metric="loss") -> pd.DataFrame:
    frames = [
        pd.DataFrame({"run_id": rid, "step": np.arange(steps), "metric": metric, "index": 0,
                      "value": np.linspace(1.0, 0.1, steps)})
        for rid in run_ids
    ]
    return pd.concat(frames, ignore_index=True) if frames else None


def snapshot(store: ResultStore) -> tuple[list[dict], list[tuple]]:
    runs = store.runs().sort_values("run_id").astype(object).where(lambda d: d.notna(), None)
    t = store.trajectories().sort_values(["run_id", "metric", "step", "index"])
    return runs.to_dict("records"), list(t.itertuples(index=False, name=None))


def assert_unlocked(path) -> None:
    """Nobody holds the store's lock: a fresh object takes it at once."""
    other = ResultStore(path)
    other.acquire()
    other.release()


# ----------------------------------------------------------------------------- round trip


def test_empty_store_reads(tmp_path):
    store = ResultStore(tmp_path / "nothing")
    assert store.completed_ids() == set()
    runs = store.runs()
    assert list(runs.columns) == ["run_id", *RESULT_COLUMNS] and len(runs) == 0
    assert str(runs["steps_to_1e-8"].dtype) == "Int64"
    t = store.trajectories()
    assert list(t.columns) == ["run_id", "step", "metric", "index", "value"] and len(t) == 0
    assert store.read_metadata() == {}
    assert not (tmp_path / "nothing").exists()  # reading creates nothing


def test_append_round_trip_with_dtypes(tmp_path):
    store = ResultStore(tmp_path)
    rows = [
        row("a", **{"optimizer.nesterov": True}),
        row("b", status="diverged", final_loss=float("inf"), final_rel_err=float("nan"), steps=np.int64(7),
            **{"steps_to_1e-4": None, "steps_to_1e-8": None, "optimizer.nesterov": False}),
        row("c", status="failed", final_loss=None, final_rel_err=None, steps=0, error="RuntimeError: boom",
            **{"steps_to_1e-4": None, "steps_to_1e-8": None}),
    ]
    assert store.append(rows, traj(["a", "b"])) == ["a", "b", "c"]
    runs = store.runs().set_index("run_id")
    assert list(store.runs().columns)[-len(RESULT_COLUMNS):] == list(RESULT_COLUMNS)
    for col in ("steps", "steps_to_1e-4", "steps_to_1e-8", "steps_to_1e-12", "seed"):
        assert str(runs[col].dtype) == "Int64", col
    for col in ("final_loss", "final_rel_err", "wall_s", "problem.kappa"):
        assert runs[col].dtype == np.float64, col
    assert str(runs["optimizer.nesterov"].dtype) == "boolean"
    assert runs.loc["a", "steps_to_1e-4"] == 10 and pd.isna(runs.loc["a", "steps_to_1e-12"])
    assert runs.loc["b", "steps"] == 7 and np.isinf(runs.loc["b", "final_loss"])
    assert runs.loc["c", "error"] == "RuntimeError: boom" and pd.isna(runs.loc["a", "error"])
    assert list(runs["status"]) == ["ok", "diverged", "failed"]
    assert store.completed_ids() == {"a", "b"}  # diverged is final; failed is retried

    t = store.trajectories()
    assert len(t) == 6 and t["step"].dtype == np.int64 and t["index"].dtype == np.int64
    assert t["value"].dtype == np.float64
    assert set(store.trajectories(run_ids=["b"])["run_id"]) == {"b"}
    assert len(store.trajectories(run_ids="a", metrics=["rel_err"])) == 0


def test_index_defaults_to_zero_and_vector_metrics(tmp_path):
    store = ResultStore(tmp_path)
    df = pd.DataFrame({"run_id": ["a"] * 4, "step": [0, 0, 1, 1], "metric": "singular_values",
                       "index": [0, 1, 0, 1], "value": [3.0, 1.0, 2.0, 0.5]})
    store.append([row("a")], pd.concat([df, traj(["a"]).drop(columns="index")], ignore_index=True))
    t = store.trajectories(metrics=["singular_values"])
    assert list(t["index"]) == [0, 1, 0, 1]
    assert set(store.trajectories(metrics=["loss"])["index"]) == {0}


def test_parquet_metadata_records_version(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a")], traj(["a"]))
    files = [store.runs_path, store.trajectories_path, *store.parts_dir.glob("*.parquet")]
    assert len(files) == 4
    for f in files:
        meta = pq.read_schema(f).metadata
        assert meta[b"muonlab.version"].decode() == muonlab.__version__, f


def test_write_metadata(tmp_path):
    store = ResultStore(tmp_path)
    store.write_metadata({"config": {"name": "x", "seeds": [0, 1]}})
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["config"] == {"name": "x", "seeds": [0, 1]}
    assert meta["versions"]["muonlab"] == muonlab.__version__
    assert "torch" in meta["versions"] and "written_at" in meta
    assert store.read_metadata() == meta
    assert not store.locked
    assert_unlocked(tmp_path)


def test_rows_from_run_specs(tmp_path):
    cfg = ExperimentConfig.model_validate({
        "name": "e", "problem": {"kind": "symmetric_mf", "n": 10, "r": 2}, "optimizer": {"name": "gd", "lr": 0.1},
        "steps": 5, "seeds": 2, "grid": {"problem.kappa": [1, 10], "optimizer": [{"name": "gd", "lr": 0.1},
                                                                                {"name": "adam", "lr": 0.01}]},
    })
    runs = expand(cfg)
    rows = [{"run_id": r.run_id, **r.flat(), "status": "ok", "steps": 5} for r in runs]
    store = ResultStore(tmp_path)
    store.append(rows[:4])
    store.append(rows[4:])
    df = store.runs()
    assert len(df) == 8 and set(df["run_id"]) == {r.run_id for r in runs}
    assert {"problem.kappa", "optimizer.lr", "optimizer.betas", "max_steps", "seed", "schedule.name"} <= set(df.columns)
    assert df["optimizer.betas"].isna().sum() == 4  # gd rows have no betas column value
    assert str(df["max_steps"].dtype) == "Int64" and df["problem.kappa"].dtype == np.float64


# ----------------------------------------------------------------------------- no overwrite


def test_duplicates_never_overwrite(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a", final_loss=1.0)], traj(["a"], steps=3))
    added = store.append([row("a", final_loss=2.0), row("b"), row("b", final_loss=3.0)], traj(["a", "b"], steps=5))
    assert added == ["b"]
    runs = store.runs().set_index("run_id")
    assert runs.loc["a", "final_loss"] == 1.0 and runs.loc["b", "final_loss"] == 1e-20
    t = store.trajectories()
    assert (t["run_id"] == "a").sum() == 3 and (t["run_id"] == "b").sum() == 5
    assert store.append([row("a"), row("b")], None) == []
    assert len(store.runs()) == 2


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=5), min_size=1, max_size=5))
def test_first_row_wins_over_any_sequence_of_batches(batches):
    with tempfile.TemporaryDirectory() as d:
        store = ResultStore(d)
        first: dict[str, float] = {}
        for b, ids in enumerate(batches):
            store.append([row(i, final_loss=float(b)) for i in ids], traj(sorted(set(ids)), steps=2))
            for i in ids:
                first.setdefault(i, float(b))
        assert store.completed_ids() == set(first)
        runs = store.runs()
        assert dict(zip(runs["run_id"], runs["final_loss"])) == first
        t = store.trajectories()
        assert t.groupby("run_id").size().to_dict() == dict.fromkeys(first, 2)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("rows", "trajectories", "pattern"),
    [
        ([{"status": "ok"}], None, r"runs\[0\]\.run_id: must be a non-empty string"),
        ([row("a", status="done")], None, r"runs\[0\]\.status: unknown 'done'; allowed: ok, diverged, failed"),
        ([row("a", steps=1.5)], None, r"steps: must be an integer"),
        ([row("a", final_loss="low")], None, r"final_loss: must be a number"),
        ([row("a")], traj(["zz"]), r"trajectories\.run_id: 'zz' is not a run of this batch"),
        ([row("a")], traj(["a"]).drop(columns="metric"), r"missing column\(s\) metric"),
        ([row("a")], traj(["a"]).assign(extra=1), r"unknown column\(s\) extra"),
        ([row("a")], traj(["a"]).assign(step=[0.0, np.nan, 2.0]), r"trajectories\.step: must be integers"),
        ([row("a", **{"problem.kappa": 1.0}), row("b", **{"problem.kappa": "x"})], None, r"column 'problem\.kappa'"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, rows, trajectories, pattern):
    store = ResultStore(tmp_path)
    store.append([row("z")], traj(["z"]))
    before = snapshot(store)
    with pytest.raises(ValueError, match=pattern) as info:
        store.append(rows, trajectories)
    assert "\n" not in str(info.value)
    assert snapshot(store) == before
    assert len(list(store.parts_dir.iterdir())) == 2
    assert not store.locked
    assert_unlocked(tmp_path)


def test_column_type_conflict_with_stored_rows_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a", **{"schedule.name": "plateau"})])
    with pytest.raises(ValueError, match="conflicts with the rows already in the store"):
        store.append([row("b", **{"schedule.name": 3})])
    assert store.completed_ids() == {"a"}


# ----------------------------------------------------------------------------- crash safety


def _count_replaces(tmp_path) -> int:
    calls = 0
    real = os.replace

    def counting(*a, **k):
        nonlocal calls
        calls += 1
        return real(*a, **k)

    store = ResultStore(tmp_path / "count")
    store.append([row("a")], traj(["a"]))
    os.replace = counting
    try:
        store.append([row("b")], traj(["b"]))
    finally:
        os.replace = real
    return calls


def test_crash_at_every_replace_leaves_a_readable_store(tmp_path, monkeypatch):
    n_replaces = _count_replaces(tmp_path)
    assert n_replaces == 4  # traj part, runs part, runs.parquet, trajectories.parquet
    for crash_at in range(1, n_replaces + 1):
        store = ResultStore(tmp_path / f"crash{crash_at}")
        store.append([row("a")], traj(["a"]))
        before = snapshot(store)
        real = os.replace
        calls = 0

        def failing(*a, _crash_at=crash_at, _real=real, **k):  # defaults: bound per iteration
            nonlocal calls
            calls += 1
            if calls == _crash_at:
                raise OSError("simulated crash")
            return _real(*a, **k)

        monkeypatch.setattr(os, "replace", failing)
        with pytest.raises(OSError, match="simulated crash"):
            store.append([row("b")], traj(["b"]))
        monkeypatch.setattr(os, "replace", real)

        # Readable, and either exactly the old store or old + the whole batch.
        fresh = ResultStore(store.path)
        after = snapshot(fresh)
        committed = crash_at > 2  # the runs part (2nd replace) is the commit point
        if committed:
            assert fresh.completed_ids() == {"a", "b"}
            assert len(after[1]) == 6
        else:
            assert after == before
        assert not any(".tmp-" in p.name for p in store.path.rglob("*"))  # temp files removed
        # The next append completes (or finds) the batch exactly once.
        fresh.append([row("b")], traj(["b"]))
        runs, t = snapshot(fresh)
        assert [r["run_id"] for r in runs] == ["a", "b"] and len(t) == 6
        assert set(json.loads(pq.read_schema(fresh.runs_path).metadata[b"muonlab.parts"])) == {
            p.name[5:-8] for p in fresh.parts_dir.glob("runs-*.parquet")
        }


def test_crash_while_writing_a_file_keeps_the_old_one(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.append([row("a")], traj(["a"]))
    before = snapshot(store)
    real = pq.write_table

    def half_write(table, where, **kw):
        where.write(b"PAR1 truncated garbage")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.append([row("b")], traj(["b"]))
    monkeypatch.setattr(pq, "write_table", real)
    assert snapshot(ResultStore(tmp_path)) == before
    assert sorted(p.name[:4] for p in store.parts_dir.iterdir()) == ["runs", "traj"]


def test_orphan_trajectory_part_is_ignored_and_cleaned(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.append([row("a")], traj(["a"]))
    real = os.replace
    calls = 0

    def fail_second(*a, **k):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("crash before commit")
        return real(*a, **k)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError):
        store.append([row("b")], traj(["b"]))
    monkeypatch.setattr(os, "replace", real)
    assert len(list(store.parts_dir.glob("traj-*"))) == 2  # the orphan is there ...
    assert set(store.trajectories()["run_id"]) == {"a"}  # ... but not read
    store.append([row("c")], traj(["c"]))  # the next writer deletes it
    assert len(list(store.parts_dir.glob("traj-*"))) == 2
    assert set(store.trajectories()["run_id"]) == {"a", "c"}


def test_unconsolidated_batches_are_read_and_consolidated_later(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a")], traj(["a"]))
    store.append([row("b")], traj(["b"], steps=4), consolidate=False)
    store.append([row("c")], traj(["c"], steps=5), consolidate=False)
    assert len(pq.read_table(store.runs_path)) == 1  # the consolidated file is behind ...
    assert store.completed_ids() == {"a", "b", "c"}  # ... but readers see every batch
    assert list(store.runs()["run_id"]) == ["a", "b", "c"]  # in commit order
    assert store.trajectories(run_ids=["c"], metrics="loss")["step"].tolist() == [0, 1, 2, 3, 4]
    store.consolidate()
    assert len(pq.read_table(store.runs_path)) == 3 and len(pq.read_table(store.trajectories_path)) == 12
    assert list(store.runs()["run_id"]) == ["a", "b", "c"]


def test_store_copied_without_parts_still_reads_and_appends(tmp_path):
    store = ResultStore(tmp_path / "a")
    store.append([row("a")], traj(["a"]))
    (tmp_path / "b").mkdir()
    for name in ("runs.parquet", "trajectories.parquet"):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    copy = ResultStore(tmp_path / "b")
    assert copy.completed_ids() == {"a"} and len(copy.trajectories()) == 3
    copy.append([row("a"), row("b")], traj(["a", "b"]))
    assert copy.completed_ids() == {"a", "b"} and len(copy.trajectories()) == 6


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd
    from muonlab.engine.store import ResultStore
    store = ResultStore(sys.argv[1])
    with store.lock():
        print("locked", flush=True)
        for b in range(10_000):
            ids = [f"{b}-{i}" for i in range(8)]
            rows = [{"run_id": r, "status": "ok", "steps": b, "problem.kappa": float(b)} for r in ids]
            t = pd.DataFrame({"run_id": np.repeat(ids, 50), "step": np.tile(np.arange(50), 8),
                              "metric": "loss", "value": np.random.rand(400)})
            store.append(rows, t)
    """
)


def test_killed_writer_leaves_a_consistent_store(tmp_path):
    out = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        # Another writer is refused while it runs.
        with pytest.raises(StoreLockedError, match="another process is writing to it"):
            ResultStore(out).append([row("x")])
        deadline = time.time() + 30
        while len(list((out / "parts").glob("runs-*"))) < 5 and time.time() < deadline:
            time.sleep(0.02)
        assert len(list((out / "parts").glob("runs-*"))) >= 5, "the writer appended fewer than 5 batches in 30 s"
        time.sleep(0.037)  # land somewhere inside a later append
        assert proc.poll() is None, "the writer ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run (10,000 appends never finish first)
    store = ResultStore(out)
    runs = store.runs()
    assert len(runs) >= 40 and len(runs) % 8 == 0 and runs["run_id"].is_unique
    t = store.trajectories()
    assert t.groupby("run_id").size().to_dict() == dict.fromkeys(runs["run_id"], 50)
    # The kernel dropped the dead writer's lock: a new writer is not blocked.
    assert store.append([row("new")], traj(["new"])) == ["new"]
    assert not any(".tmp-" in p.name for p in out.rglob("*"))


# ----------------------------------------------------------------------------- lock


def test_lock_contention_in_process(tmp_path):
    holder, other = ResultStore(tmp_path), ResultStore(tmp_path)
    with holder.lock():
        assert holder.locked and not other.locked
        with pytest.raises(StoreLockedError) as info:
            other.append([row("a")])
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"results store {tmp_path} is locked: another process is writing to it")
        assert isinstance(info.value, StoreError) and isinstance(info.value, MuonlabError)
        assert isinstance(info.value, ValueError) and info.value.field is None
        assert not other.locked
        holder.append([row("b")])  # the holder itself may write (re-entrant)
        with holder.lock():
            pass
        assert holder.locked  # the inner block released one level only
        with pytest.raises(StoreLockedError):
            other.acquire()
        assert other.runs()["run_id"].tolist() == ["b"]  # readers need no lock
    assert not holder.locked
    assert other.append([row("a")]) == ["a"]


def test_release_without_acquire_is_a_no_op(tmp_path):
    store = ResultStore(tmp_path)
    store.release()
    assert not store.locked
    store.acquire()
    store.acquire()
    store.release()
    assert store.locked
    with pytest.raises(StoreLockedError):
        ResultStore(tmp_path).acquire()
    store.release()
    assert not store.locked
    store.release()
    assert_unlocked(tmp_path)


def test_the_hold_belongs_to_the_object_not_the_thread(tmp_path):
    store = ResultStore(tmp_path)
    errors: list[BaseException] = []

    def run(fn):
        def wrapped():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the asserts below
                errors.append(e)
        t = threading.Thread(target=wrapped)
        t.start()
        t.join()

    run(store.acquire)  # taken in one thread ...
    run(lambda: store.append([row("t")]))  # ... used in another ...
    assert errors == [] and store.locked and store.completed_ids() == {"t"}
    with pytest.raises(StoreLockedError):  # still held, though those threads ended
        ResultStore(tmp_path).acquire()
    store.release()  # ... and released in a third
    assert not store.locked
    assert_unlocked(tmp_path)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from muonlab.engine.store import ResultStore
    with ResultStore(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_live_lock_of_another_process_then_its_death(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(StoreLockedError, match=f"results store {tmp_path} is locked"):
            ResultStore(tmp_path).append([row("a")])
        assert time.monotonic() - start < 5  # refused at once, not after a wait
        assert ResultStore(tmp_path).completed_ids() == set()
        assert proc.poll() is None, "the holder ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Killed without releasing: its lock died with it.
    assert ResultStore(tmp_path).append([row("a")]) == ["a"]


def test_a_lock_file_left_by_the_old_lock_does_not_block(tmp_path):
    # The former hand-written lock left {"pid": …} files behind; only the OS lock counts now.
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere", "token": "t"}))
    assert ResultStore(tmp_path).append([row("a")]) == ["a"]


def test_a_dropped_store_object_releases_its_lock(tmp_path):
    store = ResultStore(tmp_path)
    store.acquire()
    del store  # lost without release()
    gc.collect()
    assert ResultStore(tmp_path).append([row("a")]) == ["a"]


def test_store_errors_are_muonlab_errors(tmp_path):
    (tmp_path / "runs.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match=r"^cannot read .*runs\.parquet") as info:
        ResultStore(tmp_path).runs()
    assert isinstance(info.value, MuonlabError) and "\n" not in str(info.value)
    assert str(info.value) == info.value.message


# ----------------------------------------------------------------------------- failed runs are retried


def test_failed_run_is_superseded_by_its_retry(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a"), row("f", status="failed", final_loss=None, error="RuntimeError: boom")],
                 traj(["a", "f"], steps=3))
    assert store.completed_ids() == {"a"}  # the failed run is to be run again
    assert store.append([row("a", final_loss=9.0), row("f", final_loss=2.0)], traj(["a", "f"], steps=5)) == ["f"]
    assert store.completed_ids() == {"a", "f"}
    runs = store.runs()
    assert runs["run_id"].tolist() == ["a", "f"]  # once each
    f = runs.set_index("run_id").loc["f"]
    assert f["status"] == "ok" and f["final_loss"] == 2.0 and pd.isna(f["error"])
    assert runs.set_index("run_id").loc["a", "final_loss"] == 1e-20  # ok: never overwritten
    t = store.trajectories()
    assert t.groupby("run_id").size().to_dict() == {"a": 3, "f": 5}  # f's are the retry's
    assert store.trajectories(run_ids="f")["step"].tolist() == [0, 1, 2, 3, 4]
    # The consolidated files hold the same, one row per run, and so does a fresh reader.
    on_disk = pq.read_table(store.runs_path).to_pandas()
    assert on_disk["run_id"].tolist() == ["a", "f"] and on_disk.set_index("run_id").loc["f", "status"] == "ok"
    assert pq.read_table(store.trajectories_path).to_pandas().groupby("run_id").size().to_dict() == {"a": 3, "f": 5}
    assert snapshot(ResultStore(tmp_path)) == snapshot(store)


def test_a_final_row_is_never_superseded(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("a", final_loss=1.0), row("d", status="diverged", final_loss=float("inf"))])
    assert store.append([row("a", final_loss=2.0), row("d", final_loss=3.0)]) == []
    assert store.append([row("a", status="failed"), row("d", status="failed")]) == []
    runs = store.runs().set_index("run_id")
    assert len(runs) == 2 and runs.loc["a", "final_loss"] == 1.0 and runs.loc["d", "status"] == "diverged"


def test_failed_twice_shows_the_latest_failure(tmp_path):
    store = ResultStore(tmp_path)
    store.append([row("f", status="failed", error="first")], traj(["f"], steps=2))
    store.append([row("f", status="failed", error="second")], consolidate=False)
    runs = store.runs()
    assert runs["error"].tolist() == ["second"] and store.completed_ids() == set()
    assert len(store.trajectories()) == 0  # the retry recorded none
    store.consolidate()
    assert pq.read_table(store.runs_path).column("error").to_pylist() == ["second"]
    assert pq.read_table(store.trajectories_path).num_rows == 0


@pytest.mark.parametrize("consolidate", [True, False])
def test_retry_wins_even_when_the_clock_goes_back(tmp_path, monkeypatch, consolidate):
    store = ResultStore(tmp_path)
    store.append([row("f", status="failed")], consolidate=consolidate)
    store.append([row("g", status="failed")], consolidate=consolidate)
    monkeypatch.setattr(store_module.time, "time_ns", lambda: 1)  # far in the past
    assert ResultStore(tmp_path).append([row("f"), row("g")], traj(["f", "g"]), consolidate=consolidate) == ["f", "g"]
    fresh = ResultStore(tmp_path)
    assert fresh.completed_ids() == {"f", "g"} and set(fresh.runs()["status"]) == {"ok"}
    fresh.consolidate()
    assert set(pq.read_table(fresh.runs_path).column("status").to_pylist()) == {"ok"}


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4])
def test_crash_while_superseding_a_failed_run(tmp_path, monkeypatch, crash_at):
    store = ResultStore(tmp_path)
    store.append([row("a"), row("f", status="failed")], traj(["a", "f"], steps=3))
    real = os.replace
    calls = 0

    def failing(*a, **k):
        nonlocal calls
        calls += 1
        if calls == crash_at:
            raise OSError("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="simulated crash"):
        store.append([row("f")], traj(["f"], steps=5))
    monkeypatch.setattr(os, "replace", real)
    fresh = ResultStore(tmp_path)
    committed = crash_at > 2  # the runs part is the commit point
    f = fresh.runs().set_index("run_id").loc["f"]
    assert f["status"] == ("ok" if committed else "failed")
    steps = fresh.trajectories(run_ids="f").groupby("run_id").size().to_dict()
    assert steps == {"f": 5 if committed else 3}
    fresh.append([row("f")], traj(["f"], steps=5))  # the resume completes it exactly once
    runs, t = snapshot(fresh)
    assert [r["run_id"] for r in runs] == ["a", "f"] and runs[1]["status"] == "ok" and len(t) == 3 + 5


_BATCH = st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from(["ok", "diverged", "failed"])), max_size=5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_BATCH, st.booleans()), min_size=1, max_size=5))
def test_store_matches_a_model_of_resume(batches):
    """Any sequence of batches (statuses mixed, consolidated or not): one row per run,
    the first final row or else the latest failed one, with that batch's trajectories."""
    with tempfile.TemporaryDirectory() as d:
        store = ResultStore(d)
        model: dict[str, tuple[str, int]] = {}  # run_id → (status, batch that wrote it)
        for b, (rows, consolidate) in enumerate(batches):
            firsts = dict(reversed(rows))  # a run repeated within a batch: its first row counts
            ids = sorted(firsts)
            expected = [i for i in ids if model.get(i, ("failed",))[0] == "failed"]
            added = store.append([row(i, status=s, steps=b) for i, s in rows], traj(ids, steps=b + 1),
                                 consolidate=consolidate)
            assert sorted(added) == expected
            model.update({i: (firsts[i], b) for i in expected})
        final = {i for i, (s, _) in model.items() if s in ("ok", "diverged")}

        def check(runs: pd.DataFrame, t: pd.DataFrame) -> None:
            assert runs["run_id"].is_unique
            assert {r: (s, int(n)) for r, s, n in zip(runs["run_id"], runs["status"], runs["steps"])} == model
            assert t.groupby("run_id").size().to_dict() == {i: b + 1 for i, (_, b) in model.items()}

        assert store.completed_ids() == final
        check(store.runs(), store.trajectories())
        store.consolidate()
        if model:
            check(pq.read_table(store.runs_path).to_pandas(), pq.read_table(store.trajectories_path).to_pandas())
        else:
            assert not store.runs_path.exists()
        fresh = ResultStore(d)
        assert fresh.completed_ids() == final
        check(fresh.runs(), fresh.trajectories())
