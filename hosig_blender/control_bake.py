"""Retargeting onto Rigify's generated control rig: solve on its ORG bones, key its FK controls.

A generated Rigify rig's deform (``DEF-``) bones follow its ``ORG-`` bones (the metarig's bones,
copied into the rig), and those follow the controls through constraints, so keys on either would
be overridden. Instead:

1. the clip is solved (`retarget_blender.solve`: rotations, hips, leg and arm IK, unchanged) on
   the ORG skeleton seen with the metarig's hierarchy (`org_skeleton`);
2. the limbs are switched to FK and the neck/head made to follow the spine (`SWITCHES`), so that
   every bone between two keyed controls sits at rest relative to its parent;
3. each FK control is posed, for all frames at once, so that the ORG bone it drives lands on its
   solved pose — in hierarchy order, with ``M`` armature-space pose matrices, ``L`` rest matrices:

       M_c = M_o L_o^-1 L_c              the control keeps its rest offset from its ORG bone
       X_c = (M_parent(c) R_c)^-1 M_c    its pose basis (``R_c`` its rest seen from its parent)

   where ``M_parent`` comes from `PoseModel` (unkeyed bones at rest under their parents, a bone
   copying another's world transform takes its matrix);
4. one action keys the controls and the switches; a few evaluated frames are checked against the
   solve (`verify`) and anything off by more than `TOLERANCE_M` undoes the whole retarget.

Invariant: a failure leaves the rig as it was (pose, switches, active action); nothing but the
new action (and the carried object's) is added to the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bpy
import numpy as np

from . import bonemaps
from . import retarget as core
from .keyframes import ActionWriter, preserve_action
from .posemath import make_continuous, mat_to_quat

ORG = bonemaps.RIGIFY_ORG
TOLERANCE_M = 0.01  # evaluated ORG heads within 1 cm of the solve, else the bake is refused
CHECK_FRAMES = 3  # evaluated frames compared with the solve (each a full rig evaluation)

# FK control -> the ORG bone it drives ({S}: side). The spine's FK chain runs down from the torso's
# pivot (spine_fk.001, spine_fk) and up (spine_fk.002, spine_fk.003); ``torso`` follows the ORG
# spine bone whose head is its pivot (`_torso_bone`).
_TRUNK = {"spine_fk": "spine", "spine_fk.001": "spine.001", "spine_fk.002": "spine.002", "spine_fk.003": "spine.003",
          "neck": "spine.004", "head": "spine.006"}
_LIMBS = {"shoulder.{S}": "shoulder.{S}", "upper_arm_fk.{S}": "upper_arm.{S}", "forearm_fk.{S}": "forearm.{S}",
          "hand_fk.{S}": "hand.{S}", "thigh_fk.{S}": "thigh.{S}", "shin_fk.{S}": "shin.{S}", "foot_fk.{S}": "foot.{S}",
          "toe_fk.{S}": "toe.{S}",
          **{f"{f}.0{k}.{{S}}": f"{f}.0{k}.{{S}}" for f in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky")
             for k in (1, 2, 3)}}
# Custom properties set (and keyed) so that the unkeyed bones between the controls stay at rest
# relative to their parents: Rigify's IK_FK 1.0 is FK; FK_limb_follow 0 keeps an FK limb's root
# on the hips/shoulder; neck_follow / head_follow 1 make neck and head follow the spine (no
# counter-rotation from the torso).
SWITCHES = {"IK_FK": 1.0, "FK_limb_follow": 0.0, "neck_follow": 1.0, "head_follow": 1.0}


class ControlRigError(ValueError):
    """The rig is not a generated Rigify rig this can bake onto."""


def control_pairs(names: list[str]) -> dict[str, str]:
    """{FK control: ORG bone} for the controls and ORG bones present in ``names``."""
    present = set(names)
    table = {c: ORG + o for c, o in _TRUNK.items()}
    for side in ("L", "R"):
        table.update({c.format(S=side): ORG + o.format(S=side) for c, o in _LIMBS.items()})
    return {c: o for c, o in table.items() if c in present and o in present}


def _torso_bone(rig: core.Rig) -> str:
    """The ORG spine bone whose rest head is nearest the torso control's (its pivot)."""
    spine = [n for n in rig.names if re.fullmatch(rf"{ORG}spine(\.\d{{3}})?", n)]
    head = rig.rest[rig.index["torso"], :3, 3]
    return min(spine, key=lambda n: float(np.linalg.norm(rig.rest[rig.index[n], :3, 3] - head)))


