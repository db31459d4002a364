"""Viewport overlay (gpu module): the planned path of the active shot and the start marker.

The path comes from `POST /plan` and is cached per (scene, start, target); drawing reads only the
cache, so the draw callback never touches the network.
"""

from __future__ import annotations

from typing import Any

import bpy

from .picking import arrow_segments

# scene name -> {"key": (start, heading, target), "waypoints": [(x,y)], "stand": [x,y,h], "z": floor z}
PATHS: dict[str, dict[str, Any]] = {}
# while the pick-start modal runs: (x, y, z, heading) of the marker being placed
LIVE_MARKER: dict[str, tuple[float, float, float, float]] = {}
_HANDLE = None


def plan_key(shot) -> tuple:
    return (round(shot.start[0], 3), round(shot.start[1], 3), round(shot.heading, 3) if shot.use_heading else None,
            shot.target.name if shot.target else None)


def set_plan(scene_name: str, key: tuple, plan: dict[str, Any], floor_z: float = 0.0) -> None:
    PATHS[scene_name] = {"key": key, "waypoints": [tuple(p[:2]) for p in plan.get("waypoints", [])],
                         "stand": plan.get("stand"), "z": floor_z + 0.02}


def path_segments(waypoints: list[tuple[float, float]], z: float) -> list[tuple[float, float, float]]:
    """Line-list vertices joining consecutive waypoints at height z."""
    pts = []
    for a, b in zip(waypoints[:-1], waypoints[1:]):
        pts += [(a[0], a[1], z), (b[0], b[1], z)]
    return pts


def _draw() -> None:
    import gpu
    from gpu_extras.batch import batch_for_shader

    context = bpy.context
    scene = context.scene
    settings = getattr(scene, "hosig", None)
    if settings is None or not settings.show_path:
        return
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    gpu.state.line_width_set(2.0)
    gpu.state.depth_test_set("NONE")
    shot = settings.active()
    marker = LIVE_MARKER.get(scene.name)
    if marker is None and shot is not None and shot.has_start:
        marker = (shot.start[0], shot.start[1], 0.02, shot.heading)
    if marker is not None:
        batch = batch_for_shader(shader, "LINES", {"pos": arrow_segments(*marker)})
        shader.uniform_float("color", (1.0, 0.6, 0.1, 1.0))
        batch.draw(shader)
    cached = PATHS.get(scene.name)
    if cached and shot is not None and cached["key"] == plan_key(shot) and len(cached["waypoints"]) > 1:
        batch = batch_for_shader(shader, "LINES", {"pos": path_segments(cached["waypoints"], cached["z"])})
        shader.uniform_float("color", (0.2, 0.8, 1.0, 1.0))
        batch.draw(shader)
        stand = cached.get("stand")
        if stand:
            batch = batch_for_shader(shader, "LINES", {"pos": arrow_segments(stand[0], stand[1], cached["z"], stand[2], 0.3)})
            shader.uniform_float("color", (0.3, 1.0, 0.4, 1.0))
            batch.draw(shader)
    gpu.state.line_width_set(1.0)


def register() -> None:
    global _HANDLE
    if _HANDLE is None and not bpy.app.background:
        _HANDLE = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_VIEW")


def unregister() -> None:
    global _HANDLE
    if _HANDLE is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_HANDLE, "WINDOW")
        _HANDLE = None
    PATHS.clear()
    LIVE_MARKER.clear()
