"""From planned walks + a grasp to the motion stage's anchor timeline (the "task").

`build_task` turns the navigation legs (timed waypoints) and the grasp pose into anchors:
turn on the spot if the walk sets off behind the body, walk (pelvis xy hard on every frame of the timed path,
facing where it goes), settle at the stand point turning to
face the grasp (heading anchors; a longer reach for bigger turns), reach (grasp pose at the grasp
frame: pelvis, root, trunk and grasping-arm rotations and the finger poses hard; legs and free arm
soft so the walk's planted feet stay; wrist position soft around it), then per action:
  reach       touch and hold still (the grasp pose kept hard to the end)
  pick        grasp, lift the object towards the body, hold
  pick-place  grasp, lift, carry along the second leg, put the object down at the place point,
              release (fingers open), step back
The pipeline calls ``build_task`` then ``synthesize(model, task.anchors, body, ...,
grasp_frame=task.grasp_frame, release_frame=task.release_frame, touch_spans=task.touch_spans)`` and
finally `attach_object` to fill the carried object's per-frame transforms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.clip import FPS
from hosig.body.skeleton import JOINT_NAMES, LEFT_LEG, RIGHT_LEG
from hosig.easing import smoothstep
from hosig.errors import UsageError
from hosig.frames import heading_to_orient, orient_to_heading
from hosig.motion.anchors import AnchorSet
from hosig.navigation.config import NavConfig

ACTIONS = ("reach", "pick", "pick-place")
PATH_EVERY = 8  # frames between pelvis anchors along a walk
SETTLE = 6  # frames standing at the stand point before the reach completes
REACH = 24  # frames from arrival to the grasp frame
HOLD = 24  # frames held after the grasp (reach) / after the lift (pick)
TOUCH_FRAMES = 10  # frames before the grasp in which the reaching hand may touch the scene
LIFT_FRAMES = 24
LIFT_M = 0.05  # the object comes up this much off its support ...
PULL_M = 0.20  # ... and this much towards the body: out from under the board above a shelf
PLACE_REACH = 24
RELEASE_AFTER_PLACE = 4  # frames from putting the object down to opening the hand
TURN_FRAMES_PER_RAD = 10  # frames per radian the body turns beyond 45 deg (at the stand point, or setting off)
TURN_EVERY = 4  # frames between heading anchors while it turns or stands
TURN_SETTLE = 6  # frames added to a turn on the spot before a walk sets off
WALK_HEADING_WEIGHT = 0.5
WALK_HEADING_FROM_S = 1.0  # walk headings start this long after setting off
HOLD_WRIST_EVERY = 2  # frames between wrist anchors while the hand lifts and holds the object
# The grasp pose's legs and free arm only condition the sampler (soft): pinned at one frame the
# legs made a foot jump 15-37 cm to the grasp stage's stance and back (the sampled walk plants its
# feet elsewhere), and the free hand swung 7-9 m/s away from where the grasp stage had left it.
SOFT_GRASP_LEGS = frozenset(LEFT_LEG + RIGHT_LEG)
FREE_ARM = {"left": ("left_collar", "left_shoulder", "left_elbow", "left_wrist"),
            "right": ("right_collar", "right_shoulder", "right_elbow", "right_wrist")}
STEP_BACK = 30
STEP_BACK_M = 0.35
STEP_BACK_TRIES_M = (STEP_BACK_M, 0.25, 0.15)  # shorter steps back where the room behind is closer
BODY_RADIUS_M = NavConfig.body_radius  # free floor a standing body needs around its pelvis (navigation's default)
ARRIVAL_S = 1.0  # the walking direction at arrival: the chord over the walk's last second
CARRY_ABOVE_PELVIS_M = 0.05  # a carried object's wrist height above the standing pelvis
STANDING_PELVIS_M = 0.93  # pelvis height over the floor of a standing adult, when no body is given
TOE_HEIGHT_M = 0.05  # toe joint above the sole, when no body is given


@dataclass
class Task:
    """The anchor timeline of one request and the frames that matter to the pipeline."""

    action: str
    anchors: AnchorSet
    n_frames: int
    grasp_frame: int  # -1 when no grasp
    release_frame: int  # -1 when the object is never released
    attached: tuple[int, int]  # frames [a, b) where the object follows the hand (a == b: never)
    hand: str
    path: np.ndarray  # (N,2) all legs' waypoints
    touch_spans: tuple[tuple[int, int], ...]  # frame spans [a, b) where the reaching wrist may touch the scene (grasp, place)
    place_frame: int = -1
    notes: list[str] = field(default_factory=list)
    reach_from: int = -1  # the frame the walk has arrived and the reach (turn, settle, arm) begins


def touch_spans_of(grasp_frame: int, release_frame: int, n_frames: int, arrive: int = -1) -> tuple[tuple[int, int], ...]:
    """Frame spans [a, b) where the reaching hand may touch the scene, from a task's or a clip's
    grasp and release frames (-1: none): the last `TOUCH_FRAMES` before the grasp (not before the
    walk arrived) to the end of the hold, or for a carry to the end of the lift; then from
    `TOUCH_FRAMES` before the object is put down to the end. The carrying arm keeps out of the
    scene on the way; the reaching arm does until its last frames before the grasp (a hand swept
    through a shelf board or a wall to an object beside it)."""
    g = grasp_frame
    if g < 0:
        return ()
    touch_from = max(arrive, g - TOUCH_FRAMES)
    if release_frame < 0:
        return ((touch_from, min(g + HOLD, n_frames)),)
    lf = g + LIFT_FRAMES
    place_frame = release_frame - RELEASE_AFTER_PLACE
    return ((touch_from, lf), (max(lf, place_frame - TOUCH_FRAMES), n_frames))


def _hold_frames(first: int, end: int) -> list[int]:
    """Frames that pin the pelvis while the body stands and holds: every 4th and the very last.

    Why the last: past the final anchor a window's tail is unconstrained, and the sampler would
    let the body wander (26 cm into a coffee table in the last second of a pick)."""
    return sorted(set(range(first, end, 4)) | ({end - 1} if end - 1 >= first else set()))


def _path_at(plan, t: float) -> np.ndarray:
    """(2,) where a timed NavPlan is at time ``t`` (seconds, clamped to the plan)."""
    times = np.asarray(plan.times, dtype=np.float64)
    way = np.asarray(plan.waypoints, dtype=np.float64)
    t = min(max(float(t), 0.0), float(times[-1]))
    return np.array([np.interp(t, times, way[:, 0]), np.interp(t, times, way[:, 1])])


def _walk(anchors: AnchorSet, plan, f0: int, weight: float = 1.0) -> int:
    """Pelvis xy anchors along a timed NavPlan starting at frame f0, hard on every frame (the
    guidance weighs every `PATH_EVERY`-th); returns its last frame.

    Hard: where the body walks, and when, is the navigation's (its path keeps the body's width
    clear of the furniture). Soft, a body whose arm brushed a chair fell behind its path and
    sprinted up to 7 m/s to catch it up at the next window."""
    n = int(round(float(plan.times[-1]) * FPS))
    for f in range(n + 1):
        x, y = _path_at(plan, f / FPS)
        anchors.add(f0 + f, "pelvis", [x, y, np.nan], hard=True, weight=weight if f % PATH_EVERY == 0 or f == n else 0.0)
    return f0 + n


def _stand_orient(heading: float) -> np.ndarray:
    return heading_to_orient(float(heading))


def _carry_height(body) -> float:
    """World wrist height (above the floor) for carrying an object in front of the waist."""
    if body is None:
        return STANDING_PELVIS_M + CARRY_ABOVE_PELVIS_M
    return body.standing_pelvis_height + CARRY_ABOVE_PELVIS_M


def _floor_under(joints: np.ndarray, body) -> float:
    """Floor z under a posed body (55,3): its lower toe joint minus the toe joint's standing height."""
    toe = TOE_HEIGHT_M if body is None else float(body.rest_joints_y[10, 1] - body.floor_y)
    return float(min(joints[10, 2], joints[11, 2])) - toe


