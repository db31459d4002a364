"""The animator's edits as anchors, without bpy (issue #20): numpy only, tested outside Blender.

A generated take keeps the frames the server sent (`generation.store_take`). The armature's
keys are read back as SMPL-X poses (`poses_from_bones`, `trans_from_locations`: the inverse of
`posemath.bone_quaternions` / `pelvis_locations`) and compared with them frame by frame
(`find_anchors`): a joint whose position *relative to the pelvis* moved becomes a position
anchor, the pelvis a position anchor when it moved in the world, a joint whose local rotation
turned a rotation anchor. `pick_range` widens the edited frames to a natural length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .posemath import YUP_TO_ZUP, aa_to_quat, mat_to_quat, quat_conj, quat_mul, quat_to_mat

# the joints whose world positions an animator's key pins (pelvis, hands, feet, head)
ANCHOR_JOINTS = ("pelvis", "left_wrist", "right_wrist", "left_foot", "right_foot", "head")
BODY_JOINTS = 22  # pelvis + 21 body joints carry rotation anchors (fingers, jaw and eyes do not)
POSITION_TOL_M = 0.005  # a joint moved less than this is not an edit
ROTATION_TOL_DEG = 1.0
PAD_FRAMES = 20  # frames regenerated on each side of the edits (the eased way in and out)
MIN_RANGE_FRAMES = 45  # a regenerated range is at least 1.5 s


@dataclass
class Take:
    """The frames of a generated take (what the server streamed), clip frame 0 = Blender ``frame_start``."""

    poses: np.ndarray  # (T,165)
    trans: np.ndarray  # (T,3)
    frame_start: int = 1
    object_name: str | None = None
    object_transforms: np.ndarray | None = None  # (T,4,4)
    grasp_frame: int = -1
    release_frame: int = -1

    @property
    def n_frames(self) -> int:
        return int(len(self.poses))

    def base_clip(self) -> dict:
        """The request's inline ``base_clip``."""
        out = {"poses": np.round(self.poses, 7).tolist(), "trans": np.round(self.trans, 7).tolist(),
               "grasp_frame": int(self.grasp_frame), "release_frame": int(self.release_frame)}
        if self.object_name and self.object_transforms is not None:
            out["object_name"] = self.object_name
            out["object_transforms"] = np.round(self.object_transforms.reshape(-1, 16), 7).tolist()
        return out


def quat_to_aa(q: np.ndarray) -> np.ndarray:
    """(...,4) unit quaternions (w, x, y, z) -> (...,3) axis-angle."""
    q = np.asarray(q, dtype=np.float64)
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-12), 2.0)
    return q[..., 1:] * scale


def poses_from_bones(quats: np.ndarray, rest_rot: np.ndarray) -> np.ndarray:
    """(T,55,4) pose-bone quaternions -> (T,165) absolute SMPL-X axis-angle (inverse of
    `posemath.bone_quaternions`; subtract the hands mean for the wire's hand convention)."""
    q = np.asarray(quats, dtype=np.float64)
    qb = mat_to_quat(rest_rot)  # (55,4)
    qc = mat_to_quat(YUP_TO_ZUP)
    inner = quat_mul(quat_mul(qb, q), quat_conj(qb))
    local = quat_mul(quat_mul(quat_conj(qc), inner), qc)
    local[:, 0] = quat_mul(inner[:, 0], qc)
    return quat_to_aa(local).reshape(len(q), 165)


def trans_from_locations(locs: np.ndarray, rest_joints: np.ndarray, pelvis_rest_rot: np.ndarray) -> np.ndarray:
    """(T,3) pelvis pose-bone locations -> (T,3) smplx translation (inverse of `posemath.pelvis_locations`)."""
    j0_zup = np.asarray(rest_joints, dtype=np.float64)[0]
    j0_y = YUP_TO_ZUP.T @ j0_zup
    return np.asarray(locs, dtype=np.float64) @ np.asarray(pelvis_rest_rot, dtype=np.float64).T + j0_zup - j0_y


def fk_joints(rest_joints: np.ndarray, parents: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T,165) absolute axis-angle + (T,3) smplx translation -> (T,55,3) world joints (as smplx, Z-up)."""
    n = len(poses)
    rot = quat_to_mat(aa_to_quat(np.asarray(poses, dtype=np.float64).reshape(n, 55, 3)))
    j_y = np.asarray(rest_joints, dtype=np.float64) @ YUP_TO_ZUP  # model frame
    glob = np.zeros((n, 55, 3, 3))
    pos = np.zeros((n, 55, 3))
    glob[:, 0], pos[:, 0] = rot[:, 0], j_y[0] + np.asarray(trans, dtype=np.float64)
    for j in range(1, 55):
        p = int(parents[j])
        glob[:, j] = glob[:, p] @ rot[:, j]
        pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob[:, p], j_y[j] - j_y[p])
    return pos


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,3) axis-angle pairs -> (...) angle between the rotations, degrees."""
    qa, qb = aa_to_quat(a), aa_to_quat(b)
    dot = np.abs((qa * qb).sum(-1)).clip(0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dot))


def find_anchors(joint_names: list[str], base_joints: np.ndarray, base_poses: np.ndarray, cur_joints: np.ndarray,
                 cur_poses: np.ndarray, pos_tol: float = POSITION_TOL_M, rot_tol_deg: float = ROTATION_TOL_DEG) -> list[dict]:
    """The edits between a take and the keys now: [{frame, joint, position?|rotation?}] (clip frames).

    joints (T,55,3) world, poses (T,165) axis-angle (same convention for both)."""
    out: list[dict] = []
    idx = {n: i for i, n in enumerate(joint_names)}
    rel_base = base_joints - base_joints[:, :1]
    rel_cur = cur_joints - cur_joints[:, :1]
    turned = _angle_deg(base_poses.reshape(-1, 55, 3)[:, :BODY_JOINTS], cur_poses.reshape(-1, 55, 3)[:, :BODY_JOINTS])
    for f in range(len(base_joints)):
        for name in ANCHOR_JOINTS:
            j = idx[name]
            moved = base_joints[f, 0] - cur_joints[f, 0] if j == 0 else rel_base[f, j] - rel_cur[f, j]
            if float(np.linalg.norm(moved)) > pos_tol:
                out.append({"frame": f, "joint": name, "position": [float(v) for v in cur_joints[f, j]]})
        for j in np.flatnonzero(turned[f] > rot_tol_deg):
            q = aa_to_quat(cur_poses[f, 3 * j:3 * j + 3])
            out.append({"frame": f, "joint": joint_names[j], "rotation": [float(v) for v in q]})
    return out


def pick_range(frames: list[int], n_frames: int, pad: int = PAD_FRAMES, min_len: int = MIN_RANGE_FRAMES) -> tuple[int, int]:
    """[first, last] (clip frames) around the edited ``frames``: padded, at least ``min_len`` long, in the clip."""
    if not frames:
        raise ValueError("no edits: change a pose first (or set a range)")
    first, last = min(frames) - pad, max(frames) + pad
    short = min_len - (last - first + 1)
    if short > 0:
        first -= short // 2
        last += short - short // 2
    first, last = max(0, first), min(n_frames - 1, last)
    return int(first), int(last)


def edited_frames(anchors: list[dict]) -> list[int]:
    return sorted({int(a["frame"]) for a in anchors})
