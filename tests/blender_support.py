"""Helpers for the Blender tests: a small body, SMPL-X forward kinematics, a fake NDJSON server.

The fake server speaks the wire protocol (ARCHITECTURE.md) over loopback with real HTTP/1.1
chunked streaming, so the add-on's client, keying and roll-back are exercised without the engine.
The test process may use threads (the add-on may not).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the add-on package lives at the repository root

from hosig.body.skeleton import JOINT_NAMES, PARENTS  # noqa: E402
from hosig.frames import YUP_TO_ZUP  # noqa: E402
from hosig_blender.protocol import BodyData  # noqa: E402


def fake_body() -> BodyData:
    """SMPL-X skeleton at plausible rest positions with a box per joint as the skinned mesh."""
    try:
        from hosig.body.proportions import rest_skeleton

        joints_y = np.asarray(rest_skeleton().joints, dtype=np.float64)
    except Exception:  # noqa: BLE001 - keep the tests independent of the mannequin builder
        rng = np.random.default_rng(0)
        joints_y = np.zeros((55, 3))
        for i in range(1, 55):
            joints_y[i] = joints_y[PARENTS[i]] + rng.normal(scale=0.08, size=3)
    rest = joints_y @ YUP_TO_ZUP.T
    cube_v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * 0.01
    cube_f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                       [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    verts, faces, widx = [], [], []
    for j in range(55):
        verts.append(rest[j] + cube_v)
        faces.append(cube_f + 8 * j)
        widx.append(np.tile([j, PARENTS[j] if PARENTS[j] >= 0 else 0, 0, 0], (8, 1)))
    wval = np.tile([0.75, 0.25, 0.0, 0.0], (55 * 8, 1))
    return BodyData("test-body", list(JOINT_NAMES), PARENTS.copy(), rest,
                    np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32),
                    np.concatenate(widx).astype(np.int32), wval.astype(np.float32))


def smplx_fk(body: BodyData, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T,165),(T,3) -> (T,55,3) joints exactly as smplx computes them (global orient Z-up)."""
    poses = np.asarray(poses).reshape(len(poses), 55, 3)
    rot = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), 55, 3, 3)
    j_y = body.rest_joints @ YUP_TO_ZUP  # (55,3) model frame
    g = np.zeros_like(rot)
    p = np.zeros((len(poses), 55, 3))
    g[:, 0] = rot[:, 0]
    p[:, 0] = j_y[0] + trans
    for i in range(1, 55):
        par = PARENTS[i]
        g[:, i] = g[:, par] @ rot[:, i]
        p[:, i] = p[:, par] + np.einsum("tij,j->ti", g[:, par], j_y[i] - j_y[par])
    return p


