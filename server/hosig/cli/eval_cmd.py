"""`hosig eval` (cases through the pipeline), `hosig eval motion` (naturalness) and `hosig bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hosig.cli.common import add_report_flags, emit, to_jsonable
from hosig.errors import InputError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="measure quality on a cases file (success, penetration, skating, path)",
                              description="Run each case of a cases file through the pipeline and measure the clips "
                                          "against the scene geometry. `hosig eval motion` compares motion with real capture.")
    p.add_argument("--cases", help="JSON list of cases (scene, start, target, expect, action, place)")
    p.add_argument("--scenes", help="folder the case scene paths are relative to (default: the cases file's folder)")
    p.add_argument("--out", help="write the whole report as JSON here")
    p.add_argument("--md", help="write the summary table as Markdown here")
    p.add_argument("--plots", help="write PNG figures (floor map + path, foot heights) into this folder")
    p.add_argument("--keep-clips", help="keep the generated clips in this folder")
    p.add_argument("--model", help="motion model checkpoint (folder or .safetensors) to evaluate instead of the default")
    add_report_flags(p)
    p.set_defaults(func=_eval)
    sub = p.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    m = sub.add_parser("motion", help="naturalness of clips against real capture (velocity, acceleration, jerk ratios)")
    m.add_argument("--real", nargs="+", required=True, help="real capture: BVH files/folders, or clip/dataset .npz")
    m.add_argument("--clips", nargs="+", required=True, help="generated clip.npz files")
    m.add_argument("--plots", help="write a velocity histogram PNG into this folder")
    m.add_argument("--moving-only", action="store_true",
                   help="compare only locomotion: the runs where the pelvis moves faster than 0.5 m/s, on both sides")
    add_report_flags(m)
    m.set_defaults(func=_eval_motion)

    a = sub.add_parser("anchors", help="does the motion network follow its pelvis anchors without guidance? (real windows)")
    a.add_argument("--data", required=True, help="prepared dataset .npz (`hosig data prepare`), e.g. held-out capture")
    a.add_argument("--model", help="motion checkpoint; default: the committed model")
    a.add_argument("--windows", type=int, default=32, help="windows measured, evenly spread over the data")
    a.add_argument("--every", type=int, default=8, help="frames between pelvis anchors")
    add_report_flags(a)
    a.set_defaults(func=_eval_anchors)

    st = sub.add_parser("stress", help="random furnished rooms through the pipeline, judged for gross failures",
                        description="Draw N random rooms (sizes, corridors, floors, furniture, solid/hollow/thin objects), "
                                    "generate each request and judge every clip from the clip and the meshes alone. "
                                    "Writes OUT/report.json, OUT/requests/*.json (replayable), OUT/scenes, OUT/clips and "
                                    "OUT/worst.png (the worst clips rendered with Blender).")
    st.add_argument("--n", type=int, default=20, help="number of cases")
    st.add_argument("--seed", type=int, default=0, help="run seed: the same seed draws the same rooms")
    st.add_argument("--first", type=int, default=0, help="index of the first case (to replay a slice of a run)")
    st.add_argument("--jobs", type=int, default=1, help="cases generated in parallel (processes)")
    st.add_argument("--out", default="out/stress", help="report folder (default out/stress)")
    st.add_argument("--plots", action="store_true", help="render the contact sheet of the worst clips (Blender)")
    add_report_flags(st)
    st.set_defaults(func=_eval_stress)

    b = subparsers.add_parser("bench", help="speed of every stage on this machine (table + JSON)")
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    b.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run in tests)")
    b.add_argument("--out", help="also write the JSON report here")
    add_report_flags(b)
    b.set_defaults(func=_bench)


def _eval(args: argparse.Namespace) -> int:
    from hosig.eval.cases import load_cases
    from hosig.eval.report import evaluate, markdown_table

    if not args.cases:
        raise UsageError("eval: --cases FILE is required (or use `hosig eval motion`)")
    case_file = load_cases(args.cases, args.scenes)
    for problem in case_file.problems:
        sys.stderr.write(f"hosig eval: skipping invalid {problem}\n")

    def progress(result: Any) -> None:
        mark = "ok " if result.success else "FAIL"
        sys.stderr.write(f"  [{mark}] {result.label}: {result.outcome} {result.message}\n")

    keep = Path(args.keep_clips) if args.keep_clips else None
    engine = None
    if args.model:
        from hosig.pipeline.engine import Engine, EngineConfig

        engine = Engine(EngineConfig(motion_checkpoint=args.model))
        engine.motion()  # a missing or corrupt checkpoint fails here, naming the file, not once per case
    report = evaluate(case_file, workdir=keep, on_case=progress, engine=engine)
    table = markdown_table(report)
    if args.md:
        Path(args.md).write_text(table)
    if args.out:
        Path(args.out).write_text(json.dumps(to_jsonable(report.to_json()), indent=1))
    if args.plots:
        _write_plots(report, case_file, Path(args.plots))
    if args.json:
        emit(report.to_json(), args)
    else:
        sys.stdout.write(table)
    return 0


def _write_plots(report: Any, case_file: Any, folder: Path) -> None:
    from hosig.eval.plots import plot_feet, plot_floor_path
    from hosig.pipeline.engine import default_engine

    folder.mkdir(parents=True, exist_ok=True)
    engine = default_engine()
    by_index = {c.index: c for c in case_file.cases}
    for result in report.cases:
        if result.joints is None:
            continue
        case = by_index[result.index]
        scene = engine.scenes.get(str(case.scene), allow_paths=True)
        stem = f"case_{result.index:03d}"
        plot_floor_path(scene, result.path, result.joints, folder / f"{stem}_path.png", result.label)
        plot_feet(result.joints, float(scene.floor_z), folder / f"{stem}_feet.png", result.label)


def _eval_motion(args: argparse.Namespace) -> int:
    from hosig.eval.naturalness import (
        MIN_SEGMENT_FRAMES,
        load_generated,
        load_real,
        moving_segments,
        naturalness_report,
        sole_sliding_of,
    )
    from hosig.pipeline.engine import default_engine

    real = load_real(args.real)
    generated = load_generated(args.clips)
    if args.moving_only:
        real, generated = moving_segments(real), moving_segments(generated)
        if not real or not generated:
            raise InputError(f"--moving-only: no locomotion of {MIN_SEGMENT_FRAMES}+ frames in the "
                             f"{'real capture' if not real else 'generated clips'}")
    report = naturalness_report(generated, real)
    body = default_engine().body()
    report["sole_sliding_cm_s"] = {"generated": sole_sliding_of(args.clips, body), "real": sole_sliding_of(args.real, body)}
    if args.plots:
        from hosig.eval.plots import plot_velocity_histograms

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        plot_velocity_histograms([c for _, c in generated], [c for _, c in real], folder / "velocity_hist.png")
    emit(report, args)
    return 0


def _eval_anchors(args: argparse.Namespace) -> int:
    from hosig.eval.anchor_following import anchor_following
    from hosig.motion.checkpoint import MotionModel

    if not Path(args.data).is_file():
        raise InputError(f"dataset not found: {args.data}")
    emit(anchor_following(MotionModel.load(args.model), args.data, windows=args.windows, every=args.every), args)
    return 0


def _eval_stress(args: argparse.Namespace) -> int:
    from hosig.eval.stress import markdown_summary, run_stress

    if args.n < 1 or args.jobs < 1 or args.first < 0 or args.seed < 0:
        raise UsageError("eval stress: --n and --jobs must be >= 1, --first and --seed >= 0")

    def progress(result: Any) -> None:
        verdict = ", ".join(result.failures) or ("ok" if result.clip else result.outcome)
        sys.stderr.write(f"case {result.index}: {verdict} ({result.wall_s:.0f} s)\n")

    report = run_stress(args.n, args.seed, Path(args.out), jobs=args.jobs, first=args.first, sheet=args.plots,
                        on_result=None if args.json else progress)
    emit(report["overall"], args, human=lambda _: markdown_summary(report))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from hosig.eval.bench import render_table, run_bench

    report = run_bench(device=args.device, quick=args.quick)
    if args.out:
        Path(args.out).write_text(json.dumps(to_jsonable(report), indent=1))
    emit(report, args, human=render_table)
    return 0
