"""A damaged store (issue 14, item 3): page checksums catch bit flips; a damaged
consolidated file is rebuilt from its parts; damaged parts are moved aside and their
runs run again; ``run`` checks the store before any batch; ``report`` never raises.

Corruption cases tested here (docs/reliability.md counts them): CASES below, each
ending in a store equal to an undamaged one after ``run`` (a resume)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.engine.store import ResultStore, StoreError

from helpers import tiny_sweep

RAW = tiny_sweep("damage")
CONFIG = ExperimentConfig.model_validate(RAW)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """An undamaged store: 4 runs in 4 batches (4 pairs of parts), consolidated."""
    out = tmp_path_factory.mktemp("template") / "store"
    run(CONFIG, out, max_batch=1)
    return out


@pytest.fixture
def store_dir(template, tmp_path) -> Path:
    out = tmp_path / "store"
    shutil.copytree(template, out)
    return out


def frames(path: Path, *, timing: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """runs and trajectories, in run order; ``timing=False`` drops wall_s (a rerun differs)."""
    store = ResultStore(path)
    runs = store.runs().sort_values("run_id").reset_index(drop=True)
    if not timing:
        runs = runs.drop(columns=["wall_s"])
    traj = store.trajectories().sort_values(["run_id", "metric", "step", "index"]).reset_index(drop=True)
    return runs, traj


def assert_same_store(path: Path, template: Path, *, timing: bool = True) -> None:
    a, b = frames(path, timing=timing), frames(template, timing=timing)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_value(path: Path, column: str) -> None:
    """Flip one bit inside the stored values of ``column`` (its dictionary page, or its
    first data page when it has none): a page of values, not the footer."""
    meta = pq.ParquetFile(path).metadata
    rg = meta.row_group(0)
    col = next(rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema == column)
    if col.dictionary_page_offset is not None and col.dictionary_page_offset < col.data_page_offset:
        end = col.data_page_offset  # the dictionary page ends where the data page starts
    else:
        end = col.data_page_offset + col.total_compressed_size
    data = bytearray(path.read_bytes())
    data[end - 3] ^= 0x04  # a mantissa bit of the last plain float64 value
    path.write_bytes(bytes(data))


def flip_footer_name(path: Path, name: bytes) -> None:
    """Flip one bit of a column's name in the footer (which page checksums do not cover)."""
    data = bytearray(path.read_bytes())
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    at = data.find(name, footer)  # the schema's element (it comes first in the footer)
    assert at > 0
    data[at + len(name) - 1] ^= 0x01
    path.write_bytes(bytes(data))


def parts(path: Path, kind: str) -> list[Path]:
    return sorted((path / "parts").glob(f"{kind}-*.parquet"))


def unconsolidate_last_batch(path: Path) -> Path:
    """Make the last batch a part the consolidated files do not hold yet (as after a
    crash before consolidation): returns its runs part."""
    store = ResultStore(path)
    order = store._extras(None)  # every part, commit order
    last = order[-1]
    keep = {}
    for p in (path / "parts").glob("*-" + last + ".parquet"):
        keep[p] = p.read_bytes()
        p.unlink()
    for name in ("runs.parquet", "trajectories.parquet"):
        (path / name).unlink()
    store.consolidate()
    for p, data in keep.items():
        p.write_bytes(data)
    return path / "parts" / f"runs-{last}.parquet"


def resume(path: Path, caplog) -> tuple[object, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="muonlab"):
        result = run(CONFIG, path, max_batch=1)
    return result, [r.getMessage() for r in caplog.records if r.name == "muonlab"]


# ----------------------------------------------------------------------------- checksums


def test_parquet_is_written_with_page_checksums(store_dir):
    for p in [store_dir / "runs.parquet", store_dir / "trajectories.parquet", *parts(store_dir, "runs")]:
        flip_value(p, "run_id")
        with pytest.raises(OSError, match="CRC|checksum"):
            pq.read_table(p, page_checksum_verification=True)


# ----------------------------------------------------------------------------- consolidated files

