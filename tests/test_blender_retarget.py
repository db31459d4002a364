"""Retargeting a keyed SMPL-X armature onto the animator's own rig (issue #19).

Rigs are built in bpy (no downloaded assets): a Mixamo-named T-pose rig with longer legs and
rolled bones, a UE5-named A-pose rig with shorter legs, a root bone, in-between spine and twist
bones, and Rigify's human metarig when the bundled `rigify` add-on loads. The clip is a planted
walk that grasps and carries a box (`retarget_support.walk_clip`). Everything is measured from the
evaluated bones in world space.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import retarget_support as rs  # noqa: E402

from hosig.cli.main import main  # noqa: E402
from hosig_blender import bonemaps, clip_import  # noqa: E402
from hosig_blender import retarget as core  # noqa: E402
from hosig_blender import retarget_blender as rb  # noqa: E402

pytestmark = pytest.mark.blender

SLIDE_MARGIN_CM_S = 1.0
FLOOR_CM = 1.0
HAND_CM = 3.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retarget")
    path, body, box_at, joints = rs.walk_clip(folder)
    return {"folder": folder, "path": path, "body": body, "box_at": box_at, "joints": joints}


def _fresh():
    import hosig_blender

    hosig_blender.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hosig_blender.register()
    bpy.context.scene.render.fps = 30  # as the headless runs set it (clips are 30 fps)


def _box(at) -> bpy.types.Object:
    import bmesh

    mesh = bpy.data.meshes.new("box")
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=0.08)
    bm.to_mesh(mesh)
    bm.free()
    box = bpy.data.objects.new("box", mesh)
    box.location = tuple(at)
    bpy.context.scene.collection.objects.link(box)
    return box


def _metarig() -> bpy.types.Object:
    try:
        bpy.ops.preferences.addon_enable(module="rigify")
        bpy.ops.object.armature_human_metarig_add()
    except (RuntimeError, AttributeError) as err:  # pragma: no cover - depends on the wheel
        pytest.skip(f"rigify not available in this bpy: {err}")
    arm = bpy.context.object
    bpy.ops.object.mode_set(mode="OBJECT")
    return arm


def _generated_rig() -> bpy.types.Object:
    """Rigify's human metarig, generated into its control rig (the metarig is left in the scene)."""
    meta = _metarig()
    bpy.context.view_layer.objects.active = meta
    try:
        bpy.ops.pose.rigify_generate()
    except RuntimeError as err:  # pragma: no cover - depends on the wheel
        pytest.skip(f"rigify cannot generate headless here: {err}")
    rig = bpy.context.view_layer.objects.active
    assert rig is not meta and rig.data.get("rig_id") is not None
    return rig


RIGS = {"mixamo": lambda body: rs.mixamo_rig(bpy, body), "unreal": lambda body: rs.unreal_rig(bpy, body),
        "rigify_metarig": lambda body: _metarig(), "rigify_rig": lambda body: _generated_rig(), "generic": lambda body: rs.generic_rig(bpy, body),
        "mixamo_fbx": lambda body: rs.as_fbx_import(bpy, rs.mixamo_rig(bpy, body)),
        "unreal_facing_y": lambda body: rs.turned_around(bpy, rs.unreal_rig(bpy, body))}
PRESET_OF = {"generic": "auto", "mixamo_fbx": "mixamo", "unreal_facing_y": "unreal"}


def _measured(rig: str, bone: str) -> str:
    """The bone contacts are measured on: on the generated Rigify rig the DEF (deform) bone
    that follows the mapped ORG bone, else the mapped bone itself."""
    return "DEF-" + bone[len(bonemaps.RIGIFY_ORG):] if rig == "rigify_rig" else bone


def _scene_with(clip, rig: str):
    _fresh()
    box = _box(clip["box_at"])
    src = clip_import.import_clip(clip["path"], clip["body"])
    target = RIGS[rig](clip["body"])
    return src, target, box


def _world(items, frames) -> np.ndarray:
    return rb.sample_world(bpy.context.scene, items, frames)


# -- bone maps ------------------------------------------------------------------------------------

