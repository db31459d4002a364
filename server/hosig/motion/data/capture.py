"""A skeleton capture ready for retargeting: named points and segment rotations, Z-up metres, 30 fps.

Why a separate type: the retarget should not care whether the source was a CMU BVH, an exported
SMPL-X BVH or anything else with a joint map. A `Capture` holds world positions of named points
(joints, plus End Sites named ``"<joint>/End"``), the world rotation of every joint, the rest pose
in the file's own frame (for rest-pose alignment) and the frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hosig.errors import InputError
from hosig.frames import YUP_TO_ZUP
from hosig.motion.data.bvh import BvhMotion, BvhSkeleton, channels_to_local, forward_kinematics
from hosig.motion.data.resample import TARGET_FPS, resample_linear, resample_rotmats


def end_name(joint: str) -> str:
    """Point name of the End Site under ``joint``."""
    return f"{joint}/End"


@dataclass
class Capture:
    """Source motion in Blender's world (Z up, metres) at ``fps``.

    points (T,P,3): world positions of ``point_names`` (joints then End Sites).
    rotations (T,K,3,3): world rotations of the ``joint_names`` (local->world, Z-up world).
    rest_points (P,3): rest pose (all channels zero) in the *file's* frame (Y up), metres.
    """

    name: str
    point_names: list[str]
    joint_names: list[str]
    points: np.ndarray
    rotations: np.ndarray
    rest_points: np.ndarray
    fps: float
    source_fps: float

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    def point(self, name: str) -> np.ndarray:
        """(T,3) world positions of one named point."""
        return self.points[:, self.point_index(name)]

    def point_index(self, name: str) -> int:
        try:
            return self.point_names.index(name)
        except ValueError:
            raise InputError(f"capture {self.name!r} has no point {name!r}") from None

    def rotation(self, joint: str) -> np.ndarray:
        """(T,3,3) world rotation of one joint."""
        try:
            return self.rotations[:, self.joint_names.index(joint)]
        except ValueError:
            raise InputError(f"capture {self.name!r} has no joint {joint!r}") from None

    def rest_point(self, name: str) -> np.ndarray:
        return self.rest_points[self.point_index(name)]


def _point_names(sk: BvhSkeleton) -> list[str]:
    """Joint names, then End Sites as ``"<joint>/End"`` (``"/End1"``, ... for further ones)."""
    names = list(sk.names)
    count: dict[int, int] = {}
    for p in sk.end_parents:
        k = count.get(int(p), 0)
        names.append(end_name(sk.names[int(p)]) + (str(k) if k else ""))
        count[int(p)] = k + 1
    return names


def bvh_to_capture(
    motion: BvhMotion,
    unit_scale: float = 0.01,
    up: str = "y",
    drop_frames: int = 0,
    target_fps: float = TARGET_FPS,
    name: str | None = None,
) -> Capture:
    """BVH -> `Capture`: drop leading frames, resample to ``target_fps``, FK, convert to Z-up metres.

    Resampling works on local rotations (slerp) and local translations (linear) so bone lengths stay
    exact. ``up`` is the file's up axis ('y' for CMU and most BVH, 'z' for Z-up files).
    """
    label = name or motion.path
    if motion.num_frames - drop_frames < 2:
        raise InputError(f"{motion.path}: only {motion.num_frames} frames; need at least {drop_frames + 2}")
    if up not in ("y", "z"):
        raise InputError(f"unknown up axis {up!r} (expected 'y' or 'z')")
    sk = motion.skeleton
    rot, trans = channels_to_local(sk, motion.values[drop_frames:])
    if abs(motion.fps - target_fps) > 1e-3:
        rot = resample_rotmats(rot, motion.fps, target_fps)
        trans = resample_linear(trans, motion.fps, target_fps)
    pose = forward_kinematics(sk, rot, trans)
    frame = YUP_TO_ZUP if up == "y" else np.eye(3)
    pts = np.concatenate([pose.positions, pose.end_positions], axis=1) * unit_scale  # (T,P,3) file frame
    pts_z = pts @ frame.T
    rots_z = np.einsum("ij,tkjl->tkil", frame, pose.rotations)
    rest = np.concatenate(
        [sk.rest_positions(), sk.rest_positions()[sk.end_parents] + sk.end_offsets], axis=0
    ) * unit_scale
    if up == "z":  # keep rest in a Y-up frame so rest directions compare with SMPL-X's model frame
        rest = rest @ YUP_TO_ZUP
    return Capture(
        name=label,
        point_names=_point_names(sk),
        joint_names=list(sk.names),
        points=pts_z,
        rotations=rots_z,
        rest_points=rest,
        fps=float(target_fps),
        source_fps=float(motion.fps),
    )


@dataclass(frozen=True)
class JointMap:
    """How a capture skeleton drives the SMPL-X body joints.

    positions: SMPL-X joint -> capture point whose position it should reach (fit targets).
    rotations: SMPL-X joint -> (capture joint A, capture joint B, w): the joint's world rotation at
      initialisation is slerp(A, B, w) (A == B for a plain copy); it also sets the rest alignment.
    directions: SMPL-X joint -> (SMPL-X child, capture point from, capture point to): the bone used
      to align rest poses (SMPL-X joint->child versus capture from->to).
    rigid: SMPL-X joints whose normalised target hangs rigidly off the parent's rotation instead of
      following the capture's bone direction (branch offsets such as hips and collars).
    """

    name: str
    positions: dict[str, str]
    rotations: dict[str, tuple[str, str, float]]
    directions: dict[str, tuple[str, str, str]]
    rigid: frozenset[str] = frozenset()

    def required_points(self) -> set[str]:
        pts = set(self.positions.values())
        for a, b, _ in self.rotations.values():
            pts.update((a, b))
        for _, a, b in self.directions.values():
            pts.update((a, b))
        return pts

    def check(self, capture: "Capture") -> None:
        """Raise InputError naming every capture point this map needs but the capture lacks."""
        missing = sorted(self.required_points() - set(capture.point_names))
        if missing:
            raise InputError(
                f"{capture.name}: skeleton does not match the {self.name} joint map; missing joints: "
                + ", ".join(missing)
            )
