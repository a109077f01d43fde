"""The results store (SPEC §6): Parquet files in one directory, crash-safe and resumable.

Layout of a store ``DIR``::

    DIR/runs.parquet                    one row per run (consolidated)
    DIR/trajectories.parquet            long form: run_id, step, metric, index, value
    DIR/parts/traj-<uuid>.parquet       one pair of part files per appended batch
    DIR/parts/runs-<uuid>.parquet
    DIR/meta.json                       resolved config and versions
    DIR/.lock                           {"pid": …, "host": …} while a process writes

Durability protocol. The part files are the record; the two consolidated files are
caches of them, each carrying (in its Parquet metadata) the list of parts it holds.

1. :meth:`ResultStore.append` writes the batch's trajectory part, then its runs
   part, each to a temporary file in the same directory, ``fsync``\\ s it and
   ``os.replace``\\ s it into place. The runs part is the commit point: a run is
   complete iff a runs part holds it; a trajectory part without its runs part is an
   orphan that readers ignore and the next writer deletes.
2. It then rewrites ``runs.parquet`` and ``trajectories.parquet`` the same way
   (temporary file + fsync + ``os.replace``).

A crash at any moment therefore leaves every file either absent, the old version,
or the new version, never truncated; a batch whose runs part was replaced into place
is never lost, even if the consolidated files were not refreshed: readers add the
rows of parts that a consolidated file does not list yet, and the next append
refreshes it.

Completed runs are never overwritten: ``append`` skips a ``run_id`` that the store
already holds and keeps the old row. A run recorded as ``diverged`` or ``failed``
counts as complete (:meth:`ResultStore.completed_ids`) and is not retried on resume;
to retry it, run into a new directory.

One writer at a time: writing takes ``DIR/.lock`` (created with ``O_EXCL``, holding
the writer's pid and host). A lock left by a dead process on this host is taken
over; a live one makes the writer fail with a one-line :class:`StoreLockedError`.
Readers never need the lock.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

try:  # POSIX only; elsewhere stale-lock takeover is unguarded.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from muonlab.atomic import TMP_MARK, atomic_file

__all__ = [
    "EPSILON_COLUMNS",
    "RESULT_COLUMNS",
    "ResultStore",
    "STATUSES",
    "StoreError",
    "StoreLockedError",
    "TRAJECTORY_SCHEMA",
]

STATUSES = ("ok", "diverged", "failed")
EPSILON_COLUMNS = ("steps_to_1e-4", "steps_to_1e-8", "steps_to_1e-12")
_FLOAT_RESULTS = ("final_loss", "final_rel_err", "wall_s")
_INT_RESULTS = ("steps", *EPSILON_COLUMNS)
#: Result columns of runs.parquet, after ``run_id`` and the config columns.
RESULT_COLUMNS = ("status", "final_loss", "final_rel_err", "steps", *EPSILON_COLUMNS, "wall_s", "error")
_RESULT_TYPES: dict[str, pa.DataType] = {
    c: pa.float64() if c in _FLOAT_RESULTS else pa.int64() if c in _INT_RESULTS else pa.string()
    for c in RESULT_COLUMNS
}
TRAJECTORY_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),
        pa.field("value", pa.float64()),
    ]
)

_RUNS_FILE = "runs.parquet"
_TRAJ_FILE = "trajectories.parquet"
_PART_RE = re.compile(r"^runs-([0-9a-f]{32})\.parquet$")
_KEY_PARTS = b"muonlab.parts"
_KEY_SEQ = b"muonlab.seq"

#: Lock files this process holds: resolved lock path → token.
_HELD: dict[str, str] = {}


class StoreError(RuntimeError):
    """A results store cannot be read or written; ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class StoreLockedError(StoreError):
    """Another live process holds the store's lock."""


