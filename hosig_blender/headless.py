"""Running the add-on without a UI (the `bpy` module): the demo, clip import and the integration tests.

Everything here goes through the add-on's own pieces — the shot list, `GenerationQueue` and its
polling step, `clip_import`, the glTF importer — so the headless runs exercise exactly what an
animator's clicks do. Three modes, each printing one ``HOSIG_SUMMARY {json}`` line on stdout (or
``HOSIG_ERROR message`` and exit 1):

- demo (no mode word, backward compatible): ``python -m hosig_blender.headless --scene kitchen.glb
  --url http://127.0.0.1:PORT --out DIR``
- ``import --body BODY.json --clips A.npz [B.npz ...] [--scene SCENE.glb] --out OUT.blend
  [--sheet SHEET.png --frames 6 --labels ...]``: clip files as keyed armatures (BODY.json is the
  server's `/body` answer), saved as a .blend, optionally a contact sheet (one row per clip).
- ``retarget --body BODY.json --clips A.npz [...] --rig RIG.blend --armature NAME --out OUT.blend
  [--scene S.glb] [--fbx OUT.fbx] [--bvh OUT.bvh] [--preset P] [--nla]``: clips retargeted onto a
  rig (`retarget_blender`), saved beside the rig (never over it), optionally exported.
- ``sheet --body BODY.json --items ITEMS.json --out SHEET.png [--frames 5]``: ITEMS.json is a list
  of ``{"scene": glb or null, "clip": npz, "label": str, "target": name or null}``; each item gets
  a fresh file (its scene, its clip) and one row of the sheet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import bpy
import numpy as np

from . import clip_import, generation, preferences, register, unregister
from .protocol import BodyData, ProtocolError
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


PREVIEW_CAMERA = "HOSIG preview camera"
BODY_COLOR = (1.0, 0.45, 0.1, 1.0)  # orange
TARGET_COLOR = (0.2, 0.55, 1.0, 1.0)  # blue
TILE = (320, 240)  # clip-sheet tile size (pixels)
PAD = 4  # pixels between (and around) contact-sheet tiles
REGION_MARGIN_M = 1.5


def _preview_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    cam = bpy.data.objects.get(PREVIEW_CAMERA)
    if cam is None:
        cam = bpy.data.objects.new(PREVIEW_CAMERA, bpy.data.cameras.new(PREVIEW_CAMERA))
    if cam.name not in scene.collection.objects:
        scene.collection.objects.link(cam)
    return cam


def _frame_room(cam: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """High and slightly from the south over every scene mesh: the whole floor plan."""
    bounds = np.array([[math.inf] * 3, [-math.inf] * 3])
    for obj in scene.objects:
        if obj.type == "MESH" and obj.get(BODY_TAG) is None:
            corners = np.array([list(obj.matrix_world @ v.co) for v in obj.data.vertices]) if len(obj.data.vertices) < 5000 else None
            if corners is not None and len(corners):
                bounds[0] = np.minimum(bounds[0], corners.min(0))
                bounds[1] = np.maximum(bounds[1], corners.max(0))
    centre = (bounds[0] + bounds[1]) / 2 if np.isfinite(bounds).all() else np.zeros(3)
    span = float(max(bounds[1, 0] - bounds[0, 0], bounds[1, 1] - bounds[0, 1])) if np.isfinite(bounds).all() else 6.0
    cam.location = (centre[0], centre[1] - 0.55 * span, 1.2 * span)
    _look_at(cam, (centre[0], centre[1] + 0.04 * span, 0.0))
    cam.data.lens = 27
    cam.data.clip_start, cam.data.clip_end = 0.1, 1000.0


def _frame_region(cam: bpy.types.Object, scene: bpy.types.Scene, region: np.ndarray,
                  elevation: float = math.radians(45.0), azimuth: float = -math.pi / 2) -> None:
    """Fit the box ``region`` (2,3) in the frame, seen from ``azimuth`` (default: the south) and
    ``elevation`` above the horizon. Everything nearer the camera than the box is clipped away, so
    walls and furniture between the camera and the body never hide it."""
    lo, hi = np.asarray(region, dtype=np.float64)
    centre = (lo + hi) / 2
    back = np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    forward = -back
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) - centre
    depth = corners @ forward
    cam.data.lens = 30.0
    cam.data.sensor_fit = "AUTO"
    r = scene.render
    tan_w = (cam.data.sensor_width / 2) / cam.data.lens  # AUTO fit: the sensor spans the longer side
    aspect = r.resolution_y / r.resolution_x
    tan_x, tan_y = (tan_w, tan_w * aspect) if aspect <= 1 else (tan_w / aspect, tan_w)
    dist = float(max((np.abs(corners @ right) / tan_x - depth).max(), (np.abs(corners @ up) / tan_y - depth).max()))
    dist = max(dist * 1.02, 1.0)
    cam.location = tuple(centre + back * dist)
    _look_at(cam, tuple(centre))
    cam.data.clip_start = max(0.05, dist + float(depth.min()))
    cam.data.clip_end = dist + float(depth.max()) + 100.0


def setup_preview(scene: bpy.types.Scene, region: np.ndarray | None = None, targets: list[str] | None = None) -> None:
    """Preview camera and Workbench with object colours: bodies orange, targets blue.

    ``region`` (2,3) world box: frame it (e.g. a clip's pelvis path plus a margin, see
    `clip_region`) instead of the whole room, so a body in a 25 m hall is still visible.
    ``targets``: the objects drawn blue (default: the shots' targets and place objects).
    """
    cam = _preview_camera(scene)
    if region is None:
        _frame_room(cam, scene)
    else:
        _frame_region(cam, scene, region)
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "OBJECT"
    shading.show_shadows = True
    shading.show_cavity = True
    if targets is None:
        targets = [s.target.name for s in scene.hosig.shots if s.target] + [s.place_object.name for s in scene.hosig.shots if s.place_object]
    blue = set(targets)
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        if obj.get(BODY_TAG) is not None:
            obj.color = BODY_COLOR
        elif obj.name in blue:
            obj.color = TARGET_COLOR
        elif obj.name.startswith("wall"):
            obj.color = (0.85, 0.85, 0.82, 1.0)
        else:
            obj.color = (0.7, 0.7, 0.7, 1.0)


def pelvis_path(scene: bpy.types.Scene, arm: bpy.types.Object, samples: int = 60,
                span: tuple[int, int] | None = None) -> np.ndarray:
    """(n,3) world positions of the armature's pelvis over its action, or over the scene frames
    ``span`` (first, last) of it (at most ``samples`` frames)."""
    return sample_joints(scene, arm, ["pelvis"], samples, span)[:, 0]


def sample_joints(scene: bpy.types.Scene, arm: bpy.types.Object, names: list[str], samples: int = 60,
                  span: tuple[int, int] | None = None) -> np.ndarray:
    """(n,k,3) world positions of the bones ``names`` at up to ``samples`` frames of the action
    (or of its scene frames ``span``)."""
    first, last = span or clip_import.keyed_range(arm)
    bones = [arm.pose.bones.get(n) or arm.pose.bones[1] for n in names]
    frames = np.unique(np.linspace(first, last, min(samples, last - first + 1)).round().astype(int))
    current = scene.frame_current
    out = []
    for f in frames:
        scene.frame_set(int(f))
        out.append([list(arm.matrix_world @ b.head) for b in bones])
    scene.frame_set(current)
    return np.array(out)


def clip_region(path: np.ndarray, margin: float = REGION_MARGIN_M, below: float = 1.0, above: float = 1.2) -> np.ndarray:
    """(2,3): the bounding box of a pelvis path grown by ``margin`` metres on each horizontal side;
    vertically from ``below`` under the lowest pelvis (the feet) to ``above`` over the highest
    (head, raised hands), so the camera frames the body and the floor around it, not the room."""
    path = np.asarray(path, dtype=np.float64).reshape(-1, 3)
    lo, hi = path.min(0), path.max(0)
    return np.array([[lo[0] - margin, lo[1] - margin, lo[2] - below], [hi[0] + margin, hi[1] + margin, hi[2] + above]])


# bones whose view from the camera must be clear: pelvis, head, hands, feet
VISIBLE_BONES = ["pelvis", "spine3", "head", "left_wrist", "right_wrist", "left_ankle", "right_ankle"]


def hide_occluders(scene: bpy.types.Scene, arm: bpy.types.Object, keep: set[str] | None = None, samples: int = 10) -> list[bpy.types.Object]:
    """Hide from the render every scene object that stands between the camera and the clip's body
    (walls, shelves): rays from the camera to its main bones at ``samples`` frames. ``keep``: names
    never hidden (the target). Returns the objects hidden (the caller restores ``hide_render``)."""
    cam = scene.camera
    keep = set(keep or ())
    skins = {c.name for c in arm.children if c.get(BODY_TAG) is not None}
    first, last = clip_import.keyed_range(arm)
    bones = [arm.pose.bones[n] for n in VISIBLE_BONES if n in arm.pose.bones]
    current = scene.frame_current
    hidden: dict[str, bpy.types.Object] = {}
    for f in np.unique(np.linspace(first, last, min(samples, last - first + 1)).round().astype(int)):
        scene.frame_set(int(f))
        depsgraph = bpy.context.evaluated_depsgraph_get()
        origin = cam.matrix_world.translation.copy()
        for bone in bones:
            point = arm.matrix_world @ bone.head
            direction = point - origin
            left = direction.length
            direction.normalize()
            start = origin.copy()
            for _ in range(16):  # step through everything in front of the bone
                hit, loc, _n, _i, obj, _m = scene.ray_cast(depsgraph, start, direction, distance=left)
                if not hit or obj is None:
                    break
                name = obj.original.name
                if name in skins:
                    break  # the body itself: this bone is in view
                if obj.original.get(BODY_TAG) is None and name not in keep:
                    hidden[name] = obj.original
                step = (loc - start).length + 1e-3
                start = loc + direction * 1e-3
                left -= step
                if left <= 0:
                    break
    scene.frame_set(current)
    for obj in hidden.values():
        obj.hide_render = True
    return list(hidden.values())


def _stamp(scene: bpy.types.Scene, note: str | None) -> None:
    r = scene.render
    r.use_stamp = True
    r.use_stamp_date = r.use_stamp_time = r.use_stamp_render_time = r.use_stamp_camera = False
    r.use_stamp_lens = r.use_stamp_scene = r.use_stamp_filename = r.use_stamp_memory = False
    r.use_stamp_hostname = r.use_stamp_marker = r.use_stamp_sequencer_strip = False
    r.use_stamp_frame = True
    r.use_stamp_note = bool(note)
    r.stamp_note_text = note or ""
    r.stamp_font_size = 14
    r.stamp_foreground = (1.0, 1.0, 1.0, 1.0)
    r.stamp_background = (0.0, 0.0, 0.0, 0.75)  # white on dark: readable over floor, walls and sky


def render_tiles(scene: bpy.types.Scene, frames: list[int], folder: str | Path, size: tuple[int, int] = (480, 300),
                 note: str | None = None) -> list[np.ndarray]:
    """Render ``frames`` with the scene camera (frame number and ``note`` stamped); returns each
    image as (h,w,4) float pixels, bottom row first as Blender stores them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = size[0], size[1], 100
    r.image_settings.file_format = "PNG"
    _stamp(scene, note)
    tiles = []
    for f in frames:
        scene.frame_set(int(f))
        r.filepath = str(folder / f"frame_{int(f):04d}.png")
        bpy.ops.render.render(write_still=True)
        img = bpy.data.images.load(r.filepath)
        px = np.empty(img.size[0] * img.size[1] * 4, dtype=np.float32)
        img.pixels.foreach_get(px)
        tiles.append(px.reshape(img.size[1], img.size[0], 4))
        bpy.data.images.remove(img)
    return tiles


def save_sheet(rows: list[list[np.ndarray]], path: str | Path, pad: int = PAD) -> Path:
    """Tile rows of equally sized images (top row first) into one PNG, white between tiles.

    Size: ``columns * w + (columns + 1) * pad`` by ``rows * h + (rows + 1) * pad`` pixels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError("nothing to put on the contact sheet")
    h, w = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    sheet = np.ones((len(rows) * h + (len(rows) + 1) * pad, columns * w + (columns + 1) * pad, 4), dtype=np.float32)
    for ri, row in enumerate(rows):
        rr = len(rows) - 1 - ri  # Blender images are bottom-up
        for cc, tile in enumerate(row):
            y0, x0 = pad + rr * (h + pad), pad + cc * (w + pad)
            sheet[y0:y0 + h, x0:x0 + w] = tile
    out = bpy.data.images.new("HOSIG contact sheet", sheet.shape[1], sheet.shape[0], alpha=True)
    out.pixels.foreach_set(sheet.ravel())
    out.filepath_raw = str(path)
    out.file_format = "PNG"
    out.save()
    bpy.data.images.remove(out)
    return path


def render_contact_sheet(scene: bpy.types.Scene, frames: list[int], path: str | Path,
                         size: tuple[int, int] = (480, 300), columns: int = 3) -> Path:
    """Render ``frames`` with Workbench and tile them into one PNG (frame number stamped)."""
    path = Path(path)
    tiles = render_tiles(scene, frames, path.parent / "frames", size)
    return save_sheet([tiles[i:i + columns] for i in range(0, len(tiles), columns)], path)


def clip_frames(arm: bpy.types.Object, n: int | list[int]) -> list[int]:
    """Scene frames of the armature's keyed range: ``n`` evenly spaced (first and last included),
    or the clip's own frames ``n`` (0 = its first), clamped to the range."""
    first, last = clip_import.keyed_range(arm)
    if isinstance(n, list):
        return [int(min(max(first + f, first), last)) for f in n]
    return [int(v) for v in np.linspace(first, last, max(1, n)).round()]


def render_clip_row(scene: bpy.types.Scene, arm: bpy.types.Object, frames: int | list[int], folder: str | Path,
                    label: str | None = None, target: str | None = None, size: tuple[int, int] = TILE) -> list[np.ndarray]:
    """One contact-sheet row for one clip's armature: only its body shown (orange), ``target``
    blue, the camera on the clip's path region, ``frames`` tiles stamped with the label and frame."""
    meshes = [o for o in scene.objects if o.type == "MESH"]
    hidden = {o.name: o.hide_render for o in meshes}
    restore_object = _show_object_action(arm)  # several clips may key the same object: show this one's
    try:
        for o in meshes:
            if o.get(BODY_TAG) is not None:
                o.hide_render = o.parent != arm
        scene.render.resolution_x, scene.render.resolution_y = size
        targets = [target] if target else []
        picks = clip_frames(arm, frames)
        # chosen frames (a failure): the camera on the body there; else on the clip's whole path
        span = (min(picks), max(picks)) if isinstance(frames, list) else None
        setup_preview(scene, region=clip_region(pelvis_path(scene, arm, span=span)), targets=targets)
        hide_occluders(scene, arm, keep=set(targets))
        return render_tiles(scene, picks, folder, size, note=label or arm.name)
    finally:
        for o in meshes:
            o.hide_render = hidden[o.name]
        restore_object()


def _show_object_action(arm: bpy.types.Object):
    """Make the carried object play the action this clip keyed for it; returns the undo function."""
    obj = bpy.data.objects.get(str(arm.get(clip_import.OBJECT_TAG, "")))
    action = bpy.data.actions.get(str(arm.get(clip_import.OBJECT_ACTION_TAG, "")))
    if obj is None or action is None or obj.animation_data is None or obj.animation_data.action == action:
        return lambda: None
    ad = obj.animation_data
    before = (ad.action, getattr(ad, "action_slot", None))

    def assign(act, slot) -> None:
        ad.action = act
        if act is not None and hasattr(ad, "action_slot"):
            ad.action_slot = slot if slot is not None else (act.slots[0] if len(act.slots) else None)

    assign(action, None)
    return lambda: assign(*before)


def render_clips_sheet(scene: bpy.types.Scene, armatures: list[bpy.types.Object], path: str | Path, frames: int = 6,
                       labels: list[str] | None = None, targets: list[str | None] | None = None,
                       size: tuple[int, int] = TILE) -> Path:
    """A contact sheet of several clips in this scene: one row per armature, ``frames`` columns
    evenly spaced over its clip (see `render_clip_row`). ``targets`` default to the objects each
    clip carries (``object_name`` of imported clips)."""
    import tempfile

    labels = labels or [a.name for a in armatures]
    targets = targets or [carried_object(a) for a in armatures]
    with tempfile.TemporaryDirectory(prefix="hosig-sheet-") as tmp:
        rows = [render_clip_row(scene, arm, frames, Path(tmp) / str(i), labels[i], targets[i], size)
                for i, arm in enumerate(armatures)]
    return save_sheet(rows, path)


def carried_object(arm: bpy.types.Object) -> str | None:
    """The object an imported clip names (its ``object_name``), if any."""
    name = arm.get(clip_import.OBJECT_TAG)
    return str(name) if name else None


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


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _read_body(path: str | Path):
    return BodyData.from_json(json.loads(Path(path).read_text()))


def run_import(body_json: str | Path, clips: list[str], out: str | Path, scene_path: str | None = None,
               sheet: str | None = None, frames: int = 6, labels: list[str] | None = None,
               tile: tuple[int, int] = TILE) -> dict[str, Any]:
    """Clip files -> keyed armatures in a fresh file (with ``scene_path`` imported first), saved as
    ``out``; with ``sheet`` a contact sheet of the clips (one row each). Returns the summary."""
    t0 = time.perf_counter()
    if labels and len(labels) != len(clips):
        raise ValueError(f"{len(labels)} labels for {len(clips)} clips")
    body = _read_body(body_json)
    for path in clips:  # every file checked before Blender changes anything
        clip_import.check_identity(clip_import.read_clip(path), body)
    reset()
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start = scene.frame_current = 1
    imported = import_scene(scene_path) if scene_path else []
    arms = clip_import.import_clips(clips, body)
    scene.frame_end = max(clip_import.keyed_range(a)[1] for a in arms)
    # the saved file opens on a camera over all the clips
    path_points = np.concatenate([pelvis_path(scene, a) for a in arms])
    setup_preview(scene, region=clip_region(path_points), targets=[t for t in map(carried_object, arms) if t])
    scene.frame_set(1)
    blend = Path(out)
    blend.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend.resolve()))
    sheet_path = None
    if sheet:
        sheet_path = render_clips_sheet(scene, arms, sheet, frames, labels, size=tile)
    armatures = []
    for arm, clip in zip(arms, clips):
        first, last = clip_import.keyed_range(arm)
        armatures.append({"name": arm.name, "clip": str(clip), "frames": last - first + 1, "frame_range": [first, last],
                          "action": arm.animation_data.action.name, "object": carried_object(arm),
                          "object_action": arm.get(clip_import.OBJECT_ACTION_TAG),
                          "object_keyed": arm.get(clip_import.OBJECT_ACTION_TAG) is not None})
    return {"blend": str(blend), "armatures": armatures, "frames": sum(a["frames"] for a in armatures),
            "sheet": str(sheet_path) if sheet_path else None, "scene": scene_path, "objects_imported": len(imported),
            "body_identity": body.identity, "wall_s": round(time.perf_counter() - t0, 2)}


