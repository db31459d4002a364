"""Session state that must not live in the .blend: the running queue, the path preview in
flight, server status, local server.

The queue is advanced by a `bpy.app.timers` callback (`_tick`) — never a thread. Each tick calls
`GenerationQueue.step()`, mirrors progress into the scene settings (panel) and the status bar.
The path preview (`PREVIEW`, an `upload.PathPreview`: the stepped scene upload, then /plan) is
advanced the same way by `_preview_tick`; its progress goes to `WindowManager.hosig_session`.
`QUEUE` and `PREVIEW` are module globals only because they hold open sockets, which no
PropertyGroup can store; everything the panel draws about them is mirrored into properties.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from typing import Any

import bpy

from . import client, preview
from .generation import GenerationQueue, RunOptions
from .preferences import server_config
from .upload import PathPreview

TICK_S = 0.02
QUEUE: GenerationQueue | None = None
PREVIEW: PathPreview | None = None  # the path preview in flight (or the last one, finished)
SERVER: dict[str, Any] = {"state": "unknown", "message": "not checked yet", "info": {}}
LOCAL_SERVER: subprocess.Popen | None = None


def check_server(context=None, timeout_s: float = 1.5) -> dict[str, Any]:
    """GET /health and remember the answer for the panel."""
    config = server_config(context)
    try:
        info = client.health(config, timeout_s=timeout_s)
        SERVER.update(state="connected", info=info,
                      message=f"connected: v{info.get('version', '?')} on {info.get('device', '?')}, body {info.get('body_model', '?')}")
    except client.ServerError as err:
        SERVER.update(state="offline", info={}, message=err.message)
    return SERVER


def start_local_server(command: str) -> str:
    """Start the configured server command detached; its output goes to a log file in the temp dir."""
    global LOCAL_SERVER
    if LOCAL_SERVER is not None and LOCAL_SERVER.poll() is None:
        return f"a local server is already running (pid {LOCAL_SERVER.pid})"
    args = shlex.split(command)
    if not args:
        raise client.ServerError("bad_command", "the start command in the add-on preferences is empty")
    log_path = os.path.join(tempfile.gettempdir(), "hosig-serve.log")
    log = open(log_path, "ab")
    try:
        LOCAL_SERVER = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise client.ServerError("bad_command", f"cannot run {args[0]!r} ({err}); set the start command in the add-on preferences") from None
    finally:
        log.close()
    SERVER.update(state="starting", message=f"starting {args[0]}…", info={})
    _AWAIT["deadline"] = time.monotonic() + 120.0
    if not bpy.app.background and not bpy.app.timers.is_registered(_await_server):
        bpy.app.timers.register(_await_server, first_interval=1.0)
    return f"started {args[0]} (pid {LOCAL_SERVER.pid}); log: {log_path}"


_AWAIT: dict[str, float] = {}


def _await_server() -> float | None:
    """Timer after Start: poll /health each second until the server answers (or gives up)."""
    if LOCAL_SERVER is not None and LOCAL_SERVER.poll() is not None:
        SERVER.update(state="offline", info={},
                      message=f"the local server exited with code {LOCAL_SERVER.returncode}; see its log in the temp folder")
        _redraw()
        return None
    if check_server(timeout_s=0.5)["state"] == "connected" or time.monotonic() > _AWAIT.get("deadline", 0):
        _redraw()
        return None
    SERVER.update(state="starting", message="starting the local server…")
    _redraw()
    return 1.0


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def run_options(scene: bpy.types.Scene) -> RunOptions:
    s = scene.hosig
    start = scene.frame_current if s.frame_start_mode == "CURRENT" else s.frame_start
    return RunOptions(frame_start=int(start), reduce=s.reduce_keys, tolerance_quat=s.quat_tolerance(),
                      tolerance_loc=s.tolerance_mm / 1000.0)


def _report(queue: GenerationQueue) -> None:
    """Mirror the queue's progress into the panel, the status bar and redraw the UI."""
    settings = queue.scene.hosig
    settings.status_line = queue.status_text()
    settings.progress = queue.progress()
    _status_bar(settings.status_line if queue.active else None, ("VIEW_3D", "DOPESHEET_EDITOR", "GRAPH_EDITOR", "TIMELINE"))


