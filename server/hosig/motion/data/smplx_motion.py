"""SMPL-X parameter motion (AMASS, TRUMANS, retargeted capture) -> a finished dataset clip.

Why one place: every source ends the same way — joints by the body model, floor moved to z = 0,
foot contacts labelled — so the dataset is consistent whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.body.skeleton import FOOT_JOINTS, NUM_JOINTS
from hosig.motion.data.contacts import ContactConfig, contact_labels, floor_height
from hosig.motion.data.dataset import ClipData


@dataclass
class SmplxMotion:
    """SMPL-X parameters in Z-up world at 30 fps (see dataset.py for the pose layout)."""

    name: str
    category: str
    poses: np.ndarray  # (T,165) axis-angle, global orient Z-up, hands relative to hands mean
    trans: np.ndarray  # (T,3)
    valid: np.ndarray  # (55,) bool
    source_fps: float
    notes: list[str] = field(default_factory=list)


def body_joints(body, poses: np.ndarray, trans: np.ndarray, batch: int = 8192) -> np.ndarray:
    """(T,165),(T,3) -> (T,55,3) Z-up joints, zero betas.

    Uses the body's skeleton FK (`BodyModel.fk` on `full_pose_rotmats`), which equals smplx's joint
    output for the same pose (pelvis = J0 + trans) at a fraction of the cost of skinning.
    """
    j0 = torch.as_tensor(np.asarray(body.rest_joints_y, dtype=np.float64)[0], dtype=torch.float32)
    out = []
    with torch.no_grad():
        for s in range(0, len(poses), batch):
            p = torch.as_tensor(poses[s : s + batch], dtype=torch.float32)
            t = torch.as_tensor(trans[s : s + batch], dtype=torch.float32)
            joints = body.fk(body.full_pose_rotmats(p), t + j0)
            out.append(joints[:, :NUM_JOINTS].cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0)


def finish_clip(
    body,
    motion: SmplxMotion,
    foot_rest_heights: np.ndarray,
    joints: np.ndarray | None = None,
    contact_config: ContactConfig = ContactConfig(),
    align_floor: bool = True,
    fps: float = 30.0,
) -> ClipData:
    """Joints (if not given), floor to z = 0, contact labels -> `ClipData`."""
    poses = np.asarray(motion.poses, dtype=np.float64)
    trans = np.asarray(motion.trans, dtype=np.float64).copy()
    if joints is None:
        joints = body_joints(body, poses, trans)
    joints = np.asarray(joints, dtype=np.float64).copy()
    if align_floor:
        dz = floor_height(joints[:, FOOT_JOINTS], foot_rest_heights)
        joints[..., 2] -= dz
        trans[:, 2] -= dz
    contacts = contact_labels(joints[:, FOOT_JOINTS], foot_rest_heights, fps, contact_config)
    return ClipData(
        name=motion.name, category=motion.category, poses=poses, trans=trans, joints=joints,
        contacts=contacts.astype(np.uint8), valid=np.asarray(motion.valid, dtype=bool),
        source_fps=float(motion.source_fps),
    )  # fmt: skip
