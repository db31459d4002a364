"""Viewport picking: the math as plain functions (tested headless), the modal operators on top.

Pick start: click on the floor sets the position, dragging sets the heading, release confirms;
Esc or right-click restores the previous start. Pick target: click an object (or use the active
object). The ray comes from the view through the mouse; the floor is the plane z = floor_z, unless
the ray hits geometry first (rugs, platforms), in which case the hit point's x, y are used.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

Vec3 = tuple[float, float, float]
# (origin, direction) -> (hit?, location, object name or None); wraps scene.ray_cast in Blender
RayCaster = Callable[[Vec3, Vec3], tuple[bool, Vec3, Optional[str]]]


def ray_floor(origin: Sequence[float], direction: Sequence[float], floor_z: float = 0.0) -> Vec3 | None:
    """Intersection of a ray with the horizontal plane z = floor_z (None if parallel or behind)."""
    dz = float(direction[2])
    if abs(dz) < 1e-9:
        return None
    t = (floor_z - float(origin[2])) / dz
    if t <= 0:
        return None
    return (float(origin[0]) + t * float(direction[0]), float(origin[1]) + t * float(direction[1]), float(floor_z))


def heading_from_drag(anchor: Sequence[float], current: Sequence[float], min_drag: float = 0.05) -> float | None:
    """Heading (radians about +Z, 0 = +X) from the click point toward the drag point; None if too short."""
    dx, dy = float(current[0]) - float(anchor[0]), float(current[1]) - float(anchor[1])
    if math.hypot(dx, dy) < min_drag:
        return None
    return math.atan2(dy, dx)


def pick_floor_point(ray: RayCaster, origin: Vec3, direction: Vec3, floor_z: float = 0.0,
                     max_step_height: float = 0.3) -> Vec3 | None:
    """Where a click lands for a start pose.

    The geometry hit counts when it is walkable (within ``max_step_height`` of the floor, e.g. a
    rug); a hit on a table top falls through to the floor plane under the cursor ray.
    """
    hit, loc, _ = ray(origin, direction)
    if hit and abs(loc[2] - floor_z) <= max_step_height:
        return (float(loc[0]), float(loc[1]), float(floor_z))
    return ray_floor(origin, direction, floor_z)


def pick_object(ray: RayCaster, origin: Vec3, direction: Vec3, exclude: Callable[[str], bool] = lambda _n: False) -> str | None:
    """Name of the first object the ray hits that is not excluded (our armature bodies, the floor)."""
    o = tuple(float(v) for v in origin)
    d = tuple(float(v) for v in direction)
    for _ in range(16):  # step through excluded surfaces
        hit, loc, name = ray(o, d)
        if not hit:
            return None
        if name is not None and not exclude(name):
            return name
        o = (loc[0] + d[0] * 1e-4, loc[1] + d[1] * 1e-4, loc[2] + d[2] * 1e-4)
    return None


def arrow_segments(x: float, y: float, z: float, heading: float, length: float = 0.5) -> list[Vec3]:
    """Line-list vertices for the start marker: a circle (r = 0.2 m) and a heading arrow."""
    pts: list[Vec3] = []
    n = 24
    for i in range(n):
        a0, a1 = 2 * math.pi * i / n, 2 * math.pi * (i + 1) / n
        pts += [(x + 0.2 * math.cos(a0), y + 0.2 * math.sin(a0), z), (x + 0.2 * math.cos(a1), y + 0.2 * math.sin(a1), z)]
    tip = (x + length * math.cos(heading), y + length * math.sin(heading), z)
    pts += [(x, y, z), tip]
    for side in (+1, -1):
        a = heading + math.pi + side * 0.5
        pts += [tip, (tip[0] + 0.15 * math.cos(a), tip[1] + 0.15 * math.sin(a), z)]
    return pts
