"""Procedurally furnished demo rooms, deterministic per (kind, seed), written as Blender-ready glb.

All geometry is built Z-up (floor top at z = 0) from closed boxes and cylinders, one named node
per object, then converted to glTF's Y-up on export so Blender imports it standing up with the
same names. Furniture positions and small-object placements are jittered by the seed; the set of
names per kind is fixed. Every wall is `wall_*`, the floor is a 10 cm slab named `floor`.

Kinds and their objects:
- ``kitchen`` (default), ~6 x 5 m, door gap in the south wall: `floor`, `wall_north`,
  `wall_east`, `wall_west`, `wall_south_a`, `wall_south_b`, `wall_south_top` (lintel),
  `table` (with `bottle` and `mug` on it), `counter` against the east wall (with `cup`),
  `shelf` against the north wall (with `book` on the high board at 1.5 m and `box` on the low
  board at 0.3 m), `chair_1`, `chair_2`, `box_floor` and `bottle_floor` (on the floor).
- ``office``, ~5 x 4 m: floor, walls (door gap), `desk` (with `laptop`, `mug`), `chair_1`,
  `shelf` (with `book`, `box`), `cabinet` (with `plant_pot`), `bin` (on the floor),
  `side_table` (with `bottle`).
- ``living_room``, ~7 x 5 m: floor, walls (door gap), `sofa`, `armchair`, `coffee_table`
  (with `remote`, `cup`), `tv_stand` (with `tv`), `shelf` (with `book`, `box`), `side_table`
  (with `bottle`), `box_floor`.
- ``corridor``: an L-shaped corridor 1.6 m wide, ~30 m walked from the start room at the
  origin: floor, `wall_*` pieces, a `side_table` at the far end with a `bottle`, `box_floor`
  at the corner.
- ``enclosed``: a 6 x 5 m room (floor, walls with door gap) containing a sealed 2 x 2 m
  closet (`wall_closet_north/east/west/south`, no door, 2.5 m high) with `table_inside` and
  `bottle` inside it (unreachable), and a `table` with a `cup` outside it (reachable).
- ``large``: a 10 x 10 m furnished hall for benchmarks: floor, walls (door gap),
  `table_1..4` each with `bottle_k` and `cup_k`, `chair_k_1..2`, `shelf_1..2` with
  `book_k`/`box_k`, `counter` with `mug`, `sofa`, `box_floor`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from hosig.errors import UsageError
from hosig.scene.gltf import zup_to_yup

KINDS = ("kitchen", "office", "living_room", "corridor", "enclosed", "large")
WALL_H = 2.5
WALL_T = 0.1
DOOR_W = 1.0
DOOR_H = 2.1


def _box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))


def _cyl(x: float, y: float, z0: float, radius: float, height: float, sections: int = 32) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    m.apply_translation([x, y, z0 + height / 2])
    return m


def _merge(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    return trimesh.util.concatenate(parts)


class _Room:
    """Collects named Z-up meshes; names must be unique."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.items: dict[str, trimesh.Trimesh] = {}

    def add(self, name: str, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        if name in self.items:
            raise ValueError(f"duplicate demo object name {name!r}")
        self.items[name] = mesh
        return mesh

    def j(self, scale: float) -> float:
        """Seeded jitter in [-scale, scale]."""
        return float(self.rng.uniform(-scale, scale))

    # -- structure ---------------------------------------------------------------------------
    def floor(self, x0, y0, x1, y1) -> None:
        self.add("floor", _box([x0, y0, -0.1], [x1, y1, 0.0]))

    def walls(self, x0, y0, x1, y1, door_x: float | None = None, prefix: str = "wall", height: float = WALL_H) -> None:
        """Four walls outside the rectangle; a door gap centred at door_x in the south wall."""
        t = WALL_T
        self.add(f"{prefix}_north", _box([x0 - t, y1, 0], [x1 + t, y1 + t, height]))
        self.add(f"{prefix}_east", _box([x1, y0, 0], [x1 + t, y1, height]))
        self.add(f"{prefix}_west", _box([x0 - t, y0, 0], [x0, y1, height]))
        if door_x is None:
            self.add(f"{prefix}_south", _box([x0 - t, y0 - t, 0], [x1 + t, y0, height]))
            return
        a, b = door_x - DOOR_W / 2, door_x + DOOR_W / 2
        self.add(f"{prefix}_south_a", _box([x0 - t, y0 - t, 0], [a, y0, height]))
        self.add(f"{prefix}_south_b", _box([b, y0 - t, 0], [x1 + t, y0, height]))
        self.add(f"{prefix}_south_top", _box([a, y0 - t, DOOR_H], [b, y0, height]))

    # -- furniture ---------------------------------------------------------------------------
    def table(self, name, cx, cy, w=1.2, d=0.8, h=0.75, top_t=0.04, leg=0.05) -> float:
        """Table centred at (cx, cy); returns the top height."""
        parts = [_box([cx - w / 2, cy - d / 2, h - top_t], [cx + w / 2, cy + d / 2, h])]
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = cx + sx * (w / 2 - leg), cy + sy * (d / 2 - leg)
                parts.append(_box([lx - leg / 2, ly - leg / 2, 0], [lx + leg / 2, ly + leg / 2, h - top_t]))
        self.add(name, _merge(parts))
        return h

    def chair(self, name, cx, cy, facing: float) -> None:
        """Seat 0.45 m square at 0.45 m, backrest on the side opposite `facing` (radians)."""
        s, h, leg = 0.45, 0.45, 0.04
        parts = [_box([cx - s / 2, cy - s / 2, h - 0.04], [cx + s / 2, cy + s / 2, h])]
        for sx in (-1, 1):
            for sy in (-1, 1):
                lx, ly = cx + sx * (s / 2 - leg), cy + sy * (s / 2 - leg)
                parts.append(_box([lx - leg / 2, ly - leg / 2, 0], [lx + leg / 2, ly + leg / 2, h - 0.04]))
        bx, by = -np.cos(facing), -np.sin(facing)
        if abs(bx) > abs(by):
            x = cx + np.sign(bx) * (s / 2 - 0.02)
            parts.append(_box([x - 0.02, cy - s / 2, h], [x + 0.02, cy + s / 2, 0.9]))
        else:
            y = cy + np.sign(by) * (s / 2 - 0.02)
            parts.append(_box([cx - s / 2, y - 0.02, h], [cx + s / 2, y + 0.02, 0.9]))
        self.add(name, _merge(parts))

    def shelf(self, name, x0, y0, x1, y1, boards=(0.05, 0.3, 0.9, 1.5), height=1.8, t=0.02) -> tuple[float, ...]:
        """Open shelf: two sides, a back on the +y (or -y) side, horizontal boards; board tops returned."""
        parts = [
            _box([x0, y0, 0], [x0 + t, y1, height]),
            _box([x1 - t, y0, 0], [x1, y1, height]),
            _box([x0, y1 - t, 0], [x1, y1, height]),
        ]
        tops = []
        for z in boards:
            parts.append(_box([x0 + t, y0, z - t], [x1 - t, y1 - t, z]))
            tops.append(z)
        parts.append(_box([x0 + t, y0, height - t], [x1 - t, y1 - t, height]))
        self.add(name, _merge(parts))
        return tuple(tops)

    def block(self, name, lo, hi) -> None:
        self.add(name, _box(lo, hi))

    # -- small objects -------------------------------------------------------------------------
    def bottle(self, name, x, y, z) -> None:
        self.add(name, _cyl(x, y, z, 0.035, 0.25))

    def cup(self, name, x, y, z) -> None:
        self.add(name, _cyl(x, y, z, 0.04, 0.10))

    def book(self, name, x, y, z) -> None:
        self.add(name, _box([x - 0.075, y - 0.015, z], [x + 0.075, y + 0.015, z + 0.22]))

    def cube(self, name, x, y, z, s=0.20) -> None:
        self.add(name, _box([x - s / 2, y - s / 2, z], [x + s / 2, y + s / 2, z + s]))


def _kitchen(r: _Room) -> None:
    r.floor(-3, -2.5, 3, 2.5)
    r.walls(-3, -2.5, 3, 2.5, door_x=-1.8 + r.j(0.2))
    tx, ty = 0.2 + r.j(0.3), 0.0 + r.j(0.3)
    top = r.table("table", tx, ty)
    r.bottle("bottle", tx - 0.3 + r.j(0.1), ty + 0.1 + r.j(0.1), top)
    r.cup("mug", tx + 0.3 + r.j(0.1), ty - 0.1 + r.j(0.1), top)
    r.chair("chair_1", tx, ty - 0.75, np.pi / 2)
    r.chair("chair_2", tx, ty + 0.75, -np.pi / 2)
    r.block("counter", [2.4, -1.2, 0], [3.0, 0.8, 0.9])
    r.cup("cup", 2.65 + r.j(0.08), -0.4 + r.j(0.4), 0.9)
    sx = -1.5 + r.j(0.3)
    tops = r.shelf("shelf", sx - 0.5, 2.15, sx + 0.5, 2.5)
    r.book("book", sx + r.j(0.2), 2.3, tops[3])
    r.cube("box", sx + r.j(0.2), 2.3, tops[1])
    r.cube("box_floor", -2.0 + r.j(0.3), -0.5 + r.j(0.3), 0.0)
    r.bottle("bottle_floor", -2.3 + r.j(0.2), 1.2 + r.j(0.2), 0.0)  # hand-sized, on the floor


def _office(r: _Room) -> None:
    r.floor(-2.5, -2, 2.5, 2)
    r.walls(-2.5, -2, 2.5, 2, door_x=1.5)
    dx = -0.5 + r.j(0.2)
    top = r.table("desk", dx, 1.55, w=1.4, d=0.7, h=0.74)
    r.block("laptop", [dx - 0.45, 1.45, top], [dx - 0.12, 1.68, top + 0.02])
    r.cup("mug", dx + 0.35 + r.j(0.1), 1.5, top)
    r.chair("chair_1", dx, 0.85, np.pi / 2)
    tops = r.shelf("shelf", 1.6, 1.6, 2.4, 1.95)
    r.book("book", 1.95 + r.j(0.1), 1.75, tops[2])
    r.cube("box", 2.0 + r.j(0.1), 1.75, tops[0])
    r.block("cabinet", [-2.45, -1.5, 0], [-1.95, -0.5, 1.0])
    r.cup("plant_pot", -2.2, -1.0, 1.0)
    r.add("bin", _cyl(-1.6 + r.j(0.2), 1.7, 0.0, 0.14, 0.35))
    st = r.table("side_table", 1.6 + r.j(0.2), -1.0, w=0.5, d=0.5, h=0.6)
    r.bottle("bottle", 1.6, -1.0, st)


def _living(r: _Room) -> None:
    r.floor(-3.5, -2.5, 3.5, 2.5)
    r.walls(-3.5, -2.5, 3.5, 2.5, door_x=2.6)
    r.block("sofa", [-1.2, 1.5, 0], [1.2, 2.45, 0.8])
    r.block("armchair", [-3.3, -0.5, 0], [-2.4, 0.4, 0.8])
    cx = r.j(0.3)
    top = r.table("coffee_table", cx, 0.5, w=1.0, d=0.6, h=0.45)
    r.block("remote", [cx - 0.2, 0.4, top], [cx - 0.15, 0.58, top + 0.02])
    r.cup("cup", cx + 0.2 + r.j(0.1), 0.5, top)
    r.block("tv_stand", [-1.0, -2.45, 0], [1.0, -2.0, 0.5])
    r.block("tv", [-0.6, -2.35, 0.5], [0.6, -2.3, 1.2])
    tops = r.shelf("shelf", 2.2, 2.1, 3.2, 2.45)
    r.book("book", 2.7 + r.j(0.2), 2.25, tops[3])
    r.cube("box", 2.7 + r.j(0.2), 2.25, tops[1])
    st = r.table("side_table", -2.8, 1.8, w=0.5, d=0.5, h=0.6)
    r.bottle("bottle", -2.8 + r.j(0.08), 1.8 + r.j(0.08), st)
    r.cube("box_floor", 1.8 + r.j(0.3), -1.0 + r.j(0.3), 0.0)


def _corridor(r: _Room) -> None:
    # Start room 4 x 4 at the origin, a corridor east 15 m then north 12 m (~30 m walked).
    w = 1.6
    r.floor(-2, -2, 16 + w, 14)
    t = WALL_T
    H = WALL_H
    # start room walls (opening to the corridor on the east side, y in [-0.8, 0.8])
    r.block("wall_room_south", [-2 - t, -2 - t, 0], [2 + t, -2, H])
    r.block("wall_room_north", [-2 - t, 2, 0], [2 + t, 2 + t, H])
    r.block("wall_room_west", [-2 - t, -2, 0], [-2, 2, H])
    r.block("wall_room_east_a", [2, -2, 0], [2 + t, -w / 2, H])
    r.block("wall_room_east_b", [2, w / 2, 0], [2 + t, 2, H])
    # east leg: y in [-w/2, w/2], x from 2 to 16 + w
    r.block("wall_east_leg_south", [2, -w / 2 - t, 0], [16 + w + t, -w / 2, H])
    r.block("wall_east_leg_north", [2, w / 2, 0], [16, w / 2 + t, H])
    # north leg: x in [16, 16 + w], y from w/2 to 14
    r.block("wall_north_leg_west", [16 - t, w / 2, 0], [16, 14, H])
    r.block("wall_north_leg_east", [16 + w, -w / 2, 0], [16 + w + t, 14, H])
    r.block("wall_end", [16 - t, 14, 0], [16 + w + t, 14 + t, H])
    r.cube("box_floor", 16 + w / 2 + r.j(0.2), -0.2 + r.j(0.2), 0.0, s=0.25)
    st = r.table("side_table", 16 + w / 2, 13.5, w=0.5, d=0.5, h=0.7)
    r.bottle("bottle", 16 + w / 2 + r.j(0.08), 13.5 + r.j(0.08), st)


def _enclosed(r: _Room) -> None:
    r.floor(-3, -2.5, 3, 2.5)
    r.walls(-3, -2.5, 3, 2.5, door_x=-1.8)
    # Sealed closet in the north-east corner: four walls, no door, floor-to-ceiling height.
    r.walls(0.8, 0.2, 2.8, 2.2, door_x=None, prefix="wall_closet")
    top = r.table("table_inside", 1.8, 1.2, w=0.6, d=0.6, h=0.75)
    r.bottle("bottle", 1.8 + r.j(0.1), 1.2 + r.j(0.1), top)
    top = r.table("table", -1.0 + r.j(0.2), -0.5, w=1.0, d=0.6)
    r.cup("cup", -1.0, -0.5, top)


def _large(r: _Room) -> None:
    r.floor(-5, -5, 5, 5)
    r.walls(-5, -5, 5, 5, door_x=0.0)
    for k, (cx, cy) in enumerate([(-2.5, -2.0), (2.5, -2.0), (-2.5, 2.0), (2.5, 2.0)], start=1):
        cx, cy = cx + r.j(0.3), cy + r.j(0.3)
        top = r.table(f"table_{k}", cx, cy)
        r.bottle(f"bottle_{k}", cx - 0.3 + r.j(0.1), cy + r.j(0.2), top)
        r.cup(f"cup_{k}", cx + 0.3 + r.j(0.1), cy + r.j(0.2), top)
        r.chair(f"chair_{k}_1", cx, cy - 0.75, np.pi / 2)
        r.chair(f"chair_{k}_2", cx, cy + 0.75, -np.pi / 2)
    for k, sx in enumerate((-3.5, -1.0), start=1):
        tops = r.shelf(f"shelf_{k}", sx - 0.5, 4.65, sx + 0.5, 5.0)
        r.book(f"book_{k}", sx + r.j(0.2), 4.8, tops[3])
        r.cube(f"box_{k}", sx + r.j(0.2), 4.8, tops[1])
    r.block("counter", [4.4, -1.5, 0], [5.0, 1.5, 0.9])
    r.cup("mug", 4.7, r.j(1.0), 0.9)
    r.block("sofa", [-4.95, -1.2, 0], [-4.0, 1.2, 0.8])
    r.cube("box_floor", 0.0 + r.j(0.5), 0.0 + r.j(0.5), 0.0, s=0.3)


# Public names of the building blocks, for other procedural scene builders
# (hosig.eval.stress_rooms); the underscored originals stay for this module's own use.
box = _box
cylinder = _cyl
merge = _merge
Room = _Room


_BUILDERS = {
    "kitchen": _kitchen,
    "office": _office,
    "living_room": _living,
    "corridor": _corridor,
    "enclosed": _enclosed,
    "large": _large,
}


def demo_objects(kind: str = "kitchen", seed: int = 0) -> dict[str, trimesh.Trimesh]:
    """{name: Z-up trimesh} of a demo room (same names for every seed)."""
    if kind not in _BUILDERS:
        raise UsageError(f"unknown demo scene kind {kind!r}; choose one of {', '.join(KINDS)}")
    room = _Room(np.random.default_rng(seed))
    _BUILDERS[kind](room)
    return room.items


def build_demo_scene(kind: str = "kitchen", seed: int = 0) -> trimesh.Scene:
    """trimesh.Scene in glTF's Y-up frame with one node per object (node name = object name)."""
    scene = trimesh.Scene()
    for name, mesh in demo_objects(kind, seed).items():
        m = trimesh.Trimesh(zup_to_yup(mesh.vertices), mesh.faces.copy(), process=False)
        scene.add_geometry(m, node_name=name, geom_name=name)
    return scene


def write_demo_scene(path: str | Path, kind: str = "kitchen", seed: int = 0) -> Path:
    """Write the demo room as .glb (Blender imports it Z-up with the same object names)."""
    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise UsageError(f"demo scene output must end in .glb, got {str(path)!r}")
    data = build_demo_scene(kind, seed).export(file_type="glb")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".glb.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
