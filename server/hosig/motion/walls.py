"""Thin walls: where a limb that went into a wall must come back out.

The nearest face of a 10 cm wall, from past its middle, is the far one: following the signed
distance there pushes a hand through into the next room. The correction (`hosig.motion.refine`)
holds an arm point inside a wall to the face on the body's side instead (`ways_out`), as a
half-space. Guidance does not: its steps are normalised and backtracked, and exits recomputed at
every evaluation make its energy a different function at each try.
"""

from __future__ import annotations

import numpy as np

from hosig.body.skeleton import LEFT_ARM, RIGHT_ARM

STENCIL_M = 0.02  # probe offset for the scene distance: one voxel of the grid

# the arms and hands are guarded (`ways_out`); a leg held to a wall's near face jumped (a knee at
# 13.8 m/s) where its own correction is smaller
ARM_JOINTS = LEFT_ARM + RIGHT_ARM
WALL_FACE_MAX_Z = 0.7  # a face whose outward normal rises less than this is a wall's (not a table top's)
WAY_OUT_MAX_M = 0.3  # how far into a wall a skin point is followed back to the body's side
WAY_OUT_STEP_M = 0.01


def ways_out(sdf, points: np.ndarray, pelvis: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each point of an arm inside a wall must leave it: on the body's side, not the nearest face.

    points, pelvis (N,3) world; inside (N,) bool. Returns exit points (N,3) and unit normals (N,3)
    pointing out of the wall towards the body, 0 for points not guarded: those outside, those whose
    nearest way out already faces the body, and those under a table-like (upward) face.
    Invariant: a limb in a wall comes back out on the side it went in (the nearest face of a thin
    wall may be its far side)."""
    exit_point = np.zeros_like(points)
    normal = np.zeros_like(points)
    idx = np.flatnonzero(inside)
    if len(idx) == 0:
        return exit_point, normal
    p = points[idx]
    grad = sdf_gradient(sdf, p)
    flat = np.linalg.norm(grad[:, :2], axis=1)
    toward = pelvis[idx, :2] - p[:, :2]
    toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-9)
    wall = (flat > 1e-9) & (np.abs(grad[:, 2]) < WALL_FACE_MAX_Z * np.linalg.norm(grad, axis=1))
    away = (grad[:, :2] * toward).sum(1) < 0
    guard = np.flatnonzero(wall & away)
    if len(guard) == 0:
        return exit_point, normal
    n = np.zeros((len(guard), 3))
    n[:, :2] = -grad[guard, :2] / flat[guard, None]  # the wall's face on the body's side
    steps = np.arange(1, int(round(WAY_OUT_MAX_M / WAY_OUT_STEP_M)) + 1) * WAY_OUT_STEP_M
    probes = p[guard, None, :] + n[:, None, :] * steps[None, :, None]  # (G,S,3)
    out = sdf.query_np(probes.reshape(-1, 3)).reshape(len(guard), len(steps)) >= 0
    found = out.any(1)
    first = np.argmax(out, axis=1)
    rows = idx[guard[found]]
    exit_point[rows] = p[guard[found]] + n[found] * steps[first[found], None]
    normal[rows] = n[found]
    return exit_point, normal


def sdf_gradient(sdf, points: np.ndarray) -> np.ndarray:
    """(N,3) central-difference gradient of ``sdf.query_np`` at points (N,3): outward where inside.

    Not `SceneSDF.gradient_np`: the cropped grid `hosig.motion.refine` polishes with has only ``query_np``, and
    probes one voxel (`STENCIL_M`) to each side still see the faces from a thin slab's middle, where
    the trilinear gradient is flat."""
    h = STENCIL_M
    offsets = np.concatenate([np.eye(3), -np.eye(3)]) * h  # (6,3)
    d = sdf.query_np((points[:, None, :] + offsets[None]).reshape(-1, 3)).reshape(-1, 6)
    return (d[:, :3] - d[:, 3:]) / (2 * h)
