"""Retargeting in Blender: read the rigs, sample the source, key the target, export FBX/BVH.

Thin over the bpy-free `retarget` (math) and `bonemaps` (which bone is which). The source is a
keyed SMPL-X armature (`clip_import` / a streamed shot); the target is any humanoid armature. The
result is one new action per shot on the target (a slotted action on Blender 4.4+), optionally
pushed onto an NLA strip; the carried object gets a new action that follows the target's hand.
Nothing of the source changes (it may be hidden).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import bonemaps
from . import retarget as core
from .keyframes import ActionWriter, preserve_action
from .posemath import make_continuous, quat_to_mat
from .rig import BODY_TAG

RETARGET_TAG = "hosig_retarget"  # custom property on retargeted actions: the source armature's name
SMPLX_JOINTS = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
                "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
                "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")


@dataclass
class RetargetOptions:
    """How a retarget is keyed: ``preset`` (None: detect, else "auto" or a `bonemaps.PRESETS`
    name), ``overrides`` joint -> bone ("" unmaps), ``floor_z`` (world floor of the clip),
    ``tolerance_quat`` / ``tolerance_loc`` (None: a key on every frame), ``nla`` (push the action
    onto an NLA strip), ``grasp_frame`` (clip frame; None: from the clip file or the object's motion)."""

    preset: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    floor_z: float = 0.0
    tolerance_quat: float | None = 1e-4  # quaternion components (~0.01 degree): planted feet stay put
    tolerance_loc: float | None = 1e-4  # metres
    nla: bool = False
    grasp_frame: int | None = None
    action_name: str | None = None
    bone_map: dict[str, str] | None = None  # a complete map (the panel's): used as is, no preset


@dataclass
class RetargetResult:
    action: bpy.types.Action
    preset: str
    bone_map: dict[str, str]
    unmapped: list[str]  # target bones no SMPL-X joint drives (they keep their rest pose)
    scale: float
    frames: np.ndarray  # (T,) scene frames keyed
    planted: np.ndarray  # (T,2) source planted masks (left, right)
    grasp_frame: int | None  # clip frame
    grasp_side: str | None
    object_name: str | None
    object_action: str | None
    keys: int
    # a control rig's self-check (`control_bake`): max distance (cm) of the evaluated ORG bones
    # from the solve over the checked frames, FK ("fk_cm") and switched to IK ("ik_ends_cm")
    checks: dict[str, float] | None = None


class RetargetError(ValueError):
    """A retarget that cannot run (no humanoid, missing bones, not a HOSIG armature)."""


# -- reading rigs -------------------------------------------------------------------------------

def _mat(m) -> np.ndarray:
    return np.array([list(row) for row in m], dtype=np.float64)


def rig_of(arm: bpy.types.Object) -> core.Rig:
    """The armature's bones as a `retarget.Rig` (rest matrices in armature space)."""
    bones = list(arm.data.bones)
    index = {b.name: i for i, b in enumerate(bones)}
    rest = np.empty((len(bones), 4, 4))
    flat = np.empty(len(bones) * 16, dtype=np.float32)
    arm.data.bones.foreach_get("matrix_local", flat)
    rest[:] = flat.reshape(-1, 4, 4).transpose(0, 2, 1)  # foreach_get is column-major
    parents = [index[b.parent.name] if b.parent is not None else -1 for b in bones]
    rig = core.Rig([b.name for b in bones], parents, rest, _mat(arm.matrix_world))
    # orthonormalise the float32 rotations (Blender stores float32)
    u, _, vt = np.linalg.svd(rig.rest[:, :3, :3])
    rig.rest[:, :3, :3] = u @ vt
    rig.__post_init__()
    return rig


def check_source(arm: bpy.types.Object) -> None:
    """The source must be a HOSIG SMPL-X armature with an action."""
    if arm is None or arm.type != "ARMATURE":
        raise RetargetError("the source is not an armature")
    missing = [j for j in SMPLX_JOINTS if j not in arm.data.bones]
    if arm.get(BODY_TAG) is None or missing:
        raise RetargetError(f"{arm.name!r} is not a HOSIG SMPL-X armature (missing bones: {', '.join(missing[:4]) or 'none'}; "
                            "import the clip first)")
    if arm.animation_data is None or arm.animation_data.action is None:
        raise RetargetError(f"{arm.name!r} has no action to retarget")


def resolve_map(target: bpy.types.Object, options: RetargetOptions) -> tuple[str, dict[str, str]]:
    """The bone map for ``target`` (preset, detected, or automatic, then the overrides), checked."""
    if target is None or target.type != "ARMATURE":
        raise RetargetError(f"{getattr(target, 'name', target)!r} is not an armature")
    rig = rig_of(target)
    try:
        if options.bone_map:
            name, m = "custom", {j: b for j, b in options.bone_map.items() if b}
        else:
            name, m = bonemaps.resolve_map(rig.names, rig.parents, rig.rest_heads_world(), options.preset, options.overrides)
        bonemaps.check_map(m, rig.names, f"armature {target.name!r}")
    except bonemaps.NotHumanoidError as err:
        raise RetargetError(f"armature {target.name!r} is not a humanoid this can retarget onto: {err}") from None
    except ValueError as err:
        raise RetargetError(str(err)) from None
    if not is_control_map(target, m):
        check_unconstrained(target, m)
    return name, m


def is_control_map(target: bpy.types.Object, bone_map: dict[str, str]) -> bool:
    """A generated Rigify rig (its controls present) mapped onto its ORG bones: retargeted by
    baking onto the controls (`control_bake`), not by keying the mapped bones."""
    return bonemaps.is_control_rig([b.name for b in target.data.bones]) and all(
        b.startswith(bonemaps.RIGIFY_ORG) for b in bone_map.values())


def check_unconstrained(target: bpy.types.Object, bone_map: dict[str, str]) -> None:
    """Keys on a bone that a constraint drives would be overridden (a generated control rig's
    deform bones follow its controls): refuse such a map with the bones named."""
    driven = [b for b in bone_map.values()
              if any(c.enabled and c.influence > 0 for c in target.pose.bones[b].constraints)]
    if not driven:
        return
    hint = ("it is a generated Rigify rig: use the rigify_rig bone map (its ORG bones, baked onto the FK controls)"
            if target.data.get("rig_id") is not None else "retarget onto a deform-only copy of the rig")
    raise RetargetError(f"armature {target.name!r}: {len(driven)} mapped bones are driven by constraints "
                        f"({', '.join(driven[:3])}{', ...' if len(driven) > 3 else ''}), so keys on them would be "
                        f"overridden; {hint}")


# -- sampling -----------------------------------------------------------------------------------

def action_fcurves(obj: bpy.types.Object) -> list:
    """The F-curves of the object's active action (its slot's channelbag on layered actions)."""
    ad = obj.animation_data
    action = ad.action if ad is not None else None
    if action is None:
        return []
    if hasattr(action, "layers") and len(action.layers):
        slot = getattr(ad, "action_slot", None)
        out = []
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot) if slot is not None else None
                if bag is not None:
                    out.extend(bag.fcurves)
        return out
    return list(getattr(action, "fcurves", []))