def test_presets_are_detected_and_the_automatic_map_agrees(clip) -> None:
    _fresh()
    for rig, preset in (("mixamo", "mixamo"), ("unreal", "unreal")):
        arm = RIGS[rig](clip["body"])
        names = [b.name for b in arm.data.bones]
        found, m = bonemaps.detect_preset(names)
        assert found == preset
        assert set(bonemaps.CORE) <= set(m) and len(m) == 22 + 30  # body + both hands' fingers
        r = rb.rig_of(arm)
        auto = bonemaps.auto_map(bonemaps.Skeleton(r.names, r.parents, r.rest_heads_world()))
        assert auto == m, {k: (auto.get(k), m.get(k)) for k in set(auto) | set(m) if auto.get(k) != m.get(k)}
    # other prefixes and the UE4 spine (spine_01..03)
    assert bonemaps.preset_map("mixamo", ["mixamorig1:Hips", "Armature|Spine"]) == {"pelvis": "mixamorig1:Hips", "spine1": "Armature|Spine"}
    ue4 = bonemaps.preset_map("unreal", ["pelvis", "spine_01", "spine_02", "spine_03"])
    assert (ue4["spine1"], ue4["spine2"], ue4["spine3"]) == ("spine_01", "spine_02", "spine_03")
    assert bonemaps.detect_preset([f"bone{i}" for i in range(30)]) == (None, {})


def test_automatic_map_from_hierarchy_alone(clip) -> None:
    _fresh()
    arm = RIGS["generic"](clip["body"])
    name, m = rb.resolve_map(arm, rb.RetargetOptions())
    assert name == "auto"
    # every body joint by its place in the hierarchy; no fingers (their names carry no tokens)
    body = {j: rs.GENERIC_NAMES[r] for r, j in rs.SMPLX_CHAIN.items() if not j[-1].isdigit() or j.startswith("spine")}
    assert m == body, {k: (m.get(k), body.get(k)) for k in set(m) | set(body) if m.get(k) != body.get(k)}


def test_a_preset_rig_missing_a_bone_is_refused_naming_it(clip) -> None:
    _fresh()
    arm = RIGS["mixamo"](clip["body"])
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    arm.data.edit_bones.remove(arm.data.edit_bones["mixamorig:LeftForeArm"])
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(rb.RetargetError, match=r"mixamo rig but has no bone LeftForeArm \(left_elbow\)"):
        rb.resolve_map(arm, rb.RetargetOptions())


def test_not_a_humanoid_is_refused_by_name() -> None:
    names = [f"tentacle.{i:03d}" for i in range(12)]
    heads = np.array([[0.0, 0.0, 0.1 * i] for i in range(12)])
    with pytest.raises(bonemaps.NotHumanoidError, match="legs"):
        bonemaps.auto_map(bonemaps.Skeleton(names, [-1, *range(11)], heads))


# -- the retarget: contacts ------------------------------------------------------------------------

