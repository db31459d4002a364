"""Issue #19 figures: retarget speed (a 10 s clip) and contacts / export round trips per rig.

    .venv/bin/python tools/bench_retarget.py [--frames 300] [--out out/bench_retarget.json]

Builds the test clip (`tests/retarget_support.walk_clip`, the planted walk that grasps and carries
a box, here ``--frames`` long) and the test rigs (Mixamo T-pose, UE5 A-pose, Rigify's metarig and
the control rig generated from it: contacts on its DEF bones, keys on its FK controls),
retargets onto each three times (median wall time of `retarget_blender.retarget`: reading the
source, the solve, keying with key reduction, re-keying the box), measures the contacts from the
evaluated bones (`contact_report`) and round-trips FBX and BVH through Blender's importers (max
bone-head error over every 7th frame). Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import hosig_blender  # noqa: E402
import retarget_support as rs  # noqa: E402
from hosig_blender import clip_import  # noqa: E402
from hosig_blender import retarget_blender as rb  # noqa: E402


def fresh() -> None:
    hosig_blender.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    hosig_blender.register()
    bpy.context.scene.render.fps = 30


def box(at) -> None:
    mesh = bpy.data.meshes.new("box")
    mesh.from_pydata([(0, 0, 0), (0.05, 0, 0), (0, 0.05, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("box", mesh)
    obj.location = tuple(at)
    bpy.context.scene.collection.objects.link(obj)


def make_rig(kind: str, body):
    if kind == "mixamo":
        return rs.mixamo_rig(bpy, body)
    if kind == "unreal":
        return rs.unreal_rig(bpy, body)
    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.object
    if kind == "rigify_metarig":
        return meta
    bpy.ops.pose.rigify_generate()  # the generated control rig (the metarig stays in the scene)
    return bpy.context.view_layer.objects.active


def heads(arm, frames):
    names = [b.name for b in arm.data.bones]
    return rb.sample_world(bpy.context.scene, [(arm, n) for n in names], frames)[..., :3, 3], names


def round_trips(target, result, folder: Path) -> dict[str, float]:
    """Max bone-head error (mm) after FBX and BVH round trips over the bones both files keep
    (a generated Rigify rig's FBX keeps its deform bones); on that rig also over its DEF bones."""
    frames = result.frames[::7]
    before, names = heads(target, frames)
    fbx = rb.export_fbx(target, folder / "shot.fbx", result.action)
    bvh = rb.export_bvh(target, folder / "shot.bvh", int(result.frames[0]), int(result.frames[-1]), result.action)
    out = {}
    for kind, path in (("fbx", fbx), ("bvh", bvh)):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps = 30
        if kind == "fbx":
            bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
        else:
            bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="Y", axis_up="Z", frame_start=int(result.frames[0]),
                                    rotate_mode="NATIVE", update_scene_fps=False)
        arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        kept = [k for k, n in enumerate(names) if n in arm.data.bones]
        after = rb.sample_world(bpy.context.scene, [(arm, names[k]) for k in kept], frames)[..., :3, 3]
        err = np.abs(after - before[:, kept]).max(axis=(0, 2))
        out[f"{kind}_bones"] = len(kept)
        out[f"{kind}_max_error_mm"] = round(float(err.max()) * 1000, 4)
        deform = [i for i, k in enumerate(kept) if names[k].startswith("DEF-")]
        if deform and len(deform) < len(kept):
            out[f"{kind}_def_max_error_mm"] = round(float(err[deform].max()) * 1000, 4)
            worst = int(np.argmax(err))
            out[f"{kind}_worst_bone"] = names[kept[worst]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--out", default=None)
    parser.add_argument("--rigs", nargs="+", default=["mixamo", "unreal", "rigify_metarig", "rigify_rig"],
                        choices=["mixamo", "unreal", "rigify_metarig", "rigify_rig"])
    args = parser.parse_args()
    rs.N, rs.GRASP = args.frames, args.frames - 60
    report = {"frames": args.frames, "rigs": {}}
    with tempfile.TemporaryDirectory(prefix="hosig-bench-retarget-") as tmp:
        folder = Path(tmp)
        path, body, box_at, _joints = rs.walk_clip(folder)
        for kind in args.rigs:
            fresh()
            box(box_at)
            src = clip_import.import_clip(path, body)
            target = make_rig(kind, body)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                result = rb.retarget(src, target)
                times.append(time.perf_counter() - t0)
            entry = {"bones": len(target.data.bones), "mapped": len(result.bone_map), "preset": result.preset,
                     "retarget_s_median": round(statistics.median(times), 3), "retarget_s": [round(t, 3) for t in times],
                     "keys": result.keys, "scale": round(result.scale, 4), "contacts": rb.contact_report(src, target, result)}
            entry.update(round_trips(target, result, folder))
            report["rigs"][kind] = entry
            print(kind, json.dumps(entry), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
