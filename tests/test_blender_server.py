"""The add-on against a real `hosig serve` subprocess on loopback, headless (bpy wheel).

The kitchen demo room is imported with Blender's glTF importer and generated through the add-on's
own client and polling step: a 55-bone armature with a keyed action whose joints match the
streamed `joints` within 1 mm; the carried bottle keyed with its old animation kept; cancelling or
killing the server mid-stream leaves earlier shots and the user's objects untouched. Preview Path
(issue #21) is a RUNNING_MODAL operator whose scene upload and /plan the timer advances: the path
is drawn, Esc changes nothing, a request the server refuses is one clear report.
"""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import ROOT, OperatorProbe, ProbeContext, event, tick_preview  # noqa: F401  (ROOT puts the add-on on sys.path)

bpy = pytest.importorskip("bpy")

from hosig.demo import free_port, start_server, stop_server, wait_healthy  # noqa: E402
from hosig.scene.demo import write_demo_scene  # noqa: E402
from hosig_blender import generation, headless  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    return write_demo_scene(tmp_path_factory.mktemp("scene") / "kitchen.glb", "kitchen", 0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny motion checkpoint (the pipeline tests' helper) so the test needs no committed model."""
    from pipeline_support import tiny_motion_checkpoint

    return tiny_motion_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _serve(folder, checkpoint):
    port = free_port()
    log = folder / "server.log"
    proc = start_server(port, log, model=str(checkpoint), quality="preview")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log, 180)
    return url, proc


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, checkpoint):
    url, proc = _serve(tmp_path_factory.mktemp("server"), checkpoint)
    yield url, proc
    stop_server(proc)


@pytest.fixture()
def server(request, tmp_path, shared_server, checkpoint):
    """The shared server, or a private one for the test that kills it."""
    if getattr(request, "param", None) == "own":
        url, proc = _serve(tmp_path, checkpoint)
        yield url, proc
        stop_server(proc)
    else:
        yield shared_server


def _snapshot():
    out = {"objects": sorted(o.name for o in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions)}
    for o in bpy.data.objects:
        ad = o.animation_data
        out["assigned:" + o.name] = ad.action.name if ad and ad.action else None
        out["matrix:" + o.name] = np.round(np.array(o.matrix_world), 6).tolist()
    return out


def _skip_without_model(queue) -> None:
    for _, message in queue.failures:
        if message.startswith("bad_checkpoint"):
            pytest.skip(f"the server has no motion model yet: {message}")


def _setup(kitchen):
    headless.reset()
    scene = bpy.context.scene
    scene.frame_start = scene.frame_current = 1
    headless.import_scene(kitchen)
    bottle = bpy.data.objects["bottle"]
    for frame in (1, 10):  # user animation that must survive (same place, so the scene is unchanged)
        bottle.keyframe_insert("location", frame=frame)
    bottle.animation_data.action.name = "bottle_user_anim"
    return scene


def test_pick_generation_against_real_server(kitchen, server) -> None:
    url, _ = server
    scene = _setup(kitchen)
    name, target, action, place, start, heading = headless.DEMO_SHOTS[0]
    headless.add_shot(scene, name, target, action, start, heading, place)
    queue = headless.generate([name], url, timeout_s=600)
    _skip_without_model(queue)
    assert not queue.failures, queue.failures
    run = queue.finished[0]
    shot = scene.hosig.shots[name]
    arm = shot.armature
    assert arm.name == name and len(arm.data.bones) == 56
    body = generation.CACHE.body[url]
    assert set(b.name for b in arm.data.bones) == {"root", *body.joint_names}
    act = arm.animation_data.action
    assert act.name == name and act.frame_range[1] - act.frame_range[0] + 1 == run.frames_received
    joints = run.received_joints()
    check = list(range(55)) if body.hands_mean is not None else list(range(25))  # fingers need /body hands_mean
    for f in np.linspace(0, len(joints) - 1, 5).astype(int):
        scene.frame_set(1 + int(f))
        heads = np.array([list(arm.matrix_world @ arm.pose.bones[body.joint_names[j]].head) for j in check])
        assert np.abs(heads - joints[f][check]).max() < 1e-3
    bottle = bpy.data.objects["bottle"]
    old = bpy.data.actions["bottle_user_anim"]
    assert bottle.animation_data.action != old and old.use_fake_user
    grasp = int(run.summary.get("grasp_frame", 0))
    scene.frame_set(1)
    start_z = bottle.matrix_world.translation.z
    scene.frame_set(int(act.frame_range[1]))
    assert bottle.matrix_world.translation.z > start_z + 0.02 or grasp >= run.frames_received - 1


