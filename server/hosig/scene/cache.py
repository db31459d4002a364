"""Caches: loaded scenes in memory (LRU by content hash + config) and derived grids on disk.

Loading the same bytes twice returns the very same `Scene` object, so its lazily derived grids
are shared by the planner, grasp and motion stages within a process. Occupancy grids (the
costly part; the SDF's far field is rebuilt from them in a fraction of that) are also written to `$HOSIG_CACHE_DIR` (default ~/.cache/hosig) as plain npz (no pickle), keyed
by scene hash + config + exclusion set + voxel, so a new process on the same scene skips the
distance transform. Files are written atomically; unreadable cache files are ignored and rebuilt.
The folder shares the cache's size cap (`hosig.diskcache`): a read touches its file, a write prunes
the least recently used files. In memory at most `MAX_SCENES` scenes and about `MAX_MEMORY_BYTES`
of arrays (`Scene.nbytes`, derived grids included) are kept; the newest scene always stays.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from hosig import diskcache
from hosig.scene.occupancy import Occupancy

if TYPE_CHECKING:
    from hosig.scene.scene import Scene

_SCENES: "OrderedDict[tuple[str, str], Scene]" = OrderedDict()
_LOCK = threading.Lock()
MAX_SCENES = 8
MAX_MEMORY_BYTES = 1024**3
FORMAT = "v2"  # v2: grids whose z lattice passes through the floor top


def get_scene(content_hash: str, config_key: str) -> "Scene | None":
    with _LOCK:
        scene = _SCENES.get((content_hash, config_key))
        if scene is not None:
            _SCENES.move_to_end((content_hash, config_key))
        return scene


def put_scene(scene: "Scene") -> None:
    with _LOCK:
        _SCENES[(scene.content_hash, scene.config.key())] = scene
        evict_lru(_SCENES, MAX_SCENES, MAX_MEMORY_BYTES)


def evict_lru(scenes: "OrderedDict", max_count: int, max_bytes: int) -> None:
    """Drop the least recently used scenes (first entries) until at most ``max_count`` remain and
    their estimated memory (`Scene.nbytes`, re-read now: grids grow lazily) is at most
    ``max_bytes``; the most recent scene always stays."""
    sizes = {key: scene.nbytes() for key, scene in scenes.items()}
    total = sum(sizes.values())
    while len(scenes) > 1 and (len(scenes) > max_count or total > max_bytes):
        key, _ = scenes.popitem(last=False)
        total -= sizes[key]


def clear_memory() -> None:
    """Forget every loaded scene (tests, long-running servers)."""
    with _LOCK:
        _SCENES.clear()


def grid_path(scene: "Scene", kind: str, exclude: frozenset[str], voxel: float) -> Path:
    key = "|".join([FORMAT, scene.content_hash, scene.config.key(), kind, ",".join(sorted(exclude)), f"{voxel:.6f}"])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return scene.config.resolved_cache_dir() / "scene" / f"{scene.content_hash[:16]}-{kind}-{digest}.npz"


def _save_occ(path: Path, occ: Occupancy) -> dict:
    names = list(occ.object_slices)
    sl = np.array([[[s.start, s.stop] for s in occ.object_slices[n]] for n in names], dtype=np.int64).reshape(-1, 3, 2)
    return {
        "bits": np.packbits(occ.grid.reshape(-1)),
        "shape": np.array(occ.grid.shape, dtype=np.int64),
        "origin": occ.origin,
        "voxel": np.float64(occ.voxel),
        "names": np.array(names, dtype=str),
        "slices": sl,
    }


def _load_occ(data) -> Occupancy:
    shape = tuple(int(n) for n in data["shape"])
    grid = np.unpackbits(data["bits"], count=int(np.prod(shape))).astype(bool).reshape(shape)
    slices = {
        str(n): tuple(slice(int(a), int(b)) for a, b in s) for n, s in zip(data["names"], data["slices"])
    }
    return Occupancy(grid=grid, origin=data["origin"].astype(np.float64), voxel=float(data["voxel"]), object_slices=slices)  # type: ignore[arg-type]


_CODECS = {"occ": (_save_occ, _load_occ)}


def cached_grid(scene: "Scene", kind: str, exclude: frozenset[str], voxel: float, build: Callable[[], object]):
    """Read the grid from disk if present, else build it and store it (best effort)."""
    if not scene.config.disk_cache:
        return build()
    save, load = _CODECS[kind]
    path = grid_path(scene, kind, exclude, voxel)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                value = load(data)
            diskcache.touch(path)
            return value
        except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt, never fatal
            pass
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **save(path, value))
        os.replace(tmp, path)
        diskcache.prune(scene.config.resolved_cache_dir(), diskcache.max_bytes(), keep=(path,))
    except OSError:
        pass
    return value