@pytest.mark.parametrize("rig", ["mixamo", "unreal", "rigify_metarig", "rigify_rig", "generic", "mixamo_fbx", "unreal_facing_y"])
def test_retarget_keeps_contacts(clip, rig) -> None:
    src, target, box = _scene_with(clip, rig)
    result = rb.retarget(src, target)
    assert result.preset == PRESET_OF.get(rig, rig)
    assert result.grasp_frame == rs.GRASP and result.grasp_side == "right"
    ad = target.animation_data
    assert ad.action == result.action and (not hasattr(ad, "action_slot") or ad.action_slot is not None)
    frames = result.frames
    m = {j: _measured(rig, b) for j, b in result.bone_map.items()}
    items = [(src, "left_foot"), (src, "right_foot"), (target, m["left_foot"]), (target, m["right_foot"]),
             (src, "right_wrist"), (target, m["right_wrist"]), (box, None), (src, "head"), (target, m["head"])]
    w = _world(items, frames)
    pos = w[..., :3, 3]
    for k in range(2):
        mask = result.planted[:, k]
        assert mask.sum() > 20  # the walk has stances on both feet
        src_slide = core.slide_cm_s(pos[:, k], mask)
        tgt_slide = core.slide_cm_s(pos[:, 2 + k], mask)
        assert tgt_slide <= src_slide + SLIDE_MARGIN_CM_S, (k, src_slide, tgt_slide)
        # the planted ball stays at its standing height over the floor (z = 0)
        standing = (target.matrix_world @ target.data.bones[m[("left_foot", "right_foot")[k]]].head_local).z
        assert np.abs(pos[mask, 2 + k, 2] - standing).max() < FLOOR_CM / 100
    g = rs.GRASP
    assert np.linalg.norm(pos[g, 5] - clip["box_at"]) < HAND_CM / 100  # the hand meets the box
    # the box rides with the target's hand after the grasp (its offset from the wrist is constant)
    rel = pos[g:, 6] - pos[g:, 5]
    assert np.abs(rel - rel[0]).max() < 2e-3
    # rotation changes carry over: the head turns from frame to frame as the source's does,
    # whatever the rests (a constant rest alignment cancels out)
    src_rest = np.array(src.matrix_world @ src.data.bones["head"].matrix_local)[:3, :3]
    tgt_rest = np.array(target.matrix_world @ target.data.bones[m["head"]].matrix_local)[:3, :3]
    change_s = w[:, 7, :3, :3] @ src_rest.T
    change_t = w[:, 8, :3, :3] @ np.linalg.inv(tgt_rest)
    for f in (30, g):
        assert np.abs(change_s[f] @ change_s[0].T - change_t[f] @ np.linalg.inv(change_t[0])).max() < 2e-3
    # limbs point where the source's do, whatever the rest (T-pose, A-pose): the free (left) arm
    arm_items = [(src, "left_shoulder"), (src, "left_elbow"), (src, "left_wrist"),
                 (target, m["left_shoulder"]), (target, m["left_elbow"]), (target, m["left_wrist"])]
    a = _world(arm_items, frames[::10])[..., :3, 3]
    for lo, hi in ((0, 1), (1, 2)):
        d_s, d_t = a[:, hi] - a[:, lo], a[:, 3 + hi] - a[:, 3 + lo]
        cos = np.sum(d_s * d_t, -1) / np.linalg.norm(d_s, axis=-1) / np.linalg.norm(d_t, axis=-1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 3.0
    # the target faces where the source faces (ankle -> ball of each foot, horizontally)
    feet_items = [(src, "left_ankle"), (src, "left_foot"), (target, m["left_ankle"]), (target, m["left_foot"])]
    f = _world(feet_items, frames[::10])[..., :3, 3] * [1, 1, 0]
    d_s, d_t = f[:, 1] - f[:, 0], f[:, 3] - f[:, 2]
    cos = np.sum(d_s * d_t, -1) / np.linalg.norm(d_s, axis=-1) / np.linalg.norm(d_t, axis=-1)
    assert (cos > np.cos(np.radians(15))).all(), np.degrees(np.arccos(np.clip(cos, -1, 1)))
    # the source is untouched and the object's own clip action still exists
    assert src.animation_data.action.name == src.name
    assert result.object_action == f"{target.name}_box"


def test_a_walk_without_grasp_keeps_its_feet(clip) -> None:
    src, target, box = _scene_with(clip, "unreal")
    for key in (clip_import.CLIP_TAG, clip_import.OBJECT_TAG, clip_import.OBJECT_ACTION_TAG):
        del src[key]  # an armature made some other way: no clip file, no object
    result = rb.retarget(src, target)
    assert result.grasp_frame is None and result.grasp_side is None and result.object_action is None
    report = rb.contact_report(src, target, result)
    assert "grasp" not in report
    for feet in report["feet"].values():
        assert feet["target_slide_cm_s"] <= feet["source_slide_cm_s"] + SLIDE_MARGIN_CM_S
        assert feet["target_height_error_cm"] < FLOOR_CM
    # the walk starts where the source starts (the pivot is the first pelvis position)
    bpy.context.scene.frame_set(int(result.frames[0]))
    hips = target.matrix_world @ target.pose.bones[result.bone_map["pelvis"]].head
    pelvis = src.matrix_world @ src.pose.bones["pelvis"].head
    assert abs(hips.x - pelvis.x) < 1e-4 and abs(hips.y - pelvis.y) < 1e-4


def test_retarget_refuses_a_non_smplx_source_and_nla_push(clip) -> None:
    src, target, _box = _scene_with(clip, "mixamo")
    with pytest.raises(rb.RetargetError, match="not a HOSIG SMPL-X armature"):
        rb.retarget(target, src)
    result = rb.retarget(src, target, rb.RetargetOptions(nla=True))
    tracks = target.animation_data.nla_tracks
    assert len(tracks) == 1 and tracks[0].strips[0].action == result.action
    assert target.animation_data.action is None


def test_panel_operators_map_retarget_preset_and_export(clip, tmp_path, monkeypatch) -> None:
    from hosig_blender import retarget_ui

    src, target, _box = _scene_with(clip, "mixamo")
    monkeypatch.setattr(retarget_ui, "presets_dir", lambda create=False: tmp_path)
    s = bpy.context.window_manager.hosig_retarget
    s.source, s.target = src, target
    assert bpy.ops.hosig.retarget_detect() == {"FINISHED"}
    rows = {item.name: item.bone for item in s.bone_map}
    assert rows["left_knee"] == "mixamorig:LeftLeg" and rows["left_thumb3"] == "mixamorig:LeftHandThumb3"
    s.preset_name = "mine"
    assert bpy.ops.hosig.bonemap_save() == {"FINISHED"}
    assert json.loads((tmp_path / "mine.json").read_text())["map"]["pelvis"] == "mixamorig:Hips"
    for item in s.bone_map:  # unmap the fingers: they stay at rest
        if item.name[-1].isdigit() and not item.name.startswith("spine"):
            item.bone = ""
    assert bpy.ops.hosig.retarget() == {"FINISHED"}
    action = target.animation_data.action
    assert action is not None and action.get(rb.RETARGET_TAG) == src.name
    bpy.context.scene.frame_set(40)
    assert target.pose.bones["mixamorig:LeftHandIndex2"].rotation_quaternion[0] == pytest.approx(1.0)
    assert bpy.ops.hosig.bonemap_load() == {"FINISHED"}  # the saved map comes back, fingers included
    assert {i.name: i.bone for i in s.bone_map}["left_index2"] == "mixamorig:LeftHandIndex2"
    assert bpy.ops.hosig.retarget_export_fbx(filepath=str(tmp_path / "a.fbx")) == {"FINISHED"}
    assert bpy.ops.hosig.retarget_export_bvh(filepath=str(tmp_path / "a.bvh")) == {"FINISHED"}
    assert (tmp_path / "a.fbx").stat().st_size > 0 and (tmp_path / "a.bvh").stat().st_size > 0
    s.target = None
    s.bone_map.clear()


def test_generated_rigify_rig_is_keyed_on_its_fk_controls(clip, tmp_path) -> None:
    src, rig, _box = _scene_with(clip, "rigify_rig")
    names = [b.name for b in rig.data.bones]
    assert bonemaps.detect_preset(names)[0] == "rigify_rig"  # not rigify_def: the controls decide
    n_objects = len(bpy.data.objects)
    result = rb.retarget(src, rig)
    assert result.preset == "rigify_rig" and result.bone_map["left_knee"] == "ORG-shin.L"
    paths = {fc.data_path for fc in rb.action_fcurves(rig)}
    keyed = {p.split('"')[1] for p in paths}
    assert {"torso", "spine_fk", "spine_fk.003", "thigh_fk.L", "shin_fk.R", "foot_fk.L", "upper_arm_fk.R", "hand_fk.L",
            "f_index.02.R", "thumb.01.L", "shoulder.L", "neck", "head"} <= keyed
    assert not any(b.startswith(("DEF-", "ORG-", "MCH-")) for b in keyed)  # only controls and switches
    assert 'pose.bones["torso"].location' in paths and 'pose.bones["thumb.01.L"].location' not in paths
    assert 'pose.bones["shoulder.L"].rotation_euler' in paths  # the control's own rotation mode is kept
    assert rig.pose.bones["shoulder.L"].rotation_mode == "YXZ"
    # the torso set carries the trunk: hips turned as the pelvis, chest as the chest (their rest
    # offsets kept), the lower FK spine controls at rest
    assert {"hips", "chest"} <= keyed
    frames = result.frames[[10, rs.GRASP]]
    w = _world([(rig, n) for n in ("hips", "ORG-spine", "chest", "ORG-spine.003")], frames)
    for ctrl, org in ((0, 1), (2, 3)):
        names_ = ("hips", "ORG-spine", "chest", "ORG-spine.003")
        rest = [np.array(rig.data.bones[names_[k]].matrix_local)[:3, :3] for k in (ctrl, org)]
        turn_c = w[:, ctrl, :3, :3] @ rest[0].T
        turn_o = w[:, org, :3, :3] @ rest[1].T
        assert np.abs(turn_c - turn_o).max() < 2e-3, names_[ctrl]
    bpy.context.scene.frame_set(int(frames[1]))
    for bone in ("spine_fk", "spine_fk.001"):
        assert np.abs(np.array(rig.pose.bones[bone].rotation_quaternion) - (1, 0, 0, 0)).max() < 1e-3
    bpy.context.scene.frame_set(int(result.frames[10]))
    for side in ("L", "R"):  # the limbs switched to FK, keyed in the same action
        assert rig.pose.bones[f"thigh_parent.{side}"]["IK_FK"] == pytest.approx(1.0)
        assert rig.pose.bones[f"upper_arm_parent.{side}"]["IK_FK"] == pytest.approx(1.0)
        assert f'pose.bones["thigh_parent.{side}"]["IK_FK"]' in paths
    assert len(bpy.data.objects) == n_objects
    assert result.action.get(rb.RETARGET_TAG) == src.name
    # FBX for a game engine: the deform skeleton (DEF bones and the bones above them) moves as the
    # rig's DEF bones do; no limb controls, no IK chain
    frames = result.frames[::11]
    defs = [n for n in names if n.startswith("DEF-") and not n.startswith(("DEF-lid", "DEF-brow", "DEF-ear"))]
    before = _world([(rig, n) for n in defs], frames)[..., :3, 3]
    fbx = rb.export_fbx(rig, tmp_path / "rigify.fbx", result.action)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=str(fbx), anim_offset=0.0)
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert not any(n in arm.data.bones for n in ("thigh_fk.L", "upper_arm_ik.L", "MCH-shin_ik.L", "VIS_thigh_ik_pole.L"))
    assert len(arm.data.bones) < len(names) / 2
    after = _world([(arm, n) for n in defs], frames)[..., :3, 3]
    assert np.abs(after - before).max() < 1e-3


