"""The one place that converts between the body model's Y-up frame and Blender's Z-up world.

Conventions (DESIGN.md §5): everything the engine exposes is Blender world, metres, Z up. A heading
is radians about +Z, 0 facing +X, pi/2 facing +Y.

SMPL-X's rest body stands along +Y and faces +Z. Rotating by ``YUP_TO_ZUP`` (+90° about X) maps
(x, y, z) -> (x, -z, y): the body then stands along +Z and faces -Y, i.e. heading -pi/2.

Body parameters in Z-up: ``global_orient_z = YUP_TO_ZUP @ global_orient_y``. With that orient,
``smplx`` output lands directly in Z-up world provided the translation is converted with
`transl_yup_to_zup` (smplx rotates about the rest pelvis ``J0``, which itself is not rotated).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# (3,3) rotation taking Y-up coordinates to Z-up coordinates: +90 degrees about +X.
YUP_TO_ZUP: np.ndarray = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
ZUP_TO_YUP: np.ndarray = YUP_TO_ZUP.T.copy()

# Heading of a Z-up body whose global orient is exactly YUP_TO_ZUP (SMPL-X rest pose).
REST_HEADING: float = -np.pi / 2


def points_yup_to_zup(points: np.ndarray) -> np.ndarray:
    """(...,3) Y-up points -> (...,3) Z-up points (glTF and SMPL-X both use this mapping)."""
    return np.asarray(points) @ YUP_TO_ZUP.T


def points_zup_to_yup(points: np.ndarray) -> np.ndarray:
    """(...,3) Z-up points -> (...,3) Y-up points."""
    return np.asarray(points) @ ZUP_TO_YUP.T


def orient_yup_to_zup(orient_aa: np.ndarray) -> np.ndarray:
    """(...,3) axis-angle global orient in the model frame -> (...,3) axis-angle in Z-up world."""
    rot = Rotation.from_rotvec(np.asarray(orient_aa, dtype=np.float64).reshape(-1, 3))
    out = (Rotation.from_matrix(YUP_TO_ZUP) * rot).as_rotvec()
    return out.reshape(np.shape(orient_aa))


def orient_zup_to_yup(orient_aa: np.ndarray) -> np.ndarray:
    """Inverse of `orient_yup_to_zup`."""
    rot = Rotation.from_rotvec(np.asarray(orient_aa, dtype=np.float64).reshape(-1, 3))
    out = (Rotation.from_matrix(ZUP_TO_YUP) * rot).as_rotvec()
    return out.reshape(np.shape(orient_aa))


def transl_yup_to_zup(transl_y: np.ndarray, pelvis_rest_y: np.ndarray) -> np.ndarray:
    """Translation that makes smplx output Z-up world when the orient is Z-up.

    smplx computes ``R (v - J0) + J0 + t``. Equating ``C (R_y (v-J0) + J0 + t_y)`` with
    ``C R_y (v-J0) + J0 + t_z`` gives ``t_z = C (J0 + t_y) - J0``. ``pelvis_rest_y`` is J0 for
    the body's betas (model frame).
    """
    j0 = np.asarray(pelvis_rest_y, dtype=np.float64)
    return points_yup_to_zup(j0 + np.asarray(transl_y)) - j0


def transl_zup_to_yup(transl_z: np.ndarray, pelvis_rest_y: np.ndarray) -> np.ndarray:
    """Inverse of `transl_yup_to_zup`."""
    j0 = np.asarray(pelvis_rest_y, dtype=np.float64)
    return points_zup_to_yup(np.asarray(transl_z) + j0) - j0


def heading_to_orient(heading: float) -> np.ndarray:
    """(3,3) Z-up global orient of an upright rest-pose body facing ``heading``."""
    yaw = Rotation.from_euler("z", heading - REST_HEADING)
    return (yaw * Rotation.from_matrix(YUP_TO_ZUP)).as_matrix()


def orient_to_heading(orient: np.ndarray) -> float:
    """Heading (radians about +Z) of a Z-up global orient given as (3,3) matrix or (3,) axis-angle.

    The body's forward axis is the model's +Z; its horizontal projection gives the heading.
    """
    mat = np.asarray(orient, dtype=np.float64)
    if mat.shape == (3,):
        mat = Rotation.from_rotvec(mat).as_matrix()
    forward = mat @ np.array([0.0, 0.0, 1.0])
    return float(np.arctan2(forward[1], forward[0]))


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Wrap radians to (-pi, pi]."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi
