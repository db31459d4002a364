"""Regenerate Around Edits and Generate Variations (issue #20): bpy glue over `edits`.

`read_keys` turns the armature's action back into SMPL-X frames; `regenerate_spec` compares them
with the take stored on that action (`generation.load_take`), makes the anchors and the range and
returns the `generation.RunSpec` the queue streams into a new take (a new action: the edited one
stays, with a fake user); `variation_specs` makes N takes of the whole clip with other seeds.
Nothing here changes a key: a failed or cancelled run rolls back like any generation.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

from . import edits, rig
from .generation import RunSpec, load_take
from .protocol import BodyData


def _fcurves(action: bpy.types.Action) -> list:
    if hasattr(action, "layers"):
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves]
    return list(action.fcurves)


def _sampled(curves: dict[tuple[str, int], Any], path: str, width: int, frames: np.ndarray, default: np.ndarray) -> np.ndarray:
    """(T,width) values of ``path[0..width-1]`` at ``frames`` (keys linearly between; rest value without a curve)."""
    out = np.tile(default, (len(frames), 1)).astype(np.float64)
    for i in range(width):
        fc = curves.get((path, i))
        if fc is None or not len(fc.keyframe_points):
            continue
        co = np.empty(2 * len(fc.keyframe_points), dtype=np.float64)
        fc.keyframe_points.foreach_get("co", co)
        co = co.reshape(-1, 2)
        out[:, i] = np.interp(frames, co[:, 0], co[:, 1])
    return out


def read_keys(arm: bpy.types.Object, action: bpy.types.Action, body: BodyData, take: edits.Take) -> tuple[np.ndarray, np.ndarray]:
    """The armature's keys now at the take's frames -> (poses (T,165) wire convention, trans (T,3))."""
    curves = {(fc.data_path, fc.array_index): fc for fc in _fcurves(action)}
    frames = take.frame_start + np.arange(take.n_frames, dtype=np.float64)
    quats = np.stack([_sampled(curves, f'pose.bones["{n}"].rotation_quaternion', 4, frames, np.array([1.0, 0, 0, 0]))
                      for n in body.joint_names], 1)
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    locs = _sampled(curves, f'pose.bones["{body.joint_names[0]}"].location', 3, frames, np.zeros(3))
    rest_rot = rig.rest_rotations(arm, body.joint_names)
    poses = edits.poses_from_bones(quats, rest_rot)
    if body.hands_mean is not None:
        poses[:, 75:165] -= body.hands_mean
    return poses, edits.trans_from_locations(locs, body.rest_joints, rest_rot[0])


def _joints(body: BodyData, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    return edits.fk_joints(body.rest_joints, body.parents, body.full_pose(poses), trans)


def find_edits(shot, body: BodyData) -> tuple[edits.Take, list[dict]]:
    """(the take stored with the shot's current action, the anchors the animator's changes make)."""
    arm = shot.armature
    action = arm.animation_data.action if arm is not None and arm.animation_data else None
    take = load_take(action)
    if take is None:
        raise ValueError(f"shot {shot.name!r} has no generated take on its armature: generate it first")
    poses, trans = read_keys(arm, action, body, take)
    anchors = edits.find_anchors(body.joint_names, _joints(body, take.poses, take.trans), take.poses,
                                 _joints(body, poses, trans), poses)
    return take, anchors


def regenerate_spec(shot, body: BodyData, frame_range: tuple[int, int] | None = None) -> tuple[RunSpec, list[dict], tuple[int, int]]:
    """The run that regenerates the shot around the animator's edits.

    ``frame_range``: Blender frames to regenerate (None: the span around the edits, widened)."""
    take, anchors = find_edits(shot, body)
    if frame_range is not None:
        first, last = (int(f) - take.frame_start for f in frame_range)
        first, last = max(0, first), min(take.n_frames - 1, last)
        anchors = [a for a in anchors if first <= a["frame"] <= last]
    else:
        first, last = edits.pick_range(edits.edited_frames(anchors), take.n_frames)
    base = take.base_clip()
    seed = int(shot.seed) + int(shot.generations)

    def build(scene_id: str) -> dict[str, Any]:
        return {"scene": scene_id, "base_clip": base, "range": [first, last], "anchors": anchors, "seed": seed}

    return RunSpec(build, "regenerate", take.frame_start, seed), anchors, (first, last)


def variation_specs(shot, n: int) -> list[RunSpec]:
    """N takes of the whole shot with seeds after the shot's own, each scored by the server."""
    arm = shot.armature
    take = load_take(arm.animation_data.action if arm is not None and arm.animation_data else None)
    if take is None:
        raise ValueError(f"shot {shot.name!r} has no generated take: generate it first")
    base = take.base_clip()
    specs = []
    for k in range(n):
        seed = int(shot.seed) + int(shot.generations) + k + 1

        def build(scene_id: str, seed: int = seed) -> dict[str, Any]:
            return {"scene": scene_id, "base_clip": base, "range": [0, take.n_frames - 1], "anchors": [], "seed": seed}

        specs.append(RunSpec(build, "variation", take.frame_start, seed))
    return specs


def ranked_takes(shot) -> list[int]:
    """Indices of the shot's takes, best first (scored takes by score, then the unscored in order)."""
    takes = list(shot.takes)
    return sorted(range(len(takes)), key=lambda i: (takes[i].score < 0, takes[i].score, i))


def use_take(shot, index: int) -> None:
    """Put take ``index``'s action on the shot's armature (the other takes stay in the file)."""
    take = shot.takes[index]
    arm = shot.armature
    if arm is None or take.action is None:
        raise ValueError("the take or the armature is gone")
    if arm.animation_data is None:
        arm.animation_data_create()
    arm.animation_data.action = take.action
    if hasattr(arm.animation_data, "action_slot") and take.action.slots:
        arm.animation_data.action_slot = take.action.slots[0]
    shot.active_take = index


def keep_take(shot, index: int) -> None:
    """Keep take ``index``: use it and delete the other variation takes (and their actions)."""
    use_take(shot, index)
    kept = shot.takes[index].action
    for i in reversed(range(len(shot.takes))):
        take = shot.takes[i]
        if i != index and take.kind == "variation":
            if take.action is not None and take.action != kept and take.action.users <= 1:
                bpy.data.actions.remove(take.action)
            shot.takes.remove(i)
    shot.active_take = next(i for i, t in enumerate(shot.takes) if t.action == kept)
