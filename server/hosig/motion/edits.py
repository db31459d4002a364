"""An animator's edits as anchors: parsing, validation and feasibility (issue #20).

Wire/CLI form (Blender world: metres, Z up; joint names as SMPL-X, `JOINT_NAMES`)::

    [{"frame": 40, "joint": "right_wrist", "position": [x, y, z]},
     {"frame": 52, "joint": "pelvis", "rotation": [w, x, y, z]}]

``frame`` is a frame of the base clip (0-based). ``position`` is the joint's world position;
``rotation`` the joint's local rotation as in the clip's ``poses`` (the pelvis: its global orient,
Z-up world) as a unit quaternion. An anchor needs one of them or both.

Bad input is a `UsageError` (unknown joint, wrong shapes, NaN). An anchor the body or the scene
cannot honour is not an error: `check_feasible` returns the reason it will be reported "not met"
with (`REASONS`), and the regeneration leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hosig.errors import UsageError
from hosig.motion.anchors import JOINT_NAMES

MAX_JOINT_SPEED_M_S = 8.0  # DESIGN §4: no joint faster than this
REACH_SLACK_M = 0.05  # the limb's length is measured on the rest skeleton: a little give
FPS = 30

REASONS = {
    "outside_range": "the frame is outside the regenerated range",
    "outside_clip": "the frame is outside the clip",
    "unreachable": "farther than the limb can reach",
    "inside_furniture": "inside the scene geometry (scene SDF < 0)",
    "too_fast": f"reaching it needs a joint faster than {MAX_JOINT_SPEED_M_S:.0f} m/s from the fixed frames",
    "not_reached": "the solver could not meet it with the body and scene as they are",
}


@dataclass
class EditAnchor:
    """One animator key: ``joint`` (index into `JOINT_NAMES`) at clip ``frame``."""

    index: int  # position in the request's list (reports refer to it)
    frame: int
    joint: int
    position: np.ndarray | None = None  # (3,) world
    rotation: np.ndarray | None = None  # (4,) w, x, y, z unit quaternion

    @property
    def name(self) -> str:
        return JOINT_NAMES[self.joint]


@dataclass
class AnchorOutcome:
    """How one anchor came out: errors are None where not measured (an infeasible anchor)."""

    anchor: EditAnchor
    met: bool
    reason: str | None = None  # a key of `REASONS` when not met
    position_error_m: float | None = None
    rotation_error_deg: float | None = None

    def to_json(self) -> dict[str, Any]:
        a = self.anchor
        out: dict[str, Any] = {"index": a.index, "frame": a.frame, "joint": a.name, "met": self.met}
        if a.position is not None:
            out["position"] = [float(v) for v in a.position]
            out["position_error_m"] = None if self.position_error_m is None else round(float(self.position_error_m), 5)
        if a.rotation is not None:
            out["rotation"] = [float(v) for v in a.rotation]
            out["rotation_error_deg"] = None if self.rotation_error_deg is None else round(float(self.rotation_error_deg), 3)
        if self.reason is not None:
            out["reason"] = self.reason
            out["why"] = REASONS.get(self.reason, self.reason)
        return out


def _vector(value: Any, size: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: expected {size} numbers, got {value!r}") from None
    if arr.shape != (size,):
        raise UsageError(f"{what}: expected {size} numbers, got {arr.size}")
    if not np.isfinite(arr).all():
        raise UsageError(f"{what}: NaN/inf is not allowed")
    return arr


def parse_anchor(item: Any, index: int) -> EditAnchor:
    """One anchor dict -> `EditAnchor` (UsageError naming ``anchors[index]`` and the field)."""
    where = f"anchors[{index}]"
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected an object {{frame, joint, position?, rotation?}}")
    extra = set(item) - {"frame", "joint", "position", "rotation"}
    if extra:
        raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    if "frame" not in item or "joint" not in item:
        raise UsageError(f"{where}: needs 'frame' and 'joint'")
    frame = item["frame"]
    if isinstance(frame, bool) or not isinstance(frame, (int, float)) or float(frame) != int(frame):
        raise UsageError(f"{where}.frame: expected an integer frame, got {frame!r}")
    joint = item["joint"]
    if joint not in JOINT_NAMES:
        raise UsageError(f"{where}.joint: unknown joint {joint!r} (SMPL-X names, e.g. 'pelvis', 'right_wrist', 'head')")
    position = _vector(item["position"], 3, f"{where}.position") if item.get("position") is not None else None
    rotation = _vector(item["rotation"], 4, f"{where}.rotation") if item.get("rotation") is not None else None
    if position is None and rotation is None:
        raise UsageError(f"{where}: needs a 'position' [x, y, z] or a 'rotation' [w, x, y, z]")
    if rotation is not None:
        norm = float(np.linalg.norm(rotation))
        if norm < 1e-6:
            raise UsageError(f"{where}.rotation: a zero quaternion is not a rotation")
        rotation = rotation / norm
    return EditAnchor(index, int(frame), JOINT_NAMES.index(joint), position, rotation)


def parse_anchors(items: Any) -> list[EditAnchor]:
    """The anchor list of a request or an anchors JSON file -> `EditAnchor`s (UsageError on bad input)."""
    if items is None:
        return []
    if isinstance(items, dict) and "anchors" in items:
        items = items["anchors"]
    if not isinstance(items, list):
        raise UsageError("anchors: expected a list of {frame, joint, position?, rotation?}")
    return [parse_anchor(item, i) for i, item in enumerate(items)]


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(4,) w, x, y, z unit quaternion -> (3,) axis-angle."""
    q = np.asarray(q, dtype=np.float64)
    q = q if q[0] >= 0 else -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(s, q[0])
    return q[1:] / s * angle


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(...,3) axis-angle -> (...,3,3) rotation matrices (numpy, via scipy)."""
    from scipy.spatial.transform import Rotation

    aa = np.asarray(aa, dtype=np.float64)
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(aa.shape[:-1] + (3, 3))


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two rotation matrices (3,3)."""
    cos = (np.trace(a.T @ b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


@dataclass
class Feasibility:
    """What `check_feasible` needs to know about the clip, the body and the scene."""

    first: int  # the regenerated range [first, last]
    last: int
    n_frames: int
    joints: np.ndarray  # (T,55,3) world joints of the base clip
    chain_m: np.ndarray  # (55,) rest length of the chain pelvis -> joint
    standing_pelvis_m: float  # pelvis height over the floor standing straight
    floor_z: float
    sdf: Callable[[np.ndarray], np.ndarray] | None = None  # (N,3) world -> (N,) signed distance


def check_feasible(anchor: EditAnchor, ctx: Feasibility, pelvis_at: Callable[[int], np.ndarray]) -> str | None:
    """The reason (a key of `REASONS`) ``anchor`` cannot be met, or None when it may be.

    ``pelvis_at(frame)`` (3,) world: where the pelvis will be at that frame (an animator's pelvis key
    there, else the base clip's)."""
    f = anchor.frame
    if not 0 <= f < ctx.n_frames:
        return "outside_clip"
    if not ctx.first <= f <= ctx.last:
        return "outside_range"
    if anchor.position is None:
        return None
    p = anchor.position
    if ctx.sdf is not None and float(ctx.sdf(p[None])[0]) < 0.0:
        return "inside_furniture"
    if _unreachable(anchor, ctx, pelvis_at(f)):
        return "unreachable"
    if _too_fast(anchor, ctx):
        return "too_fast"
    return None


def _unreachable(anchor: EditAnchor, ctx: Feasibility, pelvis: np.ndarray) -> bool:
    """Higher than a standing body holds the joint, or farther from the pelvis than its chain."""
    p = anchor.position
    if anchor.joint == 0:
        return float(p[2]) > ctx.floor_z + ctx.standing_pelvis_m + REACH_SLACK_M
    reach = float(ctx.chain_m[anchor.joint]) + REACH_SLACK_M
    if float(p[2]) > ctx.floor_z + ctx.standing_pelvis_m + reach:
        return True
    return float(np.linalg.norm(p - pelvis)) > reach


def _too_fast(anchor: EditAnchor, ctx: Feasibility) -> bool:
    """From the nearest fixed frame (just outside the range) the joint would need > 8 m/s."""
    for fixed in (ctx.first - 1, ctx.last + 1):
        if not 0 <= fixed < ctx.n_frames:
            continue
        gap_s = abs(anchor.frame - fixed) / FPS
        dist = float(np.linalg.norm(anchor.position - ctx.joints[fixed, anchor.joint]))
        if dist > MAX_JOINT_SPEED_M_S * gap_s:
            return True
    return False


def chain_lengths(parents: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(55,) length of the bone chain from the pelvis to each joint on the rest skeleton."""
    out = np.zeros(len(parents))
    for j in range(1, len(parents)):
        p = int(parents[j])
        out[j] = out[p] + float(np.linalg.norm(rest_joints[j] - rest_joints[p]))
    return out