_BONE_PATH = re.compile(r'^pose\.bones\["(.+)"\]\.(rotation_quaternion|location)$')


def source_bases(arm: bpy.types.Object, frames: np.ndarray) -> np.ndarray:
    """(T,n,4,4) pose bases of every bone of ``arm`` at scene ``frames`` from its action's curves
    (quaternion rotation and location channels; bones without keys at rest)."""
    rig_names = [b.name for b in arm.data.bones]
    index = {n: i for i, n in enumerate(rig_names)}
    T, n = len(frames), len(rig_names)
    quat = np.zeros((T, n, 4))
    quat[..., 0] = 1.0
    loc = np.zeros((T, n, 3))
    for fc in action_fcurves(arm):
        m = _BONE_PATH.match(fc.data_path)
        if m is None or m.group(1) not in index:
            continue
        b = index[m.group(1)]
        values = np.array([fc.evaluate(float(f)) for f in frames])
        if m.group(2) == "rotation_quaternion":
            quat[:, b, fc.array_index] = values
        else:
            loc[:, b, fc.array_index] = values
    basis = np.tile(np.eye(4), (T, n, 1, 1))
    basis[..., :3, :3] = quat_to_mat(quat)
    basis[..., :3, 3] = loc
    return basis


def sample_world(scene: bpy.types.Scene, items: list[tuple[bpy.types.Object, str | None]], frames: np.ndarray) -> np.ndarray:
    """(T,k,4,4) world matrices of pose bones (obj, bone name) or objects (obj, None) at ``frames``,
    as Blender evaluates them (constraints, drivers included)."""
    current = scene.frame_current
    out = np.empty((len(frames), len(items), 4, 4))
    for t, f in enumerate(frames):
        scene.frame_set(int(f))
        for k, (obj, bone) in enumerate(items):
            out[t, k] = _mat(obj.matrix_world @ obj.pose.bones[bone].matrix) if bone else _mat(obj.matrix_world)
    scene.frame_set(current)
    return out


