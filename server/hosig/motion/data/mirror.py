"""Left/right mirroring of SMPL-X motion (reflect world x, swap left and right joints).

Why: mirroring doubles the data and removes handedness bias; it must swap joint *roles* (the left
knee's rotation becomes the right knee's), not just negate coordinates.

Maths: reflecting the world in x (``M = diag(-1,1,1)``) and the body in its own sagittal plane (the
model's x) maps every rotation ``R`` to ``M R M``; for axis-angle that is ``(a,b,c) -> (a,-b,-c)``,
which is linear, so it also holds for smplx's hand poses stored relative to the hands mean:
``rel' = mirror(rel_other + mean_other) - mean_self``. The pelvis position is reflected, so
``trans' = M (J0 + trans) - J0``. Each step is an involution: mirror(mirror(x)) == x exactly.
"""

from __future__ import annotations

import numpy as np

from hosig.body.skeleton import MIRROR_INDEX, NUM_JOINTS

_FLIP_AA = np.array([1.0, -1.0, -1.0])
_FLIP_X = np.array([-1.0, 1.0, 1.0])
# Contact channels (l ankle, l foot, r ankle, r foot) swap sides.
CONTACT_MIRROR = np.array([2, 3, 0, 1])


def mirror_poses(poses: np.ndarray, hands_mean_left: np.ndarray, hands_mean_right: np.ndarray) -> np.ndarray:
    """(T,165) SMPL-X axis-angle (hands relative to their means) -> mirrored (T,165)."""
    p = np.asarray(poses, dtype=np.float64).reshape(-1, NUM_JOINTS, 3).copy()
    means = np.zeros((NUM_JOINTS, 3))
    means[25:40] = np.asarray(hands_mean_left, dtype=np.float64).reshape(15, 3)
    means[40:55] = np.asarray(hands_mean_right, dtype=np.float64).reshape(15, 3)
    full = p + means[None]  # actual joint rotations
    mirrored = full[:, MIRROR_INDEX] * _FLIP_AA
    return (mirrored - means[None]).reshape(np.shape(poses))


def mirror_trans(trans: np.ndarray, pelvis_rest: np.ndarray) -> np.ndarray:
    """(T,3) smplx translation -> mirrored, given the rest pelvis J0 (3,) of the body."""
    j0 = np.asarray(pelvis_rest, dtype=np.float64)
    return (np.asarray(trans, dtype=np.float64) + j0) * _FLIP_X - j0


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """(T,55,3) world joints -> reflected in x with left/right swapped."""
    return np.asarray(joints)[:, MIRROR_INDEX] * _FLIP_X


def mirror_contacts(contacts: np.ndarray) -> np.ndarray:
    """(T,4) contact channels -> sides swapped."""
    return np.asarray(contacts)[:, CONTACT_MIRROR]


def mirror_valid(valid: np.ndarray) -> np.ndarray:
    """(T,55) or (55,) validity -> sides swapped."""
    v = np.asarray(valid)
    return v[..., MIRROR_INDEX]
