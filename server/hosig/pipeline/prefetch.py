"""Build the motion stage's scene distances along a planned path before the motion asks for them.

WHY (issue #21): the motion stage's scene term queries the signed distance field of the scene
without the target (the hand may touch it; `Scene.sdf(exclude=(target,))`), whose 2 cm tiles are
computed lazily. For a target not asked for before, that was most of the first window's time
(about 2 s of EDTs on a loaded CPU). The path is known as soon as navigation ends (and at /plan
time in the server), so the tiles the body will sweep through are computed then, in the order
the path is walked, while the grasp is optimised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

PELVIS_M = 0.95  # pelvis height over the floor of a walking adult
# tiles within this reach of the pelvis path (m, per axis): arms and legs sideways, feet to head up and down
BODY_REACH_M = (0.7, 0.7, 1.0)
EVERY_S = 0.2  # path samples this far apart in time


def path_points(nav: Any, floor_z: float, every_s: float = EVERY_S) -> np.ndarray:
    """(P,3) pelvis positions along a timed NavPlan (``waypoints`` (N,2), ``times`` (N,)), in walking order."""
    times = np.asarray(nav.times, dtype=np.float64)
    way = np.asarray(nav.waypoints, dtype=np.float64)
    t = np.append(np.arange(0.0, float(times[-1]), every_s), float(times[-1]))
    xy = np.stack([np.interp(t, times, way[:, 0]), np.interp(t, times, way[:, 1])], 1)
    return np.concatenate([xy, np.full((len(t), 1), floor_z + PELVIS_M)], 1)


def prefetch_path_sdf(scene: Any, target: str, legs: list, stop: Callable[[], bool] | None = None) -> int:
    """Compute the tiles of ``scene.sdf(exclude=(target,))`` around the walked legs, first
    steps first; returns how many it computed (0 when they were all there)."""
    sdf = scene.sdf(exclude=(target,))
    points = np.concatenate([path_points(leg, float(scene.floor_z)) for leg in legs])
    return sdf.fill(sdf.tiles_near(points, BODY_REACH_M), stop)
