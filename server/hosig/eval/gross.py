"""Detectors of gross failure: what makes a clip unusable at a glance, judged from the clip file and the
scene meshes alone (never from the stages' self-reports).

Each detector is a small function of plain arrays (Z-up world, metres, 30 fps) returning a
`Finding` (the failure classes it found and the numbers behind them), so the tests feed it
synthetic data; `judge_clip` computes the arrays from a `MotionClip` (body skin once via
`clip_vertices`, joints from the clip) and collects the findings into a `GrossVerdict`.

Failure classes: ``nan``, ``feet_off_floor``, ``pop``, ``penetration``, ``crouch_walk``, ``trunk_flip``,
``trunk_twist``, ``trunk_fold``, and with a target ``hand_miss``, ``object_not_following``,
``object_floating``, ``object_sunk``. The thresholds are the product's stated targets (module constants),
not tuned to the generator's current output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import trimesh

from hosig.body.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS
from hosig.eval.geometry import clip_vertices, hand_vertex_mask, penetration_depths, surface_distance
from hosig.eval.metrics import FPS, horizontal_speed, joint_speeds
from hosig.jsonable import to_jsonable
from hosig.pipeline.settle import MIDDLE_INSET

FEET_OFF_FLOOR_S = 0.2  # no foot on the floor for longer than this (> 6 frames at 30 fps) is a failure
FOOT_CONTACT_M = 0.05  # a foot whose lowest skin point is within this above the surface under it is on the floor
FLOOR_RAY_START_M = 0.3  # "the surface under a point" is cast down from this far above it (a sunk foot finds the step top)
POP_FAIL_M_S = 8.0  # any of the 55 joints faster than this between two frames is a pop
PENETRATION_M = 0.02  # body skin deeper than this inside scene geometry (target/carried object excepted) fails
PENETRATION_STRIDE = 2  # every 2nd body vertex is tested for penetration
HAND_MISS_M = 0.03  # the grasping hand's skin farther than this from the object surface at the grasp frame fails
CARRY_DRIFT_M = 0.02  # the carried object's centroid moving more than this in the wrist frame fails
ATTACH_SETTLE_FRAMES = 8  # frames after the grasp the object may slide onto the grip (CarryTracker.blend_frames)
OBJECT_FLOAT_M = 0.02  # a released object's lowest point more than this above the surface under it floats
OBJECT_SINK_M = 0.01  # a released object's lowest point more than this below the surface under it has sunk
CROUCH_PELVIS_FRACTION = 0.55  # pelvis below this fraction of its standing height above the floor is crouched
CROUCH_SPEED_M_S = 0.5  # ... while the pelvis moves horizontally faster than this is walking
CROUCH_WALK_S = 0.3  # crouched walking for longer than this fails
TRUNK_UP_MIN_Z = 0.0  # the trunk's up axis (pelvis -> spine3) with a z-component below this is flipped
TRUNK_TWIST_DEG = 70.0  # shoulder line and hip line differing in yaw by more than this is a twist
TRUNK_FOLD_DEG = 100.0  # pelvis->spine3 and spine3->head bent by more than this is a fold
LINE_MIN_M = 0.05  # a shoulder/hip line whose horizontal projection is shorter has no meaningful yaw

# where the detector of each failure local to a few frames names the frame it found worst (key in its
# details); hand, object and NaN failures belong to the clip, not to a frame
FAILURE_FRAME_KEYS = {"feet_off_floor": "first_frame", "pop": "frame", "penetration": "frame", "crouch_walk": "first_frame",
                      "trunk_flip": "frame", "trunk_twist": "frame", "trunk_fold": "frame"}

GRASP_ACTIONS = ("reach", "pick", "pick-place")  # actions whose hand must reach the target
CARRY_ACTIONS = ("pick", "pick-place")  # actions whose object must follow the hand
# SMPL-X's foot joints per side ("foot" is the toe joint)
FOOT_JOINT_NAMES = {"left": ("left_ankle", "left_foot"), "right": ("right_ankle", "right_foot")}


@dataclass
class Finding:
    """What one detector found: the failure classes (empty when fine) and its numbers (JSON-able)."""

    failures: list[str]
    details: dict[str, Any]


@dataclass
class GrossVerdict:
    """The gross failures of one clip: ``failures`` in detector order, ``details`` keyed by detector."""

    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def ok(self) -> bool:
        return not self.failures

    def located(self) -> list[tuple[str, int]]:
        """(class, frame) of each failure whose detector names a frame, in ``failures`` order."""
        return located_failures(self.failures, self.details)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok(), "failures": list(self.failures), "details": to_jsonable(self.details)}


def located_failures(failures: list[str], details: dict[str, Any]) -> list[tuple[str, int]]:
    """(class, frame) of each of ``failures`` whose detector (``details[class]``) names a frame."""
    out = []
    for name in failures:
        key = FAILURE_FRAME_KEYS.get(name)
        frame = (details.get(name) or {}).get(key) if key else None
        if isinstance(frame, (int, np.integer)) and frame >= 0:
            out.append((name, int(frame)))
    return out


# ---------------------------------------------------------------------------------------------- helpers


def longest_run(mask: np.ndarray) -> tuple[int, int, int]:
    """(length, first frame, last frame) of the longest run of True in a (T,) bool mask; (0, -1, -1) if none."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return 0, -1, -1
    padded = np.concatenate([[False], m, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]  # runs [start, stop)
    k = int(np.argmax(stops - starts))
    return int(stops[k] - starts[k]), int(starts[k]), int(stops[k] - 1)


def surface_below(mesh: trimesh.Trimesh, points: np.ndarray, fallback_z: float,
                  start_above: float = FLOOR_RAY_START_M) -> np.ndarray:
    """(N,) height of the highest scene surface under each of (N,3) points.

    A ray cast straight down from ``start_above`` over the point; its first hit is the surface (a
    step, a raised floor or a table top counts). ``fallback_z`` (the scene floor) where nothing is hit.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.full(len(pts), float(fallback_z))
    if len(pts) == 0 or len(mesh.faces) == 0:
        return out
    origins = pts + np.array([0.0, 0.0, start_above])
    down = np.tile([0.0, 0.0, -1.0], (len(pts), 1))
    hits, ray, _ = mesh.ray.intersects_location(origins, down, multiple_hits=False)
    if len(hits):
        out[:] = -np.inf
        np.maximum.at(out, ray, hits[:, 2])
        out[~np.isfinite(out)] = float(fallback_z)
    return out


def foot_vertex_groups(body: Any) -> dict[str, np.ndarray]:
    """{"left": (Vl,), "right": (Vr,)} indices of the vertices skinned mostly (> 0.5) to a foot's ankle and toes."""
    weights = body.smplx.lbs_weights.detach().cpu().numpy()  # (V,55)
    return {side: np.flatnonzero(weights[:, [JOINT_INDEX[n] for n in names]].sum(axis=1) > 0.5)
            for side, names in FOOT_JOINT_NAMES.items()}


def lowest_points(vertices: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """(T,G,3) the lowest vertex of each index group per frame, from (T,V,3) vertices."""
    out = []
    for idx in groups:
        pts = np.asarray(vertices)[:, idx]  # (T,n,3)
        out.append(pts[np.arange(len(pts)), pts[..., 2].argmin(axis=1)])
    return np.stack(out, axis=1).astype(np.float64)


def standing_pelvis_height(body: Any, betas: np.ndarray | None = None) -> float:
    """Height (m) of the pelvis joint above the soles in the body's rest pose (model frame, Y up)."""
    b = np.zeros((1, body.num_betas), np.float32)
    if betas is not None and np.size(betas):
        given = np.asarray(betas, np.float32).reshape(-1)[: body.num_betas]
        b[0, : len(given)] = given
    with torch.no_grad():
        out = body.forward(global_orient=np.zeros((1, 3)), transl=np.zeros((1, 3)), betas=b)
    return float(out.joints[0, 0, 1] - out.vertices[0, :, 1].min())


def _frame_yaw(v: np.ndarray) -> np.ndarray:
    """(T,3) direction vectors -> (T,) yaw (radians) of their horizontal projection."""
    return np.arctan2(v[:, 1], v[:, 0])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,) angle (degrees) between (T,3) vectors a and b."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# -------------------------------------------------------------------------------------------- detectors


def nonfinite(arrays: dict[str, np.ndarray | None]) -> Finding:
    """``nan``: any non-finite value in the named arrays (None entries are skipped)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for name, arr in arrays.items():
        if arr is None:
            continue
        a = np.asarray(arr, dtype=np.float64)
        bad = ~np.isfinite(a)
        if bad.any():
            counts[name] = int(bad.sum())
            first[name] = int(np.argwhere(bad)[0][0])  # frame (first axis) of the first bad value
    return Finding(["nan"] if counts else [], {"nonfinite_values": counts, "first_frame": first})


def airborne_stretches(foot_heights: np.ndarray, fps: float = FPS, contact_m: float = FOOT_CONTACT_M,
                       limit_s: float = FEET_OFF_FLOOR_S) -> Finding:
    """``feet_off_floor``: foot_heights (T,2) = each foot's lowest skin point above the surface under it.

    A frame is airborne when neither foot is within ``contact_m`` (a foot below the surface counts as
    on it: sinking in is the penetration detector's business); more than ``limit_s`` of airborne
    frames in a row fails.
    """
    h = np.asarray(foot_heights, dtype=np.float64).reshape(len(foot_heights), -1)
    airborne = (h > contact_m).all(axis=1) if len(h) else np.zeros(0, bool)
    n, first, last = longest_run(airborne)
    limit_frames = int(round(limit_s * fps))
    details = {
        "longest_airborne_s": n / fps,
        "longest_airborne_frames": n,
        "first_frame": first,
        "last_frame": last,
        "both_feet_up_fraction": float(airborne.mean()) if len(airborne) else 0.0,
        "max_lowest_foot_m": float(h.min(axis=1).max()) if len(h) else 0.0,
    }
    return Finding(["feet_off_floor"] if n > limit_frames else [], details)


def joint_pops(joints: np.ndarray, fps: float = FPS, limit_m_s: float = POP_FAIL_M_S) -> Finding:
    """``pop``: any of the (T,J,3) joints faster than ``limit_m_s`` from one frame to the next.

    Reports the fastest joint, the frame it arrives at, and how many frame steps pop.
    """
    pts = np.asarray(joints, dtype=np.float64)
    if len(pts) < 2:
        return Finding([], {"max_joint_speed_m_s": 0.0, "frame": -1, "joint": None, "pop_steps": 0})
    speed = joint_speeds(pts, fps)  # (T-1,J)
    t, j = np.unravel_index(int(np.argmax(speed)), speed.shape)
    fastest = float(speed[t, j])
    steps = int((speed.max(axis=1) > limit_m_s).sum())
    details = {"max_joint_speed_m_s": fastest, "frame": int(t) + 1, "joint": JOINT_NAMES[j] if j < len(JOINT_NAMES) else int(j),
               "pop_steps": steps}
    return Finding(["pop"] if fastest > limit_m_s else [], details)


def deep_penetration(depths: np.ndarray, limit_m: float = PENETRATION_M) -> Finding:
    """``penetration``: depths (T,P) of body points inside the scene (m, 0 outside) deeper than ``limit_m``."""
    d = np.asarray(depths, dtype=np.float64)
    if d.size == 0:
        return Finding([], {"max_depth_m": 0.0, "frame": -1, "frames_over_limit": 0})
    per_frame = d.max(axis=1)
    worst = int(per_frame.argmax())
    details = {"max_depth_m": float(per_frame[worst]), "frame": worst,
               "frames_over_limit": int((per_frame > limit_m).sum())}
    return Finding(["penetration"] if per_frame[worst] > limit_m else [], details)


def hand_miss(distance_m: float | None, limit_m: float = HAND_MISS_M) -> Finding:
    """``hand_miss``: the grasping hand's skin farther than ``limit_m`` from the object surface (None: no grasp frame)."""
    if distance_m is None:
        return Finding(["hand_miss"], {"hand_object_m": None, "reason": "the clip has no grasp frame"})
    return Finding(["hand_miss"] if distance_m > limit_m else [], {"hand_object_m": float(distance_m)})


def carry_drift(object_points: np.ndarray, wrists: np.ndarray, limit_m: float = CARRY_DRIFT_M) -> Finding:
    """``object_not_following``: object_points (T,3) (the carried object's centroid in the world) expressed
    in the wrist frames wrists (T,4,4) moves more than ``limit_m`` from where it is at frame 0."""
    p = np.asarray(object_points, dtype=np.float64)
    w = np.asarray(wrists, dtype=np.float64)
    if len(p) == 0:
        return Finding([], {"max_drift_m": 0.0, "frame": -1})
    local = np.einsum("tji,tj->ti", w[:, :3, :3], p - w[:, :3, 3])  # R^T (p - origin)
    drift = np.linalg.norm(local - local[0], axis=1)
    worst = int(drift.argmax())
    return Finding(["object_not_following"] if drift[worst] > limit_m else [],
                   {"max_drift_m": float(drift[worst]), "frame": worst})


def placement_gap(object_vertices: np.ndarray, support_z: float, float_m: float = OBJECT_FLOAT_M,
                  sink_m: float = OBJECT_SINK_M) -> Finding:
    """``object_floating`` / ``object_sunk``: a released object's (N,3) world vertices vs the height of
    the highest surface under it (``support_z``): gap = lowest point - support."""
    bottom = float(np.asarray(object_vertices, dtype=np.float64)[:, 2].min())
    gap = bottom - float(support_z)
    failures = ["object_floating"] if gap > float_m else ["object_sunk"] if gap < -sink_m else []
    return Finding(failures, {"gap_m": gap, "bottom_z": bottom, "support_z": float(support_z)})


def crouch_walk(pelvis: np.ndarray, floor_z: np.ndarray, standing_pelvis_m: float, fps: float = FPS,
                fraction: float = CROUCH_PELVIS_FRACTION, speed_m_s: float = CROUCH_SPEED_M_S,
                limit_s: float = CROUCH_WALK_S) -> Finding:
    """``crouch_walk``: pelvis (T,3) lower than ``fraction`` x its standing height above floor_z (T,)
    while moving horizontally faster than ``speed_m_s``, for more than ``limit_s`` in a row."""
    pel = np.asarray(pelvis, dtype=np.float64)
    height = pel[:, 2] - np.asarray(floor_z, dtype=np.float64)
    speed = horizontal_speed(pel[:, None, :], fps)[:, 0] if len(pel) else np.zeros(0)
    low_fast = (height < fraction * standing_pelvis_m) & (speed > speed_m_s)
    n, first, last = longest_run(low_fast)
    details = {"longest_s": n / fps, "first_frame": first, "last_frame": last,
               "min_pelvis_height_m": float(height.min()) if len(height) else None,
               "crouch_height_m": fraction * standing_pelvis_m}
    return Finding(["crouch_walk"] if n > int(round(limit_s * fps)) else [], details)


def trunk_flip(joints: np.ndarray, min_z: float = TRUNK_UP_MIN_Z) -> Finding:
    """``trunk_flip``: the trunk's up axis (pelvis -> spine3) of (T,55,3) joints pointing below horizontal."""
    j = np.asarray(joints, dtype=np.float64)
    up = j[:, JOINT_INDEX["spine3"]] - j[:, JOINT_INDEX["pelvis"]]
    z = up[:, 2] / np.maximum(np.linalg.norm(up, axis=1), 1e-12)
    worst = int(z.argmin()) if len(z) else -1
    return Finding(["trunk_flip"] if len(z) and z[worst] < min_z else [],
                   {"min_trunk_up_z": float(z[worst]) if len(z) else None, "frame": worst})


def trunk_twist(joints: np.ndarray, limit_deg: float = TRUNK_TWIST_DEG, min_line_m: float = LINE_MIN_M) -> Finding:
    """``trunk_twist``: yaw between the shoulder line (left->right shoulder) and the hip line (left->right
    hip) of (T,55,3) joints above ``limit_deg`` (frames where either line is near vertical are skipped)."""
    j = np.asarray(joints, dtype=np.float64)
    shoulders = j[:, JOINT_INDEX["right_shoulder"]] - j[:, JOINT_INDEX["left_shoulder"]]
    hips = j[:, JOINT_INDEX["right_hip"]] - j[:, JOINT_INDEX["left_hip"]]
    valid = (np.linalg.norm(shoulders[:, :2], axis=1) > min_line_m) & (np.linalg.norm(hips[:, :2], axis=1) > min_line_m)
    diff = np.abs((_frame_yaw(shoulders) - _frame_yaw(hips) + np.pi) % (2 * np.pi) - np.pi)
    diff = np.where(valid, np.degrees(diff), 0.0)
    worst = int(diff.argmax()) if len(diff) else -1
    return Finding(["trunk_twist"] if len(diff) and diff[worst] > limit_deg else [],
                   {"max_twist_deg": float(diff[worst]) if len(diff) else None, "frame": worst})


def trunk_fold(joints: np.ndarray, limit_deg: float = TRUNK_FOLD_DEG) -> Finding:
    """``trunk_fold``: the angle between pelvis->spine3 and spine3->head of (T,55,3) joints above ``limit_deg``."""
    j = np.asarray(joints, dtype=np.float64)
    lower = j[:, JOINT_INDEX["spine3"]] - j[:, JOINT_INDEX["pelvis"]]
    upper = j[:, JOINT_INDEX["head"]] - j[:, JOINT_INDEX["spine3"]]
    angle = _angle_deg(lower, upper)
    worst = int(angle.argmax()) if len(angle) else -1
    return Finding(["trunk_fold"] if len(angle) and angle[worst] > limit_deg else [],
                   {"max_fold_deg": float(angle[worst]) if len(angle) else None, "frame": worst})


# ------------------------------------------------------------------------------------------- the judge


def _object_world(scene: Any, name: str, transform: np.ndarray | None) -> trimesh.Trimesh:
    """The scene object's mesh moved by a (4,4) object transform (None: where it was loaded)."""
    mesh = scene.object(name).mesh
    if transform is None:
        return mesh
    mesh = mesh.copy()
    mesh.apply_transform(np.asarray(transform, dtype=np.float64))
    return mesh


def grasp_distances(verts: np.ndarray, body: Any, mesh: trimesh.Trimesh, hands: list[str],
                    stride: int = PENETRATION_STRIDE) -> dict[str, float]:
    """{hand: distance (m) from its skin to the object surface} for strided (V',3) vertices at one frame."""
    return {h: float(surface_distance(mesh, verts[hand_vertex_mask(body, h, stride)]).min()) for h in hands}


def _footprint_support(mesh: trimesh.Trimesh, vertices: np.ndarray, fallback_z: float) -> float:
    """Height of the highest surface under the middle of an object's footprint ((N,3) world vertices)."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    inset = MIDDLE_INSET * (hi[:2] - lo[:2])
    gx, gy = np.meshgrid(np.linspace(lo[0] + inset[0], hi[0] - inset[0], 3),
                         np.linspace(lo[1] + inset[1], hi[1] - inset[1], 3))
    top = hi[2] + 0.01  # from just above the object: a shelf above it is not its support
    pts = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, top)])
    return float(surface_below(mesh, pts, fallback_z, start_above=0.0).max())


def judge_clip(clip: Any, scene: Any, body: Any, target: str | None, hand: str | None = None,
               release_frame: int | None = None, action: str = "pick") -> GrossVerdict:
    """Run every gross-failure detector on a clip (see the module constants for the thresholds).

    ``target``: the object the clip reaches for (None: body checks only); ``hand``: the grasping hand
    (None: the hand nearer the object at the grasp frame); ``release_frame``: default the clip's own
    (-1 / None: never released); ``action``: "reach", "pick" or "pick-place" (which object checks apply).
    A clip with non-finite values gets ``nan`` and nothing else (the other detectors would read garbage).
    """
    fps = float(getattr(clip, "fps", FPS))
    verdict = GrossVerdict()

    def add(name: str, found: Finding) -> None:
        verdict.failures.extend(f for f in found.failures if f not in verdict.failures)
        verdict.details[name] = found.details

    add("nan", nonfinite({"poses": clip.poses, "trans": clip.trans, "joints": clip.joints,
                          "object_transforms": clip.object_transforms}))
    verdict.details["frames"] = int(len(clip.poses))
    if verdict.failures:
        verdict.details["skipped"] = "non-finite values: the other detectors were not run"
        return verdict
    if len(clip.poses) == 0:
        return verdict

    joints = np.asarray(clip.joints, dtype=np.float64)
    movable = [n for n in dict.fromkeys([target, getattr(clip, "object_name", None)]) if n and n in scene.objects]
    support = scene.mesh(exclude=movable)  # what feet and objects stand on; the moving object is not
    floor_z = float(scene.floor_z)
    full = clip_vertices(body, clip.poses, clip.trans, clip.betas, stride=1)  # (T,V,3)

    groups = foot_vertex_groups(body)
    feet = lowest_points(full, [groups["left"], groups["right"]])  # (T,2,3)
    under = surface_below(support, feet.reshape(-1, 3), floor_z).reshape(len(feet), 2)
    add("feet_off_floor", airborne_stretches(feet[..., 2] - under, fps))
    add("pop", joint_pops(joints, fps))
    verts = full[:, ::PENETRATION_STRIDE]
    del full
    add("penetration", deep_penetration(penetration_depths(scene, verts, exclude=movable)))
    stand_floor = under.max(axis=1)  # the floor the body stands on: the higher of its feet's
    standing = standing_pelvis_height(body, clip.betas)
    add("crouch_walk", crouch_walk(joints[:, JOINT_INDEX["pelvis"]], stand_floor, standing, fps))
    add("trunk_flip", trunk_flip(joints))
    add("trunk_twist", trunk_twist(joints))
    add("trunk_fold", trunk_fold(joints))

    if target is None or action not in GRASP_ACTIONS:
        return verdict
    _judge_object(verdict, add, clip, scene, body, verts, joints, support, floor_z, target, hand, release_frame, action)
    return verdict


def _judge_object(verdict: GrossVerdict, add: Callable[[str, Finding], None], clip: Any, scene: Any, body: Any,
                  verts: np.ndarray, joints: np.ndarray, support: trimesh.Trimesh, floor_z: float, target: str,
                  hand: str | None, release_frame: int | None, action: str) -> None:
    """The hand and object detectors of `judge_clip` (hand_miss, object_not_following, placement)."""
    n = len(joints)
    g = int(clip.grasp_frame)
    transforms = None if clip.object_transforms is None else np.asarray(clip.object_transforms, dtype=np.float64)
    if not 0 <= g < n:
        add("hand_miss", hand_miss(None))
        return
    mesh_g = _object_world(scene, target, None if transforms is None else transforms[g])
    dist = grasp_distances(verts[g], body, mesh_g, [hand] if hand else ["left", "right"])
    hand = hand or min(dist, key=dist.get)
    verdict.details["hand"] = hand
    found = hand_miss(dist[hand])
    found.details["grasp_frame"] = g
    add("hand_miss", found)
    if action not in CARRY_ACTIONS:
        return
    if release_frame is None:
        release_frame = int(getattr(clip, "release_frame", -1))
    release = release_frame if 0 <= release_frame < n else None
    if transforms is None:
        add("object_not_following", Finding(["object_not_following"], {"reason": "the clip has no object transforms"}))
        return
    from hosig.pipeline.objects import wrist_transforms

    end = release if release is not None else n
    ref = min(g + ATTACH_SETTLE_FRAMES, end - 1)  # the grip has settled by then
    if end - ref >= 2:
        centroid = np.append(scene.object(target).center, 1.0)
        carried = np.arange(ref, end)
        wrists = wrist_transforms(clip.poses[carried], joints[carried], PARENTS, JOINT_INDEX[f"{hand}_wrist"])
        found = carry_drift((transforms[carried] @ centroid)[:, :3], wrists)
        found.details["frame"] = int(carried[found.details["frame"]]) if found.details["frame"] >= 0 else -1
        found.details["reference_frame"] = int(ref)
        add("object_not_following", found)
    if release is None:
        return  # a pick holds the object to the end: nothing was put down
    placed = np.asarray(_object_world(scene, target, transforms[-1]).vertices)
    found = placement_gap(placed, _footprint_support(support, placed, floor_z))
    found.details.update(release_frame=int(release), frame=n - 1)
    add("placement", found)