def object_world_from_action(obj: bpy.types.Object, action: bpy.types.Action, frames: np.ndarray) -> np.ndarray:
    """(T,4,4) world matrices of ``obj`` played by ``action`` at ``frames``, from the action's
    location / rotation / scale curves (no scene evaluation: far cheaper than `sample_world`;
    the object's parent, if any, is taken as still)."""
    from mathutils import Euler

    T = len(frames)
    channels = {"location": np.tile(np.array(obj.location), (T, 1)), "scale": np.tile(np.array(obj.scale), (T, 1)),
                "rotation_quaternion": np.tile(np.array(obj.rotation_quaternion), (T, 1)),
                "rotation_euler": np.tile(np.array(obj.rotation_euler), (T, 1))}
    slot = action.slots[0] if len(getattr(action, "slots", [])) else None
    curves = []
    if hasattr(action, "layers") and len(action.layers):
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot) if slot is not None else None
                if bag is not None:
                    curves.extend(bag.fcurves)
    else:
        curves = list(getattr(action, "fcurves", []))
    for fc in curves:
        if fc.data_path in channels:
            channels[fc.data_path][:, fc.array_index] = [fc.evaluate(float(f)) for f in frames]
    if obj.rotation_mode == "QUATERNION":
        rot = quat_to_mat(channels["rotation_quaternion"])
    else:
        rot = np.array([_mat(Euler(tuple(e), obj.rotation_mode).to_matrix()) for e in channels["rotation_euler"]])
    basis = np.tile(np.eye(4), (T, 1, 1))
    basis[:, :3, :3] = rot * channels["scale"][:, None, :]
    basis[:, :3, 3] = channels["location"]
    if obj.parent is not None:
        basis = _mat(obj.parent.matrix_world) @ _mat(obj.matrix_parent_inverse) @ basis
    return basis


def rest_floor(arm: bpy.types.Object, fallback_bones: list[str]) -> float:
    """World height the rig stands on in its rest pose: the lowest vertex of the meshes it deforms
    (rest coordinates), else the armature's origin (below the ``fallback_bones`` heads)."""
    lows = []
    for obj in bpy.data.objects:
        if obj.type != "MESH" or len(obj.data.vertices) == 0:
            continue
        if not (obj.parent == arm or any(m.type == "ARMATURE" and m.object == arm for m in obj.modifiers)):
            continue
        co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
        obj.data.vertices.foreach_get("co", co)
        world = co.reshape(-1, 3) @ _mat(obj.matrix_world)[:3, :3].T + _mat(obj.matrix_world)[:3, 3]
        lows.append(float(world[:, 2].min()))
    if lows:
        return min(lows)
    heads = [float((arm.matrix_world @ arm.data.bones[b].head_local).z) for b in fallback_bones if b in arm.data.bones]
    return min([float(arm.matrix_world.translation.z), *heads])


def keyed_frames(arm: bpy.types.Object) -> np.ndarray:
    lo, hi = arm.animation_data.action.frame_range
    return np.arange(int(round(lo)), int(round(hi)) + 1)


# -- the carried object ---------------------------------------------------------------------------

def carried_object(source: bpy.types.Object) -> tuple[bpy.types.Object | None, bpy.types.Action | None]:
    from .clip_import import OBJECT_ACTION_TAG, OBJECT_TAG

    obj = bpy.data.objects.get(str(source.get(OBJECT_TAG, "")))
    action = bpy.data.actions.get(str(source.get(OBJECT_ACTION_TAG, "")))
    return obj, action


def _assign(obj: bpy.types.Object, action: bpy.types.Action | None) -> None:
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    if action is not None and hasattr(ad, "action_slot") and len(getattr(action, "slots", [])):
        ad.action_slot = action.slots[0]


def grasp_from_clip(source: bpy.types.Object) -> int | None:
    """The clip file's grasp frame (clip frames, 0 = first), when the armature came from one."""
    from .clip_import import CLIP_TAG, read_clip

    path = source.get(CLIP_TAG)
    if not path or not Path(str(path)).is_file():
        return None
    try:
        g = read_clip(str(path)).grasp_frame
    except ValueError:
        return None
    return g if g >= 0 else None


def grasp_from_object(obj_world: np.ndarray) -> int | None:
    """(T,4,4) the object's world matrices -> the first frame it moves from its start, or None."""
    moved = np.abs(obj_world - obj_world[:1]).max(axis=(1, 2)) > 1e-5
    return int(np.argmax(moved)) - 1 if moved.any() else None


# -- the retarget -------------------------------------------------------------------------------

