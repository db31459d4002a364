"""The scene upload in short steps, so it never blocks Blender's UI (issue #21).

Blender forbids Python threads in add-ons, so the export and the upload are a state machine that
a timer (the generation queue's `step`) advances a little at a time:

  export   one object per step: its evaluated mesh to world-space arrays, encoded at once
           (the payload is the same bytes `scene_export.payload_bytes` makes, so the upload
           cache keys agree);
  send     at most ``max_send`` bytes per step on a non-blocking socket (`client.JsonPost`);
  answer   read without waiting; then ``scene_id`` is set.

A scene already uploaded (same bytes, same server) skips the send. `cancel()` (Esc) closes the
socket. `PathPreview` is the Preview Path job on top of it: the same stepped upload, then the
`/plan` request, also sent and read without blocking. This module needs no bpy: the caller passes
the object names and an ``export`` function.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import client
from .protocol import MESH_FORMAT, encode_array

CONTENT_TYPE = "application/vnd.hosig.mesh+json"
MAX_SEND = 1 << 18  # bytes per send call (256 KiB: well under a millisecond on loopback)
STEP_BUDGET_S = 0.02  # a step starts no new object or chunk after this long (0: one per step)

Exporter = Callable[[str], "tuple[np.ndarray, np.ndarray] | None"]  # name -> (verts (N,3), tris (M,3)) or None


def object_json(name: str, vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """One object of the `hosig-mesh/1` payload, as compact JSON bytes (vertices (N,3) float32, faces (M,3) int32)."""
    item = {"name": name, "vertices": encode_array(vertices, "<f4"), "faces": encode_array(faces, "<i4")}
    return json.dumps(item, separators=(",", ":")).encode("utf-8")


def payload_from_parts(parts: list[bytes]) -> bytes:
    """The whole payload from its objects' JSON (equal to `json.dumps(mesh_payload(...))`, compact)."""
    head = json.dumps({"format": MESH_FORMAT}, separators=(",", ":"))[:-1].encode("utf-8")
    return head + b',"objects":[' + b",".join(parts) + b"]}"


class SceneUpload:
    """Export + upload of a scene, advanced by `step()`; see the module docstring.

    ``cache`` maps (server url, payload sha256) -> scene id, shared with `generation.upload_scene`.
    """

    def __init__(self, config: client.ServerConfig, names: list[str], export: Exporter, cache: dict,
                 max_send: int = MAX_SEND, budget_s: float = STEP_BUDGET_S) -> None:
        self.config = config
        self.budget_s = float(budget_s)  # a step goes on (object by object, chunk by chunk) while under this
        self.names = list(names)
        self.export = export
        self.cache = cache
        self.max_send = int(max_send)
        self.parts: list[bytes] = []
        self.exported = 0
        self.state = "export"  # export -> send -> done | failed | cancelled
        self.scene_id: str | None = None
        self.error: client.ServerError | None = None
        self.steps = 0
        self._post: client.JsonPost | None = None
        self._key: tuple[str, str] | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        """0..1: exporting is the first half, sending the second."""
        if self.state == "done":
            return 1.0
        if self._post is not None:
            return 0.5 + 0.5 * self._post.sent / max(self._post.total, 1)
        return 0.5 * self.exported / max(len(self.names), 1)

    def step(self) -> bool:
        """Bounded work: objects exported or chunks of <= ``max_send`` bytes sent, one at a time,
        none started after ``budget_s`` (so one object or chunk with a budget of 0); True while
        work remains. A failure sets ``error`` (and ``state`` "failed") and returns False."""
        if self.finished:
            return False
        self.steps += 1
        t0 = time.perf_counter()
        try:
            while True:
                sent = self._post.sent if self._post is not None else -1
                if self.state == "export":
                    self._export_one()
                else:
                    self._send_some()
                stalled = self.state == "send" and self._post.sent == sent  # socket full or waiting for the answer
                if self.finished or stalled or time.perf_counter() - t0 >= self.budget_s:
                    break
        except client.ServerError as err:
            self.error = err
            self.state = "failed"
        return not self.finished

    def _export_one(self) -> None:
        if self.exported < len(self.names):
            name = self.names[self.exported]
            arrays = self.export(name)
            if arrays is not None:
                self.parts.append(object_json(name, arrays[0], arrays[1]))
            self.exported += 1
            return
        data = payload_from_parts(self.parts)
        self.parts = []
        self._key = (self.config.url, hashlib.sha256(data).hexdigest())
        if self._key in self.cache:  # this very scene is already on this server
            self.scene_id = self.cache[self._key]
            self.state = "done"
            return
        self._post = client.JsonPost(self.config, "/scenes", data, CONTENT_TYPE)
        self.state = "send"

    def _send_some(self) -> None:
        answer = self._post.poll(self.max_send)
        if answer is None:
            return
        self.scene_id = str(answer["id"])
        self.cache[self._key] = self.scene_id
        self.state = "done"

    def cancel(self) -> None:
        """Esc: stop now (the socket is closed; the server drops a partial upload)."""
        if self._post is not None:
            self._post.close()
        if not self.finished:
            self.state = "cancelled"

    def run(self) -> str:
        """Step to the end (headless scripts, the blocking `generation.upload_scene`); the scene id."""
        while self.step():
            if self.state == "send":
                time.sleep(0.001)
        if self.error is not None:
            raise self.error
        if self.scene_id is None:
            raise client.ServerError("cancelled", "the scene upload was cancelled")
        return self.scene_id