CASES = ["truncated runs.parquet", "truncated trajectories.parquet", "zero-byte runs.parquet",
         "bit flip in runs.parquet final_loss", "bit flip in trajectories.parquet value",
         "both consolidated files truncated", "bit flip in runs.parquet footer",
         "bit flip in trajectories.parquet footer", "zero-byte listed runs part", "zero-byte listed trajectory part",
         "bit flip in a listed runs part", "zero-byte unconsolidated runs part",
         "bit flip in an unconsolidated runs part final_loss", "truncated unconsolidated trajectory part",
         "truncated trajectories.parquet, store without parts", "truncated runs.parquet, store without parts"]


@pytest.mark.parametrize("damage", ["truncated runs.parquet", "truncated trajectories.parquet",
                                    "zero-byte runs.parquet", "bit flip in runs.parquet final_loss",
                                    "bit flip in trajectories.parquet value", "both consolidated files truncated",
                                    "bit flip in runs.parquet footer", "bit flip in trajectories.parquet footer"])
def test_a_damaged_consolidated_file_is_rebuilt_from_its_parts(store_dir, template, caplog, damage):
    runs_file, traj_file = store_dir / "runs.parquet", store_dir / "trajectories.parquet"
    if damage == "truncated runs.parquet":
        truncate(runs_file)
    elif damage == "truncated trajectories.parquet":
        truncate(traj_file)
    elif damage == "zero-byte runs.parquet":
        truncate(runs_file, 0)
    elif damage == "bit flip in runs.parquet final_loss":
        flip_value(runs_file, "final_loss")
        # Read without checks, the flip changes a value (what happened before):
        plain = pq.read_table(runs_file).to_pandas().sort_values("run_id")["final_loss"].to_numpy()
        assert (plain != frames(template)[0]["final_loss"].to_numpy()).any()
    elif damage == "bit flip in trajectories.parquet value":
        flip_value(traj_file, "value")
    elif damage == "bit flip in runs.parquet footer":
        flip_footer_name(runs_file, b"final_loss")
    elif damage == "bit flip in trajectories.parquet footer":
        flip_footer_name(traj_file, b"metric")
    else:
        truncate(runs_file)
        truncate(traj_file, 0.3)
    # Readers never return the damaged values: they read the parts instead.
    assert_same_store(store_dir, template)
    result, lines = resume(store_dir, caplog)
    assert result.executed == 0 and result.skipped == 4
    rebuilt = [m for m in lines if "rebuilt from its 4 part(s)" in m]
    assert rebuilt and all("\n" not in m for m in lines)
    assert_same_store(store_dir, template)
    assert len(list((store_dir / "damaged").iterdir())) == (2 if damage.startswith("both") else 1)
    _, again = resume(store_dir, caplog)
    assert again == []  # repaired for good


def test_the_store_is_checked_before_any_batch_runs(store_dir, template, caplog):
    """Before: a truncated trajectories.parquet was found only after every batch had run."""
    runs_part = unconsolidate_last_batch(store_dir)
    for p in (store_dir / "parts").glob("*-" + runs_part.name[5:]):
        p.unlink()  # that batch was never run: the resume has one batch to run
    truncate(store_dir / "trajectories.parquet")
    events: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record):
            events.append("warning: " + record.getMessage())

    handler = Recorder(logging.WARNING)
    logging.getLogger("muonlab").addHandler(handler)
    try:
        result = run(CONFIG, store_dir, max_batch=1, on_batch=lambda done, total: events.append(f"batch {done}"))
    finally:
        logging.getLogger("muonlab").removeHandler(handler)
    assert result.executed == 1
    first_batch = events.index("batch 1")
    assert any("trajectories.parquet was damaged" in e for e in events[:first_batch])
    assert_same_store(store_dir, template, timing=False)


# ----------------------------------------------------------------------------- parts


@pytest.mark.parametrize("damage", ["zero-byte listed runs part", "zero-byte listed trajectory part",
                                    "bit flip in a listed runs part"])
