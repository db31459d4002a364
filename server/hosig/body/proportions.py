"""The mannequin's rest skeleton in SMPL-X's frame, from CMU motion-capture proportions.

Why CMU: the mannequin must look like a real adult, and the CMU skeleton is the capture our default
motion model is trained on, so retargeted motion fits the body it is shown on. The OFFSETs below were
read ONCE from the BVH header of ``shared/data/cmu/bvh/02_01.bvh`` (every CMU clip shares them) and
are hard-coded here so that building the mannequin never needs the data folder.

Frame: SMPL-X / CMU rest frame — metres after scaling, Y up, the body faces +Z, the character's left
is +X, T-pose with arms horizontal. The whole skeleton is scaled so that the standing height (floor
to crown) is ``MannequinConfig.height_m`` (1.75 m by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.body.skeleton import JOINT_INDEX, NUM_JOINTS

# --- CMU OFFSETs (centimetres, left side; the right side mirrors x) from 02_01.bvh -------------
CMU_ABDOMEN = (0.0, 20.6881, -0.73152)  # hip -> abdomen
CMU_CHEST = (0.0, 11.7043, -0.48768)  # abdomen -> chest
CMU_NECK = (0.0, 22.1894, -2.19456)  # chest -> neck
CMU_HEAD = (0.0, 7.07133, 1.2192)  # neck -> head (x symmetrised from -0.24384)
CMU_EYE = (3.90, 8.04674, 8.04672)  # head -> leftEye (x: mean of +4.14528 / -3.6576 about the head)
CMU_COLLAR = (2.68224, 19.2634, -4.8768)  # chest -> lCollar
CMU_SHOULDER = (8.77824, -1.95073, 1.46304)  # lCollar -> lShldr
CMU_UPPER_ARM = (28.1742, -1.7115, 0.48768)  # lShldr -> lForeArm (elbow)
CMU_FOREARM = (22.5879, 0.773209, 7.07136)  # lForeArm -> lHand (wrist)
CMU_BUTTOCK = (8.77824, 4.35084, 1.2192)  # hip -> lButtock
CMU_THIGH = (0.0, -1.70687, -2.19456)  # lButtock -> lThigh (hip joint)
CMU_SHIN = (0.0, -36.8199, 0.73152)  # lThigh -> lShin (knee)
CMU_FOOT = (-0.73152, -45.1104, -5.12064)  # lShin -> lFoot (ankle)
CMU_TOE = (1.1221, -3.69964, 12.103)  # lFoot -> End Site (toe; its height is the floor)
# Hand (lHand -> finger joints -> End Site), in the CMU rest frame whose forearm points slightly
# forward; they are turned so the forearm lies along +X (SMPL-X T-pose) before use.
CMU_FINGERS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "thumb": ((1.2192, -0.487915, 3.41376), (3.37035, -0.52449, 3.41376), (1.78271, -1.18214, 1.43049)),
    "index": ((7.75947, 0.938293, 5.60832), (2.54057, -0.884171, 1.56538), (1.62519, -0.234802, 1.16502)),
    "middle": ((8.24714, 1.18213, 3.41376), (3.10165, -0.590103, 1.0647), (2.48547, -0.328903, 0.83742)),
    "ring": ((8.82822, 0.546677, 1.51678), (2.60934, -0.819778, -0.0198488), (2.33842, -0.294052, 0.168128)),
    "pinky": ((8.27202, -0.0477905, -0.4584), (1.82734, -0.647385, -0.700984), (1.69225, -0.51767, -0.607171)),
}

# --- Anthropometric completions (not in CMU) ----------------------------------------------------
# CMU has no crown: eye-to-vertex distance of an adult is ~11 cm (CMU scale, ~0.067 of height).
CROWN_ABOVE_EYE_CM = 11.0
# CMU's ankle sits 3.7 cm above its toe End Site; a real ankle joint (malleolus) is ~4.3 % of height
# above the sole, so we raise the ankle to that (the knee and hip keep their CMU heights).
ANKLE_HEIGHT_FRACTION = 0.043
# CMU's finger End Sites stop short of the nail tip (no finger capture); lengthening the distal
# part by these gains gives an anatomical hand length (~10.8 % of height).
FINGER_TIP_GAIN = 1.35
THUMB_TIP_GAIN = 2.0
DIP_FRACTION = 0.55  # where the distal (DIP) joint sits along CMU's last finger segment
# SMPL-X-like placement of the root: the rest pelvis joint sits at this height in the model frame.
PELVIS_Y = -0.35


@dataclass(frozen=True)
class RestSkeleton:
    """Rest joints (55,3) and the extra points the mesh builder needs, all in metres, Y up."""

    joints: np.ndarray  # (55,3)
    fingertips: dict[str, np.ndarray]  # "left_index" -> (3,) nail tip
    toe_tips: dict[str, np.ndarray]  # "left" -> (3,) front of the foot at the sole
    heels: dict[str, np.ndarray]  # "left" -> (3,) back of the heel at the sole
    crown: np.ndarray  # (3,)
    floor_y: float
    scale: float  # metres per CMU centimetre

    def joint(self, name: str) -> np.ndarray:
        return self.joints[JOINT_INDEX[name]]


def _hand_rotation() -> Rotation:
    """Rotation taking CMU's left forearm direction onto +X (SMPL-X T-pose arm)."""
    d = np.asarray(CMU_FOREARM) / np.linalg.norm(CMU_FOREARM)
    axis = np.cross(d, [1.0, 0.0, 0.0])
    angle = np.arctan2(np.linalg.norm(axis), d[0])
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle)


