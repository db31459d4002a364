"""The add-on inside Blender (bpy wheel, headless) against a fake loopback server.

Rig + keys reproduce the streamed joints within 1 mm; regeneration keeps the old action; the
carried object is keyed and its old animation kept; cancel / a dying server / an error leave every
existing object, action and key untouched; the shot list survives save and reload.
"""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import FakeServer, fake_body, fresh_addon, real_body_and_clip, walking_clip

bpy = pytest.importorskip("bpy")

from hosig_blender import generation, preferences, rig  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture()
def scene():
    """An empty scene with a table, a bottle that already has animation, and the add-on registered."""
    import hosig_blender

    fresh_addon()
    sc = bpy.context.scene
    sc.frame_start, sc.frame_end, sc.frame_current = 1, 50, 1
    for name, loc, size in (("table", (2.0, 0.0, 0.375), (0.8, 0.6, 0.75)), ("bottle", (2.0, 0.0, 0.85), (0.06, 0.06, 0.2))):
        mesh = bpy.data.meshes.new(name)
        verts = [(x * size[0] / 2, y * size[1] / 2, z * size[2] / 2) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        mesh.from_pydata(verts, [], [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
        obj = bpy.data.objects.new(name, mesh)
        obj.location = loc
        sc.collection.objects.link(obj)
    bottle = bpy.data.objects["bottle"]
    bottle.keyframe_insert("location", frame=1)
    bottle.location.x = 2.2
    bottle.keyframe_insert("location", frame=20)
    bottle.animation_data.action.name = "bottle_user_anim"
    yield sc
    hosig_blender.unregister()


def _add_shot(sc, name: str, action: str = "reach", seed: int = 0):
    shot = sc.hosig.shots.add()
    shot.name = name
    shot.start = (0.0, 0.0)
    shot.heading = 0.0
    shot.has_start = True
    shot.target = bpy.data.objects["bottle"]
    shot.action = action
    shot.seed = seed
    return shot


def _run(sc, names, server, **kw):
    preferences.FALLBACK.url = server.url
    queue = generation.GenerationQueue(bpy.context, names, preferences.FALLBACK, generation.RunOptions(frame_start=sc.frame_current, **kw))
    return generation.run_blocking(queue, timeout_s=60)


def _snapshot():
    """Everything a failed generation must leave alone."""
    out = {"objects": sorted(o.name for o in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions),
           "meshes": sorted(m.name for m in bpy.data.meshes), "armatures": sorted(a.name for a in bpy.data.armatures)}
    for a in bpy.data.actions:
        keys = []
        for fc in _fcurves(a):
            co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
            fc.keyframe_points.foreach_get("co", co)
            keys.append((fc.data_path, fc.array_index, co.round(6).tolist()))
        out["keys:" + a.name] = sorted(keys)
    for o in bpy.data.objects:
        ad = o.animation_data
        out["assigned:" + o.name] = ad.action.name if ad and ad.action else None
        out["loc:" + o.name] = tuple(round(v, 6) for v in o.location)
    return out


def _fcurves(action):
    if hasattr(action, "layers"):
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves]
    return list(action.fcurves)


def test_generated_armature_matches_streamed_joints_and_regeneration_keeps_old_action(scene) -> None:
    body = fake_body()
    _add_shot(scene, "Walk")
    scene.frame_current = 10
    with FakeServer(body, n_frames=45, chunk=10) as server:
        queue = _run(scene, ["Walk"], server)
        assert not queue.failures, queue.failures
        arm = scene.hosig.shots["Walk"].armature
        assert arm is not None and arm.name == "Walk" and arm.type == "ARMATURE"
        names = [b.name for b in arm.data.bones]
        assert len(names) == 56 and names[0] == rig.ROOT_BONE
        assert set(names[1:]) == set(body.joint_names)
        assert arm.data.bones["pelvis"].parent.name == "root"
        assert all(pb.rotation_mode == "QUATERNION" for pb in arm.pose.bones)
        action = arm.animation_data.action
        assert action.name == "Walk" and len(_fcurves(action)) == 55 * 4 + 3
        assert all(len(fc.keyframe_points) == 45 for fc in _fcurves(action))
        assert action.frame_range[0] == pytest.approx(10) and action.frame_range[1] == pytest.approx(54)
        assert scene.frame_end >= 54
        clip = server.clip
        for f in (0, 17, 44):
            scene.frame_set(10 + f)
            heads = np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in body.joint_names])
            assert np.abs(heads - clip["joints"][f]).max() < 1e-3
        skin = [c for c in arm.children if c.type == "MESH"]
        assert len(skin) == 1 and skin[0].modifiers[0].object == arm and len(skin[0].vertex_groups) == 55

        # regenerate: new action, old one kept with a fake user, same armature
        scene.frame_current = 10
        queue = _run(scene, ["Walk"], server, reduce=True)
        assert not queue.failures
        assert scene.hosig.shots["Walk"].armature == arm
        new_action = arm.animation_data.action
        assert new_action != action and action.use_fake_user and action.name in bpy.data.actions
        assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 1
        # reduced keys: fewer than every frame, still within tolerance of the stream
        assert min(len(fc.keyframe_points) for fc in _fcurves(new_action)) < 45
        scene.frame_set(10 + 23)
        heads = np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in body.joint_names])
        assert np.abs(heads - clip["joints"][23]).max() < 0.03


