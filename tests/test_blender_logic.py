"""Add-on logic that needs no Blender: pose math, key reduction, picking, the streaming client."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from blender_support import FakeServer, fake_body, free_port, smplx_fk, walking_clip
from scipy.spatial.transform import Rotation

from hosig.frames import YUP_TO_ZUP
from hosig_blender import client, picking, posemath
from hosig_blender.protocol import BodyData, FramesChunk, generate_request, merge_chunks


def _blender_pose_heads(body: BodyData, rest_rot: np.ndarray, quats: np.ndarray, loc: np.ndarray) -> np.ndarray:
    """Blender's pose evaluation (parent @ rest_p^-1 @ rest_i @ basis) in numpy, for one frame."""
    def mat(r, t):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = r, t
        return m

    rest = [mat(rest_rot[i], body.rest_joints[i]) for i in range(55)]
    posed = [None] * 55
    for i in range(55):
        basis = mat(Rotation.from_quat(quats[i][[1, 2, 3, 0]]).as_matrix(), loc if i == 0 else np.zeros(3))
        parent = np.eye(4) if body.parents[i] < 0 else posed[body.parents[i]] @ np.linalg.inv(rest[body.parents[i]])
        posed[i] = parent @ rest[i] @ basis
    return np.array([m[:3, 3] for m in posed])


def test_bone_quaternions_reproduce_smplx_joints_for_any_bone_orientation() -> None:
    body = fake_body()
    clip = walking_clip(body, 6, seed=3)
    rest_rot = Rotation.random(55, random_state=1).as_matrix()  # arbitrary bone directions/rolls
    quats = posemath.bone_quaternions(clip["poses"], rest_rot)
    locs = posemath.pelvis_locations(clip["trans"], body.rest_joints, rest_rot[0])
    for t in range(6):
        heads = _blender_pose_heads(body, rest_rot, quats[t], locs[t])
        assert np.abs(heads - clip["joints"][t]).max() < 1e-9


def test_quaternion_helpers_agree_with_scipy() -> None:
    rots = Rotation.random(200, random_state=2)
    q = posemath.mat_to_quat(rots.as_matrix())
    ref = rots.as_quat()[:, [3, 0, 1, 2]]
    assert np.allclose(np.abs(np.sum(q * ref, axis=1)), 1.0, atol=1e-9)
    q2 = posemath.aa_to_quat(rots.as_rotvec())
    assert np.allclose(np.abs(np.sum(q2 * ref, axis=1)), 1.0, atol=1e-9)
    assert np.allclose(posemath.aa_to_quat(np.zeros((1, 3))), [[1, 0, 0, 0]])


def test_make_continuous_removes_sign_flips() -> None:
    q = posemath.aa_to_quat(np.array([[0, 0, a] for a in np.linspace(0, 6, 50)]))
    q[::3] *= -1
    out = posemath.make_continuous(q, previous=np.array([1.0, 0, 0, 0]))
    assert np.all(np.sum(out[1:] * out[:-1], axis=1) > 0)
    assert out[0, 0] > 0