def test_a_damaged_part_held_by_the_consolidated_files_loses_nothing(store_dir, template, caplog, damage):
    if damage == "zero-byte listed runs part":
        truncate(parts(store_dir, "runs")[0], 0)
    elif damage == "zero-byte listed trajectory part":
        truncate(parts(store_dir, "traj")[0], 0)
    else:
        flip_value(parts(store_dir, "runs")[0], "final_loss")
    assert_same_store(store_dir, template)
    if damage != "bit flip in a listed runs part":  # only its footer is read: the flip waits
        result, lines = resume(store_dir, caplog)
        assert result.executed == 0
        assert any("still hold it" in m for m in lines), lines
    assert_same_store(store_dir, template)


@pytest.mark.parametrize("damage", ["zero-byte unconsolidated runs part",
                                    "bit flip in an unconsolidated runs part final_loss",
                                    "truncated unconsolidated trajectory part"])
def test_a_damaged_unconsolidated_part_is_detected_and_its_runs_run_again(store_dir, template, caplog, damage):
    runs_part = unconsolidate_last_batch(store_dir)
    lost = set(pq.read_table(runs_part, columns=["run_id"]).column("run_id").to_pylist())
    if damage.startswith("zero-byte"):
        truncate(runs_part, 0)
    elif damage.startswith("bit flip"):
        flip_value(runs_part, "final_loss")
    else:
        truncate(runs_part.with_name("traj-" + runs_part.name[5:]))
    # Never read back silently: a one-line error naming the part and how to recover.
    with pytest.raises(StoreError) as info:
        frames(store_dir)
    msg = str(info.value)
    assert msg.startswith("cannot read ") and "/parts/" in msg and "damaged" in msg and "\n" not in msg
    assert "run the experiment into" in msg
    result, lines = resume(store_dir, caplog)
    assert result.executed == len(lost) == 1
    assert any("moved its batch to" in m for m in lines)
    assert any("runs lost" in m and all(r in m for r in lost) for m in lines), lines
    assert_same_store(store_dir, template, timing=False)


@pytest.mark.parametrize("name", ["trajectories.parquet", "runs.parquet"])
def test_parts_damaged_too_name_the_file_and_the_runs_and_a_resume_runs_them_again(store_dir, template, caplog,
                                                                                    name):
    """A store copied without its parts: nothing can rebuild a damaged consolidated file."""
    shutil.rmtree(store_dir / "parts")
    truncate(store_dir / name)
    store = ResultStore(store_dir)
    with pytest.raises(StoreError) as info:
        store.trajectories() if name.startswith("traj") else store.runs()
    msg = str(info.value)
    assert msg.startswith("cannot read ") and f"{name}: damaged" in msg and "cannot rebuild" in msg
    assert "\n" not in msg
    assert "4 run(s)" in msg  # named from the other consolidated file
    # What a resume asks first (reproduce checks every store before running) still answers:
    store.check_config(CONFIG.config_hash)
    assert len(store.completed_ids()) == (4 if name.startswith("traj") else 0)
    result, lines = resume(store_dir, caplog)
    assert result.executed == 4
    assert any("runs lost" in m and "4 run(s)" in m for m in lines), lines
    assert_same_store(store_dir, template, timing=False)


def test_append_through_the_api_repairs_a_damaged_store(store_dir, template):
    truncate(store_dir / "runs.parquet")
    store = ResultStore(store_dir)
    row = frames(template)[0].iloc[0].to_dict()
    assert store.append([row]) == []  # already complete: nothing added, the store repaired
    pq.read_table(store_dir / "runs.parquet", page_checksum_verification=True)
    assert_same_store(store_dir, template)


# ----------------------------------------------------------------------------- report


@pytest.mark.parametrize("recoverable", [True, False])
def test_report_on_a_damaged_store_is_a_notice_not_a_traceback(store_dir, recoverable):
    truncate(store_dir / "trajectories.parquet")
    if not recoverable:
        shutil.rmtree(store_dir / "parts")
    root = store_dir.parent
    before = sorted(p.name for p in store_dir.rglob("*"))
    res = CliRunner().invoke(app, ["report", str(root)])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and res.exception is None
    page = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "trajectories.parquet" in page and "damaged" in page
    if not recoverable:
        assert "cannot rebuild" in page
    assert sorted(p.name for p in store_dir.rglob("*")) == before  # the report writes nothing into a store
