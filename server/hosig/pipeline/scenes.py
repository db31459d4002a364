"""Scene store: scenes addressed by content hash, so an uploaded scene is parsed once and reused.

WHY: the add-on uploads the scene once (POST /scenes) and then refers to it by id in every /plan
and /generate call; re-uploading identical bytes must be free. Raw uploads are also written to the
cache folder so that a restarted server still knows an id it handed out. Uploaded bytes are only
ever *parsed* by `hosig.scene.load_scene` (glb / mesh payload), never executed.

Invariants: a scene id is 64 lower-case hex digits (sha256); anything else is an unknown scene
before any file is looked at, so no path is built from a client's string. Parsing happens outside
the store's lock, so a large upload never holds up requests for other scenes. The stored uploads
share the cache's size cap (`hosig.diskcache`, least recently used first; every use touches the
file), and the scenes kept in memory are bounded by count and by estimated bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hosig import diskcache
from hosig.errors import InputError, UsageError

if TYPE_CHECKING:  # the scene package is imported lazily (heavy: trimesh, scipy)
    from hosig.scene import Scene

GLB_TYPE = "model/gltf-binary"
MESH_JSON_TYPE = "application/vnd.hosig.mesh+json"
CONTENT_TYPES: dict[str, str] = {GLB_TYPE: "glb", MESH_JSON_TYPE: "json"}
SCENE_SUFFIXES = (".glb", ".gltf", ".obj", ".ply")
SCENE_ID = re.compile(r"[0-9a-f]{64}")  # Scene.content_hash: a sha256 hex digest
DEFAULT_MEMORY_BYTES = 1024**3


class UnknownSceneError(InputError):
    """A scene id the server does not know (never uploaded, or evicted and not in the cache)."""

    code = "unknown_scene"


def default_cache_dir() -> Path:
    """$HOSIG_CACHE_DIR, else ~/.cache/hosig."""
    env = os.environ.get("HOSIG_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "hosig"


def is_scene_id(ref: str) -> bool:
    """True for a string shaped like a scene id (64 lower-case hex digits)."""
    return SCENE_ID.fullmatch(ref) is not None


def _shown(ref: str, limit: int = 80) -> str:
    """A client's string for an error message: quoted, cut to ``limit`` characters."""
    return repr(ref[:limit]) + ("..." if len(ref) > limit else "")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows
        return False


class SceneStore:
    """Thread-safe LRU of loaded scenes keyed by the scene's content hash (its public id)."""

    def __init__(self, cache_dir: Path | None = None, max_scenes: int = 16, max_disk_bytes: int | None = None,
                 max_memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.cache_root = cache_dir or default_cache_dir()
        self.cache_dir = self.cache_root / "scenes"
        self.max_scenes = max_scenes
        self.max_disk_bytes = diskcache.max_bytes() if max_disk_bytes is None else max_disk_bytes
        self.max_memory_bytes = max_memory_bytes
        self._scenes: "OrderedDict[str, Scene]" = OrderedDict()
        self._raw_to_id: dict[str, str] = {}  # sha256 of uploaded bytes -> scene id
        self._path_to_id: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> scene id
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._scenes)

    def _remember(self, scene: "Scene") -> "Scene":
        from hosig.scene.cache import evict_lru

        with self._lock:
            self._scenes[scene.content_hash] = scene
            self._scenes.move_to_end(scene.content_hash)
            evict_lru(self._scenes, self.max_scenes, self.max_memory_bytes)
        return scene

    def _stored(self, scene_id: str) -> list[tuple[Path, str]]:
        """(file, kind) where an upload with this id is (or would be) kept."""
        return [(self.cache_dir / f"{scene_id}.{kind}", kind) for kind in ("glb", "json")]

    def _touch(self, scene_id: str) -> None:
        for path, _ in self._stored(scene_id):
            diskcache.touch(path)

    def add_bytes(self, data: bytes, content_type: str) -> "Scene":
        """Parse an uploaded scene (glb bytes or the add-on's mesh payload) and keep it."""
        from hosig.scene import load_scene

        kind = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind is None:
            raise UsageError(f"unsupported scene content type {content_type!r}; use {GLB_TYPE} or {MESH_JSON_TYPE}")
        if not data:
            raise InputError("uploaded scene is empty")
        raw_hash = hashlib.sha256(data).hexdigest()
        with self._lock:
            known = self._raw_to_id.get(raw_hash)
            if known is not None and known in self._scenes:
                self._scenes.move_to_end(known)
                self._touch(known)
                return self._scenes[known]
        scene = load_scene(self._decode(data, kind))  # outside the lock: other requests go on
        with self._lock:
            self._raw_to_id[raw_hash] = scene.content_hash
        self._persist(scene.content_hash, data, kind)
        return self._remember(scene)

    @staticmethod
    def _decode(data: bytes, kind: str) -> bytes | dict[str, Any]:
        if kind == "glb":
            return data
        try:
            payload = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"scene mesh payload is not valid JSON: {err}") from None
        if not isinstance(payload, dict):
            raise InputError("scene mesh payload must be a JSON object with 'format' and 'objects'")
        return payload

    def _persist(self, scene_id: str, data: bytes, kind: str) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            target = self.cache_dir / f"{scene_id}.{kind}"
            if target.exists():
                diskcache.touch(target)
                return
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            diskcache.prune(self.cache_root, self.max_disk_bytes, keep=(target,))
        except OSError:  # a read-only cache only costs re-uploads after a restart
            pass

    def add_path(self, path: str | Path) -> "Scene":
        """Load a scene file from disk (CLI, shot lists)."""
        from hosig.scene import load_scene

        path = Path(path)
        if not _is_file(path):
            raise InputError(f"scene file {str(path)!r} does not exist")
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            known = self._path_to_id.get(key)
            if known is not None and known in self._scenes:
                return self._scenes[known]
        scene = load_scene(path)  # outside the lock: other requests go on
        with self._lock:
            self._path_to_id[key] = scene.content_hash
        return self._remember(scene)

    def get(self, ref: str, allow_paths: bool = True) -> "Scene":
        """A scene by id (memory, then the upload cache) or, when allowed, by file path."""
        if is_scene_id(ref):
            scene = self._get_by_id(ref)
            if scene is not None:
                return scene
        if allow_paths and (_is_file(Path(ref)) or Path(ref).suffix.lower() in SCENE_SUFFIXES):
            return self.add_path(ref)  # a missing file says "does not exist", not "unknown id"
        hint = "upload it with POST /scenes" if not allow_paths else "give a scene file path or an id from POST /scenes"
        raise UnknownSceneError(f"unknown scene {_shown(ref)}: not a known scene id ({hint})")

    def _get_by_id(self, scene_id: str) -> "Scene | None":
        """A scene from memory, else parsed again from its stored upload; None when unknown."""
        with self._lock:
            scene = self._scenes.get(scene_id)
            if scene is not None:
                self._scenes.move_to_end(scene_id)
        if scene is not None:
            self._touch(scene_id)
            return scene
        for path, kind in self._stored(scene_id):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            from hosig.scene import load_scene

            scene = load_scene(self._decode(data, kind))  # outside the lock, like uploads
            if scene.content_hash == scene_id:
                diskcache.touch(path)
                return self._remember(scene)
        return None
