"""Tests for muonlab.atomic: the package's one atomic write (temporary file, fsync, os.replace)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.atomic import TMP_MARK, atomic_file, write_atomic, write_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if TMP_MARK in p.name]


@settings(max_examples=50, deadline=None)
@given(JSON)
def test_write_json_round_trips_in_the_documented_format(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.json"
        write_json(path, data)
        raw = path.read_bytes()
        assert raw == json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")
        assert json.loads(raw.decode("utf-8")) == data
        assert leftovers(Path(d)) == []


def test_write_json_writes_unicode_as_is_and_takes_json_options(tmp_path):
    path = tmp_path / "deep" / "er" / "claims.json"  # folders are created
    write_json(path, {"detail": "κ=10⁴ → ok", "b": 1, "a": [1, 2]})
    text = path.read_text(encoding="utf-8")
    assert "κ=10⁴ → ok" in text and "\\u" not in text
    assert text.startswith('{\n  "detail"') and not text.endswith("\n")
    write_json(path, {"b": 1, "a": "κ"}, sort_keys=True, indent=None, ensure_ascii=True)
    assert path.read_text(encoding="utf-8") == '{"a": "\\u03ba", "b": 1}'
    write_json(path, {"p": Path("x")}, default=str)
    assert json.loads(path.read_text(encoding="utf-8")) == {"p": "x"}


@pytest.mark.parametrize(("data", "kwargs", "error"), [
    ({"x": object()}, {}, TypeError),
    ({"x": float("nan")}, {"allow_nan": False}, ValueError),
])
def test_write_json_that_cannot_serialize_keeps_the_old_file(tmp_path, data, kwargs, error):
    path = tmp_path / "x.json"
    write_json(path, {"old": True})
    with pytest.raises(error):
        write_json(path, data, **kwargs)
    assert json.loads(path.read_text(encoding="utf-8")) == {"old": True}
    assert leftovers(tmp_path) == []


def test_atomic_file_fsyncs_the_file_and_its_folder_before_and_after_the_rename(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):  # pragma: no cover - not Linux
        pytest.skip("needs /proc to tell a folder's fd from a file's")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomic(tmp_path / "a.bin", b"\x00\x01")
    assert events == ["fsync-file", "replace", "fsync-dir"]
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"


def test_a_failing_block_or_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError, match="half way"), atomic_file(path) as f:
        f.write(b"new, but torn")
        raise RuntimeError("half way")
    assert path.read_text() == "old" and leftovers(tmp_path) == []

    def crash(*a, **k):
        raise OSError("crash at rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="crash at rename"):
        write_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old" and leftovers(tmp_path) == []
    write_atomic(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"


def test_the_temporary_file_is_hidden_in_the_same_folder(tmp_path):
    with atomic_file(tmp_path / "data.parquet") as f:
        names = leftovers(tmp_path)
        assert len(names) == 1 and names[0].startswith(".data.parquet" + TMP_MARK)
        f.write(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]
