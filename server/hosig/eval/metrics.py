"""Quality metrics computed from a clip and the scene geometry, independently of the stages.

Every function takes plain arrays (Z-up world, metres, 30 fps unless told) so the same code
measures generated clips, retargeted real capture and the constructed clips of the tests.
Definitions follow DESIGN.md §4 and HOSIG's own penetration metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hosig.clip import FPS
from hosig.body.skeleton import JOINT_NAMES

# Foot points used for contact and skating: ankles (heel side) and the toe joints.
FOOT_JOINTS: tuple[str, ...] = ("left_ankle", "left_foot", "right_ankle", "right_foot")
CONTACT_HEIGHT_M = 0.05  # a foot point closer than this to its standing height is in contact
# Joints compared for naturalness: present in every capture format we read (no fingers).
NATURALNESS_JOINTS: tuple[str, ...] = (
    "pelvis", "left_knee", "right_knee", "left_ankle", "right_ankle", "spine3", "head",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)


def joint_index(names: tuple[str, ...] | list[str]) -> list[int]:
    """Indices of SMPL-X joints by name."""
    return [JOINT_NAMES.index(n) for n in names]


@dataclass(frozen=True)
class FootSkating:
    """Mean horizontal speed of foot points while in contact (cm/s), and the contact share."""

    mean_cm_s: float
    contact_fraction: float
    per_point_cm_s: dict[str, float]


def foot_skating(
    joints: np.ndarray,
    floor_z: float = 0.0,
    fps: float = FPS,
    rest_heights: np.ndarray | None = None,
    threshold_m: float = CONTACT_HEIGHT_M,
) -> FootSkating:
    """Foot skating of a clip: `foot_points_skating` on the ankle and toe joints of (T,55,3) joints."""
    pts = np.asarray(joints, dtype=np.float64)[:, joint_index(FOOT_JOINTS)].copy()  # (T,4,3)
    pts[..., 2] -= floor_z
    return foot_points_skating(pts, fps, rest_heights, threshold_m)


def foot_points_skating(
    feet: np.ndarray,
    fps: float = FPS,
    rest_heights: np.ndarray | None = None,
    threshold_m: float = CONTACT_HEIGHT_M,
) -> FootSkating:
    """The one definition of foot skating, for generated clips and capture alike.

    feet: (T,4,3) foot points above a floor at z = 0, in `FOOT_JOINTS` order. A point is in contact
    at a frame when its height minus its standing height (``rest_heights`` (4,) metres; default: its
    5th-percentile height in the clip, which is its standing height for any clip that ever stands)
    is below ``threshold_m``. Speed is the horizontal central-difference speed; the mean is over all
    contact samples. Being height-only, it also counts a swinging foot passing low over the floor
    (real CMU walking scores tens of cm/s): compare with real capture, not with zero.
    """
    pts = np.asarray(feet, dtype=np.float64)
    if pts.shape[0] < 3:
        return FootSkating(0.0, 0.0, {n: 0.0 for n in FOOT_JOINTS})
    heights = pts[..., 2]  # (T,4)
    base = np.percentile(heights, 5, axis=0) if rest_heights is None else np.asarray(rest_heights)
    contact = (heights - base) < threshold_m  # (T,4)
    speeds_cm = horizontal_speed(pts, fps) * 100.0
    per_point = {
        name: float(speeds_cm[contact[:, k], k].mean()) if contact[:, k].any() else 0.0
        for k, name in enumerate(FOOT_JOINTS)
    }
    mean = float(speeds_cm[contact].mean()) if contact.any() else 0.0
    return FootSkating(mean, float(contact.mean()), per_point)


SOLE_TOUCH_M = 0.01  # a sole vertex this close to the floor touches it


@dataclass(frozen=True)
class SoleSliding:
    """How fast the part of a foot that touches the floor slides (cm/s), and how often a foot touches."""

    mean_cm_s: float  # mean over (step, foot) samples in contact; NaN when no foot ever touches
    contact_fraction: float  # share of (step, foot) samples in contact


def sole_sliding(soles: np.ndarray, left: np.ndarray, fps: float = FPS, touch_m: float = SOLE_TOUCH_M) -> SoleSliding:
    """Foot sliding measured where a foot meets the floor: its sole vertices.

    soles (T,V,3): sole vertices above a floor at z = 0; left (V,) bool: which foot each is on.
    A vertex touches over a step t -> t+1 when it is within ``touch_m`` of the floor at both
    frames; a foot in contact over a step slides at the mean horizontal speed of its touching
    vertices. Why: this is what an animator sees skate. Joint-based measures also count the foot
    rolling over its toes and a toe swinging low over the floor (real CMU walks read 60-80 cm/s
    there); a planted sole of real capture moves about a centimetre a second.
    """
    pts = np.asarray(soles, dtype=np.float64)
    side = np.asarray(left, dtype=bool)
    if pts.shape[0] < 2 or pts.shape[1] == 0:
        return SoleSliding(float("nan"), 0.0)
    touch = (pts[:-1, :, 2] < touch_m) & (pts[1:, :, 2] < touch_m)  # (T-1,V)
    speed = np.linalg.norm(np.diff(pts[..., :2], axis=0), axis=-1) * fps * 100.0  # (T-1,V) cm/s
    samples: list[np.ndarray] = []
    for foot in (side, ~side):
        n = touch[:, foot].sum(1)  # (T-1,)
        total = np.where(touch[:, foot], speed[:, foot], 0.0).sum(1)
        samples.append(total[n > 0] / n[n > 0])
    steps = 2 * (pts.shape[0] - 1)
    hits = np.concatenate(samples)
    return SoleSliding(float(hits.mean()) if len(hits) else float("nan"), len(hits) / steps)


POP_SPEED_M_S = 6.0  # a body joint faster than this in a walk-and-pick clip is a glitch (CMU walks stay under it)


def pop_frames(joints: np.ndarray, fps: float = FPS, limit_m_s: float = POP_SPEED_M_S) -> tuple[int, float]:
    """(frames where any of the 22 body joints moves faster than ``limit_m_s``, the fastest speed m/s).

    Why: a one-frame snap (a foot jumping to another stance, a hand pulled to a target) barely moves
    mean velocity statistics but is what an animator sees first. Real CMU capture: per-clip maximum
    body-joint speed has median 4 m/s; walks stay under 6 m/s, only runs reach 10.
    """
    if len(joints) < 2:
        return 0, 0.0
    speed = joint_speeds(np.asarray(joints)[:, :22], fps).max(axis=1)  # (T-1,)
    return int((speed > limit_m_s).sum()), float(speed.max())


def joint_speeds(joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(T,J,3) joint positions -> (T-1,J) speed (m/s) of each joint from frame t to t+1."""
    pts = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm(np.diff(pts, axis=0), axis=-1) * fps