@dataclass
class Solution:
    """A clip solved onto a target skeleton (not yet keyed): ``mats`` (T,n,4,4) armature-space
    pose matrices of every bone of ``rig``, ``hips`` its hips index, ``t_idx`` (m,) the mapped
    bones, the source's planted masks, the grasp (clip frame, side), the carried object and its
    source world matrices, and the source joint tracks ``head`` (world)."""

    rig: core.Rig
    mats: np.ndarray
    hips: int
    t_idx: np.ndarray
    frames: np.ndarray
    masks: np.ndarray
    scale: float
    grasp: int | None
    side: str | None
    obj: bpy.types.Object | None
    obj_world: np.ndarray | None
    head: dict[str, np.ndarray]


def retarget(source: bpy.types.Object, target: bpy.types.Object, options: RetargetOptions | None = None) -> RetargetResult:
    """Key ``target`` with the motion of the SMPL-X armature ``source`` (see `retarget` module).
    A generated Rigify rig mapped onto its ORG bones is baked onto its FK controls
    (`control_bake`).

    Raises `RetargetError` (nothing created) when either rig does not fit."""
    options = options or RetargetOptions()
    check_source(source)
    preset, bone_map = resolve_map(target, options)
    if is_control_map(target, bone_map):
        from . import control_bake

        return control_bake.retarget_control_rig(source, target, preset, bone_map, options)
    tgt_rig = rig_of(target)
    sol = solve(source, target, tgt_rig, bone_map, options)
    quats, locs = core.basis_channels(core.pose_to_basis(tgt_rig, sol.mats))
    name = options.action_name or f"{source.name}_{target.name}"
    keyed = _moving_bones(quats, sol.t_idx, sol.hips)
    action, keys = _key_target(target, name, sol.frames, quats, locs, sol.hips, tgt_rig, keyed, options)
    action[RETARGET_TAG] = source.name
    return finish(source, target, sol, preset, bone_map, action, keys, options)


def finish(source: bpy.types.Object, target: bpy.types.Object, sol: Solution, preset: str, bone_map: dict[str, str],
           action: bpy.types.Action, keys: int, options: RetargetOptions) -> RetargetResult:
    """Re-key the carried object to follow the target's hand and assemble the result."""
    obj_action_name = None
    if sol.obj is not None and sol.obj_world is not None and sol.side is not None:
        tgt_wrist = sol.rig.to_world(sol.mats[:, sol.rig.index[bone_map[f"{sol.side}_wrist"]], :3, 3])
        obj_action_name = _key_object(sol.obj, target, sol.frames, sol.obj_world, sol.head[f"{sol.side}_wrist"], tgt_wrist,
                                      sol.grasp, options)
    unmapped = sorted(set(b.name for b in target.data.bones) - set(bone_map.values()))
    return RetargetResult(action, preset, bone_map, unmapped, sol.scale, sol.frames, sol.masks, sol.grasp, sol.side,
                          sol.obj.name if sol.obj is not None else None, obj_action_name, keys)


def solve(source: bpy.types.Object, target: bpy.types.Object, tgt_rig: core.Rig, bone_map: dict[str, str],
          options: RetargetOptions) -> Solution:
    """The clip of ``source`` solved onto ``tgt_rig`` (the bones of ``target``, or a subset of
    them): rotations transferred, hips placed and scaled, legs and the grasping arm by IK."""
    frames = keyed_frames(source)
    src_rig = rig_of(source)
    joints = list(bone_map)
    s_idx = np.array([src_rig.index[j] for j in joints])
    t_idx = np.array([tgt_rig.index[bone_map[j]] for j in joints])
    src_world = src_rig.world @ core.forward_kinematics(src_rig, source_bases(source, frames))  # (T,n,4,4)
    src_rest_w = src_rig.world @ src_rig.rest
    head = {j: src_world[:, src_rig.index[j], :3, 3] for j in SMPLX_JOINTS}  # (T,3) each, world
    floors = (rest_floor(source, ["left_foot", "right_foot"]), rest_floor(target, [bone_map.get("left_foot", bone_map["left_ankle"])]))
    scale = _scale(src_rig, tgt_rig, bone_map, floors, target.name)
    obj, obj_world_src, grasp, side = _grasp(source, head, frames, options)
    pivot = head[f"{side}_wrist"][grasp] if side else head["pelvis"][0]
    place = core.Proportion(pivot.copy(), scale, options.floor_z)
    hips = tgt_rig.index[bone_map["pelvis"]]
    hips_w = place(head["pelvis"])
    tgt_rest_heads = tgt_rig.rest_heads_world()
    align = core.rest_alignment(joints, bonemaps.CHILD, src_rest_w[s_idx, :3, 3], tgt_rest_heads[t_idx])
    transfer = core.Transfer(tgt_rig, t_idx, src_rest_w[s_idx, :3, :3], src_world[:, s_idx, :3, :3], hips, hips_w, align)
    rotations = transfer.desired()
    mats = core.solve_pose(tgt_rig, t_idx, rotations, hips, tgt_rig.to_local(hips_w))
    masks, legs = _legs(src_rig, tgt_rig, bone_map, head, mats, place, floors)
    _rotations, mats = _reach(tgt_rig, t_idx, rotations, hips, hips_w, legs, bone_map, side, grasp, head)
    return Solution(tgt_rig, mats, hips, t_idx, frames, masks, scale, grasp, side, obj, obj_world_src, head)


