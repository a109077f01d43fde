"""The results store (SPEC §6): Parquet files in one directory, crash-safe and resumable.

Layout of a store ``DIR``::

    DIR/runs.parquet                    one row per run (consolidated)
    DIR/trajectories.parquet            long form: run_id, step, metric, index, value
    DIR/parts/traj-<uuid>.parquet       one pair of part files per appended batch
    DIR/parts/runs-<uuid>.parquet
    DIR/meta.json                       resolved config and versions
    DIR/.lock                           the writers' lock file (its content means nothing)

Durability protocol. The part files are the record; the two consolidated files are
caches of them, each carrying (in its Parquet metadata) the list of parts it holds.

1. :meth:`ResultStore.append` writes the batch's trajectory part, then its runs
   part, each atomically with :func:`muonlab.atomic.atomic_file` (temporary file in
   the same directory, ``fsync``, ``os.replace``). The runs part is the commit point:
   a run is recorded iff a runs part holds it; a trajectory part without its runs
   part is an orphan that readers ignore and the next writer deletes.
2. It then rewrites ``runs.parquet`` and ``trajectories.parquet`` the same way.

A crash at any moment therefore leaves every file either absent, the old version,
or the new version, never truncated; a batch whose runs part was replaced into place
is never lost, even if the consolidated files were not refreshed: readers add the
rows of parts that a consolidated file does not list yet, and the next append
refreshes it.

Final and failed runs. A run recorded ``ok`` or ``diverged`` is complete
(:meth:`ResultStore.completed_ids`): ``append`` skips its ``run_id`` and keeps the old
row, so resuming never runs it again. A run recorded ``failed`` (its batch raised) is
not complete: resuming runs it again, and the new row *supersedes* the failed one,
together with the failed part's trajectories (if any). Readers (:meth:`~ResultStore.runs`,
:meth:`~ResultStore.trajectories`, the consolidated files) show one row per
``run_id``: the one from the latest part that holds it. Since ``append`` (under the
lock) writes a later row only over a ``failed`` one, that is the final row when
there is one. Parts are ordered by a sequence number that never goes back, even if
the wall clock does.

Damage (a disk, a copy or a hand that truncates or flips bits). Every Parquet file is
written with page checksums (verified on every read) and a footer fingerprint
(``muonlab.check``: its column names, types and row count), so damage is an error, never
different data. Readers read a damaged consolidated file from its parts instead (one
warning line), or, when parts/ cannot rebuild it, raise one line naming the file and
the run ids lost. :meth:`ResultStore.repair` (``muonlab run`` calls it under the lock
before any batch runs; a writer's consolidation calls it when it meets damage) moves
damaged files to ``DIR/damaged/``, rebuilds the consolidated files from the parts, and
drops the runs whose row or trajectories nothing intact holds any more, naming them: they
are no longer complete, so the resume runs them again. A part is the only copy of its
batch until a consolidated file holds it; after that, the footers of the parts are read
but not their pages (a bit flip there waits until a rebuild needs the part).

One writer at a time: writing takes an OS-level lock (``flock``, through the
``filelock`` library) on ``DIR/.lock``. A second writer, in another process or through
another :class:`ResultStore` object, is refused at once with a one-line
:class:`StoreLockedError`. The kernel drops the lock when its process ends, however
it ends, so a writer that died never blocks the next one. Readers never need the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from muonlab.accuracy import EPSILON_COLUMNS
from muonlab.atomic import TMP_MARK, atomic_file, fsync_dir, write_json
from muonlab.errors import MuonlabError

if TYPE_CHECKING:  # typing.Self needs Python 3.11
    from typing_extensions import Self

__all__ = [
    "EPSILON_COLUMNS",
    "FINAL_STATUSES",
    "RESULT_COLUMNS",
    "STATUSES",
    "TRAJECTORY_SCHEMA",
    "ResultStore",
    "StoreConfigError",
    "StoreError",
    "StoreLockedError",
]

STATUSES = ("ok", "diverged", "failed")
#: Statuses that complete a run: resuming skips it and ``append`` never replaces its row.
FINAL_STATUSES = ("ok", "diverged")
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
_KEY_CHECK = b"muonlab.check"
_log = logging.getLogger("muonlab")



class StoreError(MuonlabError):
    """A results store cannot be read or written; ``str()`` is one line."""


class StoreLockedError(StoreError):
    """Another writer holds the store's lock."""


