"""The scene upload advances in short steps (issue #21: it never blocks Blender's UI): each step
exports one object or sends a bounded number of bytes, the upload completes over many calls,
the server gets the same bytes the one-shot payload had, and Esc stops it."""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import FakeServer, fake_body, fresh_addon

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