def _scale(src_rig: core.Rig, tgt_rig: core.Rig, bone_map: dict[str, str], floors: tuple[float, float], name: str) -> float:
    """The leg-length ratio: target hip height over its rest floor / the source's."""
    src_h = float(src_rig.rest_heads_world()[src_rig.index["pelvis"], 2] - floors[0])
    tgt_h = float(tgt_rig.rest_heads_world()[tgt_rig.index[bone_map["pelvis"]], 2] - floors[1])
    if src_h <= 0.05 or tgt_h <= 0.05:
        raise RetargetError(f"hip heights {src_h:.2f} m (source) / {tgt_h:.2f} m ({name!r}) over the rest floor: "
                            "is the rig standing upright with Z up?")
    return tgt_h / src_h


def _grasp(source: bpy.types.Object, head: dict[str, np.ndarray], frames: np.ndarray, options: RetargetOptions):
    """(carried object or None, its source world matrices (T,4,4) or None, grasp clip frame or
    None, grasping side or None): the grasp frame from the options, the clip file, or the first
    frame the object moves."""
    obj, obj_action = carried_object(source)
    obj_world = object_world_from_action(obj, obj_action, frames) if obj is not None and obj_action is not None else None
    grasp = options.grasp_frame if options.grasp_frame is not None else grasp_from_clip(source)
    if grasp is None and obj_world is not None:
        grasp = grasp_from_object(obj_world)
    if grasp is not None and not 0 <= grasp < len(frames):
        grasp = None
    side = _grasp_side(head, obj_world, grasp) if grasp is not None else None
    return obj, obj_world, grasp, side


def _legs(src_rig: core.Rig, tgt_rig: core.Rig, bone_map: dict[str, str], head: dict[str, np.ndarray], mats: np.ndarray,
          place: core.Proportion, floors: tuple[float, float]) -> tuple[np.ndarray, list[core.Limb]]:
    """((T,2) source planted masks, the two leg limbs): each target ball of foot goes where the
    source's does (placed by ``place``, at the target's own standing height), held while planted;
    the ankle goal is that minus the ball's offset from the ankle (rigid with the foot's rotation)."""
    T = mats.shape[0]
    masks = np.zeros((T, 2), bool)
    limbs = []
    src_heads, tgt_heads = src_rig.rest_heads_world(), tgt_rig.rest_heads_world()
    for k, sd in enumerate(("left", "right")):
        ball_j = f"{sd}_foot" if f"{sd}_foot" in bone_map else f"{sd}_ankle"
        masks[:, k] = core.planted(head[f"{sd}_foot"])
        src_rest_h = float(src_heads[src_rig.index[ball_j], 2] - floors[0])
        tgt_rest_h = float(tgt_heads[tgt_rig.index[bone_map[ball_j]], 2] - floors[1])
        goal = place(head[ball_j])
        goal[:, 2] += tgt_rest_h - place.scale * src_rest_h
        goal = core.held_goal(goal, masks[:, k])
        ankle_b, ball_b = tgt_rig.index[bone_map[f"{sd}_ankle"]], tgt_rig.index[bone_map[ball_j]]
        offset = mats[:, ball_b, :3, 3] - mats[:, ankle_b, :3, 3]
        limbs.append(core.Limb(tgt_rig.index[bone_map[f"{sd}_hip"]], tgt_rig.index[bone_map[f"{sd}_knee"]], ankle_b,
                               tgt_rig.to_local(goal) - offset, np.ones(T), _bend(tgt_rig, head, sd, "hip", "knee", "ankle")))
    return masks, limbs


def _bend(rig: core.Rig, head: dict[str, np.ndarray], side: str, root: str, mid: str, end: str) -> np.ndarray:
    """(T,3) armature-space direction the source's knee/elbow points to off its limb's line: the
    way a straight target limb bends when IK shortens it."""
    d = head[f"{side}_{mid}"] - (head[f"{side}_{root}"] + head[f"{side}_{end}"]) / 2
    # a straight source limb: knees bend forward, elbows back (the body's facing from its hips)
    forward = np.cross(head["left_hip"] - head["right_hip"], [0.0, 0.0, 1.0])
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)
    d = d + 1e-3 * (forward if mid == "knee" else -forward)
    return d @ rig.world_rot  # world -> armature space: R^T d, row-wise


