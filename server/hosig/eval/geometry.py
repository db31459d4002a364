"""Body-versus-scene measurements against the real meshes (not the planners' grids).

WHY exact: the scene SDF is a 2 cm grid, too coarse to judge HOSIG's 1 mm penetration threshold.
The grid is used only as a cheap filter; every candidate point is then measured with trimesh's
signed distance against the watertight object it lies in (open meshes fall back to the grid).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import trimesh

FILTER_MARGIN_M = 0.03  # points farther than this from geometry (by the grid) cannot penetrate


def clip_vertices(body: Any, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray | None = None,
                  stride: int = 2, batch: int = 64) -> np.ndarray:
    """(T,V',3) Z-up body vertices of a clip, every ``stride``-th vertex (metrics need no more)."""
    poses_t = torch.as_tensor(np.asarray(poses), dtype=torch.float32)
    trans_t = torch.as_tensor(np.asarray(trans), dtype=torch.float32)
    chunks: list[np.ndarray] = []
    with torch.no_grad():
        for s in range(0, len(poses_t), batch):
            p = poses_t[s:s + batch]
            n = len(p)
            kwargs: dict[str, torch.Tensor] = dict(
                global_orient=p[:, 0:3], body_pose=p[:, 3:66], jaw_pose=p[:, 66:69],
                leye_pose=p[:, 69:72], reye_pose=p[:, 72:75], left_hand_pose=p[:, 75:120],
                right_hand_pose=p[:, 120:165], transl=trans_t[s:s + n],
            )
            if betas is not None and np.size(betas):
                b = torch.as_tensor(np.asarray(betas, dtype=np.float32)).reshape(1, -1)
                kwargs["betas"] = b.expand(n, -1)
            out = body.forward(**kwargs)
            chunks.append(out.vertices[:, ::stride].cpu().numpy())
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0, 3))


def hand_vertex_mask(body: Any, hand: str, stride: int) -> np.ndarray:
    """Bool mask over the strided vertices that belong to the hand (wrist + fingers by skinning)."""
    from hosig.body.skeleton import JOINT_NAMES

    weights = body.smplx.lbs_weights.detach().cpu().numpy()[::stride]  # (V',55)
    ids = [i for i, n in enumerate(JOINT_NAMES) if n.startswith(f"{hand}_") and
           any(k in n for k in ("wrist", "index", "middle", "ring", "pinky", "thumb"))]
    return weights[:, ids].sum(axis=1) > 0.5


def sole_sides(body: Any) -> tuple[np.ndarray, np.ndarray]:
    """(sole vertex indices (S,), left (S,) bool) of the body model (SMPL-X: +x is the body's left)."""
    from hosig.motion.skin import sole_vertices

    idx = sole_vertices(body)
    return idx, np.asarray(body.v_template_y)[idx, 0] > 0


def clip_sole_sliding(body: Any, poses: np.ndarray, trans: np.ndarray, floor_z: float = 0.0,
                      betas: np.ndarray | None = None, vertices: np.ndarray | None = None) -> Any:
    """`metrics.sole_sliding` of a clip (``vertices`` (T,V,3): its full-resolution vertices, if at hand)."""
    from hosig.eval.metrics import sole_sliding

    idx, left = sole_sides(body)
    if vertices is None:
        vertices = clip_vertices(body, poses, trans, betas, stride=1)
    soles = np.asarray(vertices)[:, idx].astype(np.float64)
    soles[..., 2] -= floor_z
    return sole_sliding(soles, left)


def penetration_depths(scene: Any, vertices: np.ndarray, exclude: Iterable[str] = ()) -> np.ndarray:
    """(T,P) depth of each body point inside the scene (metres, >0 inside, 0 outside).

    ``exclude`` names objects the body is meant to touch (the carried/target object).
    """
    exclude = tuple(exclude)
    t, p, _ = vertices.shape
    flat = vertices.reshape(-1, 3)
    depth = np.zeros(len(flat))
    coarse = scene.sdf(exclude=exclude).query_np(flat)
    near = np.flatnonzero(coarse < FILTER_MARGIN_M)
    if len(near) == 0:
        return depth.reshape(t, p)
    pts = flat[near]
    exact = np.zeros(len(near))
    for name in scene.names():
        if name in exclude:
            continue
        obj = scene.object(name)
        lo, hi = obj.bounds[0] - 1e-3, obj.bounds[1] + 1e-3
        inside_box = np.all((pts >= lo) & (pts <= hi), axis=1)
        if not inside_box.any():
            continue
        mesh: trimesh.Trimesh = obj.mesh
        sel = np.flatnonzero(inside_box)
        if obj.watertight:
            d = trimesh.proximity.signed_distance(mesh, pts[sel])  # >0 inside (trimesh convention)
        else:
            d = -coarse[near][sel]
        exact[sel] = np.maximum(exact[sel], d)
    depth[near] = np.maximum(exact, 0.0)
    return depth.reshape(t, p)


def surface_distance(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance from points to a mesh surface."""
    _, dist, _ = trimesh.proximity.closest_point(mesh, np.asarray(points, dtype=np.float64).reshape(-1, 3))
    return dist
