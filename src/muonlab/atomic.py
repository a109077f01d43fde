"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one.

The data goes to a hidden temporary file in the same directory (``.NAME.tmp-<uuid>``),
is flushed and fsynced, then ``os.replace``\\ d into place (atomic on POSIX), and the
directory is fsynced so the rename itself survives a crash. The temporary file is
opened with ``open`` (umask permissions, e.g. 0644), not ``mkstemp`` (0600).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["TMP_MARK", "atomic_file", "fsync_dir", "write_atomic"]

#: Marker in temporary file names (the store cleans up leftovers carrying it).
TMP_MARK = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so that renames inside it are durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` only when the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data`` (text is written as UTF-8)."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
