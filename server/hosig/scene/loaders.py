"""`load_scene`: any supported source -> a cached, validated `Scene`.

Sources: a path to .glb/.gltf (Y-up, converted like Blender's importer), .obj/.ply (taken as
Z-up as written unless SceneConfig.up_axis == 'y'), or the add-on payload (dict, or its JSON
bytes). The content hash (sha256 of the bytes; for payload dicts, of their canonical JSON) keys
the in-memory cache, so loading the same scene twice returns the same object. Input files are
only ever read.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import trimesh

from hosig.errors import InputError
from hosig.scene import cache as _cache
from hosig.scene.config import SceneConfig
from hosig.scene.gltf import read_gltf, yup_to_zup
from hosig.scene.payload import decode_payload
from hosig.scene.nodes import unique_name, world_meshes
from hosig.scene.scene import Scene, SceneObject, validate_objects

SUPPORTED = (".glb", ".gltf", ".obj", ".ply")


def _gltf_bytes(path: Path, data: bytes) -> bytes:
    """A .gltf's own JSON plus the bytes of the buffers/images it references (for hashing)."""
    try:
        header = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data
    extra = b""
    for entry in header.get("buffers", []) + header.get("images", []):
        uri = entry.get("uri") if isinstance(entry, dict) else None
        if isinstance(uri, str) and not uri.startswith("data:"):
            ref = path.parent / uri
            if ref.is_file():
                extra += ref.read_bytes()
    return data + extra


def _read_trimesh(data: bytes, ext: str, where: str, stem: str, up_axis: str) -> dict[str, SceneObject]:
    """OBJ (one object per `o`/`g` block) or PLY (one object named after the file)."""
    if len(data) == 0:
        raise InputError(f"{where}: file is empty")
    try:
        # process=False: keep the file's vertices as they are (trimesh would silently drop
        # NaN/inf vertices and their faces; validation reports them instead).
        kwargs = {"split_objects": True, "group_material": False} if ext == "obj" else {}
        kwargs["process"] = False
        loaded = trimesh.load_scene(io.BytesIO(data), file_type=ext, **kwargs)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{where}: corrupt or unreadable {ext} file ({type(err).__name__}: {err})") from None
    objects: dict[str, SceneObject] = {}
    single = len(loaded.graph.nodes_geometry) == 1
    for _, geom_name, verts, faces in world_meshes(loaded):
        if up_axis == "y":
            verts = yup_to_zup(verts)
        # PLY has no object names; an OBJ without `o`/`g` lines gets trimesh's "geometry".
        unnamed = geom_name in ("None", "") or geom_name.startswith("geometry")
        name = unique_name(stem if ext == "ply" or (unnamed and single) else geom_name, objects)
        objects[name] = SceneObject(name=name, vertices=verts, faces=faces)
    return objects


def load_scene(source: str | Path | dict | bytes, config: SceneConfig = SceneConfig()) -> Scene:
    """Load (or fetch from cache) a scene; raises InputError with a one-line reason on bad input."""
    if config.up_axis not in ("y", "z"):
        raise InputError(f"SceneConfig.up_axis must be 'y' or 'z', got {config.up_axis!r}")
    if isinstance(source, dict):
        try:
            canon = json.dumps(source, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError) as err:
            raise InputError(f"payload: not JSON-serialisable ({err})") from None
        return _finish(hashlib.sha256(canon).hexdigest(), "payload", config, lambda: decode_payload(source))
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        digest = hashlib.sha256(data).hexdigest()
        if data[:4] == b"glTF":
            return _finish(digest, "uploaded.glb", config, lambda: read_gltf(data, "glb", "uploaded.glb"))
        return _finish(digest, "payload", config, lambda: decode_payload(data))
    if not isinstance(source, (str, Path)):
        raise InputError(f"unsupported scene source of type {type(source).__name__}")
    path = Path(source).expanduser()
    where = str(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise InputError(f"{where}: unsupported scene format {ext or '(no extension)'!r}; use one of {', '.join(SUPPORTED)}")
    if not path.exists():
        raise InputError(f"{where}: file not found")
    if not path.is_file():
        raise InputError(f"{where}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{where}: cannot read ({err.strerror})") from None
    hashed = _gltf_bytes(path, data) if ext == ".gltf" else data
    digest = hashlib.sha256(ext.encode() + b"\0" + hashed).hexdigest()
    if ext in (".glb", ".gltf"):
        return _finish(digest, where, config, lambda: read_gltf(data, ext[1:], where, path))
    return _finish(digest, where, config, lambda: _read_trimesh(data, ext[1:], where, path.stem, config.up_axis))


def _finish(digest: str, where: str, config: SceneConfig, read) -> Scene:
    cached = _cache.get_scene(digest, config.key())
    if cached is not None:
        return cached
    objects = read()
    validate_objects(objects, where, config)
    scene = Scene(objects=objects, source=where, content_hash=digest, config=config)
    _cache.put_scene(scene)
    return scene