@pytest.mark.parametrize("how,server", [("cancel", "shared"), ("kill", "own")], indirect=["server"])
def test_cancel_or_dead_server_mid_stream_changes_nothing(kitchen, server, how) -> None:
    url, proc = server
    scene = _setup(kitchen)
    name, target, action, place, start, heading = headless.DEMO_SHOTS[0]
    headless.add_shot(scene, name, target, action, start, heading, place)
    before = _snapshot()

    def on_tick(queue) -> bool:
        run = queue.current
        if run is None or run.frames_received == 0:  # wait until the first frames are keyed
            return False
        if how == "kill" and proc.poll() is None:
            proc.kill()
            return False
        return how == "cancel"

    seen = {}

    def watch(queue) -> bool:
        if queue.current is not None:
            seen["frames"] = max(seen.get("frames", 0), queue.current.frames_received)
        return on_tick(queue)

    queue = headless.generate([name], url, timeout_s=300, on_tick=watch)
    _skip_without_model(queue)
    assert seen.get("frames", 0) > 0  # it really was mid-stream
    shot = scene.hosig.shots[name]
    assert _snapshot() == before
    assert shot.armature is None
    if how == "cancel":
        assert shot.status == "CANCELLED" and "cancel" in shot.result
    else:
        assert shot.status == "FAILED"
        assert "server" in shot.result and ("closed" in shot.result or "lost" in shot.result)


def test_start_local_server_from_the_configured_command(tmp_path) -> None:
    import sys

    from hosig_blender import client, preferences, runtime

    with pytest.raises(client.ServerError) as err:
        runtime.start_local_server("hosig-no-such-command-xyz --port 1")
    assert "cannot run" in err.value.message and "preferences" in err.value.message
    port = free_port()
    preferences.FALLBACK.url = f"http://127.0.0.1:{port}"
    msg = runtime.start_local_server(f"{sys.executable} -m hosig.cli.main serve --host 127.0.0.1 --port {port}")
    try:
        assert "started" in msg and runtime.LOCAL_SERVER.poll() is None
        assert runtime.wait_for_server(timeout_s=180)
        assert runtime.SERVER["state"] == "connected" and runtime.SERVER["info"]["status"] == "ok"
        assert "connected" in runtime.SERVER["message"]
    finally:
        stop_server(runtime.LOCAL_SERVER)
    assert runtime.check_server(timeout_s=0.5)["state"] == "offline"
    assert f"127.0.0.1:{port}" in runtime.SERVER["message"]


def test_preview_path_against_real_server(kitchen, server) -> None:
    import time

    from hosig_blender import operators, overlay, preferences, runtime

    url, _ = server
    scene = _setup(kitchen)
    name, target, action, place, start, heading = headless.DEMO_SHOTS[0]
    shot = headless.add_shot(scene, name, target, action, start, heading, place)
    preferences.FALLBACK.url, preferences.FALLBACK.token = url, ""
    generation.CACHE.scenes.clear()
    overlay.PATHS.clear()
    before = _snapshot()
    context = ProbeContext()
    session = bpy.context.window_manager.hosig_session

    op = OperatorProbe(operators.HOSIG_OT_plan_preview)
    assert op.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
    job, longest, ticks, t_start = runtime.PREVIEW, 0.0, 0, time.perf_counter()
    interval = 0.0
    while interval is not None:  # the timer's steps, timed: none of them waits for the server
        assert time.perf_counter() - t_start < 180, job.message
        time.sleep(interval)
        t0 = time.perf_counter()
        interval = runtime._preview_tick()
        longest = max(longest, time.perf_counter() - t0)
        ticks += 1
        if interval is not None:
            assert op.modal(context, event("MOUSEMOVE")) == {"PASS_THROUGH"}
    assert job.state == "done", job.message
    assert ticks > 2 and longest < 0.5, (ticks, longest)
    cached = overlay.PATHS[scene.name]
    assert cached["key"] == overlay.plan_key(shot) and len(cached["waypoints"]) > 1 and cached["stand"] is not None
    assert np.hypot(*np.subtract(cached["waypoints"][0], start)) < 0.3  # the walk starts at the shot's start
    assert op.modal(context, event()) == {"FINISHED"}
    assert len(op.reports) == 1 and op.reports[0][0] == "INFO" and op.reports[0][1].startswith("path ")
    assert session.preview_state == "DONE" and _snapshot() == before

    # Esc while the scene is being uploaded: nothing changes, the path drawn before stays
    generation.CACHE.scenes.clear()
    drawn = dict(cached)
    op = OperatorProbe(operators.HOSIG_OT_plan_preview)
    op.invoke(context, event("LEFTMOUSE", "PRESS"))
    runtime.PREVIEW.upload.budget_s = 0.0
    assert runtime._preview_tick() is not None and runtime.PREVIEW.state == "upload"
    assert op.modal(context, event("ESC", "PRESS")) == {"CANCELLED"}
    assert op.reports == [("WARNING", "path preview cancelled; nothing was changed")]
    assert overlay.PATHS[scene.name] == drawn and _snapshot() == before

    # a request the server refuses (the target is hidden, so not in the uploaded scene): one report
    bpy.data.objects[target].hide_set(True)
    before = _snapshot()
    op = OperatorProbe(operators.HOSIG_OT_plan_preview)
    assert op.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
    tick_preview(limit_s=120)
    assert op.modal(context, event()) == {"FINISHED"}
    assert len(op.reports) == 1 and op.reports[0][0] == "ERROR", op.reports
    message = op.reports[0][1]
    assert message.startswith("path preview failed: ") and "HTTP 404" in message and "hidden?" in message and target in message, message
    assert session.preview_state == "FAILED" and session.preview_message == message
    assert overlay.PATHS[scene.name] == drawn and _snapshot() == before
    bpy.data.objects[target].hide_set(False)