PLAN_TIMEOUT_S = 60.0  # the first /plan on a large scene builds its occupancy map (seconds)


class PathPreview:
    """Preview Path as a job advanced by `step()`: the stepped scene upload (`SceneUpload`), then
    `POST /plan` on a non-blocking socket (`client.JsonPost`); see the module docstring.

    ``request`` is the /plan body without the scene id (``{"start": [x, y, h?], "target": name}``);
    ``key`` is whatever the caller wants back with the plan (the overlay's cache key at the time of
    asking, so a plan for a start the user has moved since is never drawn). States:
    ``upload -> plan -> done | failed | cancelled``; on success ``plan`` holds the server's NavPlan
    JSON, on failure ``error`` the `client.ServerError` and `message` one line naming the stage.
    """

    def __init__(self, config: client.ServerConfig, upload: SceneUpload, request: dict[str, Any], key: Any = None,
                 plan_timeout_s: float = PLAN_TIMEOUT_S) -> None:
        self.config = config
        self.upload = upload
        self.request = dict(request)
        self.key = key
        self.plan_timeout_s = float(plan_timeout_s)
        self.state = "upload"
        self.plan: dict[str, Any] | None = None
        self.error: client.ServerError | None = None
        self.steps = 0
        self.failed_in: str | None = None  # "upload" or "plan" once it failed
        self._post: client.JsonPost | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def active(self) -> bool:
        return not self.finished

    @property
    def fraction(self) -> float:
        """0..1: the upload is the first 90 %, the plan the rest."""
        if self.state == "done":
            return 1.0
        return 0.9 * self.upload.fraction if self.state == "upload" else 0.9

    @property
    def message(self) -> str:
        """One line for the status bar, the panel and the operator's report."""
        if self.state == "done":
            plan = self.plan or {}
            return f"path {float(plan.get('length_m', 0.0)):.2f} m, {float(plan.get('duration_s', 0.0)):.1f} s"
        if self.state == "cancelled":
            return "path preview cancelled; nothing was changed"
        if self.state == "failed":
            err = self.error
            text = err.message if err is not None else "stopped"
            if err is not None and err.code == "no_server":
                return f"path preview failed: {text}"
            if self.failed_in == "upload" and text.startswith("server answered HTTP"):  # 413 too large, 401, 422 ...
                return f"path preview failed: the server refused the scene: {text}"
            if self.failed_in == "upload":
                return f"path preview failed: the scene upload failed: {text}"
            if err is not None and err.code == "unreachable":
                return f"path preview failed: no path: {text}"
            if err is not None and err.code == "unknown_object":  # only visible meshes are uploaded
                return f"path preview failed: the target is not in the uploaded scene (hidden?): {text}"
            return f"path preview failed: {text}"
        if self.state == "upload":
            return f"path preview: uploading the scene {int(self.upload.fraction * 100)}% (Esc cancels)"
        return "path preview: planning (Esc cancels)"

    def step(self) -> bool:
        """Bounded work (one upload step, or one non-blocking poll of /plan); True while work remains."""
        if self.finished:
            return False
        self.steps += 1
        if self.state == "upload":
            if self.upload.step():
                return True
            if self.upload.scene_id is None:
                self.error = self.upload.error or client.ServerError("cancelled", "the scene upload stopped")
                self.state = "cancelled" if self.upload.state == "cancelled" else "failed"
                self.failed_in = "upload" if self.state == "failed" else None
                return False
            body = json.dumps({"scene": self.upload.scene_id, **self.request}).encode("utf-8")
            self.state = "plan"
            try:
                self._post = client.JsonPost(self.config, "/plan", body, "application/json", timeout_s=self.plan_timeout_s)
            except client.ServerError as err:
                self.fail(err)
                return False
            return True
        try:
            answer = self._post.poll(self.upload.max_send)
        except client.ServerError as err:
            self.fail(err)
            return False
        if answer is None:
            return True
        self.plan = dict(answer)
        self.state = "done"
        return False

    def fail(self, err: client.ServerError, stage: str = "plan") -> None:
        """End as failed with ``err`` (also the caller's way to end it on an unexpected error)."""
        self.upload.cancel()
        if self._post is not None:
            self._post.close()
        self.error, self.state, self.failed_in = err, "failed", stage

    def cancel(self) -> None:
        """Esc: close whichever socket is open; nothing is kept (the server drops a partial upload)."""
        self.upload.cancel()
        if self._post is not None:
            self._post.close()
        if not self.finished:
            self.state = "cancelled"

    def run(self) -> dict[str, Any]:
        """Step to the end (scripts, the blocking `preview.refresh_plan`); the plan, or raises ServerError."""
        while self.step():
            time.sleep(0.001)
        if self.plan is None:
            raise self.error or client.ServerError("cancelled", "the path preview was cancelled")
        return self.plan

