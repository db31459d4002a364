"""`hosig body info` and `hosig body build-mannequin`."""

from __future__ import annotations

import argparse
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit


def _info(args: argparse.Namespace) -> int:
    from hosig.body.model import timed_load

    body, load_ms = timed_load(args.smplx_dir)
    report: dict[str, Any] = body.info()
    report["load_ms"] = round(load_ms, 1)
    emit(report, args)
    return 0


def _build(args: argparse.Namespace) -> int:
    from hosig.body.mannequin import write_mannequin

    report = write_mannequin(args.out)
    emit(report, args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    body = subparsers.add_parser("body", help="body model: info about the loaded SMPL-X model, build the mannequin")
    sub = body.add_subparsers(dest="body_command", metavar="BODY_COMMAND")
    info = sub.add_parser("info", help="source, identity, vertex/joint counts, standing height, joint names")
    add_report_flags(info)
    add_body_flag(info)
    info.set_defaults(func=_info)
    build = sub.add_parser("build-mannequin", help="regenerate the embedded SMPL-X-format mannequin (deterministic)")
    build.add_argument("--out", required=True, help="output .npz path (a .json with the build parameters is written beside it)")
    add_report_flags(build)
    build.set_defaults(func=_build)
    body.set_defaults(func=lambda a: (body.print_help(), 2)[1])
