"""Resample motion to the engine's 30 fps: positions linearly, rotations by slerp.

Why here: every source arrives at its own rate (CMU 120, AMASS 60-250, TRUMANS 30) and everything
after loading runs at 30 fps (DESIGN §5). Resampling the *local* rotations and the root position
before FK (instead of world positions after) keeps bone lengths exact. Frame ``i`` of the output
sits at time ``i / dst_fps``; the last output frame is the last one inside the source's duration.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.errors import InputError

TARGET_FPS = 30.0


def resample_times(n_frames: int, src_fps: float, dst_fps: float = TARGET_FPS) -> np.ndarray:
    """(M,) fractional source frame indices of the output frames."""
    if n_frames < 1:
        raise InputError("cannot resample an empty motion (0 frames)")
    if not (np.isfinite(src_fps) and src_fps > 0):
        raise InputError(f"invalid source frame rate {src_fps!r}")
    duration = (n_frames - 1) / src_fps
    n_out = int(np.floor(duration * dst_fps + 1e-6)) + 1
    return np.arange(n_out) * (src_fps / dst_fps)


def _split(t: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i0 = np.clip(np.floor(t + 1e-9).astype(np.int64), 0, n_frames - 1)
    i1 = np.minimum(i0 + 1, n_frames - 1)
    w = np.clip(t - i0, 0.0, 1.0)
    w[w < 1e-9] = 0.0
    return i0, i1, w


def resample_linear(x: np.ndarray, src_fps: float, dst_fps: float = TARGET_FPS) -> np.ndarray:
    """(F,...) values (positions, translations) -> (M,...) linearly interpolated."""
    x = np.asarray(x, dtype=np.float64)
    i0, i1, w = _split(resample_times(len(x), src_fps, dst_fps), len(x))
    w = w.reshape((-1,) + (1,) * (x.ndim - 1))
    return x[i0] * (1.0 - w) + x[i1] * w


def slerp_quats(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Shortest-path slerp of (...,4) quaternions with weights broadcastable to (...,)."""
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where((dot < 0)[..., None], -q1, q1)
    dot = np.abs(dot).clip(-1.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(small, w, np.sin(w * theta) / safe)
    out = a[..., None] * q0 + b[..., None] * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def resample_rotmats(rot: np.ndarray, src_fps: float, dst_fps: float = TARGET_FPS) -> np.ndarray:
    """(F,K,3,3) rotation matrices -> (M,K,3,3) by slerp between neighbouring frames."""
    rot = np.asarray(rot, dtype=np.float64)
    n, k = rot.shape[:2]
    i0, i1, w = _split(resample_times(n, src_fps, dst_fps), n)
    quats = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_quat().reshape(n, k, 4)
    q = slerp_quats(quats[i0], quats[i1], np.broadcast_to(w[:, None], (len(w), k)))
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(len(w), k, 3, 3)


def resample_axis_angle(aa: np.ndarray, src_fps: float, dst_fps: float = TARGET_FPS) -> np.ndarray:
    """(F,K*3) or (F,K,3) axis-angle -> same layout at ``dst_fps`` (slerp per joint)."""
    aa = np.asarray(aa, dtype=np.float64)
    shape = aa.shape
    flat = aa.reshape(shape[0], -1, 3)
    n, k = flat.shape[:2]
    if abs(src_fps - dst_fps) < 1e-9:
        return aa.copy()
    rot = Rotation.from_rotvec(flat.reshape(-1, 3)).as_matrix().reshape(n, k, 3, 3)
    out = Rotation.from_matrix(resample_rotmats(rot, src_fps, dst_fps).reshape(-1, 3, 3)).as_rotvec()
    m = len(out) // k
    return out.reshape((m,) + shape[1:])