def _arrival_heading(plan, fallback: float) -> float:
    """The direction the body walks in on the last second of a leg (``fallback`` when it barely moves).

    A chord, not the last segment: the planner's final few centimetres curl towards the stand
    point, while the body keeps facing the way it walked."""
    end = float(plan.times[-1])
    chord = _path_at(plan, end) - _path_at(plan, end - ARRIVAL_S)
    if np.linalg.norm(chord) < 0.3:
        return float(fallback)
    return float(np.arctan2(chord[1], chord[0]))


def _departure_heading(plan, fallback: float) -> float:
    """The direction a leg sets off in: towards where it first is 0.3 m from its start
    (``fallback`` when it never gets so far). Not a time window: a timed walk starts slowly."""
    start = _path_at(plan, 0.0)
    for t in np.arange(0.1, float(plan.times[-1]) + 0.1, 0.1):
        chord = _path_at(plan, t) - start
        if np.linalg.norm(chord) >= 0.3:
            return float(np.arctan2(chord[1], chord[0]))
    return float(fallback)


def _set_off(anchors: AnchorSet, plan, f0: int, facing: float, where: np.ndarray) -> int:
    """Turn on the spot at ``where`` (2,) from ``facing`` towards where ``plan`` sets off, if that
    is more than 45 degrees round; returns the frame the walk starts.

    Why: a walk that starts behind the body (a pick-place whose place lies back the way it came)
    was walked backwards for its first second, then its heading anchors asked for a half turn at
    once: the sampler spun the body round, through upside down, in a third of a second."""
    departure = _departure_heading(plan, fallback=facing)
    turn = _turn_frames(facing, departure)
    if turn == 0:
        return f0
    turn += TURN_SETTLE
    _turn(anchors, f0, f0 + turn, facing, departure)
    for f in range(f0, f0 + turn, PATH_EVERY):
        anchors.add(f, "pelvis", [where[0], where[1], np.nan])
    return f0 + turn


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _turn_frames(arrival: float, facing: float) -> int:
    """Extra reach frames to turn from the walking direction to the grasp's facing."""
    turn = abs(_wrap(facing - arrival))
    return int(round(max(0.0, turn - np.pi / 4) * TURN_FRAMES_PER_RAD))


