"""The scene upload advances in short steps (issue #21: it never blocks Blender's UI): each step
exports one object or sends a bounded number of bytes, the upload completes over many calls,
the server gets the same bytes the one-shot payload had, and Esc stops it."""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import FakeServer, OperatorProbe, ProbeContext, event, fake_body, fresh_addon, tick_preview

pytest.importorskip("bpy")

from hosig_blender import client  # noqa: E402
from hosig_blender.protocol import mesh_payload  # noqa: E402
from hosig_blender.scene_export import payload_bytes  # noqa: E402
from hosig_blender.upload import SceneUpload  # noqa: E402

pytestmark = pytest.mark.blender


def _objects(n: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {f"box{i}": (rng.normal(size=(200, 3)).astype(np.float32), rng.integers(0, 200, size=(300, 3)).astype(np.int32))
            for i in range(n)}


class _CountingExporter:
    """Exports one object per call and records how many objects each `step` asked for."""

    def __init__(self, objects) -> None:
        self.objects = objects
        self.calls: list[str] = []

    def __call__(self, name: str):
        self.calls.append(name)
        return self.objects.get(name)


def test_upload_runs_in_many_bounded_steps_and_sends_the_same_bytes() -> None:
    objects = _objects()
    names = list(objects) + ["deleted meanwhile"]
    exporter = _CountingExporter(objects)
    cache: dict = {}
    with FakeServer(fake_body()) as server:
        upload = SceneUpload(client.ServerConfig(url=server.url), names, exporter, cache, max_send=4096, budget_s=0.0)
        sent_before, exported_before, fractions = 0, 0, []
        while upload.step():
            # bounded work per step: at most one object exported, at most max_send bytes sent
            assert len(exporter.calls) - exported_before <= 1
            exported_before = len(exporter.calls)
            sent = upload._post.sent if upload._post is not None else 0
            assert sent - sent_before <= 4096
            sent_before = sent
            fractions.append(upload.fraction)
        assert upload.error is None and upload.state == "done"
        expected, sha = payload_bytes(mesh_payload([(n, *objects[n]) for n in objects]))
        assert server.scenes == [expected]  # what the one-shot export would have sent
        assert upload.scene_id == "scene1" and cache == {(server.url, sha): "scene1"}
        assert upload.steps > len(names) + len(expected) // 4096  # many short steps
        assert fractions == sorted(fractions) and upload.fraction == 1.0

        again = SceneUpload(client.ServerConfig(url=server.url), names, _CountingExporter(objects), cache)
        assert again.run() == "scene1" and len(server.scenes) == 1  # unchanged scene: not sent again


def test_cancel_stops_the_upload_and_no_server_is_an_error() -> None:
    objects = _objects(3)
    with FakeServer(fake_body()) as server:
        upload = SceneUpload(client.ServerConfig(url=server.url), list(objects), _CountingExporter(objects), {}, max_send=1024,
                             budget_s=0.0)
        while upload.state == "export":
            upload.step()
        upload.step()
        upload.cancel()
        assert upload.state == "cancelled" and not upload.step() and upload.scene_id is None
        with pytest.raises(client.ServerError):
            upload.run()

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    upload = SceneUpload(client.ServerConfig(url=f"http://127.0.0.1:{port}"), list(objects), _CountingExporter(objects), {})
    for _ in range(1000):
        if not upload.step():
            break
    assert upload.state == "failed" and upload.error.code == "no_server"


@pytest.fixture()
def scene():
    """An empty scene with two boxes and one shot, the add-on registered."""
    import bpy

    import hosig_blender

    fresh_addon()
    sc = bpy.context.scene
    for name, loc in (("table", (2.0, 0.0, 0.375)), ("bottle", (2.0, 0.0, 0.85))):
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata([(x * 0.1, y * 0.1, z * 0.1) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], [],
                         [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
        obj = bpy.data.objects.new(name, mesh)
        obj.location = loc
        sc.collection.objects.link(obj)
    shot = sc.hosig.shots.add()
    shot.name, shot.start, shot.heading, shot.has_start = "S", (0.0, 0.0), 0.0, True
    shot.target, shot.action = bpy.data.objects["bottle"], "reach"
    yield sc
    hosig_blender.unregister()


def test_the_queue_uploads_from_its_timer_steps_and_esc_cancels_the_upload(scene) -> None:
    import bpy

    from hosig_blender import generation, preferences

    with FakeServer(fake_body(), n_frames=20, chunk=10) as server:
        preferences.FALLBACK.url = server.url
        queue = generation.GenerationQueue(bpy.context, ["S"], preferences.FALLBACK, generation.RunOptions())
        assert server.scenes == [] and queue.scene_id is None  # creating the queue did not upload
        assert "uploading" in queue.status_text()
        generation.run_blocking(queue, timeout_s=30)
        assert len(server.scenes) == 1 and queue.scene_id == "scene1" and not queue.failures
        assert scene.hosig.shots["S"].status == "DONE"

        generation.CACHE.scenes.clear()
        queue = generation.GenerationQueue(bpy.context, ["S"], preferences.FALLBACK, generation.RunOptions())
        queue.upload.budget_s = 0.0  # one object per step: the upload is still running after one
        queue.step()
        assert queue.upload.state == "export"
        queue.cancel()  # Esc while uploading
        assert not queue.step() and queue.upload.state == "cancelled"
        assert scene.hosig.shots["S"].status == "CANCELLED" and len(server.scenes) == 1


# -- Preview Path: a RUNNING_MODAL operator whose job the runtime timer advances (issue #21) -------

def _user_state(sc):
    """What a path preview must never change: objects, their data and transforms, the shots."""
    import bpy

    out = {"objects": sorted(o.name for o in bpy.data.objects), "meshes": sorted(m.name for m in bpy.data.meshes),
           "actions": sorted(a.name for a in bpy.data.actions)}
    for o in bpy.data.objects:
        out["transform:" + o.name] = [tuple(round(v, 6) for v in o.location), tuple(round(v, 6) for v in o.rotation_euler),
                                      tuple(round(v, 6) for v in o.scale)]
        out["verts:" + o.name] = len(o.data.vertices) if o.type == "MESH" else None
    for shot in sc.hosig.shots:
        out["shot:" + shot.name] = (tuple(shot.start), shot.heading, shot.has_start, shot.target.name if shot.target else None,
                                    shot.status, shot.result)
    return out


def test_preview_path_is_modal_and_draws_the_path_from_timer_steps(scene) -> None:
    import bpy

    from hosig_blender import operators, overlay, preferences, runtime

    before = _user_state(scene)
    with FakeServer(fake_body()) as server:
        preferences.FALLBACK.url = server.url
        context = ProbeContext()
        op = OperatorProbe(operators.HOSIG_OT_plan_preview)
        assert op.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
        assert context.window_manager.handlers == [op] and context.window_manager.timers
        job = runtime.PREVIEW
        assert job is op._job and bpy.app.timers.is_registered(runtime._preview_tick)
        assert server.scenes == [] and server.plans == []  # invoke itself sent nothing
        session = bpy.context.window_manager.hosig_session
        assert session.preview_state == "RUNNING" and "uploading" in session.preview_message
        job.upload.budget_s = 0.0  # one object or chunk per tick
        assert op.modal(context, event("MOUSEMOVE")) == {"PASS_THROUGH"}  # the UI goes on meanwhile
        ticks = tick_preview()
        assert ticks >= 3 and job.state == "done"  # two objects, the send, the plan: several timer steps
        assert len(server.scenes) == 1 and server.plans == [{"scene": "scene1", "start": [0.0, 0.0, 0.0], "target": "bottle"}]
    cached = overlay.PATHS[scene.name]
    assert cached["key"] == overlay.plan_key(scene.hosig.active()) and cached["waypoints"][-1] == (2, 0.5)
    assert session.preview_state == "DONE" and session.preview_message == "path 2.10 m, 2.0 s"
    assert session.preview_progress == pytest.approx(1.0)
    assert op.modal(context, event()) == {"FINISHED"}  # the window timer's next event ends it
    assert op.reports == [("INFO", "path 2.10 m, 2.0 s")] and context.window_manager.timers == []
    assert _user_state(scene) == before
    assert runtime._preview_tick() is None  # a finished preview's timer ends at once


def test_preview_path_esc_cancels_and_changes_nothing(scene) -> None:
    import bpy

    from hosig_blender import generation, operators, overlay, preferences, runtime
    from hosig_blender.preview import refresh_plan

    with FakeServer(fake_body()) as server:
        preferences.FALLBACK.url = server.url
        assert refresh_plan(bpy.context) == "path 2.10 m, 2.0 s"  # a path is drawn already
        drawn = dict(overlay.PATHS[scene.name])
        generation.CACHE.scenes.clear()  # so the next preview has to upload
        before = _user_state(scene)
        context = ProbeContext()
        op = OperatorProbe(operators.HOSIG_OT_plan_preview)
        assert op.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
        runtime.PREVIEW.upload.budget_s = 0.0
        assert runtime._preview_tick() is not None and runtime.PREVIEW.upload.state == "export"  # mid-upload
        assert op.modal(context, event("ESC", "PRESS")) == {"CANCELLED"}
        assert op.reports == [("WARNING", "path preview cancelled; nothing was changed")]
        assert not bpy.app.timers.is_registered(runtime._preview_tick) and runtime._preview_tick() is None
        assert len(server.scenes) == 1 and len(server.plans) == 1  # nothing more was sent
        assert bpy.context.window_manager.hosig_session.preview_state == "CANCELLED"

        # a second Preview Path replaces the one in flight; the first operator ends quietly
        first, second = OperatorProbe(operators.HOSIG_OT_plan_preview), OperatorProbe(operators.HOSIG_OT_plan_preview)
        first.invoke(context, event("LEFTMOUSE", "PRESS"))
        second.invoke(context, event("LEFTMOUSE", "PRESS"))
        assert first._job.state == "cancelled" and first.modal(context, event()) == {"CANCELLED"} and first.reports == []
        bpy.ops.hosig.cancel()  # the panel's Cancel button stops a preview too
        assert second.modal(context, event()) == {"FINISHED"}
        assert second.reports == [("WARNING", "path preview cancelled; nothing was changed")]
        assert len(server.scenes) == 1 and len(server.plans) == 1
    assert overlay.PATHS[scene.name] == drawn and _user_state(scene) == before


@pytest.mark.parametrize("case", ["server down", "scene refused", "no path", "no start"])
def test_preview_path_failure_is_one_clear_report(scene, case) -> None:
    import socket

    import bpy

    from hosig_blender import operators, overlay, preferences, runtime

    errors = {"scene refused": {"scene_error": (413, "too_large", "scene upload of 900 bytes exceeds the limit of 10 bytes")},
              "no path": {"plan_error": (422, "unreachable", "no path to 'bottle' from (0.00, 0.00)")}}
    if case == "no start":
        scene.hosig.active().has_start = False
    before = _user_state(scene)
    with FakeServer(fake_body(), **errors.get(case, {})) as server:
        preferences.FALLBACK.url = server.url
        if case == "server down":
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                preferences.FALLBACK.url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
        context = ProbeContext()
        op = OperatorProbe(operators.HOSIG_OT_plan_preview)
        result = op.invoke(context, event("LEFTMOUSE", "PRESS"))
        if case == "no start":
            assert result == {"CANCELLED"} and context.window_manager.handlers == []
            assert op.reports == [("ERROR", "Preview Path: set a start and a target first")]
        else:
            assert result == {"RUNNING_MODAL"}
            tick_preview()
            assert op.modal(context, event()) == {"FINISHED"}
            assert bpy.context.window_manager.hosig_session.preview_state == "FAILED"
            assert len(op.reports) == 1 and op.reports[0][0] == "ERROR", op.reports
            message = op.reports[0][1]
            expected = {"server down": ("failed: no HOSIG server answers", "hosig serve"),
                        "scene refused": ("the server refused the scene", "HTTP 413", "exceeds the limit"),
                        "no path": ("no path:", "HTTP 422", "no path to 'bottle'")}[case]
            assert message.startswith("path preview failed: ") and all(part in message for part in expected), message
            assert bpy.context.window_manager.hosig_session.preview_message == message
    assert scene.name not in overlay.PATHS and _user_state(scene) == before
    assert runtime._preview_tick() is None


def test_generate_shares_the_modal_job_operator(scene) -> None:
    import time

    import bpy

    from hosig_blender import operators, preferences, runtime

    with FakeServer(fake_body(), n_frames=20, chunk=10) as server:
        preferences.FALLBACK.url = server.url
        context = ProbeContext()
        op = OperatorProbe(operators.HOSIG_OT_generate, all=False)
        assert op.invoke(context, event("LEFTMOUSE", "PRESS")) == {"RUNNING_MODAL"}
        assert op._job is runtime.QUEUE and bpy.app.timers.is_registered(runtime._tick)
        assert op.modal(context, event("MOUSEMOVE")) == {"PASS_THROUGH"}
        interval = runtime._tick()
        while interval is not None:
            time.sleep(interval)
            interval = runtime._tick()
        assert op.modal(context, event()) == {"FINISHED"}
        assert op.reports == [("INFO", "HOSIG: 1 shot(s) generated, 0 failed")]

        op = OperatorProbe(operators.HOSIG_OT_generate, all=False)
        op.invoke(context, event("LEFTMOUSE", "PRESS"))
        assert op.modal(context, event("ESC", "PRESS")) == {"CANCELLED"}
        assert op.reports == [("WARNING", "generation cancelled; nothing was changed")]
        assert scene.hosig.shots["S"].status == "CANCELLED"
    runtime.shutdown()