def _switch_to_ik(rig, limbs: list[str], value: float = 0.0) -> None:
    """The animator switches ``limbs`` (their parent controls, e.g. ``upper_arm_parent.L``) to IK
    (``value`` 0) or back to FK (1): the retarget's keys on their ``IK_FK`` switch are changed."""
    paths = {f'pose.bones["{limb}"]["IK_FK"]' for limb in limbs}
    for fc in rb.action_fcurves(rig):
        if fc.data_path in paths:
            for kp in fc.keyframe_points:
                kp.co[1] = value
            fc.update()


IK_LIMBS = {"upper_arm_parent.{S}": ("ORG-forearm.{S}", "ORG-hand.{S}"), "thigh_parent.{S}": ("ORG-shin.{S}", "ORG-foot.{S}")}
IK_END_CM = 1.0  # wrists and ankles: IK lands where FK put them
IK_MID_CM = 3.5  # elbows and knees: Rigify's IK chain shrinks ~2% as it bends (ik_stretch 0.1)


def test_generated_rigify_rig_switched_to_ik_keeps_the_pose(clip) -> None:
    """An animator who switches a limb to IK at any frame sees the pose FK showed: the IK
    controls are keyed on the same frames, with the pole target on (pole_vector) or off."""
    src, rig, _box = _scene_with(clip, "rigify_rig")
    result = rb.retarget(src, rig)
    keyed = {p.split('"')[1] for p in (fc.data_path for fc in rb.action_fcurves(rig))}
    for side in ("L", "R"):
        assert {f"hand_ik.{side}", f"foot_ik.{side}", f"upper_arm_ik.{side}", f"thigh_ik.{side}", f"toe_ik.{side}",
                f"upper_arm_ik_target.{side}", f"thigh_ik_target.{side}", f"foot_heel_ik.{side}", f"foot_spin_ik.{side}"} <= keyed
    assert not any(b.startswith(("DEF-", "ORG-", "MCH-")) for b in keyed)
    frames = result.frames[[5, rs.GRASP, -1]]  # mid-walk, the grasp, carrying
    limbs = {p.format(S=s): tuple(b.format(S=s) for b in bones) for p, bones in IK_LIMBS.items() for s in ("L", "R")}
    bones = [b for pair in limbs.values() for b in pair]
    fk = _world([(rig, b) for b in bones], frames)[..., :3, 3]
    # the left arm alone switched to IK: its wrist stays where FK put it, the other limbs untouched
    _switch_to_ik(rig, ["upper_arm_parent.L"])
    one = _world([(rig, b) for b in bones], frames)[..., :3, 3]
    _switch_to_ik(rig, ["upper_arm_parent.L"], 1.0)
    err = np.linalg.norm(one - fk, axis=-1).max(axis=0) * 100  # cm per bone
    assert err[bones.index("ORG-hand.L")] < IK_END_CM and err[bones.index("ORG-forearm.L")] < IK_MID_CM
    assert np.delete(err, [bones.index("ORG-hand.L"), bones.index("ORG-forearm.L")]).max() < 1e-3
    for pole in (False, True):  # every limb in IK, with and without the pole target
        for limb in limbs:
            rig.pose.bones[limb]["pole_vector"] = pole
        _switch_to_ik(rig, list(limbs))
        ik = _world([(rig, b) for b in bones], frames)[..., :3, 3]
        _switch_to_ik(rig, list(limbs), 1.0)
        err = dict(zip(bones, np.linalg.norm(ik - fk, axis=-1).max(axis=0) * 100))
        for mid, end in limbs.values():
            assert err[end] < IK_END_CM and err[mid] < IK_MID_CM, (pole, {b: round(float(e), 2) for b, e in err.items()})