def _turn(anchors: AnchorSet, f0: int, f1: int, arrival: float, facing: float) -> None:
    """Heading anchors turning the body from ``arrival`` to ``facing`` over [f0, f1].

    Why: the sampler walks in facing the path and, left alone, only meets the grasp's hard root
    orientation at the grasp frame; when the stand point faces back the way it came, the body
    spun 180 degrees in one frame (offset easing of opposite rotations passes through nothing).
    """
    turn = _wrap(facing - arrival)
    span = max(1, f1 - f0)
    for f in list(range(f0, f1, TURN_EVERY)) + [f1]:
        u = (f - f0) / span
        u = smoothstep(u)  # start and stop turning gently
        anchors.add(f, "heading", [arrival + u * turn])


def _face(anchors: AnchorSet, f0: int, f1: int, facing: float) -> None:
    """Heading anchors holding ``facing`` over [f0, f1) (standing, holding, placing)."""
    for f in range(f0, f1, TURN_EVERY):
        anchors.add(f, "heading", [facing])


def _walk_headings(anchors: AnchorSet, plan, f0: int) -> None:
    """Heading anchors along a walk: the body faces where it goes (a chord over one second).

    Why: with pelvis positions alone the sampler kept its start heading and side-stepped, so the
    heading it arrived with was unknown and the turn to the grasp could not be planned. The first
    second is left to the sampler: the body turns from wherever it faced as it sets off (a heading
    anchored there spun a body that faced the counter it had just picked from by 180 degrees)."""
    n = int(round(float(plan.times[-1]) * FPS))
    for f in range(int(WALK_HEADING_FROM_S * FPS), n, PATH_EVERY):
        step = _path_at(plan, f / FPS + 0.5) - _path_at(plan, f / FPS - 0.5)
        if np.linalg.norm(step) > 0.4:  # walking at > 0.4 m/s
            anchors.add(f0 + f, "heading", [float(np.arctan2(step[1], step[0]))], weight=WALK_HEADING_WEIGHT)


def _grasp_pose_anchors(anchors: AnchorSet, frame: int, body_pose: np.ndarray, hand: str,
                        free_arm_hard: bool = False) -> None:
    """The grasp's 21 body rotations at ``frame``: trunk and grasping arm hard, legs soft, the free
    arm soft unless ``free_arm_hard``."""
    rot = np.asarray(body_pose, dtype=np.float64).reshape(21, 3)
    free = () if free_arm_hard else FREE_ARM["left" if hand == "right" else "right"]
    for k in range(21):
        name = JOINT_NAMES[k + 1]
        anchors.add(frame, f"pose:{name}", rot[k], hard=k + 1 not in SOFT_GRASP_LEGS and name not in free)


