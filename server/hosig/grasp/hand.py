"""Hand geometry derived from the body model itself, and a finger-curl parameterisation.

Why derived: the same code must work on the embedded mannequin and on a real SMPL-X model, so the
palm, fingertips, palm normal and flexion axes are computed from rest joints and skinning weights
instead of hard-coded vertex ids.

Hand frame (model frame, rest pose, per side):
- ``fwd``   wrist -> middle knuckle (the direction the fingers point),
- ``thumb`` pinky knuckle -> index knuckle, orthogonalised (the thumb side of the palm),
- ``palm``  the palm normal, pointing out of the palm surface (down in the SMPL-X T-pose).
For the right hand ``palm = thumb x fwd``; for the left hand ``palm = fwd x thumb``.

Curl: each finger has one flexion angle theta spread over its three joints (shares 1, 1.1, 0.8)
about an axis that bends the finger toward the palm; the thumb additionally has an opposition
angle swinging it under the palm. The resulting local rotations are converted to smplx hand pose
(relative to the hands mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hosig.body.skeleton import FINGERS, JOINT_INDEX, LEFT_HAND, RIGHT_HAND
from hosig.grasp.kin import LiteBody

FLEX_SHARE: tuple[float, float, float] = (1.0, 1.1, 0.8)
# Upper bound of the per-finger curl angle (rad, per unit share).
MAX_CURL: float = 1.45
THUMB_MAX_CURL: float = 1.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


@dataclass
class HandGeometry:
    """Everything the optimiser needs about one hand (indices into the full vertex array)."""

    side: str
    wrist: int
    fingers: list[list[int]]  # 5 chains of 3 joint indices, SMPL-X finger order
    hand_joint_order: list[int]  # the 15 joints in hand-pose order
    fwd: np.ndarray  # (3,) rest, model frame
    thumb: np.ndarray
    palm: np.ndarray
    palm_verts: np.ndarray  # (P,) palm surface vertices
    tip_verts: list[np.ndarray]  # per finger: distal pad vertices
    finger_verts: list[np.ndarray]  # per finger: all vertices dominated by its joints
    hand_verts: np.ndarray  # all vertices dominated by wrist or fingers
    flex_axes: np.ndarray  # (15,3) per hand joint, rest/local frame
    opp_axis: np.ndarray  # (3,) thumb opposition axis
    length: float  # wrist to middle fingertip (m)


def build_hand(lite: LiteBody, side: str) -> HandGeometry:
    """Derive the hand frame, vertex sets and flexion axes of ``side`` ('left' or 'right')."""
    j = lite.rest_joints.double().numpy()
    v = lite.rest_vertices.double().numpy()
    w = lite.lbs_weights.double().numpy()
    dom = w.argmax(1)
    wrist = JOINT_INDEX[f"{side}_wrist"]
    fingers = [[JOINT_INDEX[f"{side}_{f}{k}"] for k in (1, 2, 3)] for f in FINGERS]
    order = LEFT_HAND if side == "left" else RIGHT_HAND
    fwd = _unit(j[JOINT_INDEX[f"{side}_middle1"]] - j[wrist])
    across = j[JOINT_INDEX[f"{side}_index1"]] - j[JOINT_INDEX[f"{side}_pinky1"]]
    thumb = _unit(across - fwd * (across @ fwd))
    palm = np.cross(thumb, fwd) if side == "right" else np.cross(fwd, thumb)

    hand_joints = [wrist] + [x for ch in fingers for x in ch]
    hand_verts = np.nonzero(np.isin(dom, hand_joints))[0]
    wrist_verts = np.nonzero(dom == wrist)[0]
    knuckle = j[JOINT_INDEX[f"{side}_middle1"]]
    along = (v[wrist_verts] - j[wrist]) @ fwd
    span = (knuckle - j[wrist]) @ fwd
    # Upper palm (towards the knuckles): an object held there lets the fingers wrap around it.
    inner = wrist_verts[(along > 0.6 * span) & (along < 1.05 * span)]
    if len(inner) == 0:
        inner = wrist_verts
    height = (v[inner] - j[wrist]) @ palm
    palm_verts = inner[height > height.max() - 0.006]

    finger_verts, tip_verts = [], []
    for ch in fingers:
        fv = np.nonzero(np.isin(dom, ch))[0]
        distal = np.nonzero(dom == ch[2])[0]
        if len(distal) == 0:
            distal = fv
        d = _unit(j[ch[2]] - j[ch[1]])
        proj = (v[distal] - j[ch[2]]) @ d
        tips = distal[proj > np.percentile(proj, 40)]
        finger_verts.append(fv)
        tip_verts.append(tips)
    length = float(np.max((v[finger_verts[1]] - j[wrist]) @ fwd)) if len(finger_verts[1]) else 0.18

    flex = np.zeros((15, 3))
    for f, ch in enumerate(fingers):
        tip_dir = _unit(j[ch[2]] - j[ch[0]])
        axis = _unit(np.cross(tip_dir, palm))
        for k in range(3):
            flex[f * 3 + k] = axis
    opp_axis = _unit(np.cross(thumb, palm))
    return HandGeometry(
        side=side, wrist=wrist, fingers=fingers, hand_joint_order=list(order), fwd=fwd, thumb=thumb,
        palm=palm, palm_verts=palm_verts, tip_verts=tip_verts, finger_verts=finger_verts,
        hand_verts=hand_verts, flex_axes=flex, opp_axis=opp_axis, length=length,
    )


def angles_to_hand_pose(hand: HandGeometry, angles: np.ndarray, opposition: float | np.ndarray, hand_mean: np.ndarray) -> np.ndarray:
    """(B,5,3) flexion angle per finger joint (+ thumb opposition (B,)) -> (B,45) smplx hand pose.

    Finger order is SMPL-X's (index, middle, pinky, ring, thumb); poses are relative to the mean.
    """
    ang = np.asarray(angles, dtype=np.float64).reshape(-1, 5, 3)
    bsz = ang.shape[0]
    opp = np.broadcast_to(np.asarray(opposition, dtype=np.float64), (bsz,))
    aa = hand.flex_axes.reshape(1, 5, 3, 3) * ang[..., None]  # (B,5,3 joints,3 xyz)
    aa = aa.reshape(bsz, 15, 3)
    # Thumb base: opposition about the palm's long axis, then its own flexion.
    base = Rotation.from_rotvec(hand.opp_axis[None] * opp[:, None]) * Rotation.from_rotvec(aa[:, 12])
    aa[:, 12] = base.as_rotvec()
    return aa.reshape(bsz, 45) - np.asarray(hand_mean, dtype=np.float64).reshape(1, 45)


def curl_to_hand_pose(hand: HandGeometry, curl: np.ndarray, opposition: float | np.ndarray, hand_mean: np.ndarray) -> np.ndarray:
    """(B,5) curl angles spread over each finger's joints (FLEX_SHARE) -> (B,45) smplx hand pose."""
    curl = np.atleast_2d(np.asarray(curl, dtype=np.float64))
    return angles_to_hand_pose(hand, curl[:, :, None] * np.asarray(FLEX_SHARE)[None, None], opposition, hand_mean)


def curl_to_hand_pose_torch(hand: HandGeometry, curl: torch.Tensor, opposition: float, hand_mean: torch.Tensor) -> torch.Tensor:
    """Torch version for batched closing searches: (N,5) curl -> (N,45) hand pose."""
    out = curl_to_hand_pose(hand, curl.detach().double().numpy(), opposition, hand_mean.double().numpy())
    return torch.as_tensor(out, dtype=torch.float32)


def mean_flexion(hand: HandGeometry, hand_pose: np.ndarray, hand_mean: np.ndarray) -> float:
    """Mean flexion (rad) of the four fingers about their curl axes: ~0 for a flat hand."""
    aa = (np.asarray(hand_pose).reshape(15, 3) + np.asarray(hand_mean).reshape(15, 3))
    vals = [float(aa[f * 3 + k] @ hand.flex_axes[f * 3 + k]) for f in range(4) for k in range(3)]
    return float(np.mean(vals))