def run_sheet(body_json: str | Path, items: list[dict[str, Any]], out: str | Path, frames: int = 5,
              tile: tuple[int, int] = TILE) -> dict[str, Any]:
    """One sheet row per item, each rendered in a fresh file with its own scene and clip."""
    import tempfile

    t0 = time.perf_counter()
    body = _read_body(body_json)
    for item in items:
        clip_import.check_identity(clip_import.read_clip(item["clip"]), body)
    rows, report = [], []
    with tempfile.TemporaryDirectory(prefix="hosig-sheet-") as tmp:
        for i, item in enumerate(items):
            reset()
            scene = bpy.context.scene
            scene.render.fps = 30
            scene.frame_start = scene.frame_current = 1
            if item.get("scene"):
                import_scene(item["scene"])
            arm = clip_import.import_clip(item["clip"], body)
            label = str(item.get("label") or arm.name)
            target = item.get("target") or carried_object(arm)
            picks = [int(f) for f in item["frames"]] if item.get("frames") else frames
            rows.append(render_clip_row(scene, arm, picks, Path(tmp) / str(i), label, target, tile))
            report.append({"label": label, "clip": str(item["clip"]), "frames": clip_frames(arm, picks), "target": target})
    reset()
    path = save_sheet(rows, out)
    return {"sheet": str(path), "rows": report, "wall_s": round(time.perf_counter() - t0, 2)}