def _org_parent(arm: bpy.types.Object, name: str, orgs: set[str]) -> str | None:
    """An ORG bone's parent in the metarig's hierarchy: the previous bone of a numbered chain
    (``ORG-spine.002`` -> ``ORG-spine.001``), else its nearest ancestor that is an ORG bone or
    the DEF copy of one (``DEF-hand.L`` stands for ``ORG-hand.L``)."""
    m = re.fullmatch(r"(.+)\.(\d{3})", name)
    if m is not None:
        k = int(m.group(2))
        prev = m.group(1) if k == 1 else f"{m.group(1)}.{k - 1:03d}"
        if prev in orgs:
            return prev
    p = arm.data.bones[name].parent
    while p is not None:
        cand = ORG + p.name[4:] if p.name.startswith("DEF-") else p.name
        if cand in orgs:
            return cand
        p = p.parent
    return None


def org_skeleton(arm: bpy.types.Object, full: core.Rig) -> core.Rig:
    """The rig's ORG bones as a `retarget.Rig` with the metarig's parents (rest from ``full``)."""
    names = [n for n in full.names if n.startswith(ORG)]
    orgs = set(names)
    index = {n: i for i, n in enumerate(names)}
    parents = [index[p] if (p := _org_parent(arm, n, orgs)) is not None else -1 for n in names]
    return core.Rig(names, parents, full.rest[[full.index[n] for n in names]], full.world)


class PoseModel:
    """Armature-space pose matrices (T,4,4) of the rig's bones given the keyed controls'
    (``fixed``): a bone fully copying another's world transform takes its matrix, any other
    bone sits at rest under its parent (its constraints are idle with `SWITCHES` set)."""

    def __init__(self, rig: core.Rig, copies: dict[int, int], fixed: dict[int, np.ndarray], frames: int) -> None:
        self.rig, self.copies, self.frames = rig, copies, frames
        self.cache: dict[int, np.ndarray] = dict(fixed)
        self._busy: set[int] = set()

    def __call__(self, b: int) -> np.ndarray:
        got = self.cache.get(b)
        if got is not None:
            return got
        if b in self._busy:
            raise ControlRigError(f"bone {self.rig.names[b]!r} depends on itself through its constraints")
        self._busy.add(b)
        if b in self.copies:
            m = self(self.copies[b])
        else:
            p = self.rig.parents[b]
            rel = self.rig.rest_rel[b]
            m = np.broadcast_to(rel, (self.frames, 4, 4)).copy() if p < 0 else self(p) @ rel
        self._busy.discard(b)
        self.cache[b] = m
        return m


def world_copies(arm: bpy.types.Object, rig: core.Rig) -> dict[int, int]:
    """{bone: bone whose world transform it copies}: the last enabled full-influence
    Copy Transforms (world to world, this armature) of each bone."""
    out: dict[int, int] = {}
    for pb in arm.pose.bones:
        for c in pb.constraints:
            if (c.type == "COPY_TRANSFORMS" and c.enabled and c.influence > 0.999 and c.target == arm
                    and c.subtarget in rig.index and c.owner_space == "WORLD" and c.target_space == "WORLD"):
                out[rig.index[pb.name]] = rig.index[c.subtarget]
    return out


@dataclass
class Bake:
    """Per keyed control (in ``names`` order): pose bases (T,k,4,4)."""

    names: list[str]
    basis: np.ndarray


