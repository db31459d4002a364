"""Walking a loaded `trimesh.Scene`: one place for what every file loader does with its nodes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import trimesh


def world_meshes(scene: trimesh.Scene) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(node name, geometry name, vertices (N,3) in the file's world frame, faces (M,3)) per mesh
    node; empty and non-triangle geometry (points, paths) is skipped."""
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        verts = trimesh.transform_points(np.asarray(geom.vertices, dtype=np.float64), transform)
        yield str(node), str(geom_name), verts, np.asarray(geom.faces)


def unique_name(name: str, taken: dict) -> str:
    """Blender's rule for a clashing name: ``name.001``, ``name.002``, …"""
    base, i = name, 1
    while name in taken:
        name = f"{base}.{i:03d}"
        i += 1
    return name
