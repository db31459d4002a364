"""glTF 2.0 (.glb/.gltf) -> named Z-up objects, exactly as Blender's glTF importer places them.

glTF is Y-up (+Y up, +Z forward). Blender's importer converts every position with
(x, y, z)_gltf -> (x, -z, y)_blender, i.e. a +90 degree rotation about X — the same matrix
`hosig.frames.YUP_TO_ZUP` uses for the body model. Node transforms are applied first (in glTF's
frame), so a box exported from Blender at a known location lands at that location here.
Each mesh-bearing node becomes one object named like the node (the Blender object name);
all primitives of a node's mesh are merged into that object.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh

from hosig.errors import InputError
from hosig.frames import YUP_TO_ZUP, ZUP_TO_YUP
from hosig.scene.nodes import unique_name, world_meshes
from hosig.scene.scene import SceneObject


def yup_to_zup(points: np.ndarray) -> np.ndarray:
    """(N,3) glTF points -> (N,3) Blender world points: (x, y, z) -> (x, -z, y)."""
    return np.asarray(points, dtype=np.float64) @ YUP_TO_ZUP.T


def zup_to_yup(points: np.ndarray) -> np.ndarray:
    """(N,3) Blender world points -> (N,3) glTF points (inverse of `yup_to_zup`)."""
    return np.asarray(points, dtype=np.float64) @ ZUP_TO_YUP.T


def read_gltf(data: bytes, file_type: str, where: str, path: Path | None = None) -> dict[str, SceneObject]:
    """Parse glb/gltf bytes into {node name: SceneObject} in Z-up world coordinates."""
    if len(data) == 0:
        raise InputError(f"{where}: file is empty")
    if file_type == "glb" and data[:4] != b"glTF":
        raise InputError(f"{where}: not a binary glTF file (missing 'glTF' magic)")
    try:
        # (skip_materials=True would avoid decoding images but breaks trimesh's primitive merge.)
        kwargs = {"merge_primitives": True, "process": False}
        if path is not None and file_type == "gltf":
            scene = trimesh.load_scene(str(path), file_type=file_type, **kwargs)
        else:
            scene = trimesh.load_scene(io.BytesIO(data), file_type=file_type, **kwargs)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - any parser failure is a corrupt file to the user
        raise InputError(f"{where}: corrupt or unreadable {file_type} file ({type(err).__name__}: {err})") from None
    objects: dict[str, SceneObject] = {}
    for node, geom_name, verts, faces in world_meshes(scene):
        # Unnamed nodes get their index from trimesh; Blender names those objects after the mesh.
        name = unique_name(geom_name if node.isdigit() else node, objects)
        objects[name] = SceneObject(name=name, vertices=yup_to_zup(verts), faces=faces)
    # Sorted like Blender's outliner (trimesh's traversal order is not the file order).
    return {n: objects[n] for n in sorted(objects)}