def test_generated_rigify_rig_failure_leaves_it_untouched(clip, monkeypatch) -> None:
    from hosig_blender import control_bake

    src, rig, _box = _scene_with(clip, "rigify_rig")
    bpy.context.scene.frame_set(1)
    rig.pose.bones["thigh_fk.L"].rotation_quaternion = (0.9, 0.1, 0.0, 0.0)  # the animator's pose
    before = {pb.name: [list(r) for r in pb.matrix_basis] for pb in rig.pose.bones}
    switches = control_bake.switch_values(rig)
    values = {k: rig.pose.bones[k[0]][k[1]] for k in switches}
    n_actions = len(bpy.data.actions)
    # DEF bones are driven by constraints: a map onto them is refused, naming the preset to use
    with pytest.raises(rb.RetargetError, match="driven by constraints.*rigify_rig"):
        rb.retarget(src, rig, rb.RetargetOptions(preset="rigify_def"))
    # a bake that does not reproduce the solve (a customised rig) is undone whole
    monkeypatch.setattr(control_bake, "verify", lambda *a: (0.05, "ORG-hand.R"))
    with pytest.raises(rb.RetargetError, match="5.0 cm.*ORG-hand.R"):
        rb.retarget(src, rig)
    assert len(bpy.data.actions) == n_actions
    assert rig.animation_data is None or rig.animation_data.action is None
    assert {k: rig.pose.bones[k[0]][k[1]] for k in switches} == values
    after = {pb.name: [list(r) for r in pb.matrix_basis] for pb in rig.pose.bones}
    assert after == before


