"""The add-on's mesh payload ("hosig-mesh/1"): named objects, world-space Z-up, metres.

`{"format": "hosig-mesh/1", "objects": [{"name", "vertices": base64 little-endian float32 (N*3),
"faces": base64 little-endian int32 (M*3)}]}`. The add-on has already applied matrix_world and
the unit scale, so nothing is converted here; `encode_payload` is the inverse used by tests and
by clients written in Python.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

from hosig.errors import InputError
from hosig.scene.scene import SceneObject

FORMAT = "hosig-mesh/1"


def encode_payload(objects: dict[str, tuple[np.ndarray, np.ndarray]] | list[SceneObject]) -> dict[str, Any]:
    """{name: (vertices (N,3), faces (M,3))} or SceneObjects -> payload dict."""
    items = [(o.name, o.vertices, o.faces) for o in objects] if isinstance(objects, list) else [
        (n, v, f) for n, (v, f) in objects.items()
    ]
    return {
        "format": FORMAT,
        "objects": [
            {
                "name": name,
                "vertices": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii"),
                "faces": base64.b64encode(np.asarray(f, dtype="<i4").tobytes()).decode("ascii"),
            }
            for name, v, f in items
        ],
    }


def _array(item: dict, key: str, dtype: str, where: str, name: str) -> np.ndarray:
    raw = item.get(key)
    if not isinstance(raw, str):
        raise InputError(f"{where}: object {name!r}: field {key!r} must be a base64 string")
    try:
        buf = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: object {name!r}: field {key!r} is not valid base64") from None
    if len(buf) % 12:
        raise InputError(f"{where}: object {name!r}: field {key!r} has {len(buf)} bytes, not a multiple of 3 x 4")
    return np.frombuffer(buf, dtype=dtype).reshape(-1, 3)


def decode_payload(payload: dict | bytes | str, where: str = "payload") -> dict[str, SceneObject]:
    """Payload (dict, or its JSON bytes/text) -> {name: SceneObject}."""
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{where}: expected a JSON object with 'format' and 'objects'")
    if payload.get("format") != FORMAT:
        raise InputError(f"{where}: unsupported format {payload.get('format')!r}, expected {FORMAT!r}")
    items = payload.get("objects")
    if not isinstance(items, list) or not items:
        raise InputError(f"{where}: 'objects' must be a non-empty list")
    objects: dict[str, SceneObject] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InputError(f"{where}: objects[{i}] needs a non-empty string 'name'")
        name = item["name"]
        if name in objects:
            raise InputError(f"{where}: duplicate object name {name!r}")
        verts = _array(item, "vertices", "<f4", where, name).astype(np.float64)
        faces = _array(item, "faces", "<i4", where, name).astype(np.int64)
        objects[name] = SceneObject(name=name, vertices=verts, faces=faces)
    return objects