def _hold_grasp_pose(anchors: AnchorSet, first: int, end: int, grasp, hand: str) -> None:
    """Keep the grasp pose over frames [first, end): pelvis, root, trunk, both arms and fingers hard
    (the grasp stage checked that whole pose against the scene; the planted legs stay the planter's).

    A touch is held still: left to the sampler between sparse soft anchors, a body stooped over a
    floor object untwisted and re-twisted its trunk by up to 170 degrees while the hand stayed put."""
    joints = np.asarray(grasp.joints, dtype=np.float64)
    orient = np.asarray(grasp.global_orient, dtype=np.float64)
    hand_pose = np.asarray(grasp.right_hand_pose if hand == "right" else grasp.left_hand_pose, dtype=np.float64)
    for f in range(first, end):
        anchors.add(f, "pelvis", joints[0], hard=True, weight=1.0 if f % PATH_EVERY == 0 else 0.0)
        anchors.add(f, "root_orient", orient, hard=True)
        _grasp_pose_anchors(anchors, f, grasp.body_pose, hand, free_arm_hard=True)
        anchors.add(f, f"{hand}_hand_pose", hand_pose, hard=True)


def _hold_pelvis_xy(anchors: AnchorSet, first: int, end: int, pelvis: np.ndarray) -> None:
    """Pin the pelvis over the ground where the grasp pose put it, hard, over frames [first, end);
    its height stays free (the trunk straightens as the object comes up). The grasp stage checked
    the body against the scene there: a lift or a hold never carries the hips into the furniture in
    front (a soft pin let the sampler drift into a counter, and the scene term, once past the
    counter's middle, pushed the body on through it and the wall behind)."""
    for f in range(first, end):
        anchors.add(f, "pelvis", [pelvis[0], pelvis[1], np.nan], hard=True, weight=1.0 if f % PATH_EVERY == 0 else 0.0)


def _wrist_path(anchors: AnchorSet, wrist_name: str, f0: int, f1: int, p0: np.ndarray, p1: np.ndarray,
                weight: float) -> None:
    """Wrist anchors every `HOLD_WRIST_EVERY` frames from p0 at f0 to p1 at f1 (eased), both ends included.

    Why dense: with a wrist anchor every 8 frames the sampler let the arm fall between them and the
    correction snapped it back at the anchored frame: a 40-80 cm pop of hand and object."""
    span = max(1, f1 - f0)
    for f in list(range(f0, f1, HOLD_WRIST_EVERY)) + [f1]:
        u = (f - f0) / span
        u = smoothstep(u)
        anchors.add(f, wrist_name, (1 - u) * p0 + u * p1, weight=weight)


PLACE_ABOVE_M = 0.01  # the hand brings the object's base this far above the place point (the settle closes it)
# Hand joints whose positions pin the grasping hand's world orientation at the place (with the wrist):
# a wrist position alone left the hand free to roll, and the object held in it came down tilted by
# 60-100 degrees with its base 6-27 cm above the surface while the wrist sat on its target.
PLACE_HAND_JOINTS = ("wrist", "index1", "pinky1")


