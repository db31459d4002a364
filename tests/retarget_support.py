"""Helpers for the retarget tests: a planted walk-and-grasp clip and humanoid rigs built in bpy.

The clip: the embedded mannequin walks 2.6 s along +X with its feet planted by the engine's own
`FootPlanter` (so the source's stance feet do not slide), arms down, the right arm reaching
forward-down to a box it grasps at `GRASP` and carries. The rigs are made from the mannequin's
rest joints with other proportions, bone rolls and rests (T-pose, A-pose), named as Mixamo
(``mixamorig:`` prefix) or the UE5 mannequin, with leaf end bones and twist bones like the real
ones. No downloaded assets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N = 78
GRASP = 60
FPS = 30.0


def walk_clip(folder: Path):
    """-> (clip path, BodyData, box world position at the grasp (3,), source joints (N,55,3))."""
    import torch

    from hosig.body.model import load_body_model
    from hosig.clip import MotionClip
    from hosig.frames import heading_to_orient
    from hosig.motion.footplant import FootPlanter
    from hosig.motion.representation import matrix_to_aa
    from hosig_blender.protocol import BodyData
    from scipy.spatial.transform import Rotation

    from hosig.cli.blender_render import body_payload

    model = load_body_model()
    t = np.arange(N) / FPS
    u = np.clip(t / 0.6, 0, 1)
    speed = 1.0
    travelled = speed * np.where(t < 0.6, 0.6 * (u ** 3 - u ** 4 / 2), t - 0.3)
    rot = np.tile(np.eye(3), (N, 55, 1, 1))
    rot[:, 0] = heading_to_orient(0.0)
    standing = float(model.rest_joints_y[0, 1] - model.floor_y)
    pelvis = np.stack([travelled, np.zeros(N), np.full(N, standing - 0.05)], 1)
    # arms down (about the model's Z at the shoulders), the right arm reaching forward near the end
    reach = np.clip((t - 1.2) / 0.8, 0, 1)
    arm_l = Rotation.from_euler("z", -1.2).as_matrix()
    for i in range(N):
        rot[i, 16] = arm_l
        rot[i, 17] = (Rotation.from_euler("y", -0.9 * reach[i]) * Rotation.from_euler("z", 1.2 - 0.5 * reach[i])).as_matrix()
        rot[i, 19] = Rotation.from_euler("y", 0.5 * reach[i]).as_matrix()
        rot[i, 3] = Rotation.from_euler("x", 0.15 * reach[i]).as_matrix()  # lean into the reach
    planted, _contacts = FootPlanter(model).plant(rot, pelvis, 0, N, N, 0)
    poses = matrix_to_aa(planted.astype(np.float64)).reshape(N, 165)
    trans = pelvis - np.asarray(model.rest_joints_y[0])
    with torch.no_grad():
        joints = model.forward(poses[:, :3], trans, body_pose=poses[:, 3:66], left_hand_pose=poses[:, 75:120],
                               right_hand_pose=poses[:, 120:165]).joints.numpy().astype(np.float64)
    wrist = joints[:, 21]
    mats = np.tile(np.eye(4), (N, 1, 1))
    mats[GRASP:, :3, 3] = wrist[GRASP:] - wrist[GRASP]  # carried with the right wrist from the grasp on
    clip = MotionClip(poses=poses, trans=trans, joints=joints, object_name="box", object_transforms=mats,
                      grasp_frame=GRASP, body_identity=model.identity)
    path = clip.save(folder / "walk_grasp.npz")
    body = BodyData.from_json(body_payload())
    return path, body, wrist[GRASP].copy(), joints


# --- rigs ---------------------------------------------------------------------------------------

SMPLX_CHAIN = {  # target bone role -> SMPL-X joint whose rest position is its head
    "hips": "pelvis", "spine1": "spine1", "spine2": "spine2", "spine3": "spine3", "neck": "neck", "head": "head",
    **{f"{s}_{r}": f"{s}_{r}" for s in ("left", "right") for r in ("hip", "knee", "ankle", "foot", "collar",
                                                                      "shoulder", "elbow", "wrist")},
    **{f"{s}_{f}{k}": f"{s}_{f}{k}" for s in ("left", "right") for f in ("index", "middle", "ring", "pinky", "thumb")
       for k in (1, 2, 3)},
}
_PARENT_ROLE = {"spine1": "hips", "spine2": "spine1", "spine3": "spine2", "neck": "spine3", "head": "neck"}
for _s in ("left", "right"):
    _PARENT_ROLE.update({f"{_s}_hip": "hips", f"{_s}_knee": f"{_s}_hip", f"{_s}_ankle": f"{_s}_knee",
                         f"{_s}_foot": f"{_s}_ankle", f"{_s}_collar": "spine3", f"{_s}_shoulder": f"{_s}_collar",
                         f"{_s}_elbow": f"{_s}_shoulder", f"{_s}_wrist": f"{_s}_elbow"})
    for _f in ("index", "middle", "ring", "pinky", "thumb"):
        _PARENT_ROLE.update({f"{_s}_{_f}1": f"{_s}_wrist", f"{_s}_{_f}2": f"{_s}_{_f}1", f"{_s}_{_f}3": f"{_s}_{_f}2"})


def role_positions(body, leg: float = 1.0, torso: float = 1.0, arm: float = 1.0, a_pose_deg: float = 0.0) -> dict[str, np.ndarray]:
    """Rest head per role from the mannequin's rest joints, feet on z=0, with legs / torso / arms
    scaled and the arms lowered ``a_pose_deg`` at the shoulders (A-pose)."""
    names = list(body.joint_names)
    rest = np.asarray(body.rest_joints, dtype=np.float64)
    j = {n: rest[i].copy() for i, n in enumerate(names)}
    floor = min(j["left_foot"][2], j["right_foot"][2]) - 0.02
    for n in j:
        j[n][2] -= floor
    out: dict[str, np.ndarray] = {}
    hip_h = j["pelvis"][2]
    out["hips"] = np.array([j["pelvis"][0], j["pelvis"][1], hip_h * leg])
    # legs: offsets from the pelvis scaled by ``leg``
    for role, joint in SMPLX_CHAIN.items():
        parent = _PARENT_ROLE.get(role)
        if parent is None:
            continue
        scale = leg if any(k in role for k in ("hip", "knee", "ankle", "foot")) else torso
        if any(k in role for k in ("shoulder", "elbow", "wrist", "index", "middle", "ring", "pinky", "thumb")):
            scale = arm
        out[role] = out[parent] + scale * (j[joint] - j[SMPLX_CHAIN[parent]])
    if a_pose_deg:
        from scipy.spatial.transform import Rotation

        for s, sign in (("left", 1.0), ("right", -1.0)):
            pivot = out[f"{s}_shoulder"].copy()
            r = Rotation.from_euler("y", sign * np.radians(a_pose_deg)).as_matrix()
            for role in list(out):
                if role.startswith(s) and any(k in role for k in ("elbow", "wrist", "index", "middle", "ring", "pinky", "thumb")):
                    out[role] = pivot + r @ (out[role] - pivot)
    return out


SIDES = (("left", "Left", "l"), ("right", "Right", "r"))  # role side, Mixamo side, UE side
FINGERS = ("index", "middle", "ring", "pinky", "thumb")


def rig_names(trunk: dict[str, str], limbs: dict[str, str], finger: str, side: int) -> dict[str, str]:
    """role -> bone name for a rig family: ``trunk`` names hips to head; ``limbs`` (hip ... wrist)
    and ``finger`` are formats of ``{S}`` (``SIDES[i][side]``), ``{f}`` / ``{F}`` (the finger,
    capitalized) and ``{k}`` (its joint 1-3)."""
    names = dict(trunk)
    for sides in SIDES:
        s, S = sides[0], sides[side]
        names.update({f"{s}_{part}": fmt.format(S=S) for part, fmt in limbs.items()})
        names.update({f"{s}_{f}{k}": finger.format(S=S, f=f, F=f.capitalize(), k=k) for f in FINGERS for k in (1, 2, 3)})
    return names


MIXAMO_NAMES = rig_names({"hips": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head"},
                         {"hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "foot": "{S}ToeBase", "collar": "{S}Shoulder",
                          "shoulder": "{S}Arm", "elbow": "{S}ForeArm", "wrist": "{S}Hand"},
                         "{S}Hand{F}{k}", side=1)
UE_NAMES = rig_names({"hips": "pelvis", "spine1": "spine_01", "spine2": "spine_03", "spine3": "spine_05", "neck": "neck_01",
                      "head": "head"},
                     {"hip": "thigh_{S}", "knee": "calf_{S}", "ankle": "foot_{S}", "foot": "ball_{S}", "collar": "clavicle_{S}",
                      "shoulder": "upperarm_{S}", "elbow": "lowerarm_{S}", "wrist": "hand_{S}"},
                     "{f}_0{k}_{S}", side=2)
GENERIC_NAMES = {role: f"Bone.{k:03d}" for k, role in enumerate(["hips", *_PARENT_ROLE])}


def _bone(eb, name: str, head, tail, parent=None):
    """One edit bone ``name`` from ``head`` to ``tail`` under ``parent``."""
    b = eb.new(name)
    b.head, b.tail = tuple(head), tuple(tail)
    if parent is not None:
        b.parent = parent
    return b


def _mixamo_extras(eb, made: dict, pos: dict[str, np.ndarray], prefix: str) -> None:
    """Mixamo's leaf end bones: ``HeadTop_End`` and ``LeftToe_End`` / ``RightToe_End``."""
    _bone(eb, prefix + "HeadTop_End", made["head"].tail, np.array(made["head"].tail) + [0, 0, 0.03], made["head"])
    for s, S, _c in SIDES:
        foot = made[f"{s}_foot"]
        _bone(eb, prefix + f"{S}Toe_End", foot.tail, np.array(foot.tail) + [0, -0.03, 0], foot)


