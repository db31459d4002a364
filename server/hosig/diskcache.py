"""Size cap for the on-disk caches: uploaded scenes, grasp results and scene grids.

The invariant: after every write, the cache files under the cache folder (``scenes/``, ``grasps/``,
``scene/``) total at most the cap, least-recently-used files removed first; the file just written
is always kept. "Used" is the modification time: every read touches its file (``os.utime``), as
access times are often not kept (noatime/relatime mounts). The cap is ``$HOSIG_CACHE_MAX_MB``
(default 2 GiB); ``hosig serve --cache-max-mb`` sets that variable for its own process.
Everything here is best effort: a cache that cannot be touched or pruned never fails a request.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from hosig.errors import UsageError

ENV = "HOSIG_CACHE_MAX_MB"
DEFAULT_MAX_BYTES = 2 * 1024**3
CACHE_FOLDERS = ("scenes", "grasps", "scene")  # uploads, grasp results, occupancy grids
CACHE_SUFFIXES = (".npz", ".glb", ".json")


def max_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The cap in bytes: ``$HOSIG_CACHE_MAX_MB`` (a number of MiB), else 2 GiB."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        mib = float(value)
    except ValueError:
        raise UsageError(f"${ENV}={value!r} is not a number of MiB") from None
    if not mib >= 0:
        raise UsageError(f"${ENV}={value!r} must be a number of MiB >= 0")
    return int(mib * 1024 * 1024)


def touch(path: Path) -> None:
    """Mark a cache file as just used (it is pruned last)."""
    try:
        os.utime(path)
    except OSError:
        pass


def cache_files(root: Path) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of every finished cache file under ``root``, oldest first."""
    found = []
    for folder in CACHE_FOLDERS:
        try:
            entries = list(os.scandir(root / folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(CACHE_SUFFIXES) or ".tmp" in entry.name:
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    return sorted(found)


def prune(root: Path, limit: int, keep: Iterable[Path] = ()) -> int:
    """Remove the least recently used cache files under ``root`` until they total at most
    ``limit`` bytes (``keep`` is never removed); returns the bytes removed."""
    files = cache_files(root)
    kept = {Path(p) for p in keep}
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in files:
        if total <= limit:
            break
        if path in kept:
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # another thread pruned it first
            pass
        except OSError:
            continue
        total -= size
        removed += size
    return removed