def _reach(rig: core.Rig, t_idx: np.ndarray, rotations: np.ndarray, hips: int, hips_w: np.ndarray, legs: list[core.Limb],
           bone_map: dict[str, str], side: str | None, grasp: int | None, head: dict[str, np.ndarray],
           rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Legs (and the grasping arm) solved by IK; when the wrist cannot reach the source's grasp
    point, the hips move toward it (never up: the legs would not reach the floor) over the frames
    around the grasp, and the limbs are solved again. Returns (rotations (T,m,3,3), mats (T,n,4,4))."""
    T = len(hips_w)
    limbs = list(legs)
    weight = None
    if side is not None:
        weight = core.smoothstep(1.0 - np.abs(np.arange(T) - grasp) / core.GRASP_EASE)
        wrist = rig.index[bone_map[f"{side}_wrist"]]
        limbs.append(core.Limb(rig.index[bone_map[f"{side}_shoulder"]], rig.index[bone_map[f"{side}_elbow"]], wrist,
                               rig.to_local(head[f"{side}_wrist"]), weight, _bend(rig, head, side, "shoulder", "elbow", "wrist")))
    shift = np.zeros((T, 3))
    for _ in range(rounds if side is not None else 1):
        hips_local = rig.to_local(hips_w + shift)
        mats = core.solve_pose(rig, t_idx, rotations, hips, hips_local)
        out_rot, mats = core.apply_ik(rig, mats, t_idx, rotations, hips, hips_local, limbs)
        if side is None:
            break
        miss = head[f"{side}_wrist"][grasp] - rig.to_world(mats[grasp, wrist, :3, 3])
        if np.linalg.norm(miss) < 5e-4:
            break
        miss[2] = min(miss[2], 0.0)
        shift += weight[:, None] * miss[None]
    return out_rot, mats


def _grasp_side(head: dict[str, np.ndarray], obj_world: np.ndarray | None, grasp: int) -> str:
    """The hand that carries: the wrist nearest the object at the grasp whose motion after it
    follows the object's (both wrists move alike while the body walks on)."""
    if obj_world is None:
        return "right"
    obj = obj_world[:, :3, 3]
    err = {}
    for sd in ("left", "right"):
        w = head[f"{sd}_wrist"]
        follow = float(np.linalg.norm((w[grasp:] - w[grasp]) - (obj[grasp:] - obj[grasp]), axis=-1).mean())
        err[sd] = follow + float(np.linalg.norm(w[grasp] - obj[grasp]))
    return min(err, key=err.get)


def _moving_bones(quats: np.ndarray, mapped: np.ndarray, hips: int) -> np.ndarray:
    """(n,) bool: bones that get keys — the mapped ones, the hips, and any other whose pose is not
    its rest on some frame (unmapped bones normally stay at rest: face, twist, in-between bones)."""
    moving = np.abs(np.abs(quats[..., 0]) - 1.0).max(axis=0) > 1e-9
    moving[mapped] = True
    moving[hips] = True
    return moving


def _key_target(target: bpy.types.Object, name: str, frames: np.ndarray, quats: np.ndarray, locs: np.ndarray, hips: int,
                rig: core.Rig, keyed: np.ndarray, options: RetargetOptions) -> tuple[bpy.types.Action, int]:
    """One new action on ``target``: a quaternion per ``keyed`` bone (n,) on every frame, the
    hips' location; every pose channel not keyed is reset to rest (the keys assume it). Returns
    (action, key count)."""
    preserve_action(target)
    writer = ActionWriter(name, target)
    quats = make_continuous(quats)
    for b, bone in enumerate(rig.names):
        pb = target.pose.bones[bone]
        if pb.rotation_mode != "QUATERNION":
            pb.rotation_mode = "QUATERNION"
        pb.location = (0.0, 0.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        if not keyed[b]:
            continue
        path = f'pose.bones["{bone}"]'
        writer.set_group(f"{path}.rotation_quaternion", bone, frames, quats[:, b], flush=False)
        if b == hips:
            writer.set_group(f"{path}.location", bone, frames, locs[:, b], flush=False)
    if options.tolerance_quat is not None:
        keys = writer.finalize(options.tolerance_quat, options.tolerance_loc)
    else:
        keys = writer.finalize()
    writer.assign(target)
    if options.nla:
        push_to_nla(target, writer.action, int(frames[0]))
    return writer.action, keys


def push_to_nla(obj: bpy.types.Object, action: bpy.types.Action, start: int) -> bpy.types.NlaStrip:
    """A new NLA track holding ``action`` from ``start``; the object's active action is cleared."""
    ad = obj.animation_data or obj.animation_data_create()
    slot = getattr(ad, "action_slot", None)
    track = ad.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    ad.action = None
    return strip


def _key_object(obj: bpy.types.Object, target: bpy.types.Object, frames: np.ndarray,
                obj_world: np.ndarray, src_wrist: np.ndarray, tgt_wrist: np.ndarray, grasp: int,
                options: RetargetOptions) -> str:
    """Key the carried object to follow the target's hand: from the grasp on it moves with the
    target wrist's offset from the source wrist (the hands turn alike, so only that offset
    differs); it stays where the target let go after the release. Returns the new action's name."""
    from .generation import RunOptions, key_carried_object

    shift = tgt_wrist - src_wrist  # (T,3)
    steps = np.abs(np.diff(obj_world, axis=0)).max(axis=(1, 2)) > 1e-6  # (T-1,) it moved into frame t+1
    release = max(int(np.flatnonzero(steps).max()) + 1 if steps.any() else grasp, grasp)  # last frame it moves
    delta = np.zeros((len(frames), 3))
    delta[grasp:release + 1] = shift[grasp:release + 1]
    delta[release + 1:] = shift[release]  # put down: it stays where the target let go
    delta[grasp:] -= shift[grasp]  # continuous at the grasp (the IK puts the hands together there)
    wanted = obj_world.copy()
    wanted[:, :3, 3] += delta
    base = np.linalg.inv(_mat(obj.matrix_world))
    name = f"{target.name}_{obj.name}"
    key_carried_object(obj, frames.astype(np.float64), wanted @ base, name,
                       RunOptions(reduce=options.tolerance_quat is not None))
    return obj.animation_data.action.name


# -- measuring contacts ---------------------------------------------------------------------------

def contact_report(source: bpy.types.Object, target: bpy.types.Object, result: RetargetResult,
                   floor_z: float = 0.0) -> dict[str, Any]:
    """Contacts measured from the evaluated bones (world space): per foot the slide of its ball
    (cm/s, mean and max over planted frames) on source and target, the target ball's height error
    over its standing height on the floor (cm), and the target wrist's distance to the source
    wrist at the grasp frame (the grasp point on the object, cm), and both wrists' distances to
    the carried object's origin there when the file has the object. On a generated Rigify rig the
    target bones are the DEF- (deform) bones following the mapped ORG- bones."""
    scene = bpy.context.scene
    m = {j: deform_bone(target, b) for j, b in result.bone_map.items()}
    items: list[tuple[bpy.types.Object, str | None]] = []
    for sd in ("left", "right"):
        ball = f"{sd}_foot" if f"{sd}_foot" in m else f"{sd}_ankle"
        items += [(source, ball), (target, m[ball])]
    side = result.grasp_side
    if side:
        items += [(source, f"{side}_wrist"), (target, m[f"{side}_wrist"])]
    world = sample_world(scene, items, result.frames)[..., :3, 3]
    tgt_floor = rest_floor(target, [m.get("left_foot", m["left_ankle"])])
    report: dict[str, Any] = {"feet": {}}
    for k, sd in enumerate(("left", "right")):
        ball = f"{sd}_foot" if f"{sd}_foot" in m else f"{sd}_ankle"
        mask = result.planted[:, k]
        src, tgt = world[:, 2 * k], world[:, 2 * k + 1]
        standing = float((target.matrix_world @ target.data.bones[m[ball]].head_local).z - tgt_floor) + floor_z
        report["feet"][sd] = {
            "planted_frames": int(mask.sum()),
            "source_slide_cm_s": round(core.slide_cm_s(src, mask), 3),
            "target_slide_cm_s": round(core.slide_cm_s(tgt, mask), 3),
            "source_max_slide_cm_s": round(core.max_slide_cm_s(src, mask), 3),
            "target_max_slide_cm_s": round(core.max_slide_cm_s(tgt, mask), 3),
            "target_height_error_cm": round(float(np.abs(tgt[mask, 2] - standing).max()) * 100 if mask.any() else 0.0, 3),
        }
    if side and result.grasp_frame is not None:
        g = result.grasp_frame
        report["grasp"] = {"frame": int(result.frames[g]), "hand": side,
                           "hand_object_cm": round(float(np.linalg.norm(world[g, -1] - world[g, -2])) * 100, 3)}
        obj = bpy.data.objects.get(result.object_name or "")
        if obj is not None:  # to the object's origin, as the target's object action places it
            scene.frame_set(int(result.frames[g]))
            at = np.array(obj.matrix_world.translation)
            report["grasp"]["source_wrist_object_origin_cm"] = round(float(np.linalg.norm(world[g, -2] - at)) * 100, 3)
            report["grasp"]["target_wrist_object_origin_cm"] = round(float(np.linalg.norm(world[g, -1] - at)) * 100, 3)
    return report


def deform_bone(target: bpy.types.Object, bone: str) -> str:
    """The bone the mesh moves with: ``DEF-x`` for a generated Rigify rig's ``ORG-x``, else ``bone``."""
    if bone.startswith(bonemaps.RIGIFY_ORG):
        d = "DEF-" + bone[len(bonemaps.RIGIFY_ORG):]
        if d in target.data.bones:
            return d
    return bone


# -- export -------------------------------------------------------------------------------------

def _select_only(objs: list[bpy.types.Object]) -> None:
    view_layer = bpy.context.view_layer
    for o in view_layer.objects:
        o.select_set(False)
    for o in objs:
        o.hide_set(False)
        o.select_set(True)
    view_layer.objects.active = objs[0]


def deformed_meshes(arm: bpy.types.Object) -> list[bpy.types.Object]:
    return [o for o in bpy.data.objects if o.type == "MESH" and
            (o.parent == arm or any(md.type == "ARMATURE" and md.object == arm for md in o.modifiers))]


def export_fbx(target: bpy.types.Object, path: str | Path, action: bpy.types.Action | None = None) -> Path:
    """The target armature (and the meshes it deforms) with its action as FBX for Unity/Unreal.

    Settings: only the selected armature + meshes; ``add_leaf_bones=False`` (no ``_end`` bones);
    ``bake_anim`` with one take (the active action, no NLA strips / all-actions takes), every frame
    keyed (``bake_anim_step=1``, no simplification, so the file holds the exact poses); axes
    ``-Z`` forward, ``Y`` up (the FBX/Unity/Unreal defaults; Blender converts from Z up), unit
    scale 1.0 with ``apply_scale_options='FBX_SCALE_ALL'`` (Unreal reads centimetres correctly,
    Unity metres); primary bone axis Y, secondary X (Blender's own bone axes). A generated Rigify
    rig writes its deform bones only (and the bones above them): the game skeleton, without the
    controls and mechanism bones (its unused IK chain stretches while the FK controls are keyed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore = _play(target, action)
    act = target.animation_data.action if target.animation_data else None
    scene = bpy.context.scene
    span = (scene.frame_start, scene.frame_end)
    if act is not None:  # the take is the shot's frames (the exporter bakes the scene range)
        scene.frame_start, scene.frame_end = (int(round(v)) for v in act.frame_range)
    _select_only([target, *deformed_meshes(target)])
    try:
        _fbx(path, deform_only=bonemaps.is_control_rig([b.name for b in target.data.bones]))
    finally:
        scene.frame_start, scene.frame_end = span
        restore()
    return path


def _fbx(path: Path, deform_only: bool = False) -> None:
    bpy.ops.export_scene.fbx(
        filepath=str(path), use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False,
        bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
        bake_anim_force_startend_keying=True, bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
        axis_forward="-Z", axis_up="Y", apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL",
        primary_bone_axis="Y", secondary_bone_axis="X", armature_nodetype="NULL", use_armature_deform_only=deform_only)


def export_bvh(target: bpy.types.Object, path: str | Path, frame_start: int, frame_end: int,
               action: bpy.types.Action | None = None) -> Path:
    """The target armature's motion as BVH (Blender's exporter, rotations XYZ, root translation)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    restore = _play(target, action)
    _select_only([target])
    try:
        bpy.ops.export_anim.bvh(filepath=str(path), frame_start=int(frame_start), frame_end=int(frame_end),
                                global_scale=1.0, rotate_mode="NATIVE", root_transform_only=False)
    finally:
        restore()
    return path


def _play(obj: bpy.types.Object, action: bpy.types.Action | None):
    """Make ``action`` the object's active action alone (NLA muted) for an export; returns the
    function that puts the object's animation back as it was."""
    if action is None:
        return lambda: None
    ad = obj.animation_data or obj.animation_data_create()
    before = (ad.action, getattr(ad, "action_slot", None), [t.mute for t in ad.nla_tracks])
    for t in ad.nla_tracks:
        t.mute = True
    _assign(obj, action)

    def restore() -> None:
        ad.action = before[0]
        if before[0] is not None and before[1] is not None and hasattr(ad, "action_slot"):
            ad.action_slot = before[1]
        for t, m in zip(ad.nla_tracks, before[2]):
            t.mute = m

    return restore