def _find_armature(name: str, rig_path: str | Path) -> bpy.types.Object:
    """The armature object ``name`` of the opened rig file; ``ValueError`` naming the ones there."""
    obj = bpy.data.objects.get(name)
    armatures = sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE")
    if obj is None or obj.type != "ARMATURE":
        what = "is not an armature" if obj is not None else "does not exist"
        raise ValueError(f"armature {name!r} {what} in {str(rig_path)!r} (armatures there: {', '.join(armatures) or 'none'})")
    return obj


def _export_path(path: str | None, shot: str, several: bool) -> Path | None:
    """``--fbx OUT.fbx`` for one clip; ``OUT_<shot>.fbx`` beside it for each of several (the shot
    is the source armature's name: unique even when two clips share a file name)."""
    if not path:
        return None
    p = Path(path)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in shot)
    return p.with_name(f"{p.stem}_{safe}{p.suffix}") if several else p


def run_retarget(body_json: str | Path, clips: list[str], rig: str | Path, armature: str, out: str | Path,
                 scene_path: str | None = None, fbx: str | None = None, bvh: str | None = None,
                 preset: str | None = None, nla: bool = False) -> dict[str, Any]:
    """Clip files retargeted onto the armature ``armature`` of the rig file ``rig``, saved as
    ``out`` (never over ``rig``): one action per clip on the target (the last one active), the
    SMPL-X sources hidden; optionally each shot as FBX / BVH. Every input is checked (clips, rig
    file, armature, bone map) before anything is written. Returns the summary."""
    from . import retarget_blender as rb

    t0 = time.perf_counter()
    rig, out = Path(rig).resolve(), Path(out).resolve()
    if not rig.is_file():
        raise ValueError(f"rig file {str(rig)!r} does not exist")
    if out == rig:
        raise ValueError(f"--out {str(out)!r} is the rig file itself; the rig file is never written: name another file")
    for path in (fbx, bvh):
        if path and Path(path).resolve() in (rig, out):
            raise ValueError(f"export path {path!r} would overwrite a .blend")
    body = _read_body(body_json)
    for path in clips:  # every file checked before Blender changes anything
        clip_import.check_identity(clip_import.read_clip(path), body)
    unregister()
    bpy.ops.wm.open_mainfile(filepath=str(rig), load_ui=False)
    register()
    target = _find_armature(armature, rig)
    options = rb.RetargetOptions(preset=preset, nla=nla)
    preset_used, bone_map = rb.resolve_map(target, options)
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start = scene.frame_current = 1
    if scene_path:
        import_scene(scene_path)
    sources = clip_import.import_clips(clips, body)
    shots = []
    for src, clip in zip(sources, clips):
        t1 = time.perf_counter()
        result = rb.retarget(src, target, options)
        retarget_s = time.perf_counter() - t1
        contacts = rb.contact_report(src, target, result)
        first, last = int(result.frames[0]), int(result.frames[-1])
        shot = {"clip": str(clip), "source": src.name, "action": result.action.name, "frames": [first, last],
                "keys": result.keys, "scale": round(result.scale, 4), "object": result.object_name,
                "object_action": result.object_action, "contacts": contacts, "retarget_s": round(retarget_s, 3)}
        if result.checks is not None:  # a control rig: how closely its controls (FK, then IK) reproduce the solve
            shot["control_check_cm"] = result.checks
        fbx_path = _export_path(fbx, src.name, len(clips) > 1)
        if fbx_path is not None:
            shot["fbx"] = str(rb.export_fbx(target, fbx_path, result.action))
        bvh_path = _export_path(bvh, src.name, len(clips) > 1)
        if bvh_path is not None:
            shot["bvh"] = str(rb.export_bvh(target, bvh_path, first, last, result.action))
        src.hide_set(True)
        src.hide_render = True
        for child in src.children:
            child.hide_set(True)
            child.hide_render = True
        shots.append(shot)
    scene.frame_end = max(s["frames"][1] for s in shots)
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    unmapped = sorted(set(b.name for b in target.data.bones) - set(bone_map.values()))
    return {"blend": str(out), "rig": str(rig), "armature": target.name, "preset": preset_used, "bone_map": bone_map,
            "unmapped": unmapped, "shots": shots, "body_identity": body.identity, "wall_s": round(time.perf_counter() - t0, 2)}