def test_frames_sent_again_by_the_repair_replace_the_first_ones(scene) -> None:
    """The server's repair re-sends a redrawn range after the stream: one key per frame, the redrawn
    frames' pose at those frames, the first stream's elsewhere; the stored take is the same."""
    body = fake_body()
    _add_shot(scene, "Repaired", action="pick")
    first_clip, redrawn = walking_clip(body, 40, seed=0), walking_clip(body, 40, seed=5)
    with FakeServer(body, n_frames=40, chunk=10, clip=first_clip, object_name="bottle", repair=(12, 25, redrawn)) as server:
        queue = _run(scene, ["Repaired"], server)
    assert not queue.failures, queue.failures
    run = queue.finished[0]
    assert run.frames_received == 40
    arm = scene.hosig.shots["Repaired"].armature
    action = arm.animation_data.action
    assert all(len(fc.keyframe_points) == 40 for fc in _fcurves(action))
    for f, source in ((5, first_clip), (12, redrawn), (20, redrawn), (25, redrawn), (26, first_clip), (39, first_clip)):
        scene.frame_set(1 + f)
        heads = np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in body.joint_names])
        assert np.abs(heads - source["joints"][f]).max() < 1e-3, f
    np.testing.assert_allclose(run.received_joints()[20], redrawn["joints"][20])
    stored = np.asarray(action["hosig_poses"]).reshape(40, 165)
    np.testing.assert_allclose(stored[20], redrawn["poses"][20], atol=1e-6)
    np.testing.assert_allclose(stored[30], first_clip["poses"][30], atol=1e-6)
    bottle = bpy.data.objects["bottle"]
    assert all(len(fc.keyframe_points) == 40 for fc in _fcurves(bottle.animation_data.action))


def test_the_shot_result_says_what_the_repair_redrew_and_what_it_left() -> None:
    assert generation.repair_note(None) == "" and generation.repair_note({"before": [], "after": [], "attempts": []}) == ""
    mended = {"before": ["pop"], "after": [], "attempts": [{"range": [12, 25], "kept": True}]}
    assert generation.repair_note(mended) == "; redrawn 12–25; judged clean"
    left = {"before": ["pop", "penetration"], "after": ["penetration"],
            "attempts": [{"range": [12, 25], "kept": True}, {"range": [40, 60], "kept": False}]}
    assert generation.repair_note(left) == "; redrawn 12–25; still failing: penetration"


def test_mannequin_rig_matches_smplx_forward_within_1mm(scene) -> None:
    body, clip = real_body_and_clip(n=20)
    _add_shot(scene, "Mannequin")
    with FakeServer(body, chunk=7, clip=clip) as server:
        assert not _run(scene, ["Mannequin"], server).failures
    arm = scene.hosig.shots["Mannequin"].armature
    skin = [c for c in arm.children if c.type == "MESH"][0]
    assert len(skin.data.vertices) == len(body.vertices) and len(skin.vertex_groups) == 55
    worst = 0.0
    for f in (0, 6, 13, 19):
        scene.frame_set(1 + f)
        heads = np.array([list(arm.matrix_world @ arm.pose.bones[n].head) for n in body.joint_names])
        worst = max(worst, float(np.abs(heads - clip["joints"][f]).max()))
    assert worst < 1e-3, worst


