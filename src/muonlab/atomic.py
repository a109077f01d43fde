"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one.

The data goes to a hidden temporary file in the same directory (``.NAME.tmp-<uuid>``),
is flushed and fsynced, then ``os.replace``\\ d into place (atomic on POSIX), and the
directory is fsynced so the rename itself survives a crash. The temporary file is
opened with ``open`` (umask permissions, e.g. 0644), not ``mkstemp`` (0600).

This module is the package's only implementation of that protocol: binary data
(:func:`atomic_file`, :func:`write_atomic`) and JSON documents (:func:`write_json`).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_MARK", "atomic_file", "fsync_dir", "write_atomic", "write_json"]

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


def write_json(path: str | Path, data: Any, **json_kwargs: Any) -> None:
    """Atomically replace ``path`` with ``data`` as JSON text in UTF-8, creating its folder.

    The text is ``json.dumps(data, indent=2, ensure_ascii=False, **json_kwargs)``
    (``json_kwargs`` may override those two), with no trailing newline, as
    ``json.dump`` writes it. It is serialized before the file is touched, so data that
    cannot be serialized raises and leaves the old file in place.
    """
    text = json.dumps(data, **{"indent": 2, "ensure_ascii": False, **json_kwargs})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