def _emit(summary: dict[str, Any]) -> None:
    sys.stdout.write("HOSIG_SUMMARY " + json.dumps(summary) + "\n")
    sys.stdout.flush()


def _fail(message: str) -> int:
    sys.stdout.write("HOSIG_ERROR " + " ".join(str(message).split()) + "\n")
    sys.stdout.flush()
    return 1


# what a run_* raises for bad input or a failed step: reported as one HOSIG_ERROR line, exit 1
_ERRORS = (ValueError, OSError, RuntimeError, KeyError, ProtocolError)


def _run_command(parser: argparse.ArgumentParser, argv: list[str], work: Callable[[argparse.Namespace], dict[str, Any]],
                 errors: tuple[type[BaseException], ...] = _ERRORS) -> int:
    """Parse ``argv`` (usage errors exit 2, argparse's way), run ``work(args)`` -> summary and print
    it as ``HOSIG_SUMMARY {json}`` (exit 0), or ``HOSIG_ERROR message`` (exit 1) on ``errors``."""
    args = parser.parse_args(argv)
    try:
        summary = work(args)
    except errors as err:
        return _fail(str(err))
    _emit(summary)
    return 0


def main_import(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosig_blender.headless import")
    parser.add_argument("--body", required=True, help="the server's /body answer (JSON file)")
    parser.add_argument("--clips", required=True, nargs="+", help="clip files (.npz)")
    parser.add_argument("--scene", default=None, help="a .glb/.gltf scene imported first")
    parser.add_argument("--out", required=True, help="the .blend to write")
    parser.add_argument("--sheet", default=None, help="also render a contact sheet (PNG), one row per clip")
    parser.add_argument("--frames", type=int, default=6, help="sheet columns per clip")
    parser.add_argument("--labels", nargs="+", default=None, help="one label per clip (default: the clip names)")
    parser.add_argument("--tile", type=_size, default=TILE, help="tile size WxH (default 320x240)")
    return _run_command(parser, argv, lambda a: run_import(a.body, a.clips, a.out, a.scene, a.sheet, a.frames, a.labels,
                                                           a.tile))


def main_sheet(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosig_blender.headless sheet")
    parser.add_argument("--body", required=True, help="the server's /body answer (JSON file)")
    parser.add_argument("--items", required=True, help='JSON list of {"scene", "clip", "label", "target"}')
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--tile", type=_size, default=TILE)
    return _run_command(parser, argv, lambda a: run_sheet(a.body, json.loads(Path(a.items).read_text()), a.out, a.frames,
                                                          a.tile), errors=(*_ERRORS, TypeError))


def main_retarget(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosig_blender.headless retarget")
    parser.add_argument("--body", required=True, help="the server's /body answer (JSON file)")
    parser.add_argument("--clips", required=True, nargs="+", help="clip files (.npz)")
    parser.add_argument("--rig", required=True, help="the .blend holding the target armature (never written)")
    parser.add_argument("--armature", required=True, help="the target armature object's name")
    parser.add_argument("--out", required=True, help="the .blend to write")
    parser.add_argument("--scene", default=None, help="a .glb/.gltf scene imported first")
    parser.add_argument("--fbx", default=None, help="also export each shot as FBX")
    parser.add_argument("--bvh", default=None, help="also export each shot as BVH")
    parser.add_argument("--preset", default=None, help="bone map: auto or a preset name (default: detect)")
    parser.add_argument("--nla", action="store_true", help="push each shot's action onto an NLA strip")
    return _run_command(parser, argv, lambda a: run_retarget(a.body, a.clips, a.rig, a.armature, a.out, a.scene, a.fbx,
                                                             a.bvh, a.preset, a.nla))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "retarget":
        return main_retarget(argv[1:])
    if argv and argv[0] == "import":
        return main_import(argv[1:])
    if argv and argv[0] == "sheet":
        return main_sheet(argv[1:])
    if argv and argv[0] == "demo":
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="python -m hosig_blender.headless [demo]")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args(argv)
    summary = run_demo(args.scene, args.url, args.out, args.token, args.frames)
    _emit(summary)
    return 0 if not summary["failures"] else 3


if __name__ == "__main__":
    sys.exit(main())
