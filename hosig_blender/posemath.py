"""SMPL-X parameters -> Blender pose channels, in numpy (no bpy, so it is testable on its own).

Why the formula: a bone's posed armature-space matrix is ``parent.matrix @ (B_p^-1 B_i) @ basis``
where ``B`` is the rest matrix (``bone.matrix_local``). SMPL-X composes world rotations as
``G_i = G_parent R_i`` with local rotations ``R_i`` expressed in the model's Y-up frame, and
``G_pelvis`` is the Z-up global orient. Asking each bone's world rotation to be ``G_i C^T B_i``
(``C`` = Y-up -> Z-up, so the rest pose ``G = C`` gives ``B_i``) yields
``basis_i = B_i^T C R_i C^T B_i`` for every joint under the pelvis and
``basis_pelvis = B_pel^T G_pelvis C^T B_pel`` under the static ``root`` bone. Any bone roll or
direction works; the heads then follow SMPL-X forward kinematics exactly.
"""

from __future__ import annotations

import numpy as np

# Y-up -> Z-up: +90 degrees about +X (same as hosig.frames.YUP_TO_ZUP; duplicated because the
# add-on must not import the engine).
YUP_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def aa_to_quat(aa: np.ndarray) -> np.ndarray:
    """(...,3) axis-angle -> (...,4) unit quaternions (w, x, y, z)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle, with its limit 0.5 for tiny angles
    scale = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-12), 0.5 - angle**2 / 48.0)
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    """(...,3,3) rotation matrices -> (...,4) quaternions (w, x, y, z), w >= 0 (Shepperd's method)."""
    m = np.asarray(mat, dtype=np.float64)
    shape = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cand = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    pick = cand.argmax(axis=1)
    q = np.empty((m.shape[0], 4))
    for k in range(4):
        sel = pick == k
        if not sel.any():
            continue
        a = m[sel]
        if k == 0:
            s = np.sqrt(1.0 + tr[sel]) * 2
            q[sel] = np.stack([0.25 * s, (a[:, 2, 1] - a[:, 1, 2]) / s, (a[:, 0, 2] - a[:, 2, 0]) / s, (a[:, 1, 0] - a[:, 0, 1]) / s], 1)
        else:
            i = k - 1
            j, l = (i + 1) % 3, (i + 2) % 3
            s = np.sqrt(1.0 + a[:, i, i] - a[:, j, j] - a[:, l, l]) * 2
            out = np.empty((a.shape[0], 4))
            out[:, 0] = (a[:, l, j] - a[:, j, l]) / s
            out[:, 1 + i] = 0.25 * s
            out[:, 1 + j] = (a[:, j, i] + a[:, i, j]) / s
            out[:, 1 + l] = (a[:, l, i] + a[:, i, l]) / s
            q[sel] = out
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).reshape(*shape, 4)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (...,4) quaternions (w, x, y, z), broadcasting."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.asarray(q) * np.array([1.0, -1.0, -1.0, -1.0])


def bone_quaternions(poses: np.ndarray, rest_rot: np.ndarray) -> np.ndarray:
    """(T,165) SMPL-X axis-angle (global orient Z-up) -> (T,55,4) pose-bone quaternions.

    ``rest_rot`` (55,3,3): the rest rotation (armature space) of each joint's bone; the pelvis'
    parent is the static ``root`` bone, whose own rest rotation cancels out.
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 55, 3)
    q_local = aa_to_quat(poses)  # (T,55,4)
    qb = mat_to_quat(rest_rot)  # (55,4)
    qc = mat_to_quat(YUP_TO_ZUP)  # (4,)
    # joints below the pelvis: qB^* qC qR qC^* qB
    inner = quat_mul(quat_mul(qc, q_local), quat_conj(qc))
    # pelvis: qB^* qG qC^* qB   (G = Z-up global orient)
    inner[:, 0] = quat_mul(q_local[:, 0], quat_conj(qc))
    out = quat_mul(quat_mul(quat_conj(qb), inner), qb)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def pelvis_locations(trans: np.ndarray, rest_joints: np.ndarray, pelvis_rest_rot: np.ndarray) -> np.ndarray:
    """(T,3) smplx translation -> (T,3) pelvis pose-bone location.

    smplx puts the pelvis at ``J0_y + trans`` (``J0_y`` = rest pelvis in the model frame, not
    rotated). The pose location lives in the pelvis bone's rest frame, relative to its rest head.
    """
    j0_zup = np.asarray(rest_joints, dtype=np.float64)[0]
    j0_y = YUP_TO_ZUP.T @ j0_zup
    target = np.asarray(trans, dtype=np.float64) + j0_y
    return (target - j0_zup) @ np.asarray(pelvis_rest_rot, dtype=np.float64)  # B^T (target - head)


def make_continuous(quats: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Flip quaternion signs along time (axis 0) of (T,...,4) ``quats`` so neighbours agree (no
    360-degree spins): every sign flip between neighbours is undone, for the whole array at once.

    ``previous`` (...,4): the last keyed quaternions from an earlier chunk, for streaming (kept as is).
    """
    q = np.array(quats, dtype=np.float64, copy=True)
    if previous is not None:
        prev = np.broadcast_to(np.asarray(previous, dtype=np.float64), q.shape[1:])[None]
        return make_continuous(np.concatenate([prev, q]))[1:]
    if len(q) < 2:
        return q
    flips = np.cumsum(np.sum(q[1:] * q[:-1], axis=-1) < 0, axis=0) % 2  # (T-1,...)
    q[1:] *= np.where(flips == 1, -1.0, 1.0)[..., None]
    return q


def last_per_frame(frames: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys (frames (n,), values (n,...)) with each frame once, in frame order: where a frame was
    keyed more than once the last key wins (frames the server sent again replace the first ones)."""
    frames = np.asarray(frames)
    if len(frames) < 2 or np.all(np.diff(frames) > 0):
        return frames, values
    rev = frames[::-1]
    uniq, idx = np.unique(rev, return_index=True)  # first in reversed order = last sent
    return uniq, np.asarray(values)[::-1][idx]


def reduce_keys(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Fewest keys such that linear interpolation stays within ``tolerance`` of every sample.

    ``values`` (T,C): one channel group (e.g. the 4 components of a bone quaternion) sampled every
    frame; the same frames are kept for all its components. Returns sorted frame indices (Ramer-
    Douglas-Peucker with a max-abs error, which bounds the error exactly for linear keys).
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n <= 2:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        t = (np.arange(a + 1, b) - a) / (b - a)
        interp = values[a] + t[:, None] * (values[b] - values[a])
        err = np.abs(values[a + 1:b] - interp).max(axis=1)
        k = int(err.argmax())
        if err[k] > tolerance:
            mid = a + 1 + k
            keep[mid] = True
            stack.append((a, mid))
            stack.append((mid, b))
    return np.flatnonzero(keep)


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(...,4) quaternions (w, x, y, z) -> (...,3,3) rotation matrices (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,3),(...,3) -> (...,3,3): the smallest rotation turning direction ``a`` onto ``b``.

    Antiparallel inputs turn 180 degrees about an axis normal to ``a``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    cos = np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)
    # antiparallel: any axis normal to a
    other = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    normal = np.cross(a, other)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    flip = (cos < -0.999999)[..., None]
    axis = np.where(flip, normal, axis)
    # quaternion (1 + cos, axis) normalised is the half-angle rotation
    q = np.concatenate([np.where(flip[..., 0], 0.0, 1.0 + cos)[..., None], axis], axis=-1)
    return quat_to_mat(q)