def test_pick_keys_the_carried_object_and_keeps_its_animation(scene) -> None:
    body = fake_body()
    _add_shot(scene, "Pick", action="pick")
    bottle = bpy.data.objects["bottle"]
    old = bottle.animation_data.action
    with FakeServer(body, n_frames=40, chunk=10, object_name="bottle") as server:
        queue = _run(scene, ["Pick"], server)
    assert not queue.failures, queue.failures
    assert bottle.animation_data.action != old
    assert old.name == "bottle_user_anim" and old.use_fake_user
    assert len(_fcurves(old)) == 3  # untouched
    scene.frame_set(1 + 39)
    # delta lifts by 1 cm per frame after frame 20, applied on the pose at the start frame (x = 2.0)
    assert bottle.matrix_world.translation.z == pytest.approx(0.85 + 0.01 * 19, abs=1e-4)
    assert bottle.matrix_world.translation.x == pytest.approx(2.0, abs=1e-4)


@pytest.mark.parametrize("mode", ["cancel", "die", "error"])
def test_failed_generation_leaves_everything_untouched(scene, mode: str) -> None:
    body = fake_body()
    _add_shot(scene, "First")
    _add_shot(scene, "Second", action="pick")
    with FakeServer(body, n_frames=30, chunk=10, object_name="bottle") as server:
        assert not _run(scene, ["First"], server).failures
    before = _snapshot()
    fake = FakeServer(body, n_frames=120, chunk=10, delay_s=0.05, object_name="bottle",
                      mode={"cancel": "ok", "die": "die", "error": "error"}[mode], die_after=3)
    with fake as server:
        preferences.FALLBACK.url = server.url
        queue = generation.GenerationQueue(bpy.context, ["Second"], preferences.FALLBACK, generation.RunOptions())
        seen = {"frames": 0}

        def on_tick(q):
            if q.current is not None:
                seen["frames"] = max(seen["frames"], q.current.frames_received)
                if q.current.staging is not None:
                    seen["staging"] = True
            return mode == "cancel" and seen["frames"] >= 30

        generation.run_blocking(queue, timeout_s=60, on_tick=on_tick)
    shot = scene.hosig.shots["Second"]
    assert _snapshot() == before
    assert shot.armature is None
    if mode == "cancel":
        assert seen["frames"] >= 30 and shot.status == "CANCELLED" and "cancel" in shot.result
    elif mode == "die":
        assert seen["frames"] == 30 and shot.status == "FAILED"
        assert "server" in shot.result and ("closed" in shot.result or "lost" in shot.result)
    else:
        assert shot.status == "FAILED" and shot.result.startswith("unreachable:") and "bottle" in shot.result
    assert scene.hosig.shots["First"].status == "DONE"