def _muonlab_version() -> str:
    try:
        return version("muonlab")
    except PackageNotFoundError:  # pragma: no cover - source tree without install
        return "0.0.0+unknown"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("muonlab", "torch", "numpy", "pandas", "pyarrow", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# ----------------------------------------------------------------------------- atomic files


def _metadata(kind: str, **extra: bytes) -> dict[bytes, bytes]:
    meta = {b"muonlab.version": _muonlab_version().encode(), b"muonlab.kind": kind.encode()}
    meta.update({k.encode() if isinstance(k, str) else k: v for k, v in extra.items()})
    return meta


def _write_table(table: pa.Table, path: Path, metadata: Mapping[bytes, bytes]) -> None:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_file(path) as f:
        pq.write_table(table, f)


# ----------------------------------------------------------------------------- store


class ResultStore:
    """A results store directory (see the module docstring for the layout).

    >>> store = ResultStore("out/p1")                       # doctest: +SKIP
    >>> with store.lock():                                  # hold it for a whole sweep
    ...     todo = [r for r in runs if r.run_id not in store.completed_ids()]
    ...     store.append(rows, trajectories)                # durable when it returns
    >>> store.runs(); store.trajectories(run_ids=[...], metrics=["loss"])
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir)
        self._token: str | None = None
        self._depth = 0

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # -- paths --------------------------------------------------------------------

    @property
    def runs_path(self) -> Path:
        return self.path / _RUNS_FILE

    @property
    def trajectories_path(self) -> Path:
        return self.path / _TRAJ_FILE

    @property
    def parts_dir(self) -> Path:
        return self.path / "parts"

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    # -- lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[ResultStore]:
        """Hold the store's write lock for the block (re-entrant within this object)."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def __enter__(self) -> ResultStore:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._depth > 0

    def acquire(self) -> None:
        """Take the write lock, or raise :class:`StoreLockedError` (one line).

        A lock whose pid is dead on this host (or that this process left behind) is
        stale and is taken over; the takeover is serialized with ``flock`` so two
        processes cannot both take over the same stale lock.
        """
        if self._depth:
            self._depth += 1
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create results store {self.path}: {e}") from None
        token = uuid.uuid4().hex
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": token,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "argv": " ".join(sys.argv)[:200],
        }
        for _ in range(5):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                text = self._read_lock_text()
                if text is None:  # vanished meanwhile: try again
                    continue
                if self._is_stale(text):
                    self._remove_stale(text)
                    continue
                raise StoreLockedError(self._locked_message(text)) from None
            except OSError as e:
                raise StoreError(f"cannot create lock file {self.lock_path}: {e}") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(record))
                f.flush()
                os.fsync(f.fileno())
            self._token = token
            self._depth = 1
            _HELD[str(self.lock_path.resolve())] = token
            self._cleanup()
            return
        raise StoreLockedError(f"results store {self.path}: could not take the lock {self.lock_path} (contention)")

    def release(self) -> None:
        """Release one level of the lock; the file is removed only if it is still ours."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        token, self._token = self._token, None
        _HELD.pop(str(self.lock_path.resolve()), None)
        text = self._read_lock_text()
        if text is not None and _parse_lock(text).get("token") == token:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()

    def _read_lock_text(self) -> str | None:
        try:
            return self.lock_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return ""

    def _is_stale(self, text: str) -> bool:
        info = _parse_lock(text)
        if not info:
            # Unreadable or empty: a writer may be between open and write; give it time.
            try:
                age = time.time() - self.lock_path.stat().st_mtime
            except FileNotFoundError:
                return False
            return age > 30.0
        if info.get("host") != socket.gethostname():
            return False  # cannot check a pid on another host
        pid = info.get("pid")
        if not isinstance(pid, int):
            return True
        if pid == os.getpid():
            # Ours only if an object in this process still holds it.
            return info.get("token") not in _HELD.values()
        return not _pid_alive(pid)

    def _remove_stale(self, text: str) -> None:
        guard = self.path / ".lock.takeover"
        with open(guard, "a+") as g:
            if fcntl is not None:
                fcntl.flock(g.fileno(), fcntl.LOCK_EX)
            try:
                # Re-check under the guard: another process may have replaced it already.
                if self._read_lock_text() == text:
                    with contextlib.suppress(FileNotFoundError):
                        self.lock_path.unlink()
            finally:
                if fcntl is not None:
                    fcntl.flock(g.fileno(), fcntl.LOCK_UN)

    def _locked_message(self, text: str) -> str:
        info = _parse_lock(text)
        who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
        if info.get("created"):
            who += f" since {info['created']}"
        return (
            f"results store {self.path} is locked by {who} (another process is writing it); "
            f"wait for it, or delete {self.lock_path} if no such process is running"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def _cleanup(self) -> None:
        """Remove what a crashed writer left: temporary files and orphan trajectory parts."""
        for folder in (self.path, self.parts_dir):
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                if p.name.startswith(".") and TMP_MARK in p.name:
                    with contextlib.suppress(OSError):
                        p.unlink()
        committed = set(self._committed_ids())
        if self.parts_dir.is_dir():
            for p in self.parts_dir.glob("traj-*.parquet"):
                if p.name[len("traj-") : -len(".parquet")] not in committed:
                    with contextlib.suppress(OSError):
                        p.unlink()

    # -- parts --------------------------------------------------------------------

    def _committed_ids(self) -> list[str]:
        """Ids of the committed batches (those with a runs part), unordered."""
        if not self.parts_dir.is_dir():
            return []
        return [m.group(1) for p in self.parts_dir.iterdir() if (m := _PART_RE.match(p.name))]

    def _extras(self, listed: Iterable[str] | None) -> list[str]:
        """Committed batches that a consolidated file listing ``listed`` lacks, in commit
        order. Only their footers are read, so this stays cheap on a consolidated store."""
        held = set(listed or ())
        extra = [p for p in self._committed_ids() if p not in held]
        if len(extra) <= 1:
            return extra
        seqs = {}
        for part in extra:
            try:
                meta = pq.read_schema(self._runs_part(part)).metadata or {}
                seqs[part] = int(meta.get(_KEY_SEQ, b"0"))
            except (OSError, ValueError, pa.ArrowException):
                seqs[part] = 0
        return sorted(extra, key=lambda i: (seqs[i], i))

    def _runs_part(self, part_id: str) -> Path:
        return self.parts_dir / f"runs-{part_id}.parquet"

    def _traj_part(self, part_id: str) -> Path:
        return self.parts_dir / f"traj-{part_id}.parquet"

    @staticmethod
    def _open(path: Path, columns: Sequence[str] | None = None, filters: Any = None) -> tuple[pa.Table | None, list[str] | None]:
        """Read a consolidated file and the parts it lists through ONE handle, so a
        concurrent ``os.replace`` cannot pair old rows with a newer parts list.
        Returns (None, None) when the file is absent."""
        try:
            f = pa.OSFile(str(path), "rb")
        except FileNotFoundError:
            return None, None
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"cannot read {path}: {e}") from None
        with f:
            try:
                meta = pq.ParquetFile(f).schema_arrow.metadata or {}
                table = pq.read_table(f, columns=columns, filters=filters)
            except (OSError, pa.ArrowException) as e:
                raise StoreError(f"cannot read {path}: {e}") from None
        try:
            listed = [str(x) for x in json.loads(meta.get(_KEY_PARTS, b"[]"))]
        except (ValueError, TypeError):
            listed = []
        return table, listed

    # -- reading ------------------------------------------------------------------

    def completed_ids(self) -> set[str]:
        """Run ids with a recorded row, whatever its status (``ok``, ``diverged`` or
        ``failed`` are all complete: resuming does not retry them)."""
        table, listed = self._open(self.runs_path, columns=["run_id"])
        ids: set[str] = set() if table is None else set(table.column("run_id").to_pylist())
        for part in self._extras(listed):
            ids.update(self._read(self._runs_part(part), columns=["run_id"]).column("run_id").to_pylist())
        return ids

    def _runs_table(self) -> tuple[pa.Table | None, list[str], list[str]]:
        """(all rows as one table, parts the consolidated file holds, parts it lacks)."""
        table, listed = self._open(self.runs_path)
        extra = self._extras(listed)
        tables = ([] if table is None else [table]) + [self._read(self._runs_part(p)) for p in extra]
        if not tables:
            return None, [], extra
        return _arrange(_concat(tables)), list(listed or ()), extra

    def runs(self) -> pd.DataFrame:
        """One row per run: ``run_id``, config columns, then :data:`RESULT_COLUMNS`.

        Integer columns are pandas nullable ``Int64`` (``steps_to_1e-8`` is ``<NA>``
        when not reached), booleans ``boolean``, floats ``float64``, strings ``str``.
        """
        table, _, _ = self._runs_table()
        if table is None:
            table = pa.schema([("run_id", pa.string()), *_RESULT_TYPES.items()]).empty_table()
        return table.to_pandas(types_mapper=_nullable_types)

    def trajectories(
        self, run_ids: Iterable[str] | str | None = None, metrics: Iterable[str] | str | None = None
    ) -> pd.DataFrame:
        """Long-form trajectories (``run_id``, ``step``, ``metric``, ``index``, ``value``),
        optionally only some runs and metrics (filters are pushed down into Parquet)."""
        expr = None
        if run_ids is not None:
            expr = ds.field("run_id").isin(pa.array([str(r) for r in _as_list(run_ids)], pa.string()))
        if metrics is not None:
            m = ds.field("metric").isin(pa.array([str(x) for x in _as_list(metrics)], pa.string()))
            expr = m if expr is None else expr & m
        table, listed = self._open(self.trajectories_path, filters=expr)
        tables = [] if table is None else [table]
        for part in self._extras(listed):
            path = self._traj_part(part)
            if path.exists():
                tables.append(self._read(path, filters=expr))
        tables = [t.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA) for t in tables]
        if not tables:
            return TRAJECTORY_SCHEMA.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()

    def read_metadata(self) -> dict[str, Any]:
        """The contents of ``meta.json`` ({} if absent)."""
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read {self.meta_path}: {e}") from None

    @staticmethod
    def _read(path: Path, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        try:
            return pq.read_table(path, columns=columns, filters=filters)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"cannot read {path}: {e}") from None

    # -- writing ------------------------------------------------------------------

    def write_metadata(self, meta: Mapping[str, Any]) -> None:
        """Write ``meta.json``: ``meta`` (e.g. the resolved config) plus ``versions``
        (python, muonlab, torch, …) and ``written_at``; atomic, under the lock."""
        record = {**dict(meta), "versions": _versions(),
                  "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        text = json.dumps(record, indent=2, sort_keys=False, default=str, allow_nan=True)
        with self._locked(), atomic_file(self.meta_path) as f:
            f.write(text.encode("utf-8"))

    def append(
        self,
        runs: Sequence[Mapping[str, Any]],
        trajectories: pd.DataFrame | None = None,
        *,
        consolidate: bool = True,
    ) -> list[str]:
        """Durably add a batch of finished runs and their trajectories.

        ``runs``: one dict per run with ``run_id``, ``status`` (ok | diverged |
        failed), the flat config columns and the result columns (missing ones are
        null). ``trajectories``: long form with ``run_id``, ``step``, ``metric``,
        ``value`` and optionally ``index`` (default 0), only for runs of this batch.

        A ``run_id`` the store already holds (or that repeats within the batch) is
        skipped, its old row kept, and its trajectory rows dropped. Returns the ids
        that were added. When it returns, the batch is on disk (fsynced).

        ``consolidate=False`` skips refreshing the consolidated files (their rewrite
        costs O(store size) per batch); readers still see the batch, and a later
        :meth:`consolidate` or append brings the files up to date.

        Raises:
            ValueError: a malformed row or trajectory frame (nothing is written).
            StoreLockedError: another process holds the lock.
        """
        rows = [_check_row(i, r) for i, r in enumerate(runs)]
        with self._locked():
            done = self.completed_ids()
            new_rows: list[dict[str, Any]] = []
            seen: set[str] = set()
            for row in rows:
                if row["run_id"] in done or row["run_id"] in seen:
                    continue
                seen.add(row["run_id"])
                new_rows.append(row)
            batch_ids = {r["run_id"] for r in rows}
            if not new_rows:
                if consolidate:
                    self.consolidate()
                return []
            runs_table = _rows_table(new_rows)
            traj_table = _trajectory_table(trajectories, batch_ids, seen)
            self._check_compatible(runs_table)
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            part = uuid.uuid4().hex
            seq = str(time.time_ns()).encode()
            _write_table(traj_table, self._traj_part(part), _metadata("trajectories", **{_KEY_SEQ.decode(): seq}))
            # Commit point: from here on the batch is complete.
            _write_table(runs_table, self._runs_part(part), _metadata("runs", **{_KEY_SEQ.decode(): seq}))
            if consolidate:
                self.consolidate()
            return [r["run_id"] for r in new_rows]

    def _check_compatible(self, table: pa.Table) -> None:
        """Fail before writing if the new rows cannot be consolidated with the old ones."""
        schemas = [table.schema]
        listed = None
        if self.runs_path.exists():
            main = pq.read_schema(self.runs_path)
            schemas.append(main)
            listed = json.loads((main.metadata or {}).get(_KEY_PARTS, b"[]"))
        schemas += [pq.read_schema(self._runs_part(p)) for p in self._extras(listed)]
        try:
            pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
        except (pa.ArrowException, TypeError) as e:
            raise ValueError(f"runs: a column's type conflicts with the rows already in the store: {e}") from None

    def consolidate(self) -> None:
        """Rewrite ``runs.parquet`` and ``trajectories.parquet`` to hold every committed
        part (each atomically). ``append`` calls it; it is a no-op when they are fresh."""
        with self._locked():
            table, held, extra = self._runs_table()
            if table is not None and extra:
                parts = json.dumps(held + extra).encode()
                _write_table(table, self.runs_path, _metadata("runs", **{_KEY_PARTS.decode(): parts}))
            self._consolidate_trajectories()

    def _consolidate_trajectories(self) -> None:
        old = None
        listed: list[str] | None = None
        if self.trajectories_path.exists():
            try:
                old = pq.ParquetFile(str(self.trajectories_path))
                listed = [str(x) for x in json.loads((old.schema_arrow.metadata or {}).get(_KEY_PARTS, b"[]"))]
            except (OSError, ValueError, pa.ArrowException) as e:
                raise StoreError(f"cannot read {self.trajectories_path}: {e}") from None
        extra = self._extras(listed)
        if not extra:
            return
        parts = json.dumps(list(listed or ()) + extra).encode()
        schema = TRAJECTORY_SCHEMA.with_metadata(_metadata("trajectories", **{_KEY_PARTS.decode(): parts}))
        # Streamed row group by row group: memory stays one part, whatever the store's size.
        with atomic_file(self.trajectories_path) as f:
            writer = pq.ParquetWriter(f, schema)
            try:
                if old is not None:
                    for i in range(old.num_row_groups):
                        writer.write_table(old.read_row_group(i).replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA))
                for p in extra:
                    path = self._traj_part(p)
                    if path.exists():
                        t = self._read(path)
                        if t.num_rows:
                            writer.write_table(t.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA))
            finally:
                writer.close()
                if old is not None:
                    old.close()


# ----------------------------------------------------------------------------- helpers


def _parse_lock(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to someone else
        return True
    return True


def _as_list(values: Iterable[str] | str) -> list[str]:
    return [values] if isinstance(values, str) else list(values)


def _nullable_types(t: pa.DataType) -> Any:
    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t.replace_schema_metadata(None) for t in tables]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowException, TypeError) as e:
        raise StoreError(f"runs parts have conflicting column types: {e}") from None


def _arrange(table: pa.Table) -> pa.Table:
    """Column order: run_id, config columns (first-seen order), result columns."""
    names = table.column_names
    config = [c for c in names if c != "run_id" and c not in _RESULT_TYPES]
    order = ["run_id", *config, *[c for c in RESULT_COLUMNS if c in names]]
    return table.select(order)


def _check_row(i: int, row: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ValueError(f"runs[{i}]: expected a mapping, got {type(row).__name__}")
    row = dict(row)
    rid = row.get("run_id")
    if not isinstance(rid, str) or not rid:
        raise ValueError(f"runs[{i}].run_id: must be a non-empty string, got {rid!r}")
    status = row.get("status")
    if status not in STATUSES:
        raise ValueError(f"runs[{i}].status: unknown {status!r}; allowed: {', '.join(STATUSES)}")
    for key in row:
        if not isinstance(key, str):
            raise ValueError(f"runs[{i}]: column names must be strings, got {key!r}")
    return row


def _result_value(col: str, value: Any, rid: str) -> Any:
    if value is None:
        return None
    if col in _INT_RESULTS:
        if isinstance(value, bool):
            raise ValueError(f"runs[{rid}].{col}: must be an integer or None, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"runs[{rid}].{col}: must be an integer or None, got {value!r}") from None
        if math.isnan(f):
            return None
        if not f.is_integer():
            raise ValueError(f"runs[{rid}].{col}: must be an integer or None, got {value!r}")
        return int(f)
    if col in _FLOAT_RESULTS:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"runs[{rid}].{col}: must be a number or None, got {value!r}") from None
    return str(value)


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    config: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key != "run_id" and key not in _RESULT_TYPES:
                config.setdefault(key, None)
    arrays, names = [pa.array([r["run_id"] for r in rows], pa.string())], ["run_id"]
    for col in config:
        values = [_plain(r.get(col)) for r in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise ValueError(f"runs: column {col!r} has values of mixed or unsupported types: {e}") from None
        names.append(col)
    for col, typ in _RESULT_TYPES.items():
        arrays.append(pa.array([_result_value(col, r.get(col), r["run_id"]) for r in rows], typ))
        names.append(col)
    return pa.Table.from_arrays(arrays, names=names)


def _plain(value: Any) -> Any:
    """numpy / torch scalars → Python scalars; lists and dicts → JSON strings."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return value.item()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value