# -- export round trips ------------------------------------------------------------------------------

def _heads(arm, frames) -> np.ndarray:
    names = [b.name for b in arm.data.bones]
    return _world([(arm, n) for n in names], frames)[..., :3, 3], names


def test_fbx_and_bvh_round_trip(clip, tmp_path) -> None:
    src, target, _box = _scene_with(clip, "unreal")
    result = rb.retarget(src, target)
    frames = result.frames[::7]
    before, names = _heads(target, frames)
    fbx = rb.export_fbx(target, tmp_path / "shot.fbx", result.action)
    bvh = rb.export_bvh(target, tmp_path / "shot.bvh", int(result.frames[0]), int(result.frames[-1]), result.action)
    assert fbx.stat().st_size > 0 and bvh.stat().st_size > 0

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=str(fbx), anim_offset=0.0)  # FBX time f/fps is frame f
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert sorted(b.name for b in arm.data.bones) == sorted(names)  # no leaf bones added
    after = _world([(arm, n) for n in names], frames)[..., :3, 3]
    err = np.abs(after - before).max(axis=(0, 2))
    assert err.max() < 1e-3, {n: round(float(e), 4) for n, e in zip(names, err) if e > 1e-3}

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_anim.bvh(filepath=str(bvh), axis_forward="Y", axis_up="Z", frame_start=int(result.frames[0]),
                            rotate_mode="NATIVE", update_scene_fps=False, update_scene_duration=True)
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    after = _world([(arm, n) for n in names], frames)[..., :3, 3]
    err = np.abs(after - before).max(axis=(0, 2))
    assert err.max() < 1e-3, {n: round(float(e), 4) for n, e in zip(names, err) if e > 1e-3}


