"""Grasp results kept on disk, so re-generating a shot (another seed, another action, a batch
re-run, a restarted server) does not pay for the grasp optimisation again.

WHY safe: the grasp is deterministic in (scene content, target, stand point, hand, body identity,
grasp settings, grasp code). The key hashes all of these — the code as the bytes of the
`hosig.grasp` sources — so any change there simply misses the cache. Files are npz read with
``allow_pickle=False`` (arrays, plus scalars/strings as a JSON document).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hosig.atomic import atomic_open


@lru_cache(maxsize=1)
def grasp_code_hash() -> str:
    """sha256 over the grasp package's source files (changes whenever the stage changes)."""
    import hosig.grasp

    digest = hashlib.sha256()
    for path in sorted(Path(hosig.grasp.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def scene_geometry_hash(scene: Any) -> str:
    """sha256 of the scene's geometry (names, vertices, faces): the same for a scene loaded from a
    file and the same scene uploaded to the server, unlike the loader's content hash."""
    digest = hashlib.sha256()
    for name in sorted(scene.objects):
        obj = scene.objects[name]
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(obj.vertices, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(obj.faces, dtype=np.int64).tobytes())
    return digest.hexdigest()


def grasp_key(scene_hash: str, target: str, stand: tuple[float, float, float], hand: str, body_identity: str, config_repr: str) -> str:
    blob = json.dumps([scene_hash, target, [round(float(v), 3) for v in stand], hand, body_identity, config_repr, grasp_code_hash()])
    return hashlib.sha256(blob.encode()).hexdigest()


def save_grasp(path: Path, result: Any) -> None:
    """Write a GraspResult (all dataclass fields except the rendering mesh)."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if f.name == "vertices":
            continue
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
        else:
            scalars[f.name] = value
    with atomic_open(path) as fh:  # batch workers sharing a cache folder may write one key at once
        np.savez(fh, __scalars__=np.array(json.dumps(scalars)), **arrays)


def load_grasp(path: Path) -> Any | None:
    """A GraspResult from `save_grasp`, or None when missing/unreadable/from another version."""
    from hosig.grasp.generator import GraspResult

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files if k != "__scalars__"}
            fields.update(json.loads(str(data["__scalars__"])))
        names = {f.name for f in dataclasses.fields(GraspResult)}
        return GraspResult(**{k: v for k, v in fields.items() if k in names})
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