def _trajectory_table(df: pd.DataFrame | None, batch_ids: set[str], keep: set[str]) -> pa.Table:
    if df is None or len(df) == 0:
        return TRAJECTORY_SCHEMA.empty_table()
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"trajectories: expected a pandas DataFrame, got {type(df).__name__}")
    required = ("run_id", "step", "metric", "value")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"trajectories: missing column(s) {', '.join(missing)}; need run_id, step, metric, value (index)")
    unknown = [c for c in df.columns if c not in (*required, "index")]
    if unknown:
        raise ValueError(f"trajectories: unknown column(s) {', '.join(map(str, unknown))}")
    run_id = df["run_id"].astype(object)
    if run_id.isna().any():
        raise ValueError("trajectories.run_id: must not be null")
    run_id = run_id.astype(str)
    stray = sorted(set(run_id.unique()) - batch_ids)
    if stray:
        raise ValueError(f"trajectories.run_id: {stray[0]!r} is not a run of this batch")
    columns = {}
    for col in ("step", "index"):
        s = df[col] if col in df.columns else pd.Series(0, index=df.index)
        num = pd.to_numeric(s, errors="coerce")
        if col == "index":
            num = num.where(s.notna(), 0)  # optional: a missing index is 0 (scalar metric)
        if num.isna().any() or not (num == num.round()).all():
            raise ValueError(f"trajectories.{col}: must be integers, got {s[num.isna() | (num != num.round())].iloc[0]!r}")
        columns[col] = num.to_numpy().astype("int64")
    metric = df["metric"].astype(object)
    if metric.isna().any():
        raise ValueError("trajectories.metric: must not be null")
    try:
        value = pd.to_numeric(df["value"], errors="raise").to_numpy(dtype="float64", na_value=float("nan"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"trajectories.value: must be numbers: {e}") from None
    table = pa.Table.from_arrays(
        [
            pa.array(run_id.to_numpy(dtype=object), pa.string()),
            pa.array(columns["step"], pa.int64()),
            pa.array(metric.astype(str).to_numpy(dtype=object), pa.string()),
            pa.array(columns["index"], pa.int64()),
            pa.array(value, pa.float64()),
        ],
        schema=TRAJECTORY_SCHEMA,
    )
    if len(keep) < len(batch_ids):
        table = table.filter(pc.is_in(table.column("run_id"), pa.array(sorted(keep), pa.string())))
    # Sorted by run, so row-group statistics make run_id filters cheap.
    return table.sort_by([("run_id", "ascending"), ("metric", "ascending"), ("step", "ascending"), ("index", "ascending")])