def test_shot_list_survives_save_and_reload(scene, tmp_path) -> None:
    shot = _add_shot(scene, "Bottle pick", action="pick-place", seed=7)
    shot.place_mode = "OBJECT"
    shot.place_object = bpy.data.objects["table"]
    shot.heading = 1.25
    _add_shot(scene, "Second")
    scene.hosig.active_shot = 1
    scene.hosig.reduce_keys = True
    path = str(tmp_path / "shots.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert len(bpy.context.scene.hosig.shots) == 0
    bpy.ops.wm.open_mainfile(filepath=path)
    s = bpy.context.scene.hosig
    assert [x.name for x in s.shots] == ["Bottle pick", "Second"]
    got = s.shots["Bottle pick"]
    assert got.action == "pick-place" and got.seed == 7 and got.target.name == "bottle"
    assert got.place_object.name == "table" and got.heading == pytest.approx(1.25)
    assert got.place_value() == "table" and got.start_triplet() == (0.0, 0.0, pytest.approx(1.25))
    assert s.active_shot == 1 and s.reduce_keys


def test_shot_operators_add_duplicate_move_remove(scene) -> None:
    bpy.context.view_layer.objects.active = bpy.data.objects["bottle"]
    bpy.ops.hosig.shot_add()
    bpy.ops.hosig.shot_add()
    s = scene.hosig
    assert [x.name for x in s.shots] == ["Shot", "Shot.001"] and s.shots[0].target.name == "bottle"
    s.active_shot = 0
    s.shots[0].seed = 4
    bpy.ops.hosig.shot_duplicate()
    assert [x.name for x in s.shots] == ["Shot", "Shot.002", "Shot.001"] and s.shots[1].seed == 5 and s.active_shot == 1
    bpy.ops.hosig.shot_move(direction="DOWN")
    assert [x.name for x in s.shots] == ["Shot", "Shot.001", "Shot.002"] and s.active_shot == 2
    bpy.ops.hosig.shot_remove()
    assert [x.name for x in s.shots] == ["Shot", "Shot.001"] and s.active_shot == 1


def test_timer_callback_drives_the_queue_and_mirrors_progress(scene) -> None:
    from hosig_blender import runtime

    body = fake_body()
    _add_shot(scene, "Timed")
    with FakeServer(body, n_frames=30, chunk=5, delay_s=0.01) as server:
        preferences.FALLBACK.url = server.url
        queue = runtime.start_queue(bpy.context, ["Timed"])
        assert bpy.app.timers.is_registered(runtime._tick)
        import time

        deadline = time.monotonic() + 30
        interval = runtime._tick()
        while interval is not None and time.monotonic() < deadline:
            time.sleep(interval)
            interval = runtime._tick()
    assert interval is None and not queue.active and not queue.failures
    assert scene.hosig.shots["Timed"].status == "DONE"
    assert "1 shot(s) generated" in scene.hosig.status_line and scene.hosig.progress == pytest.approx(1.0)
    runtime.shutdown()
    assert not bpy.app.timers.is_registered(runtime._tick)


def test_scene_payload_is_world_space_and_skips_our_bodies(scene) -> None:
    import base64

    from hosig_blender.scene_export import scene_payload

    table = bpy.data.objects["table"]
    table.rotation_euler = (0.0, 0.0, 0.5)
    table.scale = (2.0, 1.0, 1.0)
    bpy.context.view_layer.update()
    body = fake_body()
    rig.build_armature("Someone", body, scene.collection)
    payload = scene_payload(bpy.context)
    assert payload["format"] == "hosig-mesh/1"
    names = [o["name"] for o in payload["objects"]]
    assert sorted(names) == ["bottle", "table"]
    item = payload["objects"][names.index("table")]
    verts = np.frombuffer(base64.b64decode(item["vertices"]), dtype="<f4").reshape(-1, 3)
    faces = np.frombuffer(base64.b64decode(item["faces"]), dtype="<i4").reshape(-1, 3)
    expected = np.array([list(table.matrix_world @ v.co) for v in table.data.vertices])
    assert np.allclose(verts, expected, atol=1e-5)
    assert faces.shape == (12, 3) and faces.max() == 7  # quads triangulated


def test_queue_restores_the_garbage_collector(scene) -> None:
    import gc

    body = fake_body()
    _add_shot(scene, "GC")
    assert gc.isenabled()
    with FakeServer(body, n_frames=20, chunk=10) as server:
        preferences.FALLBACK.url = server.url
        queue = generation.GenerationQueue(bpy.context, ["GC"], preferences.FALLBACK, generation.RunOptions())
        assert not gc.isenabled()  # paused while streaming
        generation.run_blocking(queue, timeout_s=30)
        assert gc.isenabled()
        queue = generation.GenerationQueue(bpy.context, ["GC"], preferences.FALLBACK, generation.RunOptions())
        queue.step()
        queue.cancel()
        assert gc.isenabled()


def test_building_a_rig_keeps_the_users_mode_and_selection(scene) -> None:
    table = bpy.data.objects["table"]
    bpy.context.view_layer.objects.active = table
    table.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    arm = rig.build_armature("Probe", fake_body(), scene.collection)
    assert len(arm.data.bones) == 56
    assert bpy.context.view_layer.objects.active == table and table.mode == "EDIT" and table.select_get()
    assert not arm.select_get()
    bpy.ops.object.mode_set(mode="OBJECT")


def test_path_preview_caches_the_plan_for_the_overlay(scene) -> None:
    from hosig_blender import overlay
    from hosig_blender.preview import refresh_plan

    shot = _add_shot(scene, "Path")
    with FakeServer(fake_body()) as server:
        preferences.FALLBACK.url = server.url
        msg = refresh_plan(bpy.context)
        assert msg.startswith("path 2.10 m")
        assert len(server.scenes) == 1
        refresh_plan(bpy.context)
        assert len(server.scenes) == 1  # unchanged scene: not uploaded again
    cached = overlay.PATHS[scene.name]
    assert cached["key"] == overlay.plan_key(shot) and cached["waypoints"][-1] == (2, 0.5)
    assert overlay.path_segments(cached["waypoints"], 0.0) == [(0, 0, 0.0), (1, 0, 0.0), (1, 0, 0.0), (2, 0.5, 0.0)]
    shot.start = (0.5, 0.0)
    assert overlay.plan_key(shot) != cached["key"]  # the overlay stops drawing a stale path