def walking_clip(body: BodyData, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A smooth synthetic clip: upright body walking along +X with swinging limbs."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 30.0
    poses = np.zeros((n, 165))
    heading = Rotation.from_euler("z", 0.0) * Rotation.from_euler("z", np.pi / 2) * Rotation.from_matrix(YUP_TO_ZUP)
    poses[:, :3] = heading.as_rotvec()
    amp = rng.uniform(0.1, 0.5, size=(54, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(54, 3))
    poses[:, 3:] = (amp[None] * np.sin(2 * np.pi * t[:, None, None] + phase[None])).reshape(n, -1)
    trans = np.stack([1.2 * t, np.zeros(n), np.zeros(n)], axis=1)
    return {"poses": poses, "trans": trans, "joints": smplx_fk(body, poses, trans)}


class FakeServer:
    """Loopback server with /health, /body, /scenes, /plan, /generate (NDJSON) and cancel.

    ``mode``: "ok" streams the clip; "die" closes the socket after ``die_after`` chunks;
    "error" sends an `unreachable` error event after the plan. ``scene_error`` / ``plan_error``
    ``(status, code, message)``: /scenes or /plan answer that HTTP error as the real server does.
    ``repair`` ``(first, last, clip)``: after the stream, frames first..last of ``clip`` are sent again.
    """

    def __init__(self, body: BodyData, n_frames: int = 90, chunk: int = 15, delay_s: float = 0.0,
                 mode: str = "ok", die_after: int = 2, object_name: str | None = None,
                 clip: dict[str, np.ndarray] | None = None, scene_error: tuple[int, str, str] | None = None,
                 plan_error: tuple[int, str, str] | None = None,
                 repair: tuple[int, int, dict[str, np.ndarray]] | None = None) -> None:
        self.body = body
        self.repair = repair  # (first, last, clip): frames sent again after the stream, as the server's repair does
        self.scene_error, self.plan_error = scene_error, plan_error
        self.plans: list[dict[str, Any]] = []
        self.clip = clip if clip is not None else walking_clip(body, n_frames)
        self.chunk, self.delay_s, self.mode, self.die_after = chunk, delay_s, mode, die_after
        self.object_name = object_name
        self.cancelled: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.scenes: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, obj: Any, status: int = 200) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_GET(self):
                if self.path == "/health":
                    self._json({"status": "ok", "version": "test", "device": "cpu", "body_model": "test-body",
                                "model_loaded": True, "queue_length": 0})
                elif self.path == "/body":
                    self._json(server.body.to_json())
                else:
                    self._json({"detail": "not found"}, 404)

            def do_POST(self):
                raw = self._body()
                if self.path == "/scenes" and server.scene_error is not None:
                    status, code, message = server.scene_error
                    self._json({"detail": message, "code": code}, status)
                elif self.path == "/scenes":
                    server.scenes.append(raw)
                    self._json({"id": f"scene{len(server.scenes)}", "objects": [], "floor_z": 0.0})
                elif self.path == "/plan":
                    server.plans.append(json.loads(raw))
                    if server.plan_error is not None:
                        status, code, message = server.plan_error
                        self._json({"detail": message, "code": code, "message": message}, status)
                        return
                    self._json({"waypoints": [[0, 0], [1, 0], [2, 0.5]], "stand": [2, 0.5, 0.0], "length_m": 2.1, "duration_s": 2.0})
                elif self.path.startswith("/jobs/") and self.path.endswith("/cancel"):
                    server.cancelled.add(self.path.split("/")[2])
                    self._json({"ok": True})
                elif self.path == "/generate":
                    server.requests.append(json.loads(raw))
                    self._stream(json.loads(raw))
                else:
                    self._json({"detail": "not found"}, 404)

            def _send(self, event: dict[str, Any]) -> None:
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _frames(self, clip: dict[str, np.ndarray], s: int, e: int, obj: str | None, n: int | None = None) -> None:
                n = n or len(clip["poses"])
                mats = None
                if obj:
                    mats = []
                    for f in range(s, e):
                        m = np.eye(4)
                        m[:3, 3] = [0.0, 0.0, 0.01 * max(0, f - n // 2)]  # lifted after the "grasp"
                        mats.append(m.reshape(-1).tolist())
                self._send({"type": "frames", "start": s, "count": e - s, "poses": clip["poses"][s:e].tolist(),
                            "trans": clip["trans"][s:e].tolist(), "joints": clip["joints"][s:e].tolist(),
                            "object_name": obj, "object_transforms": mats})

            def _stream(self, req: dict[str, Any]) -> None:
                job = f"job{len(server.requests)}"
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                clip = server.clip
                n = len(clip["poses"])
                self._send({"type": "accepted", "job_id": job})
                self._send({"type": "plan", "start": req.get("start"), "stand": [2, 0, 0], "waypoints": [[0, 0], [2, 0]],
                            "times": [0, n / 30], "length_m": 2.0, "duration_s": n / 30})
                if server.mode == "error":
                    self._send({"type": "error", "code": "unreachable", "message": "no path to 'bottle'"})
                    self.wfile.write(b"0\r\n\r\n")
                    return
                obj = server.object_name if req.get("action") in ("pick", "pick-place") else None
                for k, s in enumerate(range(0, n, server.chunk)):
                    if job in server.cancelled:
                        self._send({"type": "error", "code": "cancelled", "message": "job cancelled"})
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    if server.mode == "die" and k == server.die_after:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.connection.close()
                        return
                    self._frames(clip, s, min(n, s + server.chunk), obj)
                    if server.delay_s:
                        time.sleep(server.delay_s)
                if server.repair is not None:  # the server's repair sends a redrawn range again
                    first, last, redrawn = server.repair
                    self._frames(redrawn, first, last + 1, obj, n)
                self._send({"type": "done", "summary": {"frames": n, "duration_s": n / 30, "grasp_frame": n // 2,
                                                        "metrics": {"skate_cm_s": 1.0}, "body_identity": "test-body"}})
                self.wfile.write(b"0\r\n\r\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_body_and_clip(n: int = 20, seed: int = 0) -> tuple[BodyData, dict[str, np.ndarray]]:
    """The embedded mannequin as /body serves it, and a clip whose joints come from smplx itself."""
    import torch

    from hosig.body.model import load_body_model

    model = load_body_model()
    rest = model.rest_mesh_zup()
    body = BodyData(model.identity, list(model.joint_names), np.asarray(model.parents), np.asarray(rest.rest_joints, dtype=np.float64),
                    rest.vertices, rest.faces, rest.weights_index, rest.weights_value,
                    np.concatenate([np.asarray(model.hands_mean["left"]).reshape(-1), np.asarray(model.hands_mean["right"]).reshape(-1)]))
    rng = np.random.default_rng(seed)
    poses = np.zeros((n, 165))
    poses[:, :3] = [model.standing_orient(h) for h in np.linspace(0.0, 1.5, n)]
    poses[:, 3:] = rng.normal(scale=0.25, size=(n, 162))
    trans = np.stack([model.standing_transl(0.0, 0.05 * i, 0.02 * i) for i in range(n)])
    with torch.no_grad():
        out = model.forward(poses[:, :3], trans, body_pose=poses[:, 3:66], left_hand_pose=poses[:, 75:120],
                            right_hand_pose=poses[:, 120:165], jaw_pose=poses[:, 66:69], leye_pose=poses[:, 69:72],
                            reye_pose=poses[:, 72:75])
    return body, {"poses": poses, "trans": trans, "joints": out.joints.numpy().astype(np.float64)}


def fresh_addon() -> None:
    """An empty Blender file with the add-on freshly registered and its session caches cleared."""
    import bpy

    import hosig_blender
    from hosig_blender import generation

    hosig_blender.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hosig_blender.register()
    generation.CACHE.body.clear()
    generation.CACHE.scenes.clear()


# -- modal operators without an event loop -----------------------------------------------------

class ProbeWindowManager:
    """The real WindowManager, except that the modal handler and the window timer are recorded
    (the bpy wheel has no event loop to run a modal operator in)."""

    def __init__(self) -> None:
        self.handlers: list = []
        self.timers: list = []

    def modal_handler_add(self, op) -> bool:
        self.handlers.append(op)
        return True

    def event_timer_add(self, step, window=None):
        self.timers.append(step)
        return step

    def event_timer_remove(self, timer) -> None:
        self.timers.remove(timer)

    def __getattr__(self, name):
        import bpy

        return getattr(bpy.context.window_manager, name)


class ProbeContext:
    """``bpy.context`` with the recording window manager."""

    def __init__(self) -> None:
        self.window_manager = ProbeWindowManager()

    def __getattr__(self, name):
        import bpy

        return getattr(bpy.context, name)


class OperatorProbe:
    """Stands in for the instance Blender makes of an operator class: the class's own methods,
    with reports collected. (In the bpy wheel `bpy.ops.X('INVOKE_DEFAULT')` runs ``execute``:
    there are no window events, so invoke and modal are called directly.)"""

    def __init__(self, cls, **props) -> None:
        self.cls = cls
        self.reports: list[tuple[str, str]] = []
        self.__dict__.update(props)

    def report(self, level: set[str], message: str) -> None:
        self.reports.append((next(iter(level)), message))

    def __getattr__(self, name):
        import types

        attr = getattr(self.cls, name)
        return types.MethodType(attr, self) if callable(attr) else attr


def event(kind: str = "TIMER", value: str = "NOTHING"):
    import types

    return types.SimpleNamespace(type=kind, value=value)


def tick_preview(limit_s: float = 30.0) -> int:
    """Run the preview's timer callback the way bpy.app.timers would until it unregisters itself."""
    import time

    from hosig_blender import runtime

    ticks, deadline = 0, time.monotonic() + limit_s
    interval = runtime._preview_tick()
    while interval is not None:
        ticks += 1
        assert time.monotonic() < deadline, "the preview did not finish"
        time.sleep(interval)
        interval = runtime._preview_tick()
    return ticks
