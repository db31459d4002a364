"""Clip files into Blender: `hosig blender import` (headless subprocess), `clip_import` in-process,
File › Import › HOSIG clip, and the engine's `render_sheet`.

The imported armature reproduces the clip's joints within 1 mm (same keying path as streaming), the
carried object is keyed from `object_transforms`, a clip of another body identity is refused
before anything is written, and the contact sheets have the documented size.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from blender_support import FakeServer, fake_body, free_port, fresh_addon, walking_clip

bpy = pytest.importorskip("bpy")

from hosig.body.skeleton import JOINT_NAMES  # noqa: E402
from hosig.cli.blender_render import render_sheet, sheet_size  # noqa: E402
from hosig.cli.main import main  # noqa: E402
from hosig.clip import MotionClip  # noqa: E402
from hosig_blender import clip_import, preferences  # noqa: E402

pytestmark = pytest.mark.blender

N = 30
LIFT_FROM = 15  # the bottle rises 2 cm per frame from this clip frame on


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The kitchen room and a mannequin clip walking 1 m in 30 frames past the bottle, carrying it."""
    import torch

    from hosig.body.model import load_body_model
    from hosig.scene.demo import write_demo_scene

    folder = tmp_path_factory.mktemp("clips")
    kitchen = write_demo_scene(folder / "kitchen.glb", "kitchen", 0)
    model = load_body_model()
    x, y = np.linspace(-2.0, -1.0, N), np.full(N, -1.5)
    poses = np.zeros((N, 165))
    poses[:, :3] = model.standing_orient(0.0)
    poses[:, 3:66] = 0.15 * np.sin(np.linspace(0, 2 * np.pi, N))[:, None]  # not just the rest pose
    trans = np.stack([model.standing_transl(0.0, x[i], y[i]) for i in range(N)])
    with torch.no_grad():
        joints = model.forward(poses[:, :3], trans, body_pose=poses[:, 3:66], left_hand_pose=poses[:, 75:120],
                               right_hand_pose=poses[:, 120:165]).joints.numpy()
    mats = np.tile(np.eye(4), (N, 1, 1))
    mats[LIFT_FROM:, 2, 3] = 0.02 * np.arange(N - LIFT_FROM)
    clip = MotionClip(poses=poses, trans=trans, joints=joints, object_name="bottle", object_transforms=mats,
                      grasp_frame=LIFT_FROM, body_identity=model.identity)
    walk = clip.save(folder / "walk.npz")
    clip.body_identity = "sha256:00000000feedface"
    other = clip.save(folder / "other_body.npz")
    return {"kitchen": kitchen, "walk": walk, "other": other, "joints": joints, "identity": model.identity}


def _heads(arm, names) -> np.ndarray:
    return np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in names])


