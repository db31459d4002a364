"""Atomic file writes: a reader (or a re-run after a crash) sees the old file or the new one, never
part of one.

The bytes go to a uniquely named temp file in the target's own folder (same file system, so the
final `os.replace` is one atomic rename); the temp file is flushed and fsynced before the rename and
removed if writing fails. A process killed mid-write leaves at most a hidden ``.<name>.*.tmp`` file,
never a partial file at the final name. Unique temp names let several processes (batch workers
sharing a cache folder) write the same target at once: the last rename wins, each file is whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary temp file beside ``path``; on a clean exit it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)

