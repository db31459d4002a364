"""The visible scene as the server's mesh payload (`hosig-mesh/1`, ARCHITECTURE.md).

Evaluated meshes (modifiers applied) in world space: ``matrix_world`` and the scene's unit scale
are applied here, so the server gets metres, Z up. Our own armature bodies are left out, and so is
anything hidden in the viewport.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import bpy
import numpy as np

from .protocol import mesh_payload
from .rig import BODY_TAG


def exportable_objects(context: bpy.types.Context) -> list[bpy.types.Object]:
    """Visible mesh objects that are part of the set (not HOSIG bodies)."""
    out = []
    for obj in context.view_layer.objects:
        if obj is None or obj.type != "MESH" or obj.get(BODY_TAG) is not None:
            continue
        if not obj.visible_get():
            continue
        out.append(obj)
    return out


def object_arrays(obj: bpy.types.Object, depsgraph, unit_scale: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(vertices (N,3) world metres, triangles (M,3)) of the evaluated object, None if empty."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        n_v, n_t = len(mesh.vertices), len(mesh.loop_triangles)
        if n_v == 0 or n_t == 0:
            return None
        co = np.empty(n_v * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        tris = np.empty(n_t * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
    finally:
        evaluated.to_mesh_clear()
    mw = np.array(obj.matrix_world, dtype=np.float64)
    verts = co.reshape(-1, 3).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3]
    return verts * unit_scale, tris.reshape(-1, 3)


def scene_payload(context: bpy.types.Context, objects: list[bpy.types.Object] | None = None) -> dict:
    """The mesh payload of the visible scene (or of ``objects``)."""
    depsgraph = context.evaluated_depsgraph_get()
    unit_scale = float(context.scene.unit_settings.scale_length or 1.0)
    items = []
    for obj in objects if objects is not None else exportable_objects(context):
        arrays = object_arrays(obj, depsgraph, unit_scale)
        if arrays is not None:
            items.append((obj.name, arrays[0], arrays[1]))
    return mesh_payload(items)


def payload_bytes(payload: dict) -> tuple[bytes, str]:
    """(JSON bytes, sha256 hex) — the hash lets the add-on skip re-uploading an unchanged scene."""
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def exporter(context: bpy.types.Context) -> Callable[[str], tuple[np.ndarray, np.ndarray] | None]:
    """name -> (vertices (N,3) world metres, triangles (M,3)) of that object now, for `upload.SceneUpload`
    (called from timer ticks: the depsgraph is asked for at each call, never kept)."""
    unit_scale = float(context.scene.unit_settings.scale_length or 1.0)

    def export(name: str) -> tuple[np.ndarray, np.ndarray] | None:
        obj = bpy.data.objects.get(name)
        if obj is None:  # deleted while the upload ran
            return None
        return object_arrays(obj, bpy.context.evaluated_depsgraph_get(), unit_scale)

    return export
