"""Small generated scenes for the grasp tests and benchmark: one target each, known stand point.

Why here and not in tests/: `bench_grasp` and the CLI's self-check use the same scenes, and a fresh
clone must be able to build them without any data (pure trimesh primitives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from hosig.scene import Scene, SceneConfig, encode_payload, load_scene


@dataclass
class GraspCase:
    name: str
    scene: Scene
    target: str
    stand: tuple[float, float, float]  # x, y, heading


def _box(lo, hi) -> trimesh.Trimesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))


def _cyl(x, y, z0, r, h) -> trimesh.Trimesh:
    m = trimesh.creation.cylinder(radius=r, height=h, sections=32)
    m.apply_translation([x, y, z0 + h / 2])
    return m


def _table(cx, cy, w=1.2, d=0.8, h=0.75) -> trimesh.Trimesh:
    parts = [_box([cx - w / 2, cy - d / 2, h - 0.04], [cx + w / 2, cy + d / 2, h])]
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = cx + sx * (w / 2 - 0.05), cy + sy * (d / 2 - 0.05)
            parts.append(_box([x - 0.025, y - 0.025, 0], [x + 0.025, y + 0.025, h - 0.04]))
    return trimesh.util.concatenate(parts)


def open_vessel(x: float, y: float, z0: float, radius: float, height: float, wall: float = 0.007,
                sections: int = 32) -> trimesh.Trimesh:
    """An open-top thin-walled vessel (mug, cup, glass, bowl) made as exported assets are: outer
    wall, inner wall, rim ring, outer bottom and inner floor as separate surfaces (not watertight),
    its bottom at ``z0``."""
    a = np.linspace(0.0, 2.0 * np.pi, sections, endpoint=False)
    n = sections

    def circle(r: float, z: float) -> np.ndarray:
        return np.stack([x + r * np.cos(a), y + r * np.sin(a), np.full(n, z)], axis=1)

    def band(lower: np.ndarray, upper: np.ndarray, inward: bool) -> trimesh.Trimesh:
        i = np.arange(n)
        j = (i + 1) % n
        faces = np.concatenate([np.stack([i, j, n + i], 1), np.stack([j, n + j, n + i], 1)])
        return trimesh.Trimesh(np.concatenate([lower, upper]), faces[:, ::-1] if inward else faces, process=False)

    def disc(r: float, z: float, down: bool) -> trimesh.Trimesh:
        i = np.arange(n)
        faces = np.stack([np.zeros(n, int), 1 + i, 1 + (i + 1) % n], 1)
        return trimesh.Trimesh(np.concatenate([[[x, y, z]], circle(r, z)]), faces[:, ::-1] if down else faces, process=False)

    inner = radius - wall
    return trimesh.util.concatenate([
        band(circle(radius, z0), circle(radius, z0 + height), inward=False),
        band(circle(inner, z0 + wall), circle(inner, z0 + height), inward=True),
        band(circle(inner, z0 + height), circle(radius, z0 + height), inward=True),
        disc(radius, z0, down=True),
        disc(inner, z0 + wall, down=False),
    ])


def _scene(objects: dict[str, trimesh.Trimesh], config: SceneConfig | None = None) -> Scene:
    objects = {"floor": _box([-2.5, -2.5, -0.1], [2.5, 2.5, 0.0]), **objects}
    payload = encode_payload({k: (np.asarray(m.vertices), np.asarray(m.faces)) for k, m in objects.items()})
    return load_scene(payload, config or SceneConfig(disk_cache=False))


def bottle_on_table() -> GraspCase:
    s = _scene({"table": _table(0.0, 0.0), "bottle": _cyl(0.05, -0.22, 0.75, 0.035, 0.25)})
    return GraspCase("bottle_on_table", s, "bottle", (0.0, -0.72, np.pi / 2))


def cup_on_counter_by_wall() -> GraspCase:
    s = _scene({
        "wall": _box([1.5, -2.0, 0.0], [1.6, 2.0, 2.4]),
        "counter": _box([0.9, -0.6, 0.0], [1.5, 0.6, 0.9]),
        "cup": _cyl(1.12, 0.0, 0.9, 0.04, 0.10),
    })
    return GraspCase("cup_on_counter_by_wall", s, "cup", (0.58, -0.05, 0.0))


def box_on_floor() -> GraspCase:
    s = _scene({"box": _box([0.46, -0.07, 0.0], [0.54, 0.07, 0.10])})
    return GraspCase("box_on_floor", s, "box", (0.08, -0.08, 0.0))


def book_on_high_shelf() -> GraspCase:
    shelf = trimesh.util.concatenate([
        _box([-0.5, 0.7, z], [0.5, 1.0, z + 0.02]) for z in (0.3, 0.9, 1.55, 2.0)
    ] + [_box([x, 0.7, 0.0], [x + 0.02, 1.0, 2.02]) for x in (-0.52, 0.5)])
    s = _scene({
        "wall": _box([-2.0, 1.0, 0.0], [2.0, 1.1, 2.4]),
        "shelf": shelf,
        "book": _box([-0.075, 0.835, 1.57], [0.075, 0.865, 1.79]),
    })
    return GraspCase("book_on_high_shelf", s, "book", (0.08, 0.33, np.pi / 2))


def bottle_beside_wall() -> GraspCase:
    s = _scene({
        "wall": _box([1.0, -2.0, 0.0], [1.1, 2.0, 2.4]),
        "table": _table(0.8, 0.0, w=0.4, d=0.8),
        "bottle": _cyl(0.92, 0.05, 0.75, 0.035, 0.25),
    })
    return GraspCase("bottle_beside_wall", s, "bottle", (0.3, -0.1, 0.0))


def open_mug_on_counter() -> GraspCase:
    """A hollow mug 25 cm deep on a kitchen counter against a wall (its front edge at x = 0.9)."""
    s = _scene({
        "wall": _box([1.5, -2.0, 0.0], [1.6, 2.0, 2.4]),
        "counter": _box([0.9, -0.6, 0.0], [1.5, 0.6, 0.9]),
        "mug": open_vessel(1.15, 0.05, 0.9, 0.045, 0.10),
    })
    return GraspCase("open_mug_on_counter", s, "mug", (0.6, 0.0, 0.0))


def phone_against_shelf_back() -> GraspCase:
    """A phone lying flat on a bookshelf's board at 0.48 m, 3 cm from its back panel, another board
    41 cm above: a palm from above on its centre puts the finger tips into the back panel."""
    boards = [_box([0.02, -0.4, z], [0.28, 0.4, z + 0.02]) for z in (0.074, 0.458, 0.89, 1.213, 1.626)]
    sides = [_box([0.0, y, 0.0], [0.28, y + 0.02, 1.65]) for y in (-0.42, 0.4)]
    phone = _box([-0.0375, -0.0775, 0.0], [0.0375, 0.0775, 0.008])
    phone.apply_transform(trimesh.transformations.rotation_matrix(0.35, [0, 0, 1]))
    phone.apply_translation([0.1115, 0.0, 0.478])
    s = _scene({
        "wall": _box([-0.1, -2.0, 0.0], [0.0, 2.0, 2.4]),
        "shelf": trimesh.util.concatenate([_box([0.0, -0.4, 0.0], [0.02, 0.4, 1.65]), *boards, *sides]),
        "phone": phone,
    })
    return GraspCase("phone_against_shelf_back", s, "phone", (0.6, 0.01, np.pi))


def book_lying_on_table() -> GraspCase:
    """A hardback lying flat on a table, 16 x 23 x 3 cm, turned 0.5 rad: wider than a hand every way
    round, so only an edge grip holds it."""
    book = _box([-0.08, -0.115, 0.0], [0.08, 0.115, 0.03])
    book.apply_transform(trimesh.transformations.rotation_matrix(0.5, [0, 0, 1]))
    book.apply_translation([0.1, -0.1, 0.75])
    s = _scene({"table": _table(0.0, 0.0), "book": book})
    return GraspCase("book_lying_on_table", s, "book", (0.05, -0.72, np.pi / 2))


CASES = {
    "bottle_on_table": bottle_on_table,
    "cup_on_counter_by_wall": cup_on_counter_by_wall,
    "box_on_floor": box_on_floor,
    "book_on_high_shelf": book_on_high_shelf,
    "bottle_beside_wall": bottle_beside_wall,
    "open_mug_on_counter": open_mug_on_counter,
}