def test_cli_import_keys_the_clip_object_and_sheet(files, tmp_path, capsys) -> None:
    out, sheet = tmp_path / "walk.blend", tmp_path / "sheet.png"
    code = main(["blender", "import", str(files["walk"]), "--scene", str(files["kitchen"]), "--out", str(out),
                 "--sheet", str(sheet), "--frames", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert [a["name"] for a in report["armatures"]] == ["walk"]
    assert report["armatures"][0]["frames"] == N and report["armatures"][0]["frame_range"] == [1, N]
    assert report["armatures"][0]["object_keyed"] and report["sheet"] == str(sheet.resolve())
    assert _png_size(sheet) == sheet_size(1, 4)

    bpy.ops.wm.open_mainfile(filepath=str(out))
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert [a.name for a in arms] == ["walk"]
    arm = arms[0]
    assert len(arm.data.bones) == 56 and arm.animation_data.action.name == "walk"
    scene = bpy.context.scene
    for f in (0, 9, 21, N - 1):
        scene.frame_set(1 + f)
        pelvis = np.array(list(arm.matrix_world @ arm.pose.bones["pelvis"].head))
        assert np.abs(pelvis - files["joints"][f, 0]).max() < 1e-3
        # every joint, fingers included (the body JSON carries the hands mean)
        assert np.abs(_heads(arm, JOINT_NAMES) - files["joints"][f]).max() < 1e-3
    bottle = bpy.data.objects["bottle"]
    assert bottle.animation_data.action.name == "walk_bottle"
    scene.frame_set(1)
    z0 = bottle.matrix_world.translation.z
    scene.frame_set(N)
    assert bottle.matrix_world.translation.z == pytest.approx(z0 + 0.02 * (N - 1 - LIFT_FROM), abs=1e-4)


def test_cli_refuses_another_body_identity_and_bad_files(files, tmp_path, capsys) -> None:
    out = tmp_path / "nope.blend"
    assert main(["blender", "import", str(files["other"]), "--out", str(out), "--json"]) == 1
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and err.out == ""
    assert "sha256:00000000feedface" in lines[0] and files["identity"] in lines[0]
    assert not out.exists()

    not_clip = tmp_path / "weights.npz"
    np.savez(not_clip, a=np.zeros(3))
    for bad, words in ((tmp_path / "missing.npz", "does not exist"), (not_clip, "lacks the field")):
        assert main(["blender", "import", str(bad), "--out", str(out)]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0]
    assert not out.exists()


def _save_fake_clip(path, body, identity: str, seed: int = 0, object_name: str | None = None):
    clip = walking_clip(body, N, seed)
    mats = None
    if object_name:
        mats = np.tile(np.eye(4), (N, 1, 1))
        mats[LIFT_FROM:, 2, 3] = 0.01 * np.arange(N - LIFT_FROM)
    MotionClip(poses=clip["poses"], trans=clip["trans"], joints=clip["joints"], body_identity=identity,
               object_name=object_name, object_transforms=mats).save(path)
    return clip


def _snapshot():
    return {kind: sorted(x.name for x in getattr(bpy.data, kind))
            for kind in ("objects", "actions", "meshes", "armatures", "collections")}


def test_import_folder_and_identity_check_in_blender(tmp_path) -> None:
    fresh_addon()
    body = fake_body()
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "manifest.json").write_text("{}")
    a = _save_fake_clip(batch / "cup_from_table.npz", body, body.identity, seed=1)
    b = _save_fake_clip(batch / "walk_out.npz", body, body.identity, seed=2)
    bad = tmp_path / "bad.npz"
    _save_fake_clip(bad, body, "sha256:other")

    before = _snapshot()
    with pytest.raises(ValueError) as err:
        clip_import.import_clip(bad, body)
    assert "sha256:other" in str(err.value) and body.identity in str(err.value)
    with pytest.raises(ValueError):  # all files are checked before any is imported
        clip_import.import_clips([batch / "walk_out.npz", bad], body)
    assert _snapshot() == before

    arms = clip_import.import_folder(batch, body)
    assert [x.name for x in arms] == ["cup_from_table", "walk_out"]
    scene = bpy.context.scene
    assert scene.frame_end >= N
    for arm, clip in zip(arms, (a, b)):
        for f in (0, 13, N - 1):
            scene.frame_set(1 + f)
            assert np.abs(_heads(arm, body.joint_names) - clip["joints"][f]).max() < 1e-3
    assert len({x.data.name for x in arms}) == 2
    assert len({c.data.name for x in arms for c in x.children}) == 1  # the body mesh is shared


def test_file_import_operator(tmp_path) -> None:
    from hosig_blender import operators

    fresh_addon()
    assert operators.menu_import in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    body = fake_body()
    clip = _save_fake_clip(tmp_path / "take_1.npz", body, body.identity)
    _save_fake_clip(tmp_path / "take_2.npz", body, body.identity, seed=3)
    mesh = bpy.data.meshes.new("box")
    mesh.from_pydata([(0, 0, 0), (0.1, 0, 0), (0, 0.1, 0)], [], [(0, 1, 2)])
    box = bpy.data.objects.new("box", mesh)
    bpy.context.scene.collection.objects.link(box)
    _save_fake_clip(tmp_path / "carry.npz", body, body.identity, object_name="box")

    preferences.FALLBACK.url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="server"):
        bpy.ops.hosig.import_clip(filepath=str(tmp_path / "take_1.npz"))
    assert not [o for o in bpy.data.objects if o.type == "ARMATURE"]

    with FakeServer(body) as server:
        preferences.FALLBACK.url = server.url
        assert bpy.ops.hosig.import_clip(directory=str(tmp_path), files=[{"name": "take_1.npz"}, {"name": "take_2.npz"}],
                                         frame_start=5) == {"FINISHED"}
        assert bpy.ops.hosig.import_clip(filepath=str(tmp_path / "carry.npz")) == {"FINISHED"}
    assert sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE") == ["carry", "take_1", "take_2"]
    arm = bpy.data.objects["take_1"]
    assert clip_import.keyed_range(arm) == (5, 5 + N - 1)
    bpy.context.scene.frame_set(5 + 20)
    assert np.abs(_heads(arm, body.joint_names) - clip["joints"][20]).max() < 1e-3
    assert box.animation_data.action.name == "carry_box"
    bpy.context.scene.frame_set(N)
    assert box.matrix_world.translation.z == pytest.approx(0.01 * (N - 1 - LIFT_FROM), abs=1e-5)


def test_render_sheet_one_row_per_item(files, tmp_path) -> None:
    items = [{"scene": str(files["kitchen"]), "clip": str(files["walk"]), "label": "walk in the kitchen", "target": "bottle"},
             {"scene": None, "clip": str(files["walk"]), "label": "walk, no room", "target": None}]
    out = render_sheet(items, tmp_path / "worst.png", frames=2)
    assert out == (tmp_path / "worst.png").resolve() and _png_size(out) == sheet_size(2, 2)
