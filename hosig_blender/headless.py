"""Running the add-on without a UI (the `bpy` module): the demo and the integration tests.

Everything here goes through the add-on's own pieces — the shot list, `GenerationQueue` and its
polling step, the glTF importer — so the headless demo exercises exactly what an animator's clicks
do. Run as ``python -m hosig_blender.headless --scene kitchen.glb --url http://127.0.0.1:PORT
--out DIR``; prints one JSON summary line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import generation, preferences, register, unregister
from .rig import BODY_TAG

# Demo shots for the kitchen room (hosig.scene.demo): (name, target, action, place, start x, y, heading)
DEMO_SHOTS = [
    ("Bottle pick", "bottle", "pick", None, (-1.75, -1.9), math.pi / 2),
    # a spot on the shelf's middle board (the top board at 1.8 m is out of reach)
    ("Cup to shelf", "cup", "pick-place", [-1.0, 2.33, 0.93], (1.2, 1.4), 0.0),
]


def reset(empty: bool = True) -> None:
    """Fresh file with the add-on registered."""
    unregister()
    bpy.ops.wm.read_factory_settings(use_empty=empty)
    register()


def import_scene(path: str | Path) -> list[str]:
    """Import a .glb/.gltf with Blender's own importer; returns the names of the mesh objects."""
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=str(path))
    return sorted(o.name for o in bpy.data.objects if o not in before and o.type == "MESH")


def add_shot(scene: bpy.types.Scene, name: str, target: str, action: str, start: tuple[float, float],
             heading: float | None, place: str | list[float] | None = None, seed: int = 0):
    """Fill one shot the way the panel would (the names must be objects of the scene)."""
    shot = scene.hosig.shots.add()
    shot.name = name
    shot.target = bpy.data.objects[target]
    shot.action = action
    shot.start = start
    shot.has_start = True
    shot.use_heading = heading is not None
    shot.heading = heading or 0.0
    shot.seed = seed
    if isinstance(place, str):
        shot.place_mode, shot.place_object = "OBJECT", bpy.data.objects[place]
    elif place is not None:
        shot.place_mode, shot.place_point = "POINT", place
    scene.hosig.active_shot = len(scene.hosig.shots) - 1
    return shot


def generate(names: list[str], url: str, token: str = "", options: generation.RunOptions | None = None,
             timeout_s: float = 900.0, on_tick=None) -> generation.GenerationQueue:
    """Generate shots through the add-on's client, driving the same polling step as the UI timer."""
    preferences.FALLBACK.url, preferences.FALLBACK.token = url, token
    queue = generation.GenerationQueue(bpy.context, names, preferences.FALLBACK,
                                       options or generation.RunOptions(frame_start=bpy.context.scene.frame_current))
    return generation.run_blocking(queue, timeout_s=timeout_s, on_tick=on_tick)


def _look_at(obj: bpy.types.Object, target: tuple[float, float, float]) -> None:
    from mathutils import Vector

    direction = Vector(target) - obj.location
    obj.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


def setup_preview(scene: bpy.types.Scene) -> None:
    """Camera over the room, Workbench with object colours: bodies orange, targets highlighted."""
    bounds = np.array([[math.inf] * 3, [-math.inf] * 3])
    for obj in scene.objects:
        if obj.type == "MESH" and obj.get(BODY_TAG) is None:
            corners = np.array([list(obj.matrix_world @ v.co) for v in obj.data.vertices]) if len(obj.data.vertices) < 5000 else None
            if corners is not None and len(corners):
                bounds[0] = np.minimum(bounds[0], corners.min(0))
                bounds[1] = np.maximum(bounds[1], corners.max(0))
    centre = (bounds[0] + bounds[1]) / 2 if np.isfinite(bounds).all() else np.zeros(3)
    span = float(max(bounds[1, 0] - bounds[0, 0], bounds[1, 1] - bounds[0, 1])) if np.isfinite(bounds).all() else 6.0
    cam = bpy.data.objects.get("HOSIG preview camera")
    if cam is None:
        cam = bpy.data.objects.new("HOSIG preview camera", bpy.data.cameras.new("HOSIG preview camera"))
        scene.collection.objects.link(cam)
    # high and slightly from the south: the whole floor plan with little wall occlusion
    cam.location = (centre[0], centre[1] - 0.55 * span, 1.2 * span)
    _look_at(cam, (centre[0], centre[1] + 0.04 * span, 0.0))
    cam.data.lens = 27
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "OBJECT"
    shading.show_shadows = True
    shading.show_cavity = True
    targets = {s.target.name for s in scene.hosig.shots if s.target} | {s.place_object.name for s in scene.hosig.shots if s.place_object}
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        if obj.get(BODY_TAG) is not None:
            obj.color = (1.0, 0.45, 0.1, 1.0)
        elif obj.name in targets:
            obj.color = (0.2, 0.55, 1.0, 1.0)
        elif obj.name.startswith("wall"):
            obj.color = (0.85, 0.85, 0.82, 1.0)
        else:
            obj.color = (0.7, 0.7, 0.7, 1.0)


