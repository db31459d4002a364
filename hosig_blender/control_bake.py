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
   the IK controls get the same treatment (Rigify's FK -> IK snap, without its operators): the
   IK chain's root and the hand/foot/toe controls keep their rest offsets from the ORG bones they
   match, the foot's spin/heel controls sit at rest, each pole lies in the limb's bend plane at
   its rest distance from the elbow/knee; their parents are modelled through Rigify's parent
   switches (Armature constraints) and the IK swing's Damped Track;
4. one action keys the controls and the switches; a few evaluated frames are checked against the
   solve (`verify`), then again with every limb switched to IK (hands and feet only), and anything
   off by more than `TOLERANCE_M` undoes the whole retarget.

Invariant: a failure leaves the rig as it was (pose, switches, active action); nothing but the
new action (and the carried object's) is added to the file.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import bpy
import numpy as np

from . import bonemaps
from . import retarget as core
from .keyframes import ActionWriter, preserve_action
from .posemath import make_continuous, mat_to_quat, quat_to_mat, rotation_between

ORG = bonemaps.RIGIFY_ORG
TOLERANCE_M = 0.01  # evaluated ORG heads within 1 cm of the solve, else the bake is refused
CHECK_FRAMES = 3  # evaluated frames compared with the solve (each a full rig evaluation)

# FK control -> the ORG bone it drives ({S}: side). The spine's FK chain runs down from the torso's
# pivot (spine_fk.001, spine_fk) and up (spine_fk.002, spine_fk.003); ``torso``, ``hips`` and
# ``chest`` carry the trunk (`torso_set`), else ``torso`` follows the ORG spine bone whose head is
# its pivot (`_torso_bone`).
_TRUNK = {"spine_fk": "spine", "spine_fk.001": "spine.001", "spine_fk.002": "spine.002", "spine_fk.003": "spine.003",
          "neck": "spine.004", "head": "spine.006"}
_LIMBS = {"shoulder.{S}": "shoulder.{S}", "upper_arm_fk.{S}": "upper_arm.{S}", "forearm_fk.{S}": "forearm.{S}",
          "hand_fk.{S}": "hand.{S}", "thigh_fk.{S}": "thigh.{S}", "shin_fk.{S}": "shin.{S}", "foot_fk.{S}": "foot.{S}",
          "toe_fk.{S}": "toe.{S}",
          **{f"{f}.0{k}.{{S}}": f"{f}.0{k}.{{S}}" for f in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky")
             for k in (1, 2, 3)}}
# IK control -> the ORG bone it matches (Rigify's FK -> IK snap): the bone each ORG bone copies in
# IK mode has that ORG bone's rest (``MCH-thigh_ik_target`` for the foot, ``MCH-upper_arm_ik_target``
# for the hand), so ``M_c = M_o L_o^-1 L_c`` puts the IK chain's target and root where FK has them.
_IK = {"upper_arm_ik.{S}": "upper_arm.{S}", "hand_ik.{S}": "hand.{S}", "thigh_ik.{S}": "thigh.{S}",
       "foot_ik.{S}": "foot.{S}", "toe_ik.{S}": "toe.{S}"}
# pole control -> the ORG chain (root, mid, tip) whose bend plane it lies in
_POLES = {"upper_arm_ik_target.{S}": ("upper_arm.{S}", "forearm.{S}", "hand.{S}"),
          "thigh_ik_target.{S}": ("thigh.{S}", "shin.{S}", "foot.{S}")}
# IK controls keyed at rest: the foot's spin and heel roll (their MCH rockers then sit at rest,
# so the IK target follows ``foot_ik`` rigidly)
_IK_REST = ("foot_spin_ik.{S}", "foot_heel_ik.{S}")
# Controls keyed with their location as well as their rotation (the others' location is zero:
# each stays on its parent's joint)
_LOCATED = {"torso", *(f"{c}.{s}" for c in ("hand_ik", "foot_ik", "upper_arm_ik_target", "thigh_ik_target") for s in "LR")}
# Custom properties set (and keyed) so that the unkeyed bones between the controls stay at rest
# relative to their parents: Rigify's IK_FK 1.0 is FK; FK_limb_follow 0 keeps an FK limb's root
# on the hips/shoulder; neck_follow / head_follow 1 make neck and head follow the spine (no
# counter-rotation from the torso).
SWITCHES = {"IK_FK": 1.0, "FK_limb_follow": 0.0, "neck_follow": 1.0, "head_follow": 1.0}


@dataclass
class IkControls:
    """A rig's IK controls: ``pairs`` {control: ORG bone it matches}, ``poles`` {pole control:
    (root, mid, tip) ORG bones}, ``rest`` controls keyed at rest."""

    pairs: dict[str, str]
    poles: dict[str, tuple[str, str, str]]
    rest: list[str]


def ik_controls(names: list[str]) -> IkControls:
    """The `IkControls` present in ``names`` (a limb's pole only with its three ORG bones)."""
    present = set(names)
    pairs, poles, rest = {}, {}, []
    for side in ("L", "R"):
        pairs.update({c.format(S=side): ORG + o.format(S=side) for c, o in _IK.items()})
        poles.update({c.format(S=side): tuple(ORG + o.format(S=side) for o in chain) for c, chain in _POLES.items()})
        rest += [c.format(S=side) for c in _IK_REST]
    return IkControls({c: o for c, o in pairs.items() if c in present and o in present},
                      {c: ch for c, ch in poles.items() if c in present and set(ch) <= present},
                      [c for c in rest if c in present])


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


@dataclass
class Rules:
    """What `PoseModel` follows of the rig's constraints (bone indices): ``copies`` {bone: bone
    whose world transform it copies}, ``armature`` {bone: [(target, weight)]} (Rigify's parent
    switches), ``tracks`` {bone: bone whose head its Y axis is turned to} (Damped Track),
    ``blends`` {bone: (target, influence, local)} (a partial Copy Transforms, world to world or
    local to local between bones with the same rest orientation: Rigify's spine shares the hips'
    and chest's turns over two bones each)."""

    copies: dict[int, int]
    armature: dict[int, list[tuple[int, float]]]
    tracks: dict[int, int]
    blends: dict[int, tuple[int, float, bool]] = field(default_factory=dict)


class PoseModel:
    """Armature-space pose matrices (T,4,4) of the rig's bones given the keyed controls'
    (``fixed``): a bone fully copying another's world transform takes its matrix, a bone with an
    Armature constraint is skinned to its targets, a damped-tracking bone turns its rest-under-
    parent matrix onto its target, any other bone sits at rest under its parent (its other
    constraints are idle with `SWITCHES` set, or keep it where its rest puts it)."""

    def __init__(self, rig: core.Rig, rules: Rules, fixed: dict[int, np.ndarray], frames: int) -> None:
        self.rig, self.rules, self.frames = rig, rules, frames
        self.cache: dict[int, np.ndarray] = dict(fixed)
        self._busy: set[int] = set()

    def __call__(self, b: int) -> np.ndarray:
        got = self.cache.get(b)
        if got is not None:
            return got
        if b in self._busy:
            raise ControlRigError(f"bone {self.rig.names[b]!r} depends on itself through its constraints")
        self._busy.add(b)
        if b in self.rules.copies:
            m = self(self.rules.copies[b])
        elif b in self.rules.armature:
            m = self._skinned(b)
        elif b in self.rules.blends:
            m = self._blended(b)
        else:
            m = self.under_parent(b)
            if b in self.rules.tracks:
                m = damped_track(m, self(self.rules.tracks[b])[:, :3, 3])
        self._busy.discard(b)
        self.cache[b] = m
        return m

    def under_parent(self, b: int) -> np.ndarray:
        """(T,4,4) bone ``b`` at rest under its parent's pose (its basis the identity)."""
        p = self.rig.parents[b]
        rel = self.rig.rest_rel[b]
        return np.broadcast_to(rel, (self.frames, 4, 4)).copy() if p < 0 else self(p) @ rel

    def basis(self, b: int) -> np.ndarray:
        """(T,4,4) the bone's pose relative to its rest under its parent."""
        return core.rigid_inverse(self.under_parent(b)) @ self(b)

    def _blended(self, b: int) -> np.ndarray:
        """A partial Copy Transforms: local, the owner takes the fraction ``w`` of the target's
        basis; world, it turns the fraction ``w`` of the way from its own matrix to the target's
        (both interpolations Blender's: slerp of the rotation, lerp of the location)."""
        t, w, local = self.rules.blends[b]
        own = self.under_parent(b)
        if local:
            return own @ partial(self.basis(t), w)
        target = self(t)
        step = partial(core.rigid_inverse(own) @ target, w)
        out = own @ step
        out[:, :3, 3] = (1 - w) * own[:, :3, 3] + w * target[:, :3, 3]
        return out

    def _skinned(self, b: int) -> np.ndarray:
        """An Armature constraint (linear blend): ``sum_i w_i M_i L_i^-1 L_b`` (weights sum to 1)."""
        blend = sum(w * (self(t) @ core.rigid_inverse(self.rig.rest[t])) for t, w in self.rules.armature[b])
        return blend @ self.rig.rest[b]


def damped_track(m: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(T,4,4) ``m`` turned about its head by the shortest arc taking its Y axis onto the
    direction to ``target`` (T,3) (Blender's Damped Track, Track Y, full influence)."""
    y = m[:, :3, 1] / np.linalg.norm(m[:, :3, 1], axis=-1, keepdims=True)
    d = target - m[:, :3, 3]
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    out = m.copy()
    out[:, :3, :3] = rotation_between(y, d) @ m[:, :3, :3]
    return out


def partial(m: np.ndarray, w: float) -> np.ndarray:
    """(T,4,4) the fraction ``w`` of the rigid transforms ``m``: rotation angle times ``w`` about
    the same axis, translation times ``w`` (Blender blending a constraint with the identity)."""
    q = mat_to_quat(m[:, :3, :3])  # w >= 0: the short way
    half = np.arccos(np.clip(q[:, 0], -1.0, 1.0))
    axis = q[:, 1:] / np.maximum(np.sin(half), 1e-12)[:, None]
    out = np.broadcast_to(np.eye(4), m.shape).copy()
    out[:, :3, :3] = quat_to_mat(np.concatenate([np.cos(w * half)[:, None], axis * np.sin(w * half)[:, None]], axis=1))
    out[:, :3, 3] = w * m[:, :3, 3]
    return out


def constraint_rules(arm: bpy.types.Object, rig: core.Rig) -> Rules:
    """The `Rules` of ``arm``'s enabled constraints on this armature, as the drivers have set them
    from the switches: at full influence the last world-to-world Copy Transforms of each bone,
    Armature constraints (their current weights) and Damped Track (Y, head); at partial influence
    the Copy Transforms `_blend` can follow. Anything else is taken as idle."""
    copies: dict[int, int] = {}
    armature: dict[int, list[tuple[int, float]]] = {}
    tracks: dict[int, int] = {}
    blends: dict[int, tuple[int, float, bool]] = {}
    idx = rig.index
    for pb in arm.pose.bones:
        b = idx[pb.name]
        for c in pb.constraints:
            if c.enabled and 1e-6 < c.influence < 0.999 and (blend := _blend(arm, rig, b, c)) is not None:
                blends[b] = blend
            if not c.enabled or c.influence < 0.999:
                continue
            if (c.type == "COPY_TRANSFORMS" and c.target == arm and c.subtarget in idx
                    and c.owner_space == "WORLD" and c.target_space == "WORLD"):
                copies[b] = idx[c.subtarget]
            elif c.type == "ARMATURE":
                used = [(idx[t.subtarget], float(t.weight)) for t in c.targets
                        if t.target == arm and t.subtarget in idx and t.weight > 0]
                if used:
                    armature[b] = used
            elif (c.type == "DAMPED_TRACK" and c.target == arm and c.subtarget in idx and c.track_axis == "TRACK_Y"
                  and c.head_tail == 0.0):
                tracks[b] = idx[c.subtarget]
    return Rules(copies, armature, tracks, blends)


def _blend(arm: bpy.types.Object, rig: core.Rig, b: int, c) -> tuple[int, float, bool] | None:
    """(target, influence, local) of a partial Copy Transforms `PoseModel` can follow, else None."""
    if c.type != "COPY_TRANSFORMS" or c.target != arm or c.subtarget not in rig.index or c.mix_mode != "REPLACE":
        return None
    t = rig.index[c.subtarget]
    if c.owner_space == c.target_space == "WORLD":
        return t, float(c.influence), False
    if c.owner_space == c.target_space == "LOCAL" and np.abs(rig.rest[b, :3, :3] - rig.rest[t, :3, :3]).max() < 1e-4:
        return t, float(c.influence), True
    return None


@dataclass
class Bake:
    """Per keyed control (in ``names`` order): pose bases (T,k,4,4) as Blender's channels read
    them (a bone without *Local Location* has its location in its parent's axes, not its own
    rest's); ``located``: the controls whose location is keyed too."""

    names: list[str]
    basis: np.ndarray
    located: set[str]


def bake(arm: bpy.types.Object, full: core.Rig, org: core.Rig, org_mats: np.ndarray, pairs: dict[str, str],
         ik: IkControls | None = None) -> Bake:
    """The controls' pose bases reproducing ``org_mats`` (T,n_org,4,4), the solved ORG pose: the
    FK controls (``pairs``) and, when given, the IK controls matched to the same pose."""
    T = org_mats.shape[0]
    ik = ik or IkControls({}, {}, [])
    torso = {"torso": _torso_bone(full)} if "torso" in full.index else {}
    drive = {**torso, **pairs, **ik.pairs}
    fixed = {}
    for c, o in drive.items():
        ci, oi = full.index[c], org.index[o]
        fixed[ci] = org_mats[:, oi] @ (core.rigid_inverse(org.rest[oi]) @ full.rest[ci])
    rules = constraint_rules(arm, full)
    fixed.update(torso_set(full, rules, fixed))
    model = PoseModel(full, rules, fixed, T)
    for c in ik.rest:
        fixed[full.index[c]] = model(full.index[c])  # at rest under its parent: an identity basis
    for c, chain in ik.poles.items():
        fixed[full.index[c]] = _pole(model, full, org, org_mats, c, chain)
    names = [c for c in full.names if full.index[c] in fixed]  # hierarchy-independent: each uses the model
    basis = np.empty((T, len(names), 4, 4))
    for k, c in enumerate(names):
        ci = full.index[c]
        basis[:, k] = core.rigid_inverse(model.under_parent(ci)) @ fixed[ci]
        if not arm.data.bones[c].use_local_location:  # Rigify's IK controls and poles
            basis[:, k, :3, 3] = basis[:, k, :3, 3] @ full.rest_rel[ci, :3, :3].T
    return Bake(names, basis, _LOCATED & set(names))


def _delta(full: core.Rig, fixed: dict[int, np.ndarray], bone: str) -> np.ndarray:
    """(T,4,4) a fixed bone's pose times its rest's inverse: the rigid motion it makes."""
    b = full.index[bone]
    return fixed[b] @ core.rigid_inverse(full.rest[b])


def torso_set(full: core.Rig, rules: Rules, fixed: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Pose matrices of ``torso``, ``hips`` and ``chest`` so that they carry the trunk's pose:
    ``hips`` turned as the pelvis (ORG-spine), ``chest`` as the chest (ORG-spine.003), ``torso``
    at the pivot where the lower FK chain then stays at rest. Rigify shares a hips (chest) turn
    ``Q`` half and half over two spine bones (`Rules.blends`), so with the torso turned ``T`` the
    bone above the pelvis turns ``T Q^1/2`` and the pelvis ``T Q``: ``T = D1 D0^-1 D1`` (rotations of
    ``spine.001`` and ``spine``), its pivot carried as ``spine.001`` carries it. The FK controls
    keep the rest of the pose (`bake` keys their residuals). Empty (torso kept on its ORG bone)
    when the rig lacks these controls or the blends."""
    need = ("torso", "hips", "chest", "spine_fk", "spine_fk.001", "spine_fk.003")
    if not all(n in full.index for n in need) or not any(t == full.index["hips"] for t, _w, _l in rules.blends.values()):
        return {}
    d0, d1, d3 = (_delta(full, fixed, n) for n in ("spine_fk", "spine_fk.001", "spine_fk.003"))
    r0, r1 = d0[:, :3, :3], d1[:, :3, :3]
    turn = r1 @ np.swapaxes(r0, -1, -2) @ r1
    pivot = np.append(full.rest[full.index["hips"], :3, 3], 1.0)  # the hips' (and chest's) head
    torso = np.broadcast_to(np.eye(4), d1.shape).copy()
    torso[:, :3, :3] = turn
    torso[:, :3, 3] = (d1 @ pivot)[:, :3] - turn @ pivot[:3]
    out = {full.index["torso"]: torso @ full.rest[full.index["torso"]]}
    for part, d in (("hips", d0), ("chest", d3)):
        m = torso @ full.rest[full.index[part]]
        m[:, :3, :3] = d[:, :3, :3] @ full.rest[full.index[part], :3, :3]
        out[full.index[part]] = m
    return out


def _pole(model: PoseModel, full: core.Rig, org: core.Rig, org_mats: np.ndarray, pole: str,
          chain: tuple[str, str, str]) -> np.ndarray:
    """(T,4,4) the pole control in the solved limb's bend plane: its rest orientation under its
    parent, its head at the rest distance from the mid joint along the bend direction (the mid
    joint's offset from the root-tip line); where the limb is straight, carried rigidly by the
    mid bone from its rest place."""
    root, mid, tip = (org_mats[:, org.index[b], :3, 3] for b in chain)
    rest_mid = org.rest[org.index[chain[1]]]
    rest_pole = full.rest[full.index[pole], :3, 3]
    dist = float(np.linalg.norm(rest_pole - rest_mid[:3, 3]))
    line = tip - root
    line = line / np.maximum(np.linalg.norm(line, axis=-1, keepdims=True), 1e-12)
    bend = (mid - root) - np.sum((mid - root) * line, axis=-1, keepdims=True) * line
    size = np.linalg.norm(bend, axis=-1, keepdims=True)
    rigid = (org_mats[:, org.index[chain[1]]] @ (core.rigid_inverse(rest_mid) @ np.append(rest_pole, 1.0)))[:, :3]
    m = model.under_parent(full.index[pole])
    m[:, :3, 3] = np.where(size > 1e-3, mid + dist * bend / np.maximum(size, 1e-12), rigid)
    return m


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
        if bone in result.located:
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


def ik_ends(ik: IkControls) -> list[str]:
    """The ORG bones the IK controls' targets place (hands, feet): where IK must agree with FK."""
    return [o for c, o in ik.pairs.items() if c.startswith(("hand_ik.", "foot_ik."))]


@contextmanager
def limbs_in_ik(arm: bpy.types.Object):
    """Every limb's keyed ``IK_FK`` switch held at 0 (IK) inside the block, put back after."""
    from .retarget_blender import action_fcurves

    curves = [fc for fc in action_fcurves(arm) if fc.data_path.endswith('["IK_FK"]')]
    saved = [[kp.co[1] for kp in fc.keyframe_points] for fc in curves]
    try:
        for fc in curves:
            for kp in fc.keyframe_points:
                kp.co[1] = 0.0
            fc.update()
        yield
    finally:
        for fc, values in zip(curves, saved):
            for kp, v in zip(fc.keyframe_points, values):
                kp.co[1] = v
            fc.update()


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
        ik = ik_controls(full.names)
        result = bake(target, full, org, sol.mats, pairs, ik)
        name = options.action_name or f"{source.name}_{target.name}"
        action, keys = key_controls(target, name, sol.frames, result, switches, options.tolerance_quat, options.tolerance_loc)
        action[rb.RETARGET_TAG] = source.name
        checked = [bone_map[j] for j in bonemaps.CORE] + [bone_map[j] for j in ("left_foot", "right_foot") if j in bone_map]
        err, worst = verify(target, org, sol.mats, sol.frames, checked)
        if err > TOLERANCE_M:
            raise rb.RetargetError(f"armature {target.name!r}: its controls reproduce the solved pose only within "
                                   f"{err * 100:.1f} cm ({worst}; limit {TOLERANCE_M * 100:.0f} cm): a customised Rigify rig?")
        checks = {"fk_cm": round(err * 100, 4)}
        if ends := ik_ends(ik):
            with limbs_in_ik(target):
                err, worst = verify(target, org, sol.mats, sol.frames, ends)
            if err > TOLERANCE_M:
                raise rb.RetargetError(f"armature {target.name!r}: switched to IK, its limbs end {err * 100:.1f} cm from "
                                       f"the FK pose ({worst}; limit {TOLERANCE_M * 100:.0f} cm): a customised Rigify rig?")
            checks["ik_ends_cm"] = round(err * 100, 4)
        if options.nla:
            rb.push_to_nla(target, action, int(sol.frames[0]))
    except BaseException:
        if action is not None and action.name in bpy.data.actions:
            bpy.data.actions.remove(action)
        restore_state(target, saved)
        raise
    result = rb.finish(source, target, sol, preset, bone_map, action, keys, options)
    result.checks = checks
    return result
