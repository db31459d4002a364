"""`hosig scene ...`: inspect a scene file, write a procedurally furnished demo room."""

from __future__ import annotations

import argparse
import time
from typing import Any

from hosig.cli.common import add_report_flags, emit


def _inspect(args: argparse.Namespace) -> int:
    from hosig.scene import SceneConfig, load_scene

    config = SceneConfig(up_axis=args.up_axis)
    t0 = time.perf_counter()
    scene = load_scene(args.scene, config)
    load_ms = (time.perf_counter() - t0) * 1e3
    t1 = time.perf_counter()
    floor_z = scene.floor_z
    floor_ms = (time.perf_counter() - t1) * 1e3
    report: dict[str, Any] = scene.summary()
    report.update(
        {
            "floor_z": floor_z,
            "object_count": len(scene.objects),
            "pickable": scene.pickable(),
            "load_ms": load_ms,
            "floor_ms": floor_ms,
        }
    )
    if args.grids:
        from hosig.scene.bench import bench_scene_load

        report["bench"] = bench_scene_load(args.scene, config=config)
    emit(report, args, human=_render_inspect)
    return 0


def _render_inspect(r: dict[str, Any]) -> str:
    lo, hi = r["bounds"]
    lines = [
        f"scene      {r['source']}",
        f"hash       {r['content_hash'][:16]}",
        f"floor_z    {r['floor_z']:.3f} m",
        f"bounds     [{lo[0]:.2f}, {lo[1]:.2f}, {lo[2]:.2f}] .. [{hi[0]:.2f}, {hi[1]:.2f}, {hi[2]:.2f}] m",
        f"triangles  {r['triangles']}",
        f"load       {r['load_ms']:.1f} ms (floor {r['floor_ms']:.1f} ms)",
        f"objects    {r['object_count']} ({len(r['pickable'])} pickable)",
    ]
    for o in r["objects"]:
        (x0, y0, z0), (x1, y1, z1) = o["bounds"]
        mark = "pick" if o["pickable"] else "    "
        lines.append(
            f"  {mark} {o['name']:<22} x {x0:6.2f}..{x1:6.2f}  y {y0:6.2f}..{y1:6.2f}  z {z0:5.2f}..{z1:5.2f}"
        )
    if "bench" in r:
        lines.append("bench      " + ", ".join(f"{k} {v:.1f}" for k, v in r["bench"].items() if k.endswith("_ms")))
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    from hosig.scene import load_scene
    from hosig.scene.demo import write_demo_scene

    path = write_demo_scene(args.out, kind=args.kind, seed=args.seed)
    scene = load_scene(path)
    report = {
        "path": str(path),
        "kind": args.kind,
        "seed": args.seed,
        "objects": scene.names(),
        "pickable": scene.pickable(),
        "floor_z": scene.floor_z,
        "bounds": scene.bounds.tolist(),
        "triangles": scene.triangle_count,
    }
    emit(report, args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from hosig.scene.demo import KINDS

    p = subparsers.add_parser("scene", help="inspect scenes; write procedurally furnished demo rooms")
    sub = p.add_subparsers(dest="scene_command", metavar="SUBCOMMAND")
    sub.required = True

    ins = sub.add_parser("inspect", help="floor height, bounds, objects (boxes, pickable), load time")
    ins.add_argument("scene", help="scene file (.glb, .gltf, .obj, .ply)")
    ins.add_argument("--up-axis", choices=("z", "y"), default="z", help="up axis of .obj/.ply files (glTF is always Y-up)")
    ins.add_argument("--grids", action="store_true", help="also build occupancy and SDF and report their timings")
    add_report_flags(ins)
    ins.set_defaults(func=_inspect)

    demo = sub.add_parser("demo", help="write a procedurally furnished demo room as .glb")
    demo.add_argument("--out", required=True, help="output .glb path")
    demo.add_argument("--kind", choices=KINDS, default="kitchen", help="room kind (default kitchen)")
    demo.add_argument("--seed", type=int, default=0, help="layout seed (default 0)")
    add_report_flags(demo)
    demo.set_defaults(func=_demo)
