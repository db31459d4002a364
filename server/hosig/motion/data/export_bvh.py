"""Write any SMPL-X clip (retargeted, prepared or generated) as a BVH file, to check it in any viewer.

The BVH uses SMPL-X joint names and the body model's rest offsets, in the conventional BVH frame:
Y up (the model frame), centimetres. Root channels ``Xposition Yposition Zposition Zrotation
Yrotation Xrotation``, all other joints ``Zrotation Yrotation Xrotation``. Finger rotations are
written as actual rotations (hand pose + hands mean, as smplx applies them). Leaf joints get an
End Site half their own bone long (eyes: 2 cm forward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from hosig.errors import InputError
from hosig.frames import ZUP_TO_YUP
from hosig.motion.data.bvh import BvhMotion, BvhSkeleton, rotations_to_channels, write_bvh

CM = 100.0
ROOT_CHANNELS = ["Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"]
JOINT_CHANNELS = ["Zrotation", "Yrotation", "Xrotation"]


def smplx_skeleton(rest_joints_y: np.ndarray) -> BvhSkeleton:
    """BVH skeleton (cm, Y up) of the 55 SMPL-X joints from rest joints in the model frame (metres)."""
    rest = np.asarray(rest_joints_y, dtype=np.float64) * CM
    offsets = np.where(PARENTS[:, None] >= 0, rest - rest[np.maximum(PARENTS, 0)], rest)
    leaves = [k for k in range(NUM_JOINTS) if not (PARENTS == k).any()]
    end_offsets = []
    for k in leaves:
        if "eye" in JOINT_NAMES[k]:
            end_offsets.append([0.0, 0.0, 2.0])
        else:
            end_offsets.append(0.5 * offsets[k])
    return BvhSkeleton(
        names=list(JOINT_NAMES),
        parents=PARENTS.copy(),
        offsets=offsets,
        channels=[ROOT_CHANNELS if k == 0 else JOINT_CHANNELS for k in range(NUM_JOINTS)],
        end_parents=np.asarray(leaves, dtype=np.int64),
        end_offsets=np.asarray(end_offsets, dtype=np.float64),
    )


def smplx_to_bvh(
    poses: np.ndarray,
    trans: np.ndarray,
    rest_joints_y: np.ndarray,
    hands_mean_left: np.ndarray,
    hands_mean_right: np.ndarray,
    fps: float = 30.0,
) -> BvhMotion:
    """(T,165) Z-up SMPL-X poses + (T,3) smplx trans -> BVH motion in the Y-up model frame (cm)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, NUM_JOINTS, 3).copy()
    trans = np.asarray(trans, dtype=np.float64).reshape(-1, 3)
    poses[:, 25:40] += np.asarray(hands_mean_left, dtype=np.float64).reshape(15, 3)
    poses[:, 40:55] += np.asarray(hands_mean_right, dtype=np.float64).reshape(15, 3)
    t = poses.shape[0]
    rot = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(t, NUM_JOINTS, 3, 3)
    rot[:, 0] = ZUP_TO_YUP @ rot[:, 0]  # global orient back to the model's Y-up frame
    j0 = np.asarray(rest_joints_y, dtype=np.float64)[0]
    root_y = (trans + j0) @ ZUP_TO_YUP.T * CM  # pelvis position, Y up, cm
    eul = rotations_to_channels(rot, "ZYX")  # (T,55,3) degrees in Z,Y,X channel order
    values = np.concatenate([root_y, eul.reshape(t, -1)], axis=1)
    return BvhMotion(skeleton=smplx_skeleton(rest_joints_y), frame_time=1.0 / fps, values=values)


def load_clip_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(poses (T,165), trans (T,3), fps) from a clip.npz (DESIGN §5) or any AMASS-style SMPL-X npz."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: clip file not found")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{p}: not a readable .npz clip ({type(err).__name__}: {err})") from None
    with data:
        for key in ("poses", "trans"):
            if key not in data.files:
                raise InputError(f"{p}: clip has no {key!r} array (fields: {', '.join(data.files)})")
        poses = np.asarray(data["poses"], dtype=np.float64)
        trans = np.asarray(data["trans"], dtype=np.float64)
        fps = 30.0
        for key in ("mocap_frame_rate", "mocap_framerate", "fps"):
            if key in data.files:
                fps = float(np.asarray(data[key]))
                break
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
        raise InputError(f"{p}: 'poses' must be (T,165) SMPL-X axis-angle, got {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise InputError(f"{p}: 'trans' must be ({poses.shape[0]},3), got {trans.shape}")
    if len(poses) == 0:
        raise InputError(f"{p}: clip has no frames")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise InputError(f"{p}: clip poses/trans contain NaN or inf")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{p}: invalid frame rate {fps}")
    return poses, trans, fps


def export_clip_bvh(clip_path: str | Path, out_path: str | Path, body) -> dict:
    """Write ``clip_path`` as BVH at ``out_path``; returns a small report."""
    poses, trans, fps = load_clip_arrays(clip_path)
    hands = body.hands_mean
    motion = smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"], fps)
    write_bvh(out_path, motion)
    return {"out": str(out_path), "frames": int(len(poses)), "fps": fps, "joints": NUM_JOINTS,
            "body_identity": body.identity}  # fmt: skip


def _smplx_joint_map():
    """Joint map for BVH files written by `smplx_to_bvh` (SMPL-X names): every body joint drives
    itself, so a BVH exported from a clip retargets back onto the body (used by tests and users
    who captured onto an SMPL-X-named skeleton)."""
    from hosig.motion.data.capture import JointMap

    body = [JOINT_NAMES[k] for k in range(22)]
    directions: dict[str, tuple[str, str, str]] = {}
    for k, name in enumerate(body):
        kids = [JOINT_NAMES[c] for c in np.nonzero(PARENTS == k)[0]]
        child = {"spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1"}.get(name)
        if child is None and len(kids) == 1:
            child = kids[0]
        if child is not None:
            directions[name] = (child, name, child)
    return JointMap(
        name="SMPL-X",
        positions={n: n for n in body},
        rotations={n: (n, n, 0.0) for n in body},
        directions=directions,
        rigid=frozenset({"left_hip", "right_hip", "spine1", "left_collar", "right_collar", "neck"}),
    )


SMPLX_JOINT_MAP = _smplx_joint_map()