class StoreConfigError(StoreError):
    """The store holds runs of another configuration (``field`` is ``"out"``): a store
    holds the runs of one config, so that its claims never mix stale runs in."""


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


def _fingerprint(schema: pa.Schema, num_rows: int) -> bytes:
    """A digest of a file's column names, types and row count, kept in its footer: the
    Parquet footer has no checksum of its own (page checksums cover only the pages), so
    a flipped bit that renames a column or changes a type is caught by this instead."""
    digest = hashlib.sha256(schema.remove_metadata().serialize().to_pybytes())
    digest.update(str(int(num_rows)).encode())
    return digest.hexdigest()[:32].encode()


def _check_footer(pf: pq.ParquetFile) -> None:
    """Raise ValueError when a file's footer does not match its fingerprint (files
    written before fingerprints were recorded are not checked)."""
    want = (pf.metadata.metadata or {}).get(_KEY_CHECK)  # the file's key-value metadata
    if want is not None and want != _fingerprint(pf.schema_arrow, pf.metadata.num_rows):
        raise ValueError("footer checksum mismatch (column names, types or row count)")


def _write_table(table: pa.Table, path: Path, metadata: Mapping[bytes, bytes]) -> None:
    meta = {**(table.schema.metadata or {}), **metadata}
    meta[_KEY_CHECK] = _fingerprint(table.schema, table.num_rows)
    table = table.replace_schema_metadata(meta)
    with atomic_file(path) as f:
        pq.write_table(table, f, write_page_checksum=True)


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
        self._filelock: FileLock | None = None
        self._depth = 0
        # Sequence number of the latest part, known while this object holds the lock.
        self._seq: int | None = None
        self._repairing = False

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

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._depth > 0

    def acquire(self) -> None:
        """Take the write lock, or raise :class:`StoreLockedError` (one line) at once.

        Re-entrant within this object. The first acquisition also removes what a
        crashed writer left behind (temporary files, orphan trajectory parts).
        """
        if self._depth:
            self._depth += 1
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create results store {self.path}: {e}") from None
        # thread_local=False: the OS lock belongs to this object, like the depth
        # count, so release() frees it whichever thread took it.
        lock = FileLock(self.lock_path, thread_local=False)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            raise StoreLockedError(
                f"results store {self.path} is locked: another process is writing to it; "
                "wait for it to finish, or write to another directory"
            ) from None
        except OSError as e:
            raise StoreError(f"cannot lock results store {self.path} ({self.lock_path}): {e}") from None
        self._filelock, self._depth = lock, 1
        try:
            self._remove_lock_leftovers()
            self._cleanup()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release one level of the lock (the OS lock goes with the last level)."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        lock, self._filelock, self._seq = self._filelock, None, None
        if lock is not None:
            lock.release()

    def _remove_lock_leftovers(self) -> None:
        """Remove side files of the lock that a writer killed during a stale-lock takeover
        left next to ``.lock`` (``.lock.takeover``, filelock's ``.lock.break.*`` and
        ``.lock.restore.*``). Called with the OS lock held: no live writer is taking it over."""
        prefix = self.lock_path.name + "."
        for p in self.path.iterdir():
            if p.name.startswith(prefix) and not p.is_dir():
                with contextlib.suppress(OSError):
                    p.unlink()

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
        seqs = {part: self._part_seq(part) for part in extra}
        return sorted(extra, key=lambda i: (seqs[i], i))

    def _part_seq(self, part_id: str) -> int:
        return _seq_of(self._runs_part(part_id))

    def _next_seq(self) -> int:
        """A sequence number above every part's: commit order decides which of two
        rows of a run is the newer, so it must not follow the wall clock backwards."""
        if self._seq is None:  # first append of this hold: ask the store once
            listed, last = None, 0
            if self.runs_path.exists():
                try:
                    meta = pq.read_schema(self.runs_path).metadata or {}
                    listed = [str(x) for x in json.loads(meta.get(_KEY_PARTS, b"[]"))]
                    last = int(meta.get(_KEY_SEQ, b"0"))
                except (OSError, ValueError, TypeError, pa.ArrowException):
                    listed, last = None, 0  # damaged: every part's seq is read instead
            self._seq = max([last, *(self._part_seq(p) for p in self._extras(listed))])
        self._seq = max(time.time_ns(), self._seq + 1)
        return self._seq

    def _superseded(self, extra: Sequence[str]) -> list[set[str]]:
        """For a consolidated file followed by the parts ``extra`` (commit order): per
        source (the file, then each part), the run ids that a later part records again,
        whose rows in that source are therefore superseded."""
        later: list[set[str]] = [set()]
        for part in reversed(extra):
            ids = self._read(self._runs_part(part), columns=["run_id"]).column("run_id").to_pylist()
            later.append(later[-1] | set(ids))
        later.reverse()
        return later

    def _runs_part(self, part_id: str) -> Path:
        return self.parts_dir / f"runs-{part_id}.parquet"

    def _traj_part(self, part_id: str) -> Path:
        return self.parts_dir / f"traj-{part_id}.parquet"

    @staticmethod
    def _open(
        path: Path, columns: Sequence[str] | None = None, filters: Any = None
    ) -> tuple[pa.Table | None, list[str] | None]:
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
                pf = pq.ParquetFile(f, page_checksum_verification=True)
                _check_footer(pf)
                meta = pf.schema_arrow.metadata or {}
                table = pq.read_table(f, columns=columns, filters=filters, page_checksum_verification=True)
            except (OSError, ValueError, pa.ArrowException) as e:
                raise _Damaged(path, e) from None
        try:
            listed = [str(x) for x in json.loads(meta.get(_KEY_PARTS, b"[]"))]
        except (ValueError, TypeError):
            listed = []
        return table, listed

    # -- damage -------------------------------------------------------------------

    def _sibling(self, path: Path) -> Path:
        return self.trajectories_path if path == self.runs_path else self.runs_path

    def _missing_parts(self, path: Path) -> list[str] | None:
        """For a damaged consolidated file: the parts it holds that parts/ lacks ([] when
        parts/ can rebuild it), or None when that cannot be told (its footer and the
        other consolidated file's are unreadable, and parts/ is empty)."""
        listed = _listed_parts(path)
        if listed is None:
            listed = _listed_parts(self._sibling(path))
        present = set(self._committed_ids())
        if listed is None:
            return [] if present else None
        return [p for p in listed if p not in present]

    def _lost_ids(self, path: Path, missing: Sequence[str] | None) -> list[str] | None:
        """Best effort: the run ids that a damaged consolidated file alone held (None: unknown)."""
        ids = _run_ids(path)
        if ids is None:  # the file's run_id column is unreadable too: ask the other file
            ids = _run_ids(self._sibling(path))
        if ids is None:
            return None
        held: set[str] = set()
        for p in self._committed_ids():
            held |= set(_run_ids(self._runs_part(p)) or ())
        lost = sorted(set(ids) - held)
        return lost if lost or not missing else None

    def _open_or_parts(
        self, path: Path, columns: Sequence[str] | None = None, filters: Any = None, *, lenient: bool = False
    ) -> tuple[pa.Table | None, list[str] | None]:
        """:meth:`_open`, but a damaged consolidated file that parts/ can rebuild is read
        from its parts instead (a one-line warning, once); one that parts/ cannot rebuild
        is a one-line :class:`StoreError` naming it and the run ids lost, or, ``lenient``
        (which runs are complete, for a resume), read from the parts all the same with
        that line as a warning: the runs lost are not complete, so a resume runs them."""
        try:
            return self._open(path, columns, filters)
        except _Damaged as d:
            missing = self._missing_parts(path)
            if missing == []:
                _warn_once(
                    f"results store {self.path}: {path.name} is damaged ({d.why}); read from its parts "
                    f"instead (the next muonlab run/reproduce into {self.path} rebuilds it)"
                )
                return None, None
            message = (
                f"cannot read {path}: damaged ({d.why}), and parts/ cannot rebuild it "
                f"({_lost_text(self._lost_ids(path, missing))}); run the experiment into {self.path} again "
                "(muonlab run/reproduce, same --out): it rebuilds the store and runs the lost runs again"
            )
            if lenient:
                _warn_once(message)
                return None, None
            raise _Damaged(path, d.why, message) from None

    def damage(self) -> list[str]:
        """Read-only check of the consolidated files and the parts they lack (page
        checksums verified): one line per damaged file, [] when intact. Writes nothing;
        :meth:`repair` (under the lock) fixes what it finds."""
        lines = []
        listed: dict[Path, list[str] | None] = {}
        for path in (self.runs_path, self.trajectories_path):
            if not path.exists():
                continue
            why = _verify(path, full=True)
            listed[path] = _listed_parts(path) if why is None else None
            if why is not None:
                missing = self._missing_parts(path)
                how = ("parts/ can rebuild it" if missing == [] else
                       f"parts/ cannot rebuild it: {_lost_text(self._lost_ids(path, missing))}")
                lines.append(f"{path.name} is damaged ({why}); {how}")
        for p in sorted(self._committed_ids()):
            for path, cons in ((self._runs_part(p), self.runs_path), (self._traj_part(p), self.trajectories_path)):
                held = listed.get(cons)
                why = _verify(path, full=held is None or p not in held)
                if why is not None and not (why == "missing" and held is not None and p in held):
                    lines.append(f"{_rel(path, self.path)} is damaged ({why})")
        return lines

    def repair(self) -> list[str]:
        """Check the store and repair what is damaged, under the lock; returns one line
        per repair ([] when the store is intact). ``muonlab run`` calls it before it runs
        any batch.

        Every consolidated file and every part a consolidated file lacks is read whole
        (page checksums verified); the other parts' footers are read. Then:

        - a damaged consolidated file is moved to ``DIR/damaged/`` and rebuilt from the
          parts (exact when parts/ holds every part it listed: the normal case);
        - a batch with a damaged part file (runs or trajectories) has both its files
          moved to ``DIR/damaged/``; when the consolidated files still hold the batch,
          nothing is lost;
        - rows or trajectories that nothing intact holds any more are lost: the runs
          concerned are dropped from the store (a run is kept only with its row and its
          trajectories), so they are no longer complete and this resume runs them
          again; the last line names them.
        """
        with self._locked():
            self._repairing = True
            try:
                return self._repair()
            finally:
                self._repairing = False

    def _repair(self) -> list[str]:
        lines: list[str] = []
        state: dict[Path, str | None] = {}
        listed: dict[Path, list[str] | None] = {}
        for path in (self.runs_path, self.trajectories_path):
            state[path] = _verify(path, full=True) if path.exists() else None
            listed[path] = _listed_parts(path) if state[path] is None and path.exists() else None
        damaged_files = [p for p in (self.runs_path, self.trajectories_path) if state[p] is not None]
        if not damaged_files and not self.parts_dir.is_dir():
            return []
        runs_held = set(listed[self.runs_path] or ())
        traj_held = set(listed[self.trajectories_path] or ())
        # Consolidated files to rebuild: what they listed must be in parts/.
        missing: dict[Path, list[str] | None] = {p: self._missing_parts(p) for p in damaged_files}
        lost_ids: set[str] = set()
        unknown = False
        rows_lost = traj_lost = False
        for path in damaged_files:
            if missing[path] != []:
                ids = self._lost_ids(path, missing[path])
                unknown |= ids is None
                lost_ids |= set(ids or ())
                rows_lost |= path == self.runs_path
                traj_lost |= path == self.trajectories_path
        # Parts: the ones a consolidated file lacks are read whole.
        bad: dict[str, str] = {}
        for p in sorted(self._committed_ids()):
            for path, held in ((self._runs_part(p), runs_held), (self._traj_part(p), traj_held)):
                why = _verify(path, full=p not in held)
                if why == "missing" and p in held:
                    continue  # the consolidated file holds it (a store copied without parts)
                if why is not None:
                    bad[p] = f"{_rel(path, self.path)} is damaged ({why})"
                    break
        quarantine = self.path / _DAMAGED_DIR
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for p, why in bad.items():
            ids = _run_ids(self._runs_part(p)) or _run_ids(self._traj_part(p))
            safe = p in runs_held and p in traj_held
            if not safe:
                rows_lost |= p not in runs_held
                traj_lost |= p not in traj_held
                unknown |= ids is None
                lost_ids |= set(ids or ())
            for path in (self._runs_part(p), self._traj_part(p)):
                _move_aside(path, quarantine, stamp)
            lines.append(f"results store {self.path}: {why}: moved its batch to {quarantine}/"
                         + ("; runs.parquet and trajectories.parquet still hold it" if safe else ""))
        for path in damaged_files:
            _move_aside(path, quarantine, stamp)
            n = len(self._committed_ids())
            lines.append(
                f"results store {self.path}: {path.name} was damaged ({state[path]}); "
                + (f"rebuilt from its {n} part(s)" if missing[path] == [] else
                   "rebuilt from the intact parts; what only it held is lost")
                + f" (the damaged file is in {quarantine}/)"
            )
        self.consolidate()
        if rows_lost or traj_lost:
            dropped = self._drop_incomplete(rows_lost, traj_lost)
            lost_ids |= dropped
            runs_now = set(self.runs()["run_id"])
            lost_ids -= runs_now
            if lost_ids or unknown:
                lines.append(
                    f"results store {self.path}: runs lost with the damaged files: "
                    f"{_lost_text(sorted(lost_ids) if lost_ids else None)}; they are no longer recorded, "
                    "so this run (a resume) runs them again"
                )
        self._seq = None
        return lines

    def _drop_incomplete(self, rows_lost: bool, traj_lost: bool) -> set[str]:
        """After a loss: drop trajectories without a run row (``rows_lost``) and run rows
        whose trajectories were lost (``traj_lost``: rows without trajectories that no
        intact part holds), so that a resume runs those runs again. Returns their ids."""
        table, _ = self._open(self.runs_path)
        ids = set(table.column("run_id").to_pylist()) if table is not None else set()
        traj_ids = set(_run_ids(self.trajectories_path) or ())
        intact: set[str] = set()
        for p in self._committed_ids():
            intact |= set(_run_ids(self._runs_part(p)) or ())
        drop_traj = traj_ids - ids if rows_lost else set()
        drop_rows = ids - traj_ids - intact if traj_lost else set()
        if drop_rows and table is not None:
            meta = {k: v for k, v in (pq.read_schema(self.runs_path).metadata or {}).items() if k != _KEY_CHECK}
            _write_table(_drop_runs(table, drop_rows).replace_schema_metadata(None), self.runs_path, meta)
        if drop_traj:
            old = pq.ParquetFile(str(self.trajectories_path), page_checksum_verification=True)
            try:
                with atomic_file(self.trajectories_path) as f:
                    schema = old.schema_arrow
                    schema = schema.with_metadata({k: v for k, v in (schema.metadata or {}).items() if k != _KEY_CHECK})
                    writer = pq.ParquetWriter(f, schema, write_page_checksum=True)
                    rows = 0
                    try:
                        for i in range(old.num_row_groups):
                            t = _drop_runs(old.read_row_group(i), drop_traj)
                            if t.num_rows:
                                writer.write_table(t.replace_schema_metadata(schema.metadata))
                                rows += t.num_rows
                        writer.add_key_value_metadata({_KEY_CHECK: _fingerprint(schema, rows)})
                    finally:
                        writer.close()
            finally:
                old.close()
        return drop_rows | drop_traj

    # -- reading ------------------------------------------------------------------

    def completed_ids(self) -> set[str]:
        """Run ids whose row is final (``ok`` or ``diverged``): resuming skips them.
        A ``failed`` run is not complete, so resuming runs it again."""
        columns = ["run_id", "status"]
        table, listed = self._open_or_parts(self.runs_path, columns=columns, lenient=True)
        tables = ([] if table is None else [table]) + [
            self._read(self._runs_part(p), columns=columns) for p in self._extras(listed)
        ]
        status: dict[str, str] = {}
        for t in tables:  # commit order: a later row supersedes an earlier one
            status.update(zip(t.column("run_id").to_pylist(), t.column("status").to_pylist()))
        return {rid for rid, st in status.items() if st in FINAL_STATUSES}

    def config_hashes(self) -> set[str | None]:
        """The ``config_hash`` values of the store's runs (None for rows that do not
        record one: stores written before provenance was recorded); empty if no runs."""
        table, _, _ = self._runs_table(lenient=True)
        if table is None or table.num_rows == 0:
            return set()
        if "config_hash" not in table.column_names:
            return {None}
        return set(table.column("config_hash").to_pylist())

    def check_config(self, config_hash: str, overrides: Sequence[str] = ()) -> None:
        """Refuse (:class:`StoreConfigError`, one line) to add runs of config
        ``config_hash`` to a store that holds runs of any other config."""
        held = self.config_hashes()
        if not held or held == {config_hash}:
            return
        meta = {}
        with contextlib.suppress(StoreError):
            meta = self.read_metadata()
        old = sorted(h for h in held if h) or ["none recorded"]
        old_over = meta.get("overrides") if meta.get("config_hash") in held else None
        was = f"config {', '.join(old)}" + (f", overrides {json.dumps(old_over)}" if old_over is not None else "")
        raise StoreConfigError(
            f"results store {self.path} holds runs of another configuration ({was}); this one is config "
            f"{config_hash} (overrides {json.dumps(list(overrides))}): write to a new --out, or delete {self.path}",
            field="out",
        )

    def _runs_table(self, strict: bool = False, lenient: bool = False) -> tuple[pa.Table | None, list[str], list[str]]:
        """(the current row of every run as one table, parts the consolidated file
        holds, parts it lacks). ``strict``: a damaged runs.parquet raises :class:`_Damaged`
        (writers repair it) rather than being read from its parts."""
        table, listed = self._open(self.runs_path) if strict else self._open_or_parts(self.runs_path, lenient=lenient)
        extra = self._extras(listed)
        tables = ([] if table is None else [table]) + [self._read(self._runs_part(p)) for p in extra]
        if not tables:
            return None, [], extra
        return _arrange(_latest_rows(_concat(tables))), list(listed or ()), extra

    def runs(self) -> pd.DataFrame:
        """One row per run: ``run_id``, config columns, then :data:`RESULT_COLUMNS`.

        A run recorded more than once (a ``failed`` run that was run again) shows its
        latest row, at the position of the part that holds it (commit order).

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
        optionally only some runs and metrics (filters are pushed down into Parquet).
        A run's rows are those of the part that holds its current row."""
        expr = None
        if run_ids is not None:
            expr = ds.field("run_id").isin(pa.array([str(r) for r in _as_list(run_ids)], pa.string()))
        if metrics is not None:
            m = ds.field("metric").isin(pa.array([str(x) for x in _as_list(metrics)], pa.string()))
            expr = m if expr is None else expr & m
        table, listed = self._open_or_parts(self.trajectories_path, filters=expr)
        extra = self._extras(listed)
        later = self._superseded(extra)
        tables = [] if table is None else [_drop_runs(table, later[0])]
        for part, gone in zip(extra, later[1:]):
            path = self._traj_part(part)
            if path.exists():
                tables.append(_drop_runs(self._read(path, filters=expr), gone))
        try:
            tables = [t.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA) for t in tables]
        except (ValueError, pa.ArrowException) as e:
            raise StoreError(f"cannot read the trajectories of {self.path}: {_reason(e)}") from None
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

    def _read(self, path: Path, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        """Read a part file (page checksums verified); a damaged one is a one-line
        :class:`StoreError` naming it and saying how to recover."""
        try:
            with pq.ParquetFile(str(path), page_checksum_verification=True) as pf:
                _check_footer(pf)
            return pq.read_table(path, columns=columns, filters=filters, page_checksum_verification=True)
        except PermissionError as e:
            raise StoreError(f"cannot read {path}: {e}") from None
        except (OSError, ValueError, pa.ArrowException) as e:
            raise _Damaged(
                path, e,
                f"cannot read {path}: damaged ({_reason(e)}); run the experiment into {self.path} again "
                "(muonlab run/reproduce, same --out): it moves the damaged part aside and runs its runs again"
            ) from None

    # -- writing ------------------------------------------------------------------

    def write_metadata(self, meta: Mapping[str, Any]) -> None:
        """Write ``meta.json``: ``meta`` (e.g. the resolved config) plus ``versions``
        (python, muonlab, torch, …) and ``written_at``; atomic, under the lock."""
        record = {**dict(meta), "versions": _versions(),
                  "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._locked():
            # ensure_ascii as before: meta.json stays byte-for-byte what it was.
            write_json(self.meta_path, record, default=str, ensure_ascii=True)

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

        A ``run_id`` that is complete in the store (``ok`` or ``diverged``), or that
        repeats within the batch, is skipped: its old row kept, its trajectory rows
        dropped. A row for a run stored as ``failed`` supersedes that row (and its
        trajectories). Returns the ids that were added. When it returns, the batch is
        on disk (fsynced).

        ``consolidate=False`` skips refreshing the consolidated files (their rewrite
        costs O(store size) per batch); readers still see the batch, and a later
        :meth:`consolidate` or append brings the files up to date.

        Raises:
            ValueError: a malformed row or trajectory frame (nothing is written).
            StoreLockedError: another process holds the lock.
        """
        rows = [_check_row(i, r) for i, r in enumerate(runs)]
        with self._locked():
            try:
                done = self.completed_ids()
            except _Damaged:  # parts/ cannot rebuild a consolidated file: repair first
                for line in self.repair():
                    _log.warning(line)
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
            seq = str(self._next_seq()).encode()
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
            try:
                main = pq.read_schema(self.runs_path)
                schemas.append(main)
                listed = json.loads((main.metadata or {}).get(_KEY_PARTS, b"[]"))
            except (OSError, ValueError, pa.ArrowException):
                listed = None  # damaged: checked against every part (consolidate rebuilds it)
        schemas += [pq.read_schema(self._runs_part(p)) for p in self._extras(listed)]
        try:
            pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
        except (pa.ArrowException, TypeError) as e:
            raise ValueError(f"runs: a column's type conflicts with the rows already in the store: {e}") from None

    def consolidate(self) -> None:
        """Rewrite ``runs.parquet`` and ``trajectories.parquet`` to hold every committed
        part (each atomically). ``append`` calls it; it is a no-op when they are fresh."""
        with self._locked():
            try:
                self._consolidate()
            except _Damaged:
                if self._repairing:
                    raise
                for line in self.repair():
                    _log.warning(line)

    def _consolidate(self) -> None:
        table, held, extra = self._runs_table(strict=True)
        if table is not None and extra:
            parts = json.dumps(held + extra).encode()
            # The latest part's seq, so that a later append can continue above it
            # without reading every part.
            seq = max([_seq_of(self.runs_path), *(self._part_seq(p) for p in extra)])
            meta = _metadata("runs", **{_KEY_PARTS.decode(): parts, _KEY_SEQ.decode(): str(seq).encode()})
            _write_table(table, self.runs_path, meta)
        self._consolidate_trajectories()

    def _consolidate_trajectories(self) -> None:
        old = None
        listed: list[str] | None = None
        if self.trajectories_path.exists():
            try:
                old = pq.ParquetFile(str(self.trajectories_path), page_checksum_verification=True)
                _check_footer(old)
                listed = [str(x) for x in json.loads((old.schema_arrow.metadata or {}).get(_KEY_PARTS, b"[]"))]
            except (OSError, ValueError, pa.ArrowException) as e:
                raise _Damaged(self.trajectories_path, e) from None
        extra = self._extras(listed)
        if not extra:
            return
        later = self._superseded(extra)
        parts = json.dumps(list(listed or ()) + extra).encode()
        schema = TRAJECTORY_SCHEMA.with_metadata(_metadata("trajectories", **{_KEY_PARTS.decode(): parts}))
        # Streamed row group by row group: memory stays one part, whatever the store's size.
        with atomic_file(self.trajectories_path) as f:
            writer = pq.ParquetWriter(f, schema, write_page_checksum=True)
            rows = 0
            try:
                if old is not None:
                    for i in range(old.num_row_groups):
                        try:
                            t = old.read_row_group(i)
                        except (OSError, ValueError, pa.ArrowException) as e:
                            raise _Damaged(self.trajectories_path, e) from None
                        t = _drop_runs(t, later[0])
                        writer.write_table(t.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA))
                        rows += t.num_rows
                for p, gone in zip(extra, later[1:]):
                    path = self._traj_part(p)
                    if path.exists():
                        t = _drop_runs(self._read(path), gone)
                        if t.num_rows:
                            writer.write_table(t.replace_schema_metadata(None).cast(TRAJECTORY_SCHEMA))
                            rows += t.num_rows
                writer.add_key_value_metadata({_KEY_CHECK: _fingerprint(TRAJECTORY_SCHEMA, rows)})
            finally:
                writer.close()
                if old is not None:
                    old.close()


# ----------------------------------------------------------------------------- damage helpers

_DAMAGED_DIR = "damaged"
_warned: set[str] = set()


class _Damaged(StoreError):
    """A Parquet file of the store that cannot be read back intact."""

    def __init__(self, path: Path, error: BaseException | str, message: str | None = None) -> None:
        why = error if isinstance(error, str) else _reason(error)
        super().__init__(message or f"cannot read {path}: {why}")
        self.path, self.why = path, why


def _reason(error: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:  # pragma: no cover
        return str(path)


def _verify(path: Path, *, full: bool) -> str | None:
    """None if the Parquet file ``path`` reads back intact, else why not (one line):
    ``missing``, or the reader's error. ``full``: read every page (checksums verified),
    else only the footer."""
    try:
        f = pq.ParquetFile(str(path), page_checksum_verification=True)
    except FileNotFoundError:
        return "missing"
    except (OSError, pa.ArrowException, ValueError) as e:
        return _reason(e)
    try:
        _check_footer(f)
        if full:
            for i in range(f.num_row_groups):
                f.read_row_group(i)
    except (OSError, pa.ArrowException, ValueError) as e:
        return _reason(e)
    finally:
        f.close()
    return None


def _listed_parts(path: Path) -> list[str] | None:
    """The parts a consolidated file lists (None: absent, or its footer is unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return [str(x) for x in json.loads(meta.get(_KEY_PARTS, b"[]"))]
    except (OSError, ValueError, TypeError, pa.ArrowException):
        return None


def _run_ids(path: Path) -> list[str] | None:
    """The ``run_id`` column of a store file, if it can still be read (None otherwise)."""
    try:
        table = pq.read_table(path, columns=["run_id"], page_checksum_verification=True)
        return [str(x) for x in table.column("run_id").to_pylist()]
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def _lost_text(ids: Sequence[str] | None, limit: int = 10) -> str:
    if ids is None:
        return "run ids unknown"
    ids = sorted(set(ids))
    shown = ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
    return f"{len(ids)} run(s): {shown}"


def _move_aside(path: Path, folder: Path, stamp: str) -> None:
    """Move a damaged file into ``folder`` (kept for inspection, never read again)."""
    if not path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(path, folder / f"{stamp}-{path.name}")
    fsync_dir(folder)
    fsync_dir(path.parent)


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning once per process."""
    if message in _warned:
        return
    _warned.add(message)
    _log.warning(message)


# ----------------------------------------------------------------------------- helpers


def _seq_of(path: Path) -> int:
    """The ``muonlab.seq`` of a Parquet file's footer (0 when absent or unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return int(meta.get(_KEY_SEQ, b"0"))
    except (OSError, ValueError, pa.ArrowException):
        return 0


def _latest_rows(table: pa.Table) -> pa.Table:
    """Only the last row of each ``run_id`` (rows in commit order); the table itself
    when no run repeats, so a store without superseded rows is rewritten unchanged."""
    ids = table.column("run_id").to_pylist()
    last = {rid: i for i, rid in enumerate(ids)}
    if len(last) == len(ids):
        return table
    return table.take(pa.array(sorted(last.values()), pa.int64()))


def _drop_runs(table: pa.Table, run_ids: set[str]) -> pa.Table:
    """``table`` without the rows of ``run_ids`` (itself when it has none of them)."""
    if not run_ids or not table.num_rows:
        return table
    hit = pc.is_in(table.column("run_id"), pa.array(sorted(run_ids), pa.string()))
    if not pc.any(hit).as_py():
        return table
    return table.filter(pc.invert(hit))


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
        # append's contract: bad input is a ValueError (not a TypeError)
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
            raise ValueError(f"runs[{i}]: column names must be strings, got {key!r}")  # as above
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
        raise ValueError(f"trajectories: expected a pandas DataFrame, got {type(df).__name__}")  # as above
    required = ("run_id", "step", "metric", "value")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"trajectories: missing column(s) {', '.join(missing)}; need run_id, step, metric, value (index)"
        )
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
            bad = s[num.isna() | (num != num.round())].iloc[0]
            raise ValueError(f"trajectories.{col}: must be integers, got {bad!r}")
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
    return table.sort_by(
        [("run_id", "ascending"), ("metric", "ascending"), ("step", "ascending"), ("index", "ascending")]
    )
