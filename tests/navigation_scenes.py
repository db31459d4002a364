"""Small procedural scenes for the navigation tests (built here, no files needed).

Every scene has a 10 cm floor slab named `floor` (top at z = 0) and 2.5 m walls 10 cm thick.
"""

from __future__ import annotations

import hashlib

import numpy as np
import trimesh

from hosig.scene import Scene, SceneConfig, SceneObject

WALL_H = 2.5
T = 0.1


def box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))


def make_scene(parts: dict[str, trimesh.Trimesh], label: str) -> Scene:
    """A `hosig.scene.Scene` from named Z-up meshes; the content hash covers the geometry."""
    h = hashlib.sha256()
    objects = {}
    for name, mesh in parts.items():
        v = np.asarray(mesh.vertices, dtype=np.float64)
        f = np.asarray(mesh.faces, dtype=np.int64)
        h.update(name.encode())
        h.update(v.tobytes())
        h.update(f.tobytes())
        objects[name] = SceneObject(name, v, f)
    return Scene(objects, label, h.hexdigest(), SceneConfig())


def room(x0, y0, x1, y1, parts: dict | None = None, gaps: dict | None = None) -> dict[str, trimesh.Trimesh]:
    """Floor + four walls (inner faces on the given rectangle); `gaps` = {side: (a, b)} leaves a
    door opening between a and b along that wall (side in south/north/west/east)."""
    parts = dict(parts or {})
    gaps = gaps or {}
    parts["floor"] = box([x0 - T, y0 - T, -0.1], [x1 + T, y1 + T, 0.0])
    spans = {
        "south": ("x", y0 - T, y0, x0 - T, x1 + T),
        "north": ("x", y1, y1 + T, x0 - T, x1 + T),
        "west": ("y", x0 - T, x0, y0, y1),
        "east": ("y", x1, x1 + T, y0, y1),
    }
    for side, (axis, c0, c1, a0, a1) in spans.items():
        pieces = [(a0, a1)]
        if side in gaps:
            g0, g1 = gaps[side]
            pieces = [(a0, g0), (g1, a1)]
        for k, (a, b) in enumerate(pieces):
            if b - a <= 1e-6:
                continue
            if axis == "x":
                parts[f"wall_{side}_{k}"] = box([a, c0, 0.0], [b, c1, WALL_H])
            else:
                parts[f"wall_{side}_{k}"] = box([c0, a, 0.0], [c1, b, WALL_H])
    return parts


def table(cx, cy, w=1.2, d=0.8, h=0.75, top=0.04, leg=0.05) -> trimesh.Trimesh:
    """A table: a top and four legs (the floor under the top is not walkable for a body)."""
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - d / 2, cy + d / 2
    parts = [box([x0, y0, h - top], [x1, y1, h])]
    for lx, ly in ((x0, y0), (x1 - leg, y0), (x0, y1 - leg), (x1 - leg, y1 - leg)):
        parts.append(box([lx, ly, 0.0], [lx + leg, ly + leg, h - top]))
    return trimesh.util.concatenate(parts)


def cube(x, y, z, s=0.2) -> trimesh.Trimesh:
    return box([x - s / 2, y - s / 2, z], [x + s / 2, y + s / 2, z + s])


def empty_room() -> Scene:
    """8 x 4 m, a cube on the floor at the east end."""
    return make_scene(room(0, 0, 8, 4, {"cube": cube(7.0, 2.0, 0.0)}), "empty-room")


def table_room() -> Scene:
    """6 x 4 m, a 1.6 m table in the middle between the start (west) and a cube (east)."""
    parts = room(0, 0, 6, 4, {"table": table(3.0, 2.0, w=0.8, d=1.6), "cube": cube(5.3, 2.0, 0.0)})
    return make_scene(parts, "table-room")