def _status_bar(text: str | None, redraw: tuple[str, ...] = ("VIEW_3D",)) -> None:
    """Show ``text`` in every window's status bar (None clears it) and redraw those areas."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        try:
            with bpy.context.temp_override(window=window):
                window.workspace.status_text_set(text)
        except (RuntimeError, TypeError, AttributeError):
            pass
        for area in window.screen.areas:
            if area.type in redraw:
                area.tag_redraw()


def start_queue(context: bpy.types.Context, shot_names: list[str]) -> GenerationQueue:
    """Create the queue (uploads the scene, fetches the body) and start the timer."""
    global QUEUE
    if QUEUE is not None and QUEUE.active:
        raise client.ServerError("busy", "a generation is already running; cancel it first (Esc)")
    QUEUE = GenerationQueue(context, shot_names, server_config(context), run_options(context.scene), on_update=_report)
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.0)
    return QUEUE


def start_runs(context: bpy.types.Context, shot_name: str, specs: list) -> GenerationQueue:
    """Queue runs with their own requests (regenerate around edits, variations) and start the timer."""
    global QUEUE
    if QUEUE is not None and QUEUE.active:
        raise client.ServerError("busy", "a generation is already running; cancel it first (Esc)")
    QUEUE = GenerationQueue(context, [], server_config(context), run_options(context.scene), on_update=_report)
    QUEUE.add_runs(shot_name, specs)
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.0)
    return QUEUE


def _tick() -> float | None:
    """bpy.app.timers callback: one non-blocking step; unregisters itself when the queue is done."""
    if QUEUE is None:
        return None
    try:
        still = QUEUE.step()
    except Exception as err:  # noqa: BLE001 - never let a timer die with a half-made result
        QUEUE.cancel()
        QUEUE.scene.hosig.status_line = f"HOSIG error: {err}"
        return None
    return TICK_S if still else None


def _queue_active() -> bool:
    return QUEUE is not None and QUEUE.active


def cancel() -> bool:
    if QUEUE is not None and QUEUE.active:
        QUEUE.cancel()
        return True
    return False


def shutdown() -> None:
    """On unregister: stop streaming (rolled back), the path preview and the timers; leave a started server running."""
    global QUEUE
    cancel()
    _drop_preview()
    for fn in (_tick, _preview_tick, _plan_refresh, _await_server):
        if bpy.app.timers.is_registered(fn):
            bpy.app.timers.unregister(fn)
    QUEUE = None


# -- path preview (issue #21: never blocks the UI) ---------------------------------------------

def start_preview(context: bpy.types.Context) -> PathPreview:
    """Start the active shot's path preview (a newer one replaces a preview in flight) and its
    timer; nothing is sent before the first tick. Raises `client.ServerError` when the shot has
    no start or target."""
    global PREVIEW
    job = preview.make_job(context)
    _drop_preview()
    PREVIEW = job
    preview.show(context.window_manager, job)
    if not bpy.app.timers.is_registered(_preview_tick):
        bpy.app.timers.register(_preview_tick, first_interval=0.0)
    return job


def _preview_tick() -> float | None:
    """bpy.app.timers callback: one bounded step of the path preview; draws the path when it is done."""
    job = PREVIEW
    if job is None or job.finished:
        return None
    try:
        still = job.step()
        if not still:
            preview.finish(job)
    except Exception as err:  # noqa: BLE001 - a preview must never break editing
        job.fail(client.ServerError("internal", f"add-on error: {type(err).__name__}: {err}"),
                 "upload" if job.state == "upload" else "plan")
        still = False
    preview.show(bpy.context.window_manager, job)
    if not _queue_active():  # a running generation owns the status bar
        _status_bar(job.message if still else None)
    return TICK_S if still else None


def cancel_preview() -> bool:
    """Esc / Cancel: stop the path preview in flight (nothing changes; the path drawn before stays)."""
    job = PREVIEW
    if job is None or job.finished:
        return False
    job.cancel()
    if bpy.app.timers.is_registered(_preview_tick):
        bpy.app.timers.unregister(_preview_tick)
    preview.show(bpy.context.window_manager, job)
    if not _queue_active():
        _status_bar(None)
    return True


def _drop_preview() -> None:
    """Forget the preview (cancelled if still running): a newer request replaces it."""
    global PREVIEW
    job, PREVIEW = PREVIEW, None
    if job is not None:
        job.cancel()


def schedule_plan_refresh() -> None:
    """Start/target changed: ask /plan again shortly (debounced; only when a server answered)."""
    if bpy.app.background or SERVER.get("state") != "connected":
        return
    if bpy.app.timers.is_registered(_plan_refresh):
        bpy.app.timers.unregister(_plan_refresh)
    _drop_preview()  # the request or the scene may have changed: export it afresh
    bpy.app.timers.register(_plan_refresh, first_interval=0.4)


def _plan_refresh() -> None:
    """Timer (debounced): start the stepped path preview; a shot without start or target is left alone."""
    try:
        start_preview(bpy.context)
    except Exception:  # noqa: BLE001 - no start/target yet, or anything else: a preview must never break editing
        pass
    return None


def wait_for_server(context=None, timeout_s: float = 30.0) -> bool:
    """Headless helper: poll /health until it answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check_server(context, timeout_s=1.0)["state"] == "connected":
            return True
        time.sleep(0.25)
    return False