def _yaw(points: np.ndarray, angle: float) -> np.ndarray:
    """(...,3) vectors turned by ``angle`` (rad) about +Z."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(points, dtype=np.float64) @ rot.T


def place_hand_targets(grasp, hand: str, base: np.ndarray, place_point: np.ndarray, turn: float,
                       above: float = PLACE_ABOVE_M) -> dict[str, np.ndarray]:
    """{joint name: (3,) world position} of the grasping hand that puts the object down at ``place_point``.

    The grasp pose's hand (wrist, index and pinky knuckles; ``grasp.joints`` (55,3) with the object
    at rest, its base at ``base`` (3,)) moved rigidly with the object: turned by ``turn`` (rad about +Z,
    the body's heading at the place minus at the grasp) about the base, then the base onto
    ``place_point`` (3,) + ``above``. Invariant: the object, held as it was grasped, stands upright on
    the place point (as it stood where it was picked up) when the hand meets these targets."""
    from hosig.body.skeleton import JOINT_INDEX

    joints = np.asarray(grasp.joints, dtype=np.float64)
    lift = np.asarray(place_point, dtype=np.float64) + np.array([0.0, 0.0, above])
    out = {}
    for part in PLACE_HAND_JOINTS:
        name = f"{hand}_{part}"
        out[name] = lift + _yaw(joints[JOINT_INDEX[name]] - base, turn)
    return out


def _hand_offsets(grasp, hand: str) -> dict[str, np.ndarray]:
    """{joint name: (3,) offset from the grasping wrist} of `PLACE_HAND_JOINTS` in the grasp pose (world axes)."""
    from hosig.body.skeleton import JOINT_INDEX

    joints = np.asarray(grasp.joints, dtype=np.float64)
    wrist = joints[JOINT_INDEX[f"{hand}_wrist"]]
    return {f"{hand}_{p}": joints[JOINT_INDEX[f"{hand}_{p}"]] - wrist for p in PLACE_HAND_JOINTS if p != "wrist"}


def _upright_hand(anchors: AnchorSet, offsets: dict[str, np.ndarray], wrist_name: str, f0: int, f1: int) -> None:
    """Knuckle anchors beside every ``wrist_name`` anchor already set in frames [f0, f1]: the hand keeps the grasp's world
    orientation (``offsets`` from `_hand_offsets`), so the object in it stays as upright as it stood.

    Why: with the wrist position alone the hand rolled 80 degrees in the 13 frames after the grasp
    (the lift), and the object rolled with it."""
    for a in [a for a in anchors.anchors if a.target == wrist_name and f0 <= a.frame <= f1]:
        for name, off in offsets.items():
            anchors.add(a.frame, name, np.asarray(a.value, dtype=np.float64) + off, weight=a.weight)


def step_back_distance(stand: np.ndarray, clearance: Callable[[np.ndarray], float] | None) -> float:
    """How far the body steps back from ``stand`` (x, y, heading) after putting an object down: the
    longest of `STEP_BACK_TRIES_M` along which ``clearance`` (free floor around an xy point, m)
    stays at least `BODY_RADIUS_M` (or what the stand point itself has, when less); 0 when none.
    Invariant: a step back never walks the body into what stands behind it."""
    if clearance is None:
        return STEP_BACK_M
    here = np.asarray(stand[:2], dtype=np.float64)
    back = -np.array([np.cos(stand[2]), np.sin(stand[2])])
    need = min(BODY_RADIUS_M, float(clearance(here)))
    for dist in STEP_BACK_TRIES_M:
        if all(clearance(here + back * d) >= need for d in np.linspace(0.05, dist, 4)):
            return float(dist)
    return 0.0


def build_task(action: str, legs: list, grasp=None, place_point=None, body=None, object_base=None,
               clearance: Callable[[np.ndarray], float] | None = None) -> Task:
    """Anchors for ``action`` from navigation ``legs`` (NavPlan; 2 for pick-place) and ``grasp``.

    ``place_point`` (3,) where the object's base goes (pick-place); ``object_base`` (3,) the
    object's base point at rest (default: the grasp's target point dropped by nothing), used to
    turn the place point into a wrist target. ``body`` is accepted for future per-body timing.
    ``clearance`` (xy (2,) -> free floor around it, m): how far the body may step back after a
    place (`step_back_distance`; None: always `STEP_BACK_M`).
    """
    if action not in ACTIONS:
        raise UsageError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if not legs:
        raise UsageError("build_task needs at least one navigation leg")
    if action == "pick-place" and (len(legs) < 2 or place_point is None):
        raise UsageError("pick-place needs two navigation legs (to the object, then to the place) and a place point")
    if action != "reach" and grasp is None:
        raise UsageError(f"action {action!r} needs a grasp (run the grasp stage first)")
    leg = legs[0]
    big = 10**6
    anchors = AnchorSet(big)
    start = np.asarray(leg.start, dtype=np.float64)
    anchors.add(0, "root_orient", _stand_orient(start[2]), weight=1.0)
    w0 = _set_off(anchors, leg, 0, float(start[2]), start[:2])
    arrive = _walk(anchors, leg, w0)
    _walk_headings(anchors, leg, w0)
    stand = np.asarray(leg.stand, dtype=np.float64)
    hand = getattr(grasp, "hand", "right") if grasp is not None else "right"
    wrist_name = f"{hand}_wrist"
    facing = orient_to_heading(np.asarray(grasp.global_orient, dtype=np.float64)) if grasp is not None else float(stand[2])
    arrival = _arrival_heading(leg, fallback=float(start[2]))
    g = arrive + REACH + _turn_frames(arrival, facing)
    _turn(anchors, arrive, g, arrival, facing)
    for f in range(arrive, g, PATH_EVERY):
        anchors.add(f, "pelvis", [stand[0], stand[1], np.nan])
    notes: list[str] = []
    if grasp is not None:
        joints = np.asarray(grasp.joints, dtype=np.float64)
        anchors.add(g, "pelvis", joints[0], hard=True)
        anchors.add(g, "root_orient", np.asarray(grasp.global_orient, dtype=np.float64), hard=True)
        _grasp_pose_anchors(anchors, g, grasp.body_pose, hand)
        hand_pose = np.asarray(grasp.right_hand_pose if hand == "right" else grasp.left_hand_pose, dtype=np.float64)
        other = np.asarray(grasp.left_hand_pose if hand == "right" else grasp.right_hand_pose, dtype=np.float64)
        anchors.add(g, f"{hand}_hand_pose", hand_pose, hard=True)
        anchors.add(g, f"{'left' if hand == 'right' else 'right'}_hand_pose", other, hard=True)
        wrist = np.asarray(grasp.wrist, dtype=np.float64)
    else:
        wrist = np.asarray(leg.target_point, dtype=np.float64)
        hand_pose = None
        anchors.add(g, "root_orient", _stand_orient(stand[2]))
        notes.append("no grasp given: the reach aims the right wrist at the target point")
    for f in range(g - 2, g + 3):
        anchors.add(f, wrist_name, wrist, weight=2.0 if f == g else 1.0)
    release, place_frame = -1, -1
    if action == "reach":
        end = g + HOLD
        _face(anchors, g, end, facing)
        for f in range(g + 3, end, 4):
            anchors.add(f, wrist_name, wrist, weight=0.5)
        if grasp is not None:
            _hold_grasp_pose(anchors, g + 1, end, grasp, hand)
        else:
            for f in _hold_frames(g + PATH_EVERY, end):
                anchors.add(f, "pelvis", [stand[0], stand[1], np.nan])
        attached = (g, g)
    else:
        pel_g = joints[0]
        toward = pel_g[:2] - wrist[:2]
        toward = toward / max(np.linalg.norm(toward), 1e-6)
        lifted = wrist + np.array([toward[0] * PULL_M, toward[1] * PULL_M, LIFT_M])
        # from the floor or a low shelf the object comes up to the waist: held 15 cm above the
        # floor, the body stayed bent double (the sampler stood up and the hand was pulled back down)
        lifted[2] = max(lifted[2], _floor_under(joints, body) + _carry_height(body))
        lf = g + LIFT_FRAMES
        _wrist_path(anchors, wrist_name, g + 3, lf, wrist, lifted, weight=1.0)
        _upright_hand(anchors, _hand_offsets(grasp, hand), wrist_name, g + 3, lf)
        for f in range(g, lf + 1, 8):
            anchors.add(f, f"{hand}_hand_pose", hand_pose)
        if action == "pick":
            end = lf + HOLD
            _hold_pelvis_xy(anchors, g + 1, end, pel_g)
            _face(anchors, g, end, facing)
            _wrist_path(anchors, wrist_name, lf + HOLD_WRIST_EVERY, end - 1, lifted, lifted, weight=0.5)
            for f in range(lf + 8, end, 8):
                anchors.add(f, f"{hand}_hand_pose", hand_pose)
            attached = (g, end)
        else:
            _hold_pelvis_xy(anchors, g + 1, lf + 1, pel_g)
            leg2 = legs[1]
            c0 = lf + 6
            _face(anchors, g, c0, facing)
            w0 = _set_off(anchors, leg2, c0, facing, pel_g[:2])
            arrive2 = _walk(anchors, leg2, w0)
            _walk_headings(anchors, leg2, w0)
            stand2 = np.asarray(leg2.stand, dtype=np.float64)
            arrival2 = _arrival_heading(leg2, fallback=facing)
            place_frame = arrive2 + PLACE_REACH + _turn_frames(arrival2, float(stand2[2]))
            _turn(anchors, arrive2, place_frame, arrival2, float(stand2[2]))
            for f in range(c0, place_frame + 1, 15):
                anchors.add(f, f"{hand}_hand_pose", hand_pose)
            for f in range(arrive2, place_frame + 1, PATH_EVERY):
                anchors.add(f, "pelvis", [stand2[0], stand2[1], np.nan])
            base = np.asarray(object_base if object_base is not None else leg.target_point, dtype=np.float64)
            turn = _wrap(float(stand2[2]) - facing)
            hand_at_place = place_hand_targets(grasp, hand, base, np.asarray(place_point, dtype=np.float64), turn)
            for f in range(place_frame - 1, place_frame + 4):
                for name, p in hand_at_place.items():
                    anchors.add(f, name, p, weight=2.0 if f == place_frame else 1.0)
            anchors.add(place_frame, "root_orient", _stand_orient(stand2[2]))
            release = place_frame + RELEASE_AFTER_PLACE
            anchors.add(release, f"{hand}_hand_pose", hand_pose)
            back = stand2[:2] - step_back_distance(stand2, clearance) * np.array([np.cos(stand2[2]), np.sin(stand2[2])])
            end = release + STEP_BACK + 10
            _face(anchors, place_frame, end, float(stand2[2]))
            for i, f in enumerate(range(release + 8, end, 8)):
                w = min(1.0, (f - release) / STEP_BACK)
                p = (1 - w) * stand2[:2] + w * back
                anchors.add(f, "pelvis", [p[0], p[1], np.nan])
            anchors.add(end - 1, "pelvis", [back[0], back[1], np.nan])
            attached = (g, release)
    anchors.n_frames = end
    anchors.anchors = [a for a in anchors.anchors if a.frame < end]
    path = np.concatenate([np.asarray(lg.waypoints, dtype=np.float64) for lg in legs[: (2 if action == "pick-place" else 1)]])
    touch_spans = touch_spans_of(g, release, end, arrive)
    return Task(action, anchors, end, g if grasp is not None else -1, release, attached, hand, path, touch_spans,
                place_frame, notes, reach_from=arrive)


def wrist_transforms(body, poses: np.ndarray, pelvis: np.ndarray, hand: str) -> np.ndarray:
    """(T,4,4) world transforms of a wrist (rotation of the wrist frame, position of the joint)."""
    from hosig.body.skeleton import JOINT_INDEX, chain_to_root

    j = JOINT_INDEX[f"{hand}_wrist"]
    with torch.no_grad():
        rot = body.full_pose_rotmats(torch.as_tensor(poses, dtype=torch.float32))  # (T,55,3,3)
        joints = body.fk(rot, torch.as_tensor(pelvis, dtype=torch.float32))
        chain = list(reversed(chain_to_root(j)))  # root .. wrist
        glob = rot[:, chain[0]]
        for k in chain[1:]:
            glob = glob @ rot[:, k]
    out = np.tile(np.eye(4, dtype=np.float32), (len(poses), 1, 1))
    out[:, :3, :3] = glob.numpy()
    out[:, :3, 3] = joints[:, j].numpy()
    return out


def attach_object(clip, task: Task, body, object_name: str,
                  settle: Callable[[np.ndarray], float] | None = None) -> None:
    """Fill ``clip.object_transforms`` (T,4,4): the object's motion relative to its rest placement.

    Identity before the grasp; from the grasp frame the object moves rigidly with the grasping
    wrist (relative to where the wrist was at the grasp frame, so it never jumps); after the
    release it is where it was put down, moved straight down (a short fall) or up by the gap
    ``settle`` reports for that put-down transform (see `hosig.pipeline.settle.make_settler`).
    """
    from hosig.pipeline.settle import settled_transforms

    t = clip.n_frames
    out = np.tile(np.eye(4, dtype=np.float32), (t, 1, 1))
    a, b = task.attached
    if b > a:
        pel = clip.trans + np.asarray(body.rest_joints_y[0], dtype=np.float32)
        wt = wrist_transforms(body, clip.poses, pel, task.hand)
        rel = wt[a:b] @ np.linalg.inv(wt[a])
        out[a:b] = rel
        if b < t:
            gap = float(settle(rel[-1])) if settle is not None else 0.0
            out[b:] = settled_transforms(rel[-1], gap, t - b)
    clip.object_name = object_name
    clip.object_transforms = out