def _ue_extras(eb, made: dict, pos: dict[str, np.ndarray], prefix: str) -> None:
    """UE's ``root``, the in-between ``spine_02`` / ``spine_04`` / ``neck_02`` (each splitting its
    parent bone at the middle) and the thigh / upper-arm / lower-arm twist bones."""
    made["hips"].parent = _bone(eb, "root", (0, 0, 0), (0, 0.2, 0))
    for between, lo, hi in (("spine_02", "spine1", "spine2"), ("spine_04", "spine2", "spine3"), ("neck_02", "neck", "head")):
        mid = (pos[lo] + pos[hi]) / 2
        made[lo].tail = tuple(mid)
        made[hi].parent = _bone(eb, between, mid, pos[hi], made[lo])
    for s, _S, c in SIDES:
        for role, twist in ((f"{s}_hip", f"thigh_twist_01_{c}"), (f"{s}_shoulder", f"upperarm_twist_01_{c}"),
                            (f"{s}_elbow", f"lowerarm_twist_01_{c}")):
            h, t = np.array(made[role].head), np.array(made[role].tail)
            _bone(eb, twist, h + 0.5 * (t - h), t, made[role])


EXTRAS = {"mixamo": _mixamo_extras, "ue": _ue_extras, "none": None}


def build_rig(bpy, name: str, pos: dict[str, np.ndarray], names: dict[str, str], prefix: str = "", roll: float = 0.0,
              extras: str = "mixamo") -> "bpy.types.Object":
    """An armature ``name`` at the origin: a bone per role named ``prefix + names[role]``, tails to
    the (first) child, rolls ``roll`` (radians, alternating sign), plus the rig family's
    ``EXTRAS``: Mixamo end bones, or UE's root, in-between and twist bones."""
    arm_data = bpy.data.armatures.new(name)
    arm = bpy.data.objects.new(name, arm_data)
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    eb = arm_data.edit_bones
    made = {}
    children: dict[str, list[str]] = {}
    for role, parent in _PARENT_ROLE.items():
        children.setdefault(parent, []).append(role)
    pref = {"hips": "spine1", "spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1"}

    def tail_of(role: str) -> np.ndarray:
        kids = children.get(role, [])
        if role in pref:
            return pos[pref[role]]
        if kids:
            return pos[kids[0]]
        if role == "head":
            return pos[role] + np.array([0, 0, 0.2])
        if role.endswith("_foot"):
            return pos[role] + np.array([0, -0.06, 0])
        parent = _PARENT_ROLE[role]
        return pos[role] + 0.6 * (pos[role] - pos[parent])

    for k, role in enumerate(["hips", *_PARENT_ROLE]):
        tail = tail_of(role)
        if np.linalg.norm(tail - pos[role]) < 1e-3:
            tail = pos[role] + np.array([0, 0, 0.05])
        made[role] = _bone(eb, prefix + names[role], pos[role], tail)
        made[role].roll = roll * (1 if k % 2 else -1)
    for role, parent in _PARENT_ROLE.items():
        made[role].parent = made[parent]
    if EXTRAS[extras] is not None:
        EXTRAS[extras](eb, made, pos, prefix)
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return arm