def rest_skeleton(height_m: float = 1.75) -> RestSkeleton:
    """Left-side joints from the CMU chain (cm), mirrored, scaled to ``height_m``, pelvis at PELVIS_Y."""
    a = np.asarray
    root = np.zeros(3)
    abdomen = root + a(CMU_ABDOMEN)
    chest = abdomen + a(CMU_CHEST)
    neck = chest + a(CMU_NECK)
    head = neck + a(CMU_HEAD)
    eye = head + a(CMU_EYE)
    collar = chest + a(CMU_COLLAR)
    shoulder = collar + a(CMU_SHOULDER)
    # T-pose: keep CMU's bone lengths, lay them along +X at shoulder height.
    elbow = shoulder + np.array([np.linalg.norm(CMU_UPPER_ARM), 0.0, 0.0])
    wrist = elbow + np.array([np.linalg.norm(CMU_FOREARM), 0.0, 0.0])
    hip = root + a(CMU_BUTTOCK) + a(CMU_THIGH)
    knee = hip + a(CMU_SHIN)
    ankle_cmu = knee + a(CMU_FOOT)
    toe = ankle_cmu + a(CMU_TOE)
    floor_y = toe[1]
    crown_y = eye[1] + CROWN_ABOVE_EYE_CM
    cmu_height = crown_y - floor_y
    ankle = ankle_cmu.copy()
    ankle[1] = floor_y + ANKLE_HEIGHT_FRACTION * cmu_height
    # SMPL-X's foot joint is the ball of the foot (toe base); CMU's End Site is that point in x/z.
    ball = np.array([toe[0], floor_y + 0.022 * cmu_height, toe[2]])
    toe_tip = np.array([toe[0] + 0.6, floor_y, toe[2] + 0.030 * cmu_height])
    heel = np.array([ankle[0], floor_y, ankle[2] - 0.030 * cmu_height])

    pos: dict[str, np.ndarray] = {
        "pelvis": root,
        "spine1": 0.5 * (root + abdomen),
        "spine2": abdomen,
        "spine3": chest,
        "neck": neck,
        "head": head,
        "jaw": head + np.array([0.0, -1.5, 4.0]),
        "left_eye_smplhf": eye,
        "left_collar": collar,
        "left_shoulder": shoulder,
        "left_elbow": elbow,
        "left_wrist": wrist,
        "left_hip": hip,
        "left_knee": knee,
        "left_ankle": ankle,
        "left_foot": ball,
    }
    tips: dict[str, np.ndarray] = {}
    rot = _hand_rotation()
    for finger, (o1, o2, o3) in CMU_FINGERS.items():
        r1, r2, r3 = (rot.apply(a(o)) for o in (o1, o2, o3))
        if finger != "thumb":  # the template hand is flat: fingers straight in the palm plane
            r2[1] = r3[1] = 0.0
            gain = FINGER_TIP_GAIN
        else:
            gain = THUMB_TIP_GAIN
        j1 = wrist + r1
        j2 = j1 + r2
        tip = j2 + gain * r3
        j3 = j2 + DIP_FRACTION * (tip - j2)
        pos[f"left_{finger}1"], pos[f"left_{finger}2"], pos[f"left_{finger}3"] = j1, j2, j3
        tips[f"left_{finger}"] = tip

    scale = height_m / cmu_height  # metres per CMU centimetre
    offset = np.array([0.0, PELVIS_Y, 0.0])

    def place(p: np.ndarray) -> np.ndarray:
        return p * scale + offset

    def mirror(p: np.ndarray) -> np.ndarray:
        return p * np.array([-1.0, 1.0, 1.0])

    joints = np.zeros((NUM_JOINTS, 3))
    for name, p in pos.items():
        joints[JOINT_INDEX[name]] = place(p)
        if name.startswith("left_"):
            joints[JOINT_INDEX["right_" + name[5:]]] = mirror(place(p))
    fingertips = {}
    for name, p in tips.items():
        fingertips[name] = place(p)
        fingertips["right_" + name[5:]] = mirror(place(p))
    return RestSkeleton(
        joints=joints,
        fingertips=fingertips,
        toe_tips={"left": place(toe_tip), "right": mirror(place(toe_tip))},
        heels={"left": place(heel), "right": mirror(place(heel))},
        crown=place(np.array([0.0, crown_y, head[2] + 1.0])),
        floor_y=float(place(np.array([0.0, floor_y, 0.0]))[1]),
        scale=float(scale),
    )