# -- the headless command ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rig_file(clip, tmp_path_factory):
    """A .blend with the Mixamo and UE5 rigs, a non-humanoid armature and the box."""
    _fresh()
    rs.mixamo_rig(bpy, clip["body"])
    rs.unreal_rig(bpy, clip["body"])
    _box(clip["box_at"])
    data = bpy.data.armatures.new("Tentacle")
    obj = bpy.data.objects.new("Tentacle", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    prev = None
    for i in range(12):
        b = data.edit_bones.new(f"seg.{i:02d}")
        b.head, b.tail = (2.0, 0.0, 0.1 * i), (2.0, 0.0, 0.1 * (i + 1))
        b.parent = prev
        prev = b
    bpy.ops.object.mode_set(mode="OBJECT")
    path = tmp_path_factory.mktemp("rigs") / "rigs.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_retarget_reports_map_and_contacts(clip, rig_file, tmp_path, capsys) -> None:
    before = _digest(rig_file)
    out, fbx, bvh = tmp_path / "shot.blend", tmp_path / "shot.fbx", tmp_path / "shot.bvh"
    code = main(["blender", "retarget", str(clip["path"]), "--rig", str(rig_file), "--armature", "UE5", "--out", str(out),
                 "--fbx", str(fbx), "--bvh", str(bvh), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["preset"] == "unreal" and report["bone_map"]["left_knee"] == "calf_l"
    assert "root" in report["unmapped"] and "thigh_twist_01_l" in report["unmapped"]
    shot = report["shots"][0]
    for side in ("left", "right"):
        feet = shot["contacts"]["feet"][side]
        assert feet["target_slide_cm_s"] <= feet["source_slide_cm_s"] + SLIDE_MARGIN_CM_S
        assert feet["target_height_error_cm"] < FLOOR_CM
    assert shot["contacts"]["grasp"]["hand_object_cm"] < HAND_CM
    assert out.is_file() and fbx.is_file() and bvh.is_file()
    assert _digest(rig_file) == before  # the user's rig file is never written
    bpy.ops.wm.open_mainfile(filepath=str(out))
    ue = bpy.data.objects["UE5"]
    assert ue.animation_data.action.name == shot["action"]
    assert bpy.data.objects[shot["source"]].hide_get()


def test_cli_retarget_onto_a_generated_rigify_rig_file(clip, tmp_path, capsys) -> None:
    """``hosig blender retarget`` on a saved generated Rigify rig: the contacts hold on its deform
    bones, the controls' self-check is reported, and the saved shot gives the same limbs in IK."""
    _fresh()
    _box(clip["box_at"])
    _generated_rig()
    rig_file = tmp_path / "rigify.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(rig_file))
    before = _digest(rig_file)
    out = tmp_path / "shot.blend"
    code = main(["blender", "retarget", str(clip["path"]), "--rig", str(rig_file), "--armature", "rig", "--out", str(out),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["preset"] == "rigify_rig" and report["bone_map"]["right_wrist"] == "ORG-hand.R"
    shot = report["shots"][0]
    for side in ("left", "right"):
        feet = shot["contacts"]["feet"][side]
        assert feet["planted_frames"] > 20
        assert feet["target_slide_cm_s"] <= feet["source_slide_cm_s"] + SLIDE_MARGIN_CM_S
        assert feet["target_height_error_cm"] < FLOOR_CM
    assert shot["contacts"]["grasp"]["hand"] == "right" and shot["contacts"]["grasp"]["hand_object_cm"] < HAND_CM
    assert shot["control_check_cm"]["fk_cm"] < 1.0 and shot["control_check_cm"]["ik_ends_cm"] < IK_END_CM
    assert _digest(rig_file) == before  # the user's rig file is never written
    # the saved shot: every limb switched to IK keeps its hands and feet where FK has them
    bpy.ops.wm.open_mainfile(filepath=str(out))
    rig = bpy.data.objects["rig"]
    assert rig.animation_data.action.name == shot["action"]
    frames = np.array([shot["frames"][0] + 10, shot["contacts"]["grasp"]["frame"], shot["frames"][1]])
    ends = [f"ORG-{b}.{s}" for b in ("hand", "foot") for s in ("L", "R")]
    fk = _world([(rig, b) for b in ends], frames)[..., :3, 3]
    _switch_to_ik(rig, [f"{limb}.{s}" for limb in ("upper_arm_parent", "thigh_parent") for s in ("L", "R")])
    ik = _world([(rig, b) for b in ends], frames)[..., :3, 3]
    assert np.linalg.norm(ik - fk, axis=-1).max() * 100 < IK_END_CM


def test_cli_scene_file_brings_the_carried_object(clip, tmp_path, capsys) -> None:
    _fresh()
    box = _box(clip["box_at"])  # the only object: the whole scene is the room
    glb = tmp_path / "room.glb"
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB")
    bpy.data.objects.remove(box)
    rs.unreal_rig(bpy, clip["body"])
    rig = tmp_path / "ue.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(rig))
    out = tmp_path / "shot.blend"
    code = main(["blender", "retarget", str(clip["path"]), "--rig", str(rig), "--armature", "UE5", "--scene", str(glb),
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    grasp = json.loads(captured.out.strip().splitlines()[-1])["shots"][0]["contacts"]["grasp"]  # (the glTF export above prints too)
    assert grasp["hand_object_cm"] < HAND_CM
    assert "source_wrist_object_origin_cm" in grasp, captured.out[-3000:]
    # the box sits at the source wrist at the grasp; the target's wrist meets it
    assert grasp["source_wrist_object_origin_cm"] < 0.5 and grasp["target_wrist_object_origin_cm"] < HAND_CM
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert bpy.data.objects["box"].animation_data.action.name == "UE5_box"


def test_cli_two_clips_human_report_and_one_file_each(clip, rig_file, tmp_path, capsys) -> None:
    import shutil

    second = tmp_path / "take_2.npz"
    shutil.copy(clip["path"], second)
    out, bvh = tmp_path / "two.blend", tmp_path / "shot.bvh"
    code = main(["blender", "retarget", str(clip["path"]), str(second), "--rig", str(rig_file), "--armature", "Mixamo",
                 "--out", str(out), "--bvh", str(bvh), "--nla"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith(f"wrote {out}") and "bone map mixamo" in lines[0]
    assert len(lines) == 3 and all("planted-foot slide" in ln for ln in lines[1:])
    assert sorted(p.name for p in tmp_path.glob("shot_*.bvh")) == ["shot_take_2.bvh", "shot_walk_grasp.bvh"]
    bpy.ops.wm.open_mainfile(filepath=str(out))
    ad = bpy.data.objects["Mixamo"].animation_data
    assert len(ad.nla_tracks) == 2 and ad.action is None  # the exports left the strips as they were
    assert not any(t.mute for t in ad.nla_tracks)


@pytest.mark.parametrize("case", ["not_humanoid", "no_such_armature", "missing_bone", "other_body", "out_is_rig"])
def test_cli_bad_input_one_line_nothing_written(clip, rig_file, tmp_path, capsys, case) -> None:
    from hosig.clip import MotionClip

    before = _digest(rig_file)
    out = tmp_path / "out.blend"
    clip_path, armature, extra = str(clip["path"]), "Mixamo", []
    words = {"not_humanoid": "not a humanoid", "no_such_armature": "'Nobody' does not exist",
             "missing_bone": "has no bone for", "other_body": "sha256:00000000feedface", "out_is_rig": "never written"}[case]
    if case == "not_humanoid":
        armature = "Tentacle"
    elif case == "no_such_armature":
        armature = "Nobody"
    elif case == "missing_bone":
        extra = ["--preset", "unreal"]  # the Mixamo rig has none of the UE names
    elif case == "other_body":
        other = MotionClip.load(clip["path"])
        other.body_identity = "sha256:00000000feedface"
        clip_path = str(other.save(tmp_path / "other.npz"))
    elif case == "out_is_rig":
        out = rig_file
    code = main(["blender", "retarget", clip_path, "--rig", str(rig_file), "--armature", armature, "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and words in err[0], err
    assert _digest(rig_file) == before
    if case != "out_is_rig":
        assert not out.exists()
