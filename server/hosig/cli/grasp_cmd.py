"""`hosig grasp SCENE --target NAME (--stand X,Y,HEADING | --start X,Y[,HEADING])`: whole-body grasp pose."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit, parse_floats


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "grasp",
        help="whole-body grasp pose (SMPL-X, with fingers) for an object, by optimisation",
        description=(
            "Optimise a whole-body SMPL-X grasp pose: feet on the floor at the stand point, hand on a "
            "free approach, fingers closed onto the object. Give the stand point directly "
            "(--stand X,Y,HEADING) or a start from which the stand point is planned (--start). "
            "Coordinates: Blender world, metres, Z up; heading in radians about +Z (0 faces +X). "
            "Exit code 3 when the object is out of reach, too big for a hand or has no free approach."
        ),
    )
    p.add_argument("scene", help="scene file (.glb/.gltf/.obj/.ply) or add-on payload (.json)")
    p.add_argument("--target", required=True, help="name of the object to grasp")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--stand", help="stand point X,Y,HEADING")
    where.add_argument("--start", help="start X,Y[,HEADING]: plan the stand point with navigation first")
    p.add_argument("--hand", choices=("right", "left", "auto"), default="right", help="grasping hand (auto: the side facing the object)")
    p.add_argument("--out", help="write the pose (SMPL-X parameters + joints, Z-up) to this .npz")
    p.add_argument("--render", help="write a matplotlib preview PNG of the result")
    add_body_flag(p)
    add_report_flags(p)
    p.set_defaults(func=_grasp)


def _load(path_text: str) -> Any:
    from hosig.errors import InputError
    from hosig.scene import load_scene

    path = Path(path_text)
    if path.suffix.lower() == ".json":
        try:
            return load_scene(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: cannot read the scene payload ({err})") from None
    return load_scene(path)


def _grasp(args: argparse.Namespace) -> int:
    from hosig.body import load_body_model
    from hosig.grasp import generate_grasp

    scene = _load(args.scene)
    scene.object(args.target)  # unknown names fail here, listing the known ones
    report: dict[str, Any] = {}
    if args.stand:
        stand = parse_floats(args.stand, "--stand", (3,))
    else:
        from hosig.navigation import NavConfig, StartPose, plan_to_object

        start = parse_floats(args.start, "--start", (2, 3))
        plan = plan_to_object(scene, StartPose(*start), args.target, NavConfig())
        stand = [float(v) for v in plan.stand]
        report["plan_ms"] = plan.plan_ms
    body = load_body_model(args.smplx_dir)
    result = generate_grasp(scene, args.target, stand, body, hand=args.hand)
    report = {**result.to_json(), **report, "body_model": body.identity}
    if args.out:
        report["out"] = str(result.save_npz(args.out))
    if args.render:
        from hosig.grasp.render import render_grasp

        report["render"] = str(render_grasp(scene, result, body.faces, args.render, title=f"{args.target}: {result.grasp_kind} grasp, {result.hand} hand"))
    emit(report, args, human=_render)
    return 0


def _render(r: dict[str, Any]) -> str:
    w = r["wrist"]
    lines = [
        f"target      {r['target']} ({r['grasp_kind']} grasp, {r['hand']} hand, {r['candidates']} candidates)",
        f"stand       ({r['stand'][0]:.2f}, {r['stand'][1]:.2f}), heading {r['stand'][2]:.2f} rad",
        f"wrist       ({w[0]:.3f}, {w[1]:.3f}, {w[2]:.3f})",
        f"contact     {r['contact_distance_m'] * 100:.2f} cm, {r['fingers_in_contact']} fingers touching, flexion {r['finger_flexion_rad']:.2f} rad",
        f"penetration object {r['object_penetration_m'] * 1000:.1f} mm, scene {r['scene_penetration_m'] * 1000:.1f} mm",
        f"feet        {r['feet_height_m'][0] * 100:.2f} / {r['feet_height_m'][1] * 100:.2f} cm above the floor",
        f"time        {r['grasp_ms']:.0f} ms",
    ]
    if r.get("out"):
        lines.append(f"wrote       {r['out']}")
    if r.get("render"):
        lines.append(f"preview     {r['render']}")
    return "\n".join(lines)