def render_contact_sheet(scene: bpy.types.Scene, frames: list[int], path: str | Path,
                         size: tuple[int, int] = (480, 300), columns: int = 3) -> Path:
    """Render ``frames`` with Workbench and tile them into one PNG (frame number stamped)."""
    path = Path(path)
    tmp = path.parent / "frames"
    tmp.mkdir(parents=True, exist_ok=True)
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = size[0], size[1], 100
    r.image_settings.file_format = "PNG"
    r.use_stamp = True
    r.use_stamp_date = r.use_stamp_time = r.use_stamp_render_time = r.use_stamp_camera = False
    r.use_stamp_lens = r.use_stamp_scene = r.use_stamp_filename = r.use_stamp_memory = False
    r.use_stamp_hostname = r.use_stamp_marker = r.use_stamp_sequencer_strip = False
    r.use_stamp_frame = True
    r.stamp_font_size = 14
    tiles = []
    for f in frames:
        scene.frame_set(f)
        r.filepath = str(tmp / f"frame_{f:04d}.png")
        bpy.ops.render.render(write_still=True)
        img = bpy.data.images.load(r.filepath)
        px = np.empty(img.size[0] * img.size[1] * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
        tiles.append(px.reshape(img.size[1], img.size[0], 4))
        bpy.data.images.remove(img)
    rows = math.ceil(len(tiles) / columns)
    h, w = tiles[0].shape[:2]
    pad = 4
    sheet = np.ones((rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, 4), dtype=np.float32)
    for i, tile in enumerate(tiles):
        rr = rows - 1 - i // columns  # Blender images are bottom-up
        cc = i % columns
        y0, x0 = pad + rr * (h + pad), pad + cc * (w + pad)
        sheet[y0:y0 + h, x0:x0 + w] = tile
    out = bpy.data.images.new("HOSIG contact sheet", sheet.shape[1], sheet.shape[0], alpha=True)
    out.pixels.foreach_set(sheet.ravel())
    out.filepath_raw = str(path)
    out.file_format = "PNG"
    out.save()
    bpy.data.images.remove(out)
    return path


def shot_report(scene: bpy.types.Scene) -> list[dict[str, Any]]:
    out = []
    for s in scene.hosig.shots:
        arm = s.armature
        action = arm.animation_data.action if arm is not None and arm.animation_data else None
        out.append({"name": s.name, "action": s.action, "target": s.target.name if s.target else None,
                    "status": s.status, "result": s.result, "armature": arm.name if arm else None,
                    "bones": len(arm.data.bones) if arm else 0, "action_name": action.name if action else None,
                    "frame_range": [int(v) for v in action.frame_range] if action else None})
    return out


def run_demo(scene_path: str, url: str, out_dir: str, token: str = "", frames: int = 6) -> dict[str, Any]:
    """The whole headless demo; returns the summary (also written to out/summary.json)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reset()
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start = scene.frame_current = 1
    imported = import_scene(scene_path)
    for name, target, action, place, start, heading in DEMO_SHOTS:
        add_shot(scene, name, target, action, start, heading, place)
    t_gen = time.perf_counter()
    queue = generate([s.name for s in scene.hosig.shots], url, token)
    gen_s = time.perf_counter() - t_gen
    ends = [int(s.armature.animation_data.action.frame_range[1]) for s in scene.hosig.shots
            if s.armature is not None and s.armature.animation_data and s.armature.animation_data.action]
    scene.frame_end = max(ends) if ends else 60
    blend = out / "demo.blend"
    setup_preview(scene)
    scene.frame_set(1)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    # a contact sheet across the clips (just the room when every shot failed, so there is a picture)
    picks = [int(round(v)) for v in np.linspace(1, scene.frame_end, frames)] if ends else [1]
    preview = render_contact_sheet(scene, picks, out / "preview.png", columns=min(3, len(picks)))
    steps = [ms for run in queue.finished for ms in run.step_ms]
    summary = {
        "blend": str(blend), "preview": str(preview) if preview else None, "scene": str(scene_path),
        "objects_imported": len(imported), "shots": shot_report(scene),
        "failures": [{"shot": n, "message": m} for n, m in queue.failures],
        "generate_s": round(gen_s, 2), "wall_s": round(time.perf_counter() - t0, 2),
        "timer_step_ms": {"mean": round(float(np.mean(steps)), 3) if steps else None,
                          "p99": round(float(np.percentile(steps, 99)), 3) if steps else None,
                          "max": round(float(np.max(steps)), 3) if steps else None, "ticks": len(steps),
                          "shot_setup_ms": [round(r.setup_ms, 1) for r in queue.finished],
                          "commit_ms": [round(r.final_ms, 1) for r in queue.finished]},
        "first_frames_s": [round(r.first_frames_s, 2) if r.first_frames_s is not None else None for r in queue.finished],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosig_blender.headless")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args(argv)
    summary = run_demo(args.scene, args.url, args.out, args.token, args.frames)
    sys.stdout.write("HOSIG_SUMMARY " + json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0 if not summary["failures"] else 3


if __name__ == "__main__":
    sys.exit(main())