def bake(arm: bpy.types.Object, full: core.Rig, org: core.Rig, org_mats: np.ndarray, pairs: dict[str, str]) -> Bake:
    """The FK controls' pose bases reproducing ``org_mats`` (T,n_org,4,4), the solved ORG pose."""
    T = org_mats.shape[0]
    torso = {"torso": _torso_bone(full)} if "torso" in full.index else {}
    drive = {**torso, **pairs}
    fixed = {}
    for c, o in drive.items():
        ci, oi = full.index[c], org.index[o]
        fixed[ci] = org_mats[:, oi] @ (core.rigid_inverse(org.rest[oi]) @ full.rest[ci])
    model = PoseModel(full, world_copies(arm, full), fixed, T)
    names = [c for c in full.names if c in drive]  # hierarchy-independent: each uses the model
    basis = np.empty((T, len(names), 4, 4))
    for k, c in enumerate(names):
        ci = full.index[c]
        p = full.parents[ci]
        above = np.broadcast_to(full.rest_rel[ci], (T, 4, 4)) if p < 0 else model(p) @ full.rest_rel[ci]
        basis[:, k] = core.rigid_inverse(above) @ fixed[ci]
    return Bake(names, basis)


# -- switches, keys, checks -------------------------------------------------------------------

def switch_values(arm: bpy.types.Object) -> dict[tuple[str, str], float]:
    """{(pose bone, property): value} of the `SWITCHES` the rig has."""
    return {(pb.name, key): value for pb in arm.pose.bones for key, value in SWITCHES.items() if key in pb.keys()}


@dataclass
class Saved:
    """The rig's state before a bake, to put back on failure."""

    basis: dict[str, object]
    props: dict[tuple[str, str], object]
    action: object
    slot: object


def save_state(arm: bpy.types.Object, props: list[tuple[str, str]]) -> Saved:
    ad = arm.animation_data
    return Saved({pb.name: pb.matrix_basis.copy() for pb in arm.pose.bones},
                 {(b, k): arm.pose.bones[b][k] for b, k in props},
                 ad.action if ad is not None else None, getattr(ad, "action_slot", None) if ad is not None else None)


def restore_state(arm: bpy.types.Object, saved: Saved) -> None:
    for (b, k), v in saved.props.items():
        arm.pose.bones[b][k] = v
    ad = arm.animation_data
    if ad is not None:
        ad.action = saved.action
        if saved.action is not None and saved.slot is not None and hasattr(ad, "action_slot"):
            ad.action_slot = saved.slot
    for pb in arm.pose.bones:
        pb.matrix_basis = saved.basis[pb.name]


def _rest_pose(arm: bpy.types.Object) -> None:
    """Every pose channel at rest (the model assumes the unkeyed bones are), in bulk."""
    bones = arm.pose.bones
    n = len(bones)
    for attr, value in (("location", (0.0, 0.0, 0.0)), ("scale", (1.0, 1.0, 1.0)), ("rotation_quaternion", (1.0, 0.0, 0.0, 0.0)),
                        ("rotation_euler", (0.0, 0.0, 0.0)), ("rotation_axis_angle", (0.0, 0.0, 1.0, 0.0))):
        bones.foreach_set(attr, np.tile(np.asarray(value, dtype=np.float32), n))


def _eulers(quats: np.ndarray, mode: str) -> np.ndarray:
    """(T,4) quaternions -> (T,3) Euler angles in ``mode``, continuous from frame to frame."""
    from mathutils import Quaternion

    out = np.empty((len(quats), 3))
    prev = None
    for t, q in enumerate(quats):
        e = Quaternion(q).to_euler(mode, prev) if prev is not None else Quaternion(q).to_euler(mode)
        out[t] = e
        prev = e
    return out


