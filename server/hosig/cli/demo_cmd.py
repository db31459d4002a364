"""`hosig demo [--out DIR]`: build the demo scene, serve, generate in headless Blender, render."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit
from hosig.errors import UnreachableError


def _human(report: dict[str, Any]) -> str:
    lines = [f"demo done in {report['demo_wall_s']:.1f} s (generation {report['generate_s']:.1f} s)"]
    for shot in report["shots"]:
        lines.append(f"  {shot['name']:<14} {shot['action']:<10} {shot['target'] or '-':<8} {shot['status']:<9} "
                     f"{shot['armature'] or '-'}  {shot['result']}")
    lines.append(f"  open: {report['blend']}")
    if report.get("preview"):
        lines.append(f"  preview: {report['preview']}")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from hosig.demo import DemoConfig, run_demo

    config = DemoConfig(out=Path(args.out), kind=args.kind, frames=args.frames, smplx_dir=args.smplx_dir,
                        model=args.model, quality=args.quality)
    say = (lambda msg: None) if args.json else (lambda msg: sys.stderr.write(f"hosig demo: {msg}\n"))
    report = run_demo(config, progress=say)
    emit(report, args, human=_human)
    if report["failures"]:
        raise UnreachableError("; ".join(f"{f['shot']}: {f['message']}" for f in report["failures"]))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="end-to-end demo: scene, server, headless Blender, demo.blend + preview.png")
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--kind", default="kitchen", help="demo room (kitchen has the bottle, cup and shelf the shots use)")
    parser.add_argument("--frames", type=int, default=6, help="tiles in the contact sheet")
    parser.add_argument("--model", default=None, help="motion checkpoint for the server (default: the committed model)")
    parser.add_argument("--quality", choices=("final", "preview"), default=None, help="server quality (default: the server's)")
    add_body_flag(parser)
    add_report_flags(parser)
    parser.set_defaults(func=cmd_demo)
