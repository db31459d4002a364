"""`hosig navigate SCENE --start X,Y[,HEADING] --target NAME`: plan the walk to an object."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from hosig.cli.common import add_report_flags, emit, parse_floats
from hosig.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "navigate",
        help="plan where to stand to reach an object and a timed, collision-free walk there",
        description=(
            "Plan the stand point and walking path to an object (or a 3D point) in a scene. "
            "Coordinates: Blender world, metres, Z up; heading in radians about +Z (0 faces +X). "
            "Exit code 3 when the target cannot be reached."
        ),
    )
    p.add_argument("scene", help="scene file (.glb/.gltf/.obj/.ply) or add-on payload (.json)")
    p.add_argument("--start", required=True, help="start X,Y or X,Y,HEADING (metres, radians)")
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", help="name of the object to reach")
    goal.add_argument("--point", help="a 3D point X,Y,Z to reach instead of an object (e.g. a place location)")
    p.add_argument("--out", help="also write the plan JSON to this file")
    p.add_argument("--body-radius", type=float, default=None, help="body radius in metres (default 0.25)")
    p.add_argument("--cell", type=float, default=None, help="floor-map cell size in metres (default 0.05, at most 0.05)")
    add_report_flags(p)
    p.set_defaults(func=_navigate)


def _navigate(args: argparse.Namespace) -> int:
    from hosig.navigation import NavConfig, StartPose, plan_to_object, plan_to_point
    from hosig.scene import load_scene

    start_vals = parse_floats(args.start, "--start", (2, 3))
    overrides: dict[str, Any] = {}
    if args.body_radius is not None:
        if not (math.isfinite(args.body_radius) and 0.05 <= args.body_radius <= 1.0):
            raise UsageError(f"--body-radius: expected 0.05..1.0 m, got {args.body_radius}")
        overrides["body_radius"] = args.body_radius
    if args.cell is not None:
        if not (math.isfinite(args.cell) and 0.01 <= args.cell <= 0.05):
            raise UsageError(f"--cell: expected 0.01..0.05 m, got {args.cell}")
        overrides["cell"] = args.cell
    config = NavConfig(**overrides)
    path = Path(args.scene)
    if path.suffix.lower() == ".json":
        try:
            source: Any = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            from hosig.errors import InputError

            raise InputError(f"{path}: cannot read the scene payload ({err})") from None
    else:
        source = path
    scene = load_scene(source)
    start = StartPose(*start_vals)
    if args.target is not None:
        plan = plan_to_object(scene, start, args.target, config)
    else:
        plan = plan_to_point(scene, start, parse_floats(args.point, "--point", (3,)), config)
    report = plan.to_json()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    emit(report, args, human=_render)
    return 0


def _render(r: dict[str, Any]) -> str:
    s, e = r["start"], r["stand"]
    lines = [
        f"target     {r['target'] or 'point'} at ({r['target_point'][0]:.2f}, {r['target_point'][1]:.2f}, {r['target_point'][2]:.2f})",
        f"start      ({s[0]:.2f}, {s[1]:.2f}) heading {math.degrees(s[2]):.0f} deg" + ("  [snapped]" if r["snapped_start"] else ""),
        f"stand      ({e[0]:.2f}, {e[1]:.2f}) facing {math.degrees(e[2]):.0f} deg, reach {r['reach_m']:.2f} m",
        f"path       {r['length_m']:.2f} m, {len(r['waypoints'])} waypoints, {r['duration_s']:.2f} s ({r['frames']} frames)",
        f"clearance  {r['clearance_min_m']:.3f} m minimum",
        f"planned in {r['plan_ms']:.1f} ms",
    ]
    lines += [f"note       {n}" for n in r["notes"]]
    return "\n".join(lines)
