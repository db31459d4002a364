"""Preview Path without blocking Blender's UI (issue #21): the active shot's planned walk.

`make_job` builds an `upload.PathPreview` (the stepped scene upload, then `POST /plan` on a
non-blocking socket); `runtime.start_preview` keeps it and advances it from a `bpy.app.timers`
callback, and `finish` puts the plan into the overlay's cache. The preview never changes the
user's objects or the shot; a cancelled or failed preview leaves the path drawn before in place.

What the panel shows about the preview (state, one-line message, progress) is session state in
`WindowManager.hosig_session` (`HOSIG_Session`: not saved in the .blend, not a module global).
The job itself holds open sockets, which a PropertyGroup cannot store: it lives in
`runtime.PREVIEW`, next to the generation queue (`runtime.QUEUE`).

Imports: client, overlay, preferences, generation, upload — never operators or runtime (they
import this module).
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, FloatProperty, PointerProperty, StringProperty

from . import client, overlay
from .generation import start_upload
from .preferences import server_config
from .upload import PathPreview

PREVIEW_STATES = [
    ("IDLE", "Idle", "No path asked for yet"),
    ("RUNNING", "Running", "Uploading the scene or planning"),
    ("DONE", "Done", "The path is drawn"),
    ("FAILED", "Failed", "The last preview failed"),
    ("CANCELLED", "Cancelled", "The last preview was cancelled"),
]


class HOSIG_Session(bpy.types.PropertyGroup):
    """Per-session add-on state on the WindowManager (not saved): the path preview's progress."""

    preview_state: EnumProperty(name="Preview", items=PREVIEW_STATES, default="IDLE")
    preview_message: StringProperty(name="Preview Status", default="")
    preview_progress: FloatProperty(name="Preview Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")


def plan_request(shot) -> dict[str, Any]:
    """The /plan body of ``shot`` without the scene id."""
    return {"start": [v for v in shot.start_triplet() if v is not None], "target": shot.target.name}


def make_job(context: bpy.types.Context) -> PathPreview:
    """The active shot's path preview, ready to be stepped (nothing is sent yet).

    Raises `client.ServerError` ("bad_request") when the shot has no start or no target."""
    shot = context.scene.hosig.active()
    if shot is None or not shot.has_start or shot.target is None:
        raise client.ServerError("bad_request", "set a start and a target first")
    config = server_config(context)
    return PathPreview(config, start_upload(config, context), plan_request(shot),
                       key=(context.scene.name, overlay.plan_key(shot)))


def finish(job: PathPreview) -> None:
    """A finished job: a plan goes into the overlay's cache under the key it was asked with (so a
    path for a start moved since is not drawn); anything else changes nothing."""
    if job.state == "done" and job.plan is not None:
        scene_name, key = job.key
        overlay.set_plan(scene_name, key, job.plan)


def show(window_manager, job: PathPreview | None) -> None:
    """Mirror ``job`` into the session state the panel draws (``None``: back to idle)."""
    state = getattr(window_manager, "hosig_session", None)
    if state is None:  # the add-on is being unregistered
        return
    if job is None:
        state.preview_state, state.preview_message, state.preview_progress = "IDLE", "", 0.0
        return
    state.preview_state = {"done": "DONE", "failed": "FAILED", "cancelled": "CANCELLED"}.get(job.state, "RUNNING")
    state.preview_message = job.message
    state.preview_progress = job.fraction


def refresh_plan(context: bpy.types.Context) -> str:
    """Blocking form for scripts: upload (stepped, to the end), plan, cache for the overlay; the
    one-line outcome. The UI uses `runtime.start_preview` instead."""
    try:
        job = make_job(context)
    except client.ServerError as err:
        return err.message
    try:
        job.run()
    except client.ServerError:
        pass
    finish(job)
    return job.message


def register() -> None:
    bpy.utils.register_class(HOSIG_Session)
    bpy.types.WindowManager.hosig_session = PointerProperty(type=HOSIG_Session)


def unregister() -> None:
    del bpy.types.WindowManager.hosig_session
    bpy.utils.unregister_class(HOSIG_Session)