# rig family -> (role_positions proportions, names, build_rig keywords)
RIGS = {
    # Mixamo names with the ``mixamorig:`` prefix, T-pose, 8% taller, long legs, rolled bones
    "mixamo": ({"leg": 1.12, "torso": 1.04, "arm": 1.05}, MIXAMO_NAMES, {"prefix": "mixamorig:", "roll": 0.6, "extras": "mixamo"}),
    # UE5 mannequin names, A-pose (arms 40 degrees down), shorter legs, root bone, twist bones
    "unreal": ({"leg": 0.9, "torso": 0.95, "arm": 0.92, "a_pose_deg": 40.0}, UE_NAMES, {"roll": -0.4, "extras": "ue"}),
    # bones named ``Bone.000`` ... (no side or part tokens: only the hierarchy tells), A-pose 30
    # degrees, long torso, short arms: the automatic map's case
    "generic": ({"leg": 0.97, "torso": 1.12, "arm": 0.9, "a_pose_deg": 30.0}, GENERIC_NAMES, {"roll": 1.1, "extras": "none"}),
}


def family_rig(bpy, body, family: str, name: str) -> "bpy.types.Object":
    """The ``RIGS[family]`` rig from the mannequin's rest joints, as armature object ``name``."""
    proportions, names, options = RIGS[family]
    return build_rig(bpy, name, role_positions(body, **proportions), names, **options)


