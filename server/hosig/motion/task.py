"""From planned walks + a grasp to the motion stage's anchor timeline (the "task").

`build_task` turns the navigation legs (timed waypoints) and the grasp pose into anchors:
walk (pelvis xy along the timed path), settle at the stand point, reach (grasp pose at the grasp
frame: pelvis, root and body rotations and the hand's finger pose hard; wrist position soft around
it), then per action:
  reach       touch and hold
  pick        grasp, lift the object towards the body, hold
  pick-place  grasp, lift, carry along the second leg, put the object down at the place point,
              release (fingers open), step back
The pipeline calls ``build_task`` then ``synthesize(model, task.anchors, body, ...,
grasp_frame=task.grasp_frame, release_frame=task.release_frame, scene_skip=task.scene_skip)`` and
finally `attach_object` to fill the carried object's per-frame transforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.errors import UsageError
from hosig.frames import heading_to_orient
from hosig.motion.anchors import AnchorSet

FPS = 30
ACTIONS = ("reach", "pick", "pick-place")
PATH_EVERY = 8  # frames between pelvis anchors along a walk
SETTLE = 6  # frames standing at the stand point before the reach completes
REACH = 24  # frames from arrival to the grasp frame
HOLD = 24  # frames held after the grasp (reach) / after the lift (pick)
LIFT_FRAMES = 24
LIFT_M = 0.15
PLACE_REACH = 24
STEP_BACK = 30
STEP_BACK_M = 0.35


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
    scene_skip: tuple[int, int]  # frames where the wrists may touch the scene (reach/grasp/place)
    place_frame: int = -1
    notes: list[str] = field(default_factory=list)


def _hold_frames(first: int, end: int) -> list[int]:
    """Frames that pin the pelvis while the body stands and holds: every 4th and the very last.

    Why the last: past the final anchor a window's tail is unconstrained, and the sampler would
    let the body wander (26 cm into a coffee table in the last second of a pick)."""
    return sorted(set(range(first, end, 4)) | ({end - 1} if end - 1 >= first else set()))


def _walk(anchors: AnchorSet, plan, f0: int, weight: float = 1.0) -> int:
    """Pelvis xy anchors along a timed NavPlan starting at frame f0; returns its last frame."""
    times = np.asarray(plan.times, dtype=np.float64)
    way = np.asarray(plan.waypoints, dtype=np.float64)
    n = int(round(float(times[-1]) * FPS))
    frames = list(range(0, n, PATH_EVERY)) + [n]
    for f in frames:
        t = f / FPS
        x, y = np.interp(t, times, way[:, 0]), np.interp(t, times, way[:, 1])
        anchors.add(f0 + f, "pelvis", [x, y, np.nan], weight=weight)
    return f0 + n


def _stand_orient(heading: float) -> np.ndarray:
    return heading_to_orient(float(heading))


def build_task(action: str, legs: list, grasp=None, place_point=None, body=None, object_base=None) -> Task:
    """Anchors for ``action`` from navigation ``legs`` (NavPlan; 2 for pick-place) and ``grasp``.

    ``place_point`` (3,) where the object's base goes (pick-place); ``object_base`` (3,) the
    object's base point at rest (default: the grasp's target point dropped by nothing), used to
    turn the place point into a wrist target. ``body`` is accepted for future per-body timing.
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
    arrive = _walk(anchors, leg, 0)
    stand = np.asarray(leg.stand, dtype=np.float64)
    hand = getattr(grasp, "hand", "right") if grasp is not None else "right"
    wrist_name = f"{hand}_wrist"
    g = arrive + REACH
    for f in range(arrive, g, PATH_EVERY):
        anchors.add(f, "pelvis", [stand[0], stand[1], np.nan])
    notes: list[str] = []
    if grasp is not None:
        joints = np.asarray(grasp.joints, dtype=np.float64)
        anchors.add(g, "pelvis", joints[0], hard=True)
        anchors.add(g, "root_orient", np.asarray(grasp.global_orient, dtype=np.float64), hard=True)
        anchors.add(g, "body_pose", np.asarray(grasp.body_pose, dtype=np.float64), hard=True)
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
    scene_skip = (arrive, g + HOLD)
    release, place_frame = -1, -1
    if action == "reach":
        end = g + HOLD
        for f in range(g + 3, end, 4):
            anchors.add(f, wrist_name, wrist, weight=0.5)
            if hand_pose is not None:
                anchors.add(f, f"{hand}_hand_pose", hand_pose)
        for f in _hold_frames(g + PATH_EVERY, end):
            anchors.add(f, "pelvis", [joints[0][0], joints[0][1], np.nan] if grasp is not None else [stand[0], stand[1], np.nan])
        attached = (g, g)
    else:
        pel_g = joints[0]
        toward = pel_g[:2] - wrist[:2]
        toward = toward / max(np.linalg.norm(toward), 1e-6)
        lifted = wrist + np.array([toward[0] * 0.1, toward[1] * 0.1, LIFT_M])
        lf = g + LIFT_FRAMES
        anchors.add(lf, wrist_name, lifted, weight=1.0)
        for f in range(g, lf + 1, 8):
            anchors.add(f, f"{hand}_hand_pose", hand_pose)
            anchors.add(f, "pelvis", [pel_g[0], pel_g[1], np.nan])
        if action == "pick":
            end = lf + HOLD
            for f in range(lf + 8, end, 8):
                anchors.add(f, f"{hand}_hand_pose", hand_pose)
                anchors.add(f, wrist_name, lifted, weight=0.5)
            for f in _hold_frames(lf + 4, end):
                anchors.add(f, "pelvis", [pel_g[0], pel_g[1], np.nan])
            attached = (g, end)
        else:
            leg2 = legs[1]
            c0 = lf + 6
            arrive2 = _walk(anchors, leg2, c0)
            for f in range(c0, arrive2 + PLACE_REACH + 1, 15):
                anchors.add(f, f"{hand}_hand_pose", hand_pose)
            stand2 = np.asarray(leg2.stand, dtype=np.float64)
            place_frame = arrive2 + PLACE_REACH
            for f in range(arrive2, place_frame + 1, PATH_EVERY):
                anchors.add(f, "pelvis", [stand2[0], stand2[1], np.nan])
            base = np.asarray(object_base if object_base is not None else leg.target_point, dtype=np.float64)
            wrist_place = np.asarray(place_point, dtype=np.float64) + (wrist - base) + np.array([0, 0, 0.01])
            for f in range(place_frame - 1, place_frame + 4):
                anchors.add(f, wrist_name, wrist_place, weight=2.0 if f == place_frame else 1.0)
            anchors.add(place_frame, "root_orient", _stand_orient(stand2[2]))
            release = place_frame + 4
            anchors.add(release, f"{hand}_hand_pose", hand_pose)
            back = stand2[:2] - STEP_BACK_M * np.array([np.cos(stand2[2]), np.sin(stand2[2])])
            end = release + STEP_BACK + 10
            for i, f in enumerate(range(release + 8, end, 8)):
                w = min(1.0, (f - release) / STEP_BACK)
                p = (1 - w) * stand2[:2] + w * back
                anchors.add(f, "pelvis", [p[0], p[1], np.nan])
            anchors.add(end - 1, "pelvis", [back[0], back[1], np.nan])
            attached = (g, release)
            scene_skip = (arrive, end)
    anchors.n_frames = end
    anchors.anchors = [a for a in anchors.anchors if a.frame < end]
    path = np.concatenate([np.asarray(lg.waypoints, dtype=np.float64) for lg in legs[: (2 if action == "pick-place" else 1)]])
    return Task(action, anchors, end, g if grasp is not None else -1, release, attached, hand, path, scene_skip,
                place_frame, notes)


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


def attach_object(clip, task: Task, body, object_name: str) -> None:
    """Fill ``clip.object_transforms`` (T,4,4): the object's motion relative to its rest placement.

    Identity before the grasp; from the grasp frame the object moves rigidly with the grasping
    wrist (relative to where the wrist was at the grasp frame, so it never jumps); after the
    release it stays where it was put down.
    """
    t = clip.n_frames
    out = np.tile(np.eye(4, dtype=np.float32), (t, 1, 1))
    a, b = task.attached
    if b > a:
        pel = clip.trans + np.asarray(body.rest_joints_y[0], dtype=np.float32)
        wt = wrist_transforms(body, clip.poses, pel, task.hand)
        rel = wt[a:b] @ np.linalg.inv(wt[a])
        out[a:b] = rel
        out[b:] = rel[-1]
    clip.object_name = object_name
    clip.object_transforms = out
