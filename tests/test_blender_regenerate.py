"""Regenerate Around Edits and Generate Variations in Blender (bpy wheel, headless) against a real
`hosig serve` (tiny motion checkpoint, preview quality) — issue #20.

Generate a pick -> rotate the right shoulder at one frame (the hand moves ~15 cm) and move the
pelvis 10 cm sideways at another -> the add-on finds those keys, turns them into anchors, picks
the range and streams the regeneration into a new take: anchors met on the evaluated armature,
frames outside the range as the first take, the edited take kept untouched; a cancelled
regeneration changes nothing; variations are scored and listed best first, one kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import ROOT  # noqa: F401  (puts the add-on on sys.path)

bpy = pytest.importorskip("bpy")

from hosig.demo import free_port, start_server, stop_server, wait_healthy  # noqa: E402
from hosig.scene.demo import write_demo_scene  # noqa: E402
from hosig_blender import edits, generation, headless, preferences, regenerate  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]
SHOT = "Bottle pick"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from pipeline_support import tiny_motion_checkpoint

    folder = tmp_path_factory.mktemp("server")
    ckpt = tiny_motion_checkpoint(folder / "ckpt")
    port = free_port()
    proc = start_server(port, folder / "server.log", model=str(ckpt), quality="preview")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, folder / "server.log", 180)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def generated(server, tmp_path_factory):
    """The kitchen with one generated pick (module-wide: generation is the slow part)."""
    kitchen = write_demo_scene(tmp_path_factory.mktemp("scene") / "kitchen.glb", "kitchen", 0)
    headless.reset()
    scene = bpy.context.scene
    scene.frame_start = scene.frame_current = 1
    headless.import_scene(kitchen)
    name, target, action, place, start, heading = headless.DEMO_SHOTS[0]
    headless.add_shot(scene, name, target, action, start, heading, place)
    queue = headless.generate([name], server, timeout_s=600)
    assert not queue.failures, queue.failures
    return scene, queue.finished[0].received_joints()


def _bone_world(arm, name: str) -> np.ndarray:
    return np.array(list(arm.matrix_world @ arm.pose.bones[name].head))


def _edit(scene, body) -> dict:
    """Rotate the right shoulder at one frame and move the pelvis 10 cm sideways at another (keys)."""
    from mathutils import Quaternion

    arm = scene.hosig.shots[SHOT].armature
    take = generation.load_take(arm.animation_data.action)
    hand_f, pelvis_f = take.n_frames // 3, take.n_frames // 3 + 24
    scene.frame_set(take.frame_start + hand_f)
    before = _bone_world(arm, "right_wrist")
    pb = arm.pose.bones["right_shoulder"]
    pb.rotation_quaternion = pb.rotation_quaternion @ Quaternion((0.0, 0.0, 1.0), 0.35)
    pb.keyframe_insert("rotation_quaternion", frame=take.frame_start + hand_f)
    scene.frame_set(take.frame_start + hand_f)
    moved = float(np.linalg.norm(_bone_world(arm, "right_wrist") - before))
    scene.frame_set(take.frame_start + pelvis_f)
    pel = arm.pose.bones["pelvis"]
    rest = np.array([[arm.data.bones["pelvis"].matrix_local[r][c] for c in range(3)] for r in range(3)])
    pel.location = tuple(np.array(pel.location) + np.array([0.0, 0.10, 0.0]) @ rest)
    pel.keyframe_insert("location", frame=take.frame_start + pelvis_f)
    return {"hand_frame": hand_f, "pelvis_frame": pelvis_f, "hand_moved_m": moved, "take": take}


def _queue(specs, on_tick=None):
    queue = generation.GenerationQueue(bpy.context, [], preferences.FALLBACK, generation.RunOptions())
    queue.add_runs(SHOT, specs)
    return generation.run_blocking(queue, timeout_s=900, on_tick=on_tick)


def _keys(action) -> list:
    out = []
    for fc in regenerate._fcurves(action):
        co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out.append((fc.data_path, fc.array_index, co.round(6).tolist()))
    return sorted(out)


def test_regenerate_around_edits_into_a_new_take(generated, server) -> None:
    scene, first_joints = generated
    shot = scene.hosig.shots[SHOT]
    arm = shot.armature
    body = generation.CACHE.body[server]
    edit = _edit(scene, body)
    assert 0.10 < edit["hand_moved_m"] < 0.25, edit
    edited = arm.animation_data.action
    edited_keys = _keys(edited)

    spec, anchors, (first, last) = regenerate.regenerate_spec(shot, body)
    found = {(a["joint"], a["frame"], "position" in a) for a in anchors}
    assert ("right_wrist", edit["hand_frame"], True) in found and ("pelvis", edit["pelvis_frame"], True) in found
    assert ("right_shoulder", edit["hand_frame"], False) in found
    assert first <= edit["hand_frame"] and edit["pelvis_frame"] <= last and last - first + 1 >= edits.MIN_RANGE_FRAMES

    # a cancelled regeneration changes nothing
    queue = _queue([spec], on_tick=lambda q: q.current is not None and q.current.frames_received > 0)
    assert queue.failures and arm.animation_data.action == edited and _keys(edited) == edited_keys
    assert len(shot.takes) == 1

    queue = _queue([spec])
    assert not queue.failures, queue.failures
    summary = queue.finished[0].summary
    new = arm.animation_data.action
    assert new != edited and edited.name in bpy.data.actions and edited.use_fake_user
    assert _keys(edited) == edited_keys  # the edited take is kept as it was
    assert len(shot.takes) == 2 and shot.takes[1].action == new and shot.takes[1].kind == "regenerate"
    by_key = {(a["joint"], a["frame"]): a for a in summary["anchors"]}
    for key in (("right_wrist", edit["hand_frame"]), ("pelvis", edit["pelvis_frame"]), ("right_shoulder", edit["hand_frame"])):
        assert by_key[key]["met"], by_key[key]
    # on the evaluated armature: the keys are met, frames outside the range are the first take's
    take = edit["take"]
    for a in anchors:
        if "position" in a and a["joint"] in ("right_wrist", "pelvis") and a["frame"] in (edit["hand_frame"], edit["pelvis_frame"]):
            scene.frame_set(take.frame_start + a["frame"])
            assert np.linalg.norm(_bone_world(arm, a["joint"]) - np.array(a["position"])) < 0.02, a
    for f in (0, first - 1, last + 1, take.n_frames - 1):
        if 0 <= f < take.n_frames and not first <= f <= last:
            scene.frame_set(take.frame_start + f)
            assert np.abs(_bone_world(arm, "right_wrist") - first_joints[f, 21]).max() < 1e-3, f
    # back to the edited take and forward again
    regenerate.use_take(shot, 0)
    assert arm.animation_data.action == edited
    regenerate.use_take(shot, 1)
    assert arm.animation_data.action == new


def test_variations_ranked_and_one_kept(generated, server) -> None:
    scene, _ = generated
    shot = scene.hosig.shots[SHOT]
    before = len(shot.takes)
    queue = _queue(regenerate.variation_specs(shot, 2))
    assert not queue.failures, queue.failures
    made = list(shot.takes)[before:]
    assert [t.kind for t in made] == ["variation", "variation"] and all(t.score >= 0 for t in made)
    order = regenerate.ranked_takes(shot)
    scored = [i for i in order if shot.takes[i].score >= 0]
    assert [shot.takes[i].score for i in scored] == sorted(shot.takes[i].score for i in scored)
    best = min(range(before, len(shot.takes)), key=lambda i: shot.takes[i].score)
    best_action = shot.takes[best].action
    regenerate.keep_take(shot, best)
    assert shot.armature.animation_data.action == best_action
    assert sum(t.kind == "variation" for t in shot.takes) == 1