def mixamo_rig(bpy, body, name: str = "Mixamo") -> "bpy.types.Object":
    return family_rig(bpy, body, "mixamo", name)


def unreal_rig(bpy, body, name: str = "UE5") -> "bpy.types.Object":
    return family_rig(bpy, body, "unreal", name)


def generic_rig(bpy, body, name: str = "Generic") -> "bpy.types.Object":
    """``GENERIC_NAMES`` maps its roles."""
    return family_rig(bpy, body, "generic", name)


def as_fbx_import(bpy, arm) -> "bpy.types.Object":
    """The rig as Blender's FBX importer leaves a Mixamo download: bones in centimetres, Y up,
    the object rotated 90 degrees about X and scaled 0.01 (same rest in the world)."""
    from mathutils import Matrix

    m = Matrix.Rotation(np.pi / 2, 4, "X") @ Matrix.Scale(0.01, 4)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for eb in arm.data.edit_bones:
        eb.transform(m.inverted())
    bpy.ops.object.mode_set(mode="OBJECT")
    arm.matrix_world = m
    return arm


def turned_around(bpy, arm) -> "bpy.types.Object":
    """The rig facing +Y instead of Blender's -Y (its bones turned 180 degrees about Z, the
    object untouched): the retarget must turn it to face where the source faces."""
    from mathutils import Matrix

    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    for eb in arm.data.edit_bones:
        eb.transform(Matrix.Rotation(np.pi, 4, "Z"))
    bpy.ops.object.mode_set(mode="OBJECT")
    return arm