def test_keys_sent_again_replace_the_first_ones_and_stay_sign_continuous() -> None:
    frames = np.array([0, 1, 2, 3, 4, 1, 2], dtype=float)  # frames 1-2 sent again (a repaired range)
    values = np.arange(7, dtype=float)[:, None] * [1.0, -1.0]
    merged, once = posemath.last_per_frame(frames, values)
    np.testing.assert_array_equal(merged, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(once[:, 0], [0, 5, 6, 3, 4])
    q = posemath.aa_to_quat(np.array([[0, 0, a] for a in np.linspace(0, 2, 9)]))
    fixed = posemath.make_continuous(q * np.array([1, 1, -1, -1, 1, -1, 1, 1, 1])[:, None])
    np.testing.assert_allclose(fixed, q)


def test_merge_chunks_keeps_the_last_version_of_each_frame() -> None:
    def chunk(start: int, n: int, value: float) -> FramesChunk:
        return FramesChunk(start, np.full((n, 165), value), np.full((n, 3), value), np.full((n, 55, 3), value), "cup",
                           np.broadcast_to(np.eye(4) * value, (n, 4, 4)).copy())

    whole = merge_chunks([chunk(0, 5, 1.0), chunk(5, 5, 2.0), chunk(3, 4, 3.0)])
    np.testing.assert_array_equal(whole.poses[:, 0], [1, 1, 1, 3, 3, 3, 3, 2, 2, 2])
    assert whole.start == 0 and whole.object_name == "cup" and whole.object_transforms[4, 0, 0] == 3.0
    assert merge_chunks([]) is None


def test_reduce_keys_bounds_linear_error_and_drops_keys() -> None:
    x = np.linspace(0, 1, 300)
    values = np.stack([np.sin(5 * x), np.cos(3 * x), x**2], axis=1)
    for tol in (1e-2, 1e-3):
        keep = posemath.reduce_keys(values, tol)
        assert keep[0] == 0 and keep[-1] == 299
        interp = np.stack([np.interp(np.arange(300), keep, values[keep, c]) for c in range(3)], axis=1)
        assert np.abs(interp - values).max() <= tol + 1e-12
        assert len(keep) < 300 // 3
    assert len(posemath.reduce_keys(np.ones((50, 2)), 1e-6)) == 2


def test_ray_floor_and_heading() -> None:
    assert picking.ray_floor((0, 0, 2), (0, 0, -1)) == (0.0, 0.0, 0.0)
    p = picking.ray_floor((1, 1, 2), (1, 0, -1), floor_z=0.5)
    assert p == pytest.approx((2.5, 1.0, 0.5))
    assert picking.ray_floor((0, 0, 2), (1, 0, 0)) is None  # parallel
    assert picking.ray_floor((0, 0, 2), (0, 0, 1)) is None  # pointing away
    assert picking.heading_from_drag((0, 0), (0, 1)) == pytest.approx(math.pi / 2)
    assert picking.heading_from_drag((1, 1), (0, 1)) == pytest.approx(math.pi)
    assert picking.heading_from_drag((0, 0), (0.01, 0)) is None


def test_pick_floor_point_ignores_tabletops_and_pick_object_skips_excluded() -> None:
    def table_ray(origin, direction):  # a table top at z = 0.75 under every ray
        t = (0.75 - origin[2]) / direction[2]
        return True, (origin[0] + t * direction[0], origin[1] + t * direction[1], 0.75), "table"

    point = picking.pick_floor_point(table_ray, (0, 0, 3), (0.5, 0, -1), floor_z=0.0)
    assert point == pytest.approx((1.5, 0.0, 0.0))  # fell through to the floor under the cursor

    def rug_ray(origin, direction):
        return True, (0.3, 0.2, 0.01), "rug"

    assert picking.pick_floor_point(rug_ray, (0, 0, 3), (0, 0, -1)) == pytest.approx((0.3, 0.2, 0.0))

    hits = iter([(True, (0, 0, 1.0), "Shot_body"), (True, (0, 0, 0.8), "bottle")])
    assert picking.pick_object(lambda o, d: next(hits), (0, 0, 3), (0, 0, -1), exclude=lambda n: n.endswith("_body")) == "bottle"
    assert picking.pick_object(lambda o, d: (False, (0, 0, 0), None), (0, 0, 3), (0, 0, -1)) is None
    segs = picking.arrow_segments(1.0, 2.0, 0.0, 0.0)
    assert len(segs) % 2 == 0 and max(p[0] for p in segs) == pytest.approx(1.5)


def test_protocol_round_trips() -> None:
    body = fake_body()
    again = BodyData.from_json(body.to_json())
    assert again.joint_names == body.joint_names
    assert np.allclose(again.rest_joints, body.rest_joints)
    assert np.array_equal(again.faces, body.faces)
    clip = walking_clip(body, 4)
    chunk = FramesChunk.from_event({"type": "frames", "start": 8, "count": 4, "poses": clip["poses"].tolist(),
                                    "trans": clip["trans"].tolist(), "joints": clip["joints"].tolist(),
                                    "object_name": None, "object_transforms": None})
    assert chunk.count == 4 and chunk.start == 8 and chunk.joints.shape == (4, 55, 3)
    with pytest.raises(ValueError):
        generate_request("s", (0, 0, None), "cup", "pick-place")
    req = generate_request("s", (1, 2, None), "cup", "pick-place", place="shelf", seed=3)
    assert req["start"] == [1.0, 2.0] and req["place"] == "shelf"


def _drain(stream: client.NdjsonStream, timeout: float = 20.0) -> tuple[list[dict], float]:
    events, worst = [], 0.0
    deadline = time.monotonic() + timeout
    while not stream.finished and time.monotonic() < deadline:
        t0 = time.perf_counter()
        events += stream.poll()
        worst = max(worst, time.perf_counter() - t0)
        time.sleep(0.002)
    return events, worst


def test_stream_client_decodes_chunked_ndjson_without_blocking() -> None:
    body = fake_body()
    with FakeServer(body, n_frames=60, chunk=10, delay_s=0.05) as server:
        stream = client.NdjsonStream(client.ServerConfig(url=server.url), "/generate",
                                     {"scene": "s", "start": [0, 0], "target": "cup", "action": "reach"})
        events, worst = _drain(stream)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "accepted" and kinds[1] == "plan" and kinds[-1] == "done"
    frames = [e for e in events if e["type"] == "frames"]
    assert sum(e["count"] for e in frames) == 60
    assert [e["start"] for e in frames] == list(range(0, 60, 10))
    assert worst < 0.05  # polling returns at once even though the server sleeps between chunks


def test_stream_client_reports_dead_server_and_missing_server() -> None:
    body = fake_body()
    with FakeServer(body, n_frames=60, chunk=10, mode="die", die_after=2) as server:
        stream = client.NdjsonStream(client.ServerConfig(url=server.url), "/generate", {"action": "reach"})
        events, _ = _drain(stream)
    assert sum(e["count"] for e in events if e["type"] == "frames") == 20
    assert events[-1]["type"] == "error" and events[-1]["code"] == "connection_lost"
    assert "closed the stream" in events[-1]["message"] or "lost the connection" in events[-1]["message"]

    port = free_port()
    stream = client.NdjsonStream(client.ServerConfig(url=f"127.0.0.1:{port}"), "/generate", {})
    events, _ = _drain(stream)
    assert events == [events[-1]] and events[-1]["code"] == "no_server"
    assert f"127.0.0.1:{port}" in events[-1]["message"]
    with pytest.raises(client.ServerError) as err:
        client.health(client.ServerConfig(url=f"http://127.0.0.1:{port}"), timeout_s=1.0)
    assert err.value.code == "no_server" and "hosig serve" in err.value.message


def test_fake_clip_fk_is_consistent() -> None:
    body = fake_body()
    clip = walking_clip(body, 3)
    assert np.allclose(smplx_fk(body, clip["poses"], clip["trans"]), clip["joints"])
    # pelvis = rest pelvis (model frame) + trans, as smplx computes it
    assert np.allclose(clip["joints"][:, 0], body.rest_joints[0] @ YUP_TO_ZUP + clip["trans"])


def test_stream_client_gives_up_on_a_silent_server() -> None:
    import socket as _socket

    listener = _socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        stream = client.NdjsonStream(client.ServerConfig(url=f"127.0.0.1:{listener.getsockname()[1]}"), "/generate", {},
                                     idle_timeout_s=0.3)
        events, _ = _drain(stream, timeout=5)
    finally:
        listener.close()
    assert events[-1]["code"] == "timeout" and "sent nothing" in events[-1]["message"]


def test_upload_post_reports_a_scene_refused_before_its_body_was_read() -> None:
    """`hosig serve` answers 413 from Content-Length alone and closes with the body unread (the
    peer then resets the connection): the client reports the server's answer, not the reset."""
    import json as _json
    import socket as _socket
    import threading

    listener = _socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def refuse() -> None:
        conn, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        time.sleep(0.05)  # the client has sent part of the body meanwhile
        body = _json.dumps({"detail": "scene upload of 8388608 bytes exceeds the limit of 1024 bytes", "code": "too_large"}).encode()
        conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        conn.close()  # unread body in the buffer: the kernel answers the client with a reset

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        post = client.JsonPost(client.ServerConfig(url=f"127.0.0.1:{listener.getsockname()[1]}"), "/scenes",
                               b"x" * (8 << 20), "application/vnd.hosig.mesh+json", timeout_s=10)
        with pytest.raises(client.ServerError) as err:
            for _ in range(100000):
                assert post.poll(1 << 16) is None
                time.sleep(0.001)
    finally:
        thread.join(5)
        listener.close()
    assert err.value.code == "too_large", err.value.message
    assert "HTTP 413" in err.value.message and "exceeds the limit" in err.value.message
