"""`hosig data prepare | report | export-bvh`: build and inspect the motion training set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hosig.cli.common import add_body_flag, add_report_flags, emit, render_human
from hosig.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare and inspect motion capture training data")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])

    prep = sub.add_parser("prepare", help="CMU BVH / AMASS / TRUMANS folders -> one SMPL-X dataset file")
    prep.add_argument("--cmu", metavar="DIR", action="append", default=[], help="folder of CMU BVH files")
    prep.add_argument("--amass", metavar="DIR", action="append", default=[], help="folder of AMASS .npz files")
    prep.add_argument("--trumans", metavar="DIR", action="append", default=[], help="TRUMANS folder of .npy arrays")
    prep.add_argument("--out", required=True, metavar="FILE", help="dataset file to write (.npz)")
    prep.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                      help="add left/right mirrored copies (default on)")  # fmt: skip
    prep.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N clips (quick runs)")
    prep.add_argument("--workers", type=int, default=1, metavar="N", help="parallel worker processes (default 1)")
    prep.add_argument("--no-cache", action="store_true", help="ignore and do not write the per-file cache")
    prep.add_argument("--iterations", type=int, default=None, help="retarget optimiser steps per chunk")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_body_flag(prep)
    add_report_flags(prep)
    prep.set_defaults(func=_prepare)

    rep = sub.add_parser("report", help="summary and retarget quality of a prepared dataset")
    rep.add_argument("file", metavar="FILE", help="dataset file written by `hosig data prepare`")
    add_report_flags(rep)
    rep.set_defaults(func=_report)

    exp = sub.add_parser("export-bvh", help="write an SMPL-X clip (.npz) as BVH with SMPL-X joint names")
    exp.add_argument("clip", metavar="CLIP.npz", help="clip file (poses (T,165), trans (T,3))")
    exp.add_argument("out", metavar="OUT.bvh", help="BVH file to write")
    add_body_flag(exp)
    add_report_flags(exp)
    exp.set_defaults(func=_export)


def _prepare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hosig.body import load_body_model
    from hosig.motion.data.prepare import PrepareConfig, prepare_dataset

    sources = [("cmu", d) for d in args.cmu] + [("amass", d) for d in args.amass] + [("trumans", d) for d in args.trumans]
    if not sources:
        raise UsageError("data prepare: give at least one of --cmu DIR, --amass DIR, --trumans DIR")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    config = PrepareConfig(
        mirror=args.mirror, limit=args.limit, workers=args.workers, use_cache=not args.no_cache,
        progress=not args.no_progress,
    )  # fmt: skip
    if args.iterations is not None:
        if args.iterations < 1:
            raise UsageError(f"--iterations must be at least 1, got {args.iterations}")
        config = replace(config, retarget=replace(config.retarget, iterations=args.iterations))
    import torch

    torch.set_num_threads(1)
    body = load_body_model(args.smplx_dir)
    _, report = prepare_dataset(sources, Path(args.out), body, config, smplx_dir=args.smplx_dir)
    emit(report, args, _human_prepare)
    return 0


def _human_prepare(report: dict[str, Any]) -> str:
    lines = [
        f"wrote {report['out']}: {report['clips']} clips ({report['source_clips']} source"
        f"{', mirrored' if report['mirrored'] else ''}), {report['frames']} frames, {report['minutes']} min "
        f"in {report['seconds']} s ({report['cached_clips']} from cache)",
        "categories:",
    ]
    for cat, c in report["categories"].items():
        lines.append(f"  {cat:<20} {c['clips']:>5} clips {c['minutes']:>7.2f} min")
    lines.append(f"source frame rates: {report['frame_rates']}")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    if "fit_error_cm" in report:
        lines.append(f"retarget fit error: mean {report['fit_error_cm']['mean']} cm, max {report['fit_error_cm']['max']} cm")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} file(s):")
        lines.extend(f"  {s['error']}" for s in report["skipped"])
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from hosig.motion.data.dataset import load_dataset
    from hosig.motion.data.report import dataset_report

    report = dataset_report(load_dataset(args.file))
    emit(report, args, render_human)
    return 0


def _export(args: argparse.Namespace) -> int:
    from hosig.body import load_body_model
    from hosig.motion.data.export_bvh import export_clip_bvh

    out = Path(args.out)
    if out.suffix.lower() != ".bvh":
        raise UsageError(f"export-bvh: output must end in .bvh, got {out}")
    report = export_clip_bvh(args.clip, out, load_body_model(args.smplx_dir))
    emit(report, args)
    return 0
