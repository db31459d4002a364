"""The SMPL-X 55-joint skeleton: names, parents, left/right mirror map and joint groups.

Everything that indexes joints (retargeting, anchors, metrics, the Blender rig) uses these lists so
that joint order is defined once, identical to ``smplx.joint_names.JOINT_NAMES[:55]`` and the
SMPL-X ``kintree_table``.
"""

from __future__ import annotations

import numpy as np

# Same order as smplx.joint_names.JOINT_NAMES[:55] (checked by the tests); written out so that the
# skeleton does not depend on an import-time slice of a third-party list.
JOINT_NAMES: list[str] = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2",
    "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
]  # fmt: skip

NUM_JOINTS: int = 55
NUM_BODY_JOINTS: int = 21  # body_pose covers joints 1..21
NUM_HAND_JOINTS: int = 15

JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# SMPL-X kinematic tree (kintree_table[0] of the official model; -1 marks the root).
PARENTS: np.ndarray = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
     20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
     21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53],
    dtype=np.int64,
)  # fmt: skip

FINGERS: tuple[str, ...] = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X order


def _mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_"):]
    if name.startswith("right_"):
        return "left_" + name[len("right_"):]
    return name


# MIRROR_INDEX[j] = the joint that plays j's role after a left<->right (x -> -x) mirror.
MIRROR_INDEX: np.ndarray = np.array([JOINT_INDEX[_mirror_name(n)] for n in JOINT_NAMES], dtype=np.int64)

LEFT_HAND: list[int] = [JOINT_INDEX[f"left_{f}{k}"] for f in FINGERS for k in (1, 2, 3)]
RIGHT_HAND: list[int] = [JOINT_INDEX[f"right_{f}{k}"] for f in FINGERS for k in (1, 2, 3)]
FINGER_JOINTS: list[int] = LEFT_HAND + RIGHT_HAND
LEFT_ARM: list[int] = [JOINT_INDEX[n] for n in ("left_collar", "left_shoulder", "left_elbow", "left_wrist")]
RIGHT_ARM: list[int] = [JOINT_INDEX[n] for n in ("right_collar", "right_shoulder", "right_elbow", "right_wrist")]
LEFT_LEG: list[int] = [JOINT_INDEX[n] for n in ("left_hip", "left_knee", "left_ankle", "left_foot")]
RIGHT_LEG: list[int] = [JOINT_INDEX[n] for n in ("right_hip", "right_knee", "right_ankle", "right_foot")]
# Ankles and toe bases, in the order of the dataset contact channels (l ankle, l foot, r ankle, r foot).
FOOT_JOINTS: list[int] = [JOINT_INDEX[n] for n in ("left_ankle", "left_foot", "right_ankle", "right_foot")]
WRISTS: list[int] = [JOINT_INDEX["left_wrist"], JOINT_INDEX["right_wrist"]]

# Names of smplx's fixed fingertip vertices (smplx.vertex_ids.vertex_ids['smplx'] keys).
FINGERTIP_NAMES: dict[str, list[str]] = {
    "left": ["lthumb", "lindex", "lmiddle", "lring", "lpinky"],
    "right": ["rthumb", "rindex", "rmiddle", "rring", "rpinky"],
}
FOOT_VERTEX_NAMES: list[str] = ["LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]


def children(joint: int) -> list[int]:
    """Direct children of a joint in the kinematic tree."""
    return [int(c) for c in np.nonzero(PARENTS == joint)[0]]


def descendants(joint: int) -> list[int]:
    """``joint`` and every joint below it in the kinematic tree."""
    out = [joint]
    for child in children(joint):
        out += descendants(child)
    return out


def chain_to_root(joint: int) -> list[int]:
    """Joint indices from ``joint`` up to the pelvis (inclusive both ends)."""
    out = [joint]
    while PARENTS[out[-1]] >= 0:
        out.append(int(PARENTS[out[-1]]))
    return out


def finger_chain(side: str, finger: str) -> list[int]:
    """The three joints of one finger, proximal first (e.g. ``finger_chain('right', 'index')``)."""
    return [JOINT_INDEX[f"{side}_{finger}{k}"] for k in (1, 2, 3)]