def two_rooms(door_width: float) -> Scene:
    """Two 4 x 4 m rooms side by side, joined by a door of `door_width` in the middle wall."""
    parts = room(0, 0, 8.1, 4, {"cube": cube(7.0, 3.0, 0.0)})
    c = 2.0
    parts["mid_wall_a"] = box([4.0, 0.0, 0.0], [4.1, c - door_width / 2, WALL_H])
    parts["mid_wall_b"] = box([4.0, c + door_width / 2, 0.0], [4.1, 4.0, WALL_H])
    return make_scene(parts, f"two-rooms-{door_width}")


def u_corridor() -> Scene:
    """A U: 1.2 m wide corridors, east along y in [0, 1.2], a bend, west back along y in [2.4, 3.6]."""
    parts = room(0, 0, 6, 3.6, {"cube": cube(0.6, 3.0, 0.0)})
    parts["divider"] = box([0.0, 1.2, 0.0], [4.8, 2.4, WALL_H])
    return make_scene(parts, "u-corridor")


def sealed_room() -> Scene:
    """A 6 x 5 m room with a sealed 2 x 2 m closet (no door) holding a cube."""
    parts = room(0, 0, 6, 5, {"cube_inside": cube(4.5, 3.5, 0.0), "cube_outside": cube(1.0, 4.0, 0.0)})
    for name, lo, hi in (
        ("closet_s", [3.4, 2.4, 0], [5.6, 2.5, WALL_H]),
        ("closet_n", [3.4, 4.5, 0], [5.6, 4.6, WALL_H]),
        ("closet_w", [3.4, 2.5, 0], [3.5, 4.5, WALL_H]),
        ("closet_e", [5.5, 2.5, 0], [5.6, 4.5, WALL_H]),
    ):
        parts[name] = box(lo, hi)
    return make_scene(parts, "sealed")


def shelf_room() -> Scene:
    """5 x 4 m with a shelf against the north wall: boards at 0.3, 0.9, 1.6 m; a book on the top
    board, a box on the low board, and a cup on a table against the east wall; a vase on a
    2.3 m high ledge (out of reach)."""
    parts = room(0, 0, 5, 4)
    x0, x1, y0, y1 = 1.0, 2.0, 3.6, 4.0
    shelf = [box([x0, y0, 0], [x0 + 0.02, y1, 1.8]), box([x1 - 0.02, y0, 0], [x1, y1, 1.8])]
    for z in (0.05, 0.3, 0.9, 1.6):
        shelf.append(box([x0, y0, z - 0.02], [x1, y1, z]))
    parts["shelf"] = trimesh.util.concatenate(shelf)
    parts["book"] = box([1.4, 3.75, 1.6], [1.55, 3.78, 1.82])
    parts["box_low"] = cube(1.7, 3.8, 0.3, s=0.15)
    parts["wall_table"] = table(4.6, 1.5, w=0.8, d=1.2, h=0.75)
    parts["cup"] = box([4.5, 1.45, 0.75], [4.58, 1.53, 0.85])
    parts["ledge"] = box([3.0, 3.7, 2.2], [4.0, 4.0, 2.25])
    parts["vase"] = box([3.4, 3.8, 2.25], [3.5, 3.9, 2.45])
    return make_scene(parts, "shelf-room")


def band_mesh(scene: Scene) -> trimesh.Trimesh:
    """Everything but the floor slab (the body may stand on the floor, nothing else)."""
    return scene.mesh(exclude=("floor",))


def path_clearance(scene: Scene, waypoints: np.ndarray, heights=(0.1, 0.4, 0.75, 1.0, 1.4, 1.85), step: float = 0.02) -> float:
    """Smallest true 3D distance from the walked polyline (at several body heights) to the scene
    geometry other than the floor, measured with trimesh against the meshes."""
    pts2 = [waypoints[:1]]
    for a, b in zip(waypoints[:-1], waypoints[1:]):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        t = np.linspace(0, 1, n + 1)[1:, None]
        pts2.append(a + t * (b - a))
    p2 = np.concatenate(pts2)
    pts = np.concatenate([np.concatenate([p2, np.full((len(p2), 1), h)], axis=1) for h in heights])
    _, dist, _ = trimesh.proximity.closest_point(band_mesh(scene), pts)
    return float(dist.min())