def horizontal_speed(points: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(T,P,3) -> (T,P) horizontal speed (m/s), central differences (one-sided at the ends)."""
    pts = np.asarray(points, dtype=np.float64)
    vel = np.zeros(pts.shape[:2])
    if len(pts) < 2:
        return vel
    if len(pts) > 2:
        vel[1:-1] = np.linalg.norm(pts[2:, :, :2] - pts[:-2, :, :2], axis=-1) * fps / 2.0
    vel[0] = np.linalg.norm(pts[1, :, :2] - pts[0, :, :2], axis=-1) * fps
    vel[-1] = np.linalg.norm(pts[-1, :, :2] - pts[-2, :, :2], axis=-1) * fps
    return vel


def point_to_polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Horizontal distance (N,) from each point (N,2+) to a polyline (M,2+), vectorised."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    line = np.asarray(polyline, dtype=np.float64)[:, :2]
    if len(line) == 1:
        return np.linalg.norm(p - line[0], axis=1)
    a, b = line[:-1], line[1:]  # (S,2)
    ab = b - a
    denom = np.maximum((ab**2).sum(1), 1e-12)
    t = np.clip(((p[:, None, :] - a[None]) * ab[None]).sum(-1) / denom[None], 0.0, 1.0)  # (N,S)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None, :] - closest, axis=-1).min(axis=1)


def trajectory_adherence(joints: np.ndarray, path: np.ndarray, frames: slice | None = None) -> float:
    """Mean horizontal distance (m) of the pelvis to the planned path over ``frames``."""
    pelvis = np.asarray(joints)[:, JOINT_NAMES.index("pelvis")]
    if frames is not None:
        pelvis = pelvis[frames]
    if len(pelvis) == 0 or len(path) == 0:
        return 0.0
    return float(point_to_polyline_distance(pelvis, np.asarray(path)).mean())


@dataclass(frozen=True)
class Penetration:
    """HOSIG's metric: share of frames with any body point deeper than 1 mm, and the deepest."""

    frame_fraction: float
    max_depth_m: float
    frames_over_2cm: int


def penetration_from_depths(depths: np.ndarray, threshold_m: float = 0.001) -> Penetration:
    """depths: (T,P) penetration depth per body point (>0 inside geometry, <=0 outside)."""
    d = np.asarray(depths)
    if d.size == 0:
        return Penetration(0.0, 0.0, 0)
    per_frame = d.max(axis=1)
    return Penetration(
        float((per_frame > threshold_m).mean()),
        float(max(per_frame.max(), 0.0)),
        int((per_frame > 0.02).sum()),
    )


def motion_statistics(joints: np.ndarray, fps: float = FPS) -> dict[str, float]:
    """Mean joint speed (m/s), acceleration (m/s²) and jerk (m/s³) over the naturalness joints."""
    pts = np.asarray(joints, dtype=np.float64)[:, joint_index(NATURALNESS_JOINTS)]
    if len(pts) < 4:
        return {"velocity": 0.0, "acceleration": 0.0, "jerk": 0.0}
    vel = np.diff(pts, axis=0) * fps
    acc = np.diff(vel, axis=0) * fps
    jerk = np.diff(acc, axis=0) * fps
    return {
        # nanmean: capture mapped from another skeleton may lack a joint (NaN columns)
        "velocity": float(np.nanmean(np.linalg.norm(vel, axis=-1))),
        "acceleration": float(np.nanmean(np.linalg.norm(acc, axis=-1))),
        "jerk": float(np.nanmean(np.linalg.norm(jerk, axis=-1))),
    }


def speed_histogram(joints: np.ndarray, bins: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Normalised histogram of joint speeds (for plots and distribution comparisons)."""
    pts = np.asarray(joints, dtype=np.float64)[:, joint_index(NATURALNESS_JOINTS)]
    speeds = np.linalg.norm(np.diff(pts, axis=0) * fps, axis=-1).ravel()
    hist, _ = np.histogram(speeds, bins=bins, density=True)
    return hist


def naturalness_ratios(generated: list[np.ndarray], real: list[np.ndarray], fps: float = FPS) -> dict[str, float]:
    """generated/real ratios of the mean velocity, acceleration and jerk (1.0 is ideal).

    Statistics are frame-weighted over all clips of each side.
    """

    def pooled(clips: list[np.ndarray]) -> dict[str, float]:
        stats = [(motion_statistics(c, fps), max(len(c) - 3, 0)) for c in clips]
        total = sum(w for _, w in stats) or 1
        return {k: sum(s[k] * w for s, w in stats) / total for k in ("velocity", "acceleration", "jerk")}

    gen, ref = pooled(generated), pooled(real)
    return {k: (gen[k] / ref[k] if ref[k] > 0 else float("nan")) for k in gen} | {
        f"generated_{k}": v for k, v in gen.items()
    } | {f"real_{k}": v for k, v in ref.items()}


def floor_penetration(joints: np.ndarray, floor_z: float = 0.0) -> float:
    """Deepest foot point below the floor over the clip (m, >= 0)."""
    pts = np.asarray(joints)[:, joint_index(("left_foot", "right_foot"))]
    return float(max(0.0, floor_z - pts[..., 2].min())) if len(pts) else 0.0