def key_controls(arm: bpy.types.Object, name: str, frames: np.ndarray, result: Bake, switches: dict[tuple[str, str], float],
                 tolerance_quat: float | None, tolerance_loc: float | None) -> tuple[bpy.types.Action, int]:
    """One new action: each control's rotation (in its own rotation mode), the torso's location,
    and every switch held over the clip. Returns (action, key count)."""
    writer = ActionWriter(name, arm)
    quats = make_continuous(mat_to_quat(result.basis[..., :3, :3]))
    for k, bone in enumerate(result.names):
        pb = arm.pose.bones[bone]
        path = f'pose.bones["{bone}"]'
        if pb.rotation_mode == "QUATERNION":
            writer.set_group(f"{path}.rotation_quaternion", bone, frames, quats[:, k], flush=False)
        elif pb.rotation_mode == "AXIS_ANGLE":
            raise ControlRigError(f"control {bone!r} uses axis-angle rotation; set it to quaternion or Euler")
        else:
            writer.set_group(f"{path}.rotation_euler", bone, frames, _eulers(quats[:, k], pb.rotation_mode), flush=False)
        if bone == "torso":
            writer.set_group(f"{path}.location", bone, frames, result.basis[:, k, :3, 3], flush=False)
    ends = frames[[0, -1]]
    for (bone, key), value in switches.items():
        writer.set_group(f'{path_of(bone)}["{key}"]', bone, ends, np.full((2, 1), value), flush=False)
    keys = writer.finalize(tolerance_quat, tolerance_loc) if tolerance_quat is not None else writer.finalize()
    writer.assign(arm)
    return writer.action, keys


def path_of(bone: str) -> str:
    return f'pose.bones["{bone}"]'


def verify(arm: bpy.types.Object, org: core.Rig, org_mats: np.ndarray, frames: np.ndarray,
           bones: list[str]) -> tuple[float, str]:
    """(max distance (m), bone) between evaluated and solved heads of the ORG ``bones`` over a few frames."""
    from .retarget_blender import sample_world

    picks = np.unique(np.linspace(0, len(frames) - 1, CHECK_FRAMES).round().astype(int))
    got = sample_world(bpy.context.scene, [(arm, b) for b in bones], frames[picks])[..., :3, 3]
    want = org.to_world(org_mats[picks][:, [org.index[b] for b in bones]][..., :3, 3])
    err = np.linalg.norm(got - want, axis=-1).max(axis=0)
    return float(err.max()), bones[int(err.argmax())]


def retarget_control_rig(source: bpy.types.Object, target: bpy.types.Object, preset: str, bone_map: dict[str, str],
                         options) -> object:
    """`retarget_blender.retarget` onto a generated Rigify rig (``bone_map`` on its ORG bones)."""
    from . import retarget_blender as rb

    full = rb.rig_of(target)
    pairs = control_pairs(full.names)
    missing = [c for c in ("torso", "spine_fk", "thigh_fk.L", "upper_arm_fk.L") if c not in full.index]
    if missing or len(pairs) < 16:
        raise rb.RetargetError(f"armature {target.name!r} is not a generated Rigify rig with FK controls "
                               f"(missing {', '.join(missing) or 'FK limb controls'})")
    org = org_skeleton(target, full)
    sol = rb.solve(source, target, org, bone_map, options)
    switches = switch_values(target)
    saved = save_state(target, list(switches))
    preserve_action(target)
    action = None
    try:
        _rest_pose(target)
        for (bone, key), value in switches.items():
            target.pose.bones[bone][key] = value
        bpy.context.view_layer.update()  # drivers read the switches: constraint influences settle
        result = bake(target, full, org, sol.mats, pairs)
        name = options.action_name or f"{source.name}_{target.name}"
        action, keys = key_controls(target, name, sol.frames, result, switches, options.tolerance_quat, options.tolerance_loc)
        action[rb.RETARGET_TAG] = source.name
        checked = [bone_map[j] for j in bonemaps.CORE] + [bone_map[j] for j in ("left_foot", "right_foot") if j in bone_map]
        err, worst = verify(target, org, sol.mats, sol.frames, checked)
        if err > TOLERANCE_M:
            raise rb.RetargetError(f"armature {target.name!r}: its controls reproduce the solved pose only within "
                                   f"{err * 100:.1f} cm ({worst}; limit {TOLERANCE_M * 100:.0f} cm): a customised Rigify rig?")
        if options.nla:
            rb.push_to_nla(target, action, int(sol.frames[0]))
    except BaseException:
        if action is not None and action.name in bpy.data.actions:
            bpy.data.actions.remove(action)
        restore_state(target, saved)
        raise
    return rb.finish(source, target, sol, preset, bone_map, action, keys, options)
