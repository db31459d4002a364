"""`hosig train` (fit the motion denoiser) and `hosig motion synth|bench` (run the motion stage)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from hosig.cli.common import add_body_flag, add_report_flags, emit, parse_floats
from hosig.errors import InputError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    t = subparsers.add_parser(
        "train",
        help="train the motion denoiser on a prepared dataset (`hosig data prepare` output)",
        description="Train the motion model. Writes OUT/model.safetensors + model.json (the checkpoint) and "
        "OUT/train_state.* (to resume). Deterministic for a given --seed.",
    )
    t.add_argument("--data", required=True, help="dataset .npz from `hosig data prepare`")
    t.add_argument("--out", required=True, help="output folder for checkpoints")
    t.add_argument("--steps", type=int, default=3000, help="total optimisation steps (default 3000)")
    t.add_argument("--batch", type=int, default=32, help="windows per step (default 32)")
    t.add_argument("--lr", type=float, default=4e-4)
    t.add_argument("--window", type=int, default=64, help="frames per window (default 64)")
    t.add_argument("--d-model", type=int, default=256)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/train_state.*")
    t.add_argument("--init", help="fine-tune this motion checkpoint (its architecture, normalisation and sampler)")
    t.add_argument("--trajectory-weight", type=float, default=0.0,
                   help="extra loss on the pelvis trajectory (teaches the network to follow its path anchors)")
    t.add_argument("--warmup", type=int, default=100, help="learning-rate warm-up steps")
    add_report_flags(t)
    t.set_defaults(func=cmd_train)

    m = subparsers.add_parser("motion", help="run the motion stage on navigation/grasp outputs")
    sub = m.add_subparsers(dest="motion_command", metavar="SUBCOMMAND")
    s = sub.add_parser(
        "synth",
        help="synthesise a clip from `hosig navigate --out` (and `hosig grasp --out`) files",
        description="Walk the planned path(s), reach and grasp. For pick-place give --path twice "
        "(to the object, then to the place) and --place x,y,z.",
    )
    s.add_argument("--path", action="append", required=True, help="NavPlan JSON from `hosig navigate --out` (twice for pick-place)")
    s.add_argument("--grasp", help="grasp .npz from `hosig grasp --out`")
    s.add_argument("--action", default="reach", choices=["reach", "pick", "pick-place"])
    s.add_argument("--place", help="x,y,z where the object goes (pick-place)")
    s.add_argument("--scene", help="scene file: enables the scene-penetration guidance term")
    s.add_argument("--model", help="motion checkpoint (.safetensors, .json or folder); default: the committed model")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, default=None, help="DDIM steps per window (default: the model's)")
    s.add_argument("--no-guidance", action="store_true", help="turn guidance and the IK/foot correction off")
    s.add_argument("--out", required=True, help="clip .npz to write")
    add_body_flag(s)
    add_report_flags(s)
    s.set_defaults(func=cmd_synth)

    b = sub.add_parser("bench", help="speed and quality of the motion stage on generated walks")
    b.add_argument("--model", help="motion checkpoint; default: the committed model")
    b.add_argument("--seconds", type=float, default=10.0, help="clip length for the real-time factor")
    b.add_argument("--ref-seconds", type=float, default=2.0, help="clip length for the 1000-step reference")
    b.add_argument("--no-ref", action="store_true", help="skip the 1000-step reference sampler")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    add_body_flag(b)
    add_report_flags(b)
    b.set_defaults(func=cmd_bench)
    m.set_defaults(func=lambda args: (m.print_help(), 2)[1])


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from hosig.motion.model import DenoiserConfig
    from hosig.motion.train import TrainConfig, train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    init = None
    denoiser = DenoiserConfig(window=args.window, d_model=args.d_model, layers=args.layers, ff=2 * args.d_model)
    if args.init:
        from hosig.motion.checkpoint import MotionModel

        init = MotionModel.load(args.init)
        denoiser = init.config
    cfg = TrainConfig(
        steps=args.steps, batch=args.batch, lr=args.lr, ckpt_every=args.ckpt_every, seed=args.seed, device=args.device,
        warmup=args.warmup, trajectory_weight=args.trajectory_weight, denoiser=denoiser,
    )
    t0 = time.time()
    record = train(args.data, args.out, cfg, resume=args.resume, progress=not args.json, init=init)
    record["seconds"] = round(time.time() - t0, 1)
    emit(record, args)
    return 0


def load_plan(path: str) -> SimpleNamespace:
    """A NavPlan JSON (`NavPlan.to_json`) -> an object with the fields `build_task` reads."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"path file {str(p)!r} is not readable JSON: {err}") from None
    need = ("start", "stand", "waypoints", "times")
    missing = [k for k in need if k not in d]
    if missing:
        raise InputError(f"path file {str(p)!r} lacks {missing} (write it with `hosig navigate --out`)")
    try:
        plan = SimpleNamespace(
            start=np.asarray(d["start"], float), stand=np.asarray(d["stand"], float),
            waypoints=np.asarray(d["waypoints"], float).reshape(-1, 2), times=np.asarray(d["times"], float),
            target_point=np.asarray(d.get("target_point") or [np.nan] * 3, float), target=d.get("target"),
        )
    except (TypeError, ValueError) as err:
        raise InputError(f"path file {str(p)!r}: malformed arrays: {err}") from None
    if len(plan.waypoints) != len(plan.times) or len(plan.times) < 1 or not np.isfinite(plan.waypoints).all():
        raise InputError(f"path file {str(p)!r}: waypoints and times must be finite and of equal length")
    return plan


def load_grasp(path: str) -> SimpleNamespace:
    """A grasp npz (`GraspResult.save_npz`) -> the fields `build_task` reads."""
    from hosig.npz import read_npz

    p = Path(path)
    g = read_npz(p, "grasp file")
    need = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "joints", "wrist", "hand")
    missing = [k for k in need if k not in g]
    if missing:
        raise InputError(f"grasp file {str(p)!r} lacks {missing} (write it with `hosig grasp --out`)")
    return SimpleNamespace(
        hand=str(g["hand"]), global_orient=g["global_orient"], body_pose=g["body_pose"],
        left_hand_pose=g["left_hand_pose"], right_hand_pose=g["right_hand_pose"], joints=g["joints"],
        wrist=g["wrist"], target=str(g.get("target", "")), object_in_wrist=g.get("object_in_wrist"),
    )


def cmd_synth(args: argparse.Namespace) -> int:
    from hosig.body import load_body_model
    from hosig.motion.bench import motion_metrics
    from hosig.motion.checkpoint import MotionModel
    from hosig.motion.task import attach_object, build_task

    legs = [load_plan(p) for p in args.path]
    grasp = load_grasp(args.grasp) if args.grasp else None
    place = parse_floats(args.place, "--place", (3,)) if args.place else None
    body = load_body_model(args.smplx_dir)
    model = MotionModel.load(args.model)
    task = build_task(args.action, legs, grasp, place_point=place, body=body)
    sdf = scene = None
    if args.scene:
        from hosig.scene import load_scene

        scene = load_scene(args.scene)
        target = legs[0].target
        sdf = scene.sdf(exclude=[target] if target else [])
    t0 = time.perf_counter()
    clip = model.synthesize(
        task.anchors, body, scene_sdf=sdf, seed=args.seed, steps=args.steps, guidance=not args.no_guidance,
        refine_pass=not args.no_guidance, grasp_frame=task.grasp_frame, release_frame=task.release_frame,
        touch_spans=task.touch_spans, path=task.path,
    )
    ms = (time.perf_counter() - t0) * 1000
    if grasp is not None and grasp.target:
        settle = None
        if scene is not None and grasp.target in scene.objects:
            from hosig.pipeline.settle import make_settler

            settle = make_settler(scene.mesh(exclude=(grasp.target,)), scene.object(grasp.target).vertices)
        attach_object(clip, task, body, grasp.target, settle=settle)
    clip.save(args.out)
    report: dict[str, Any] = {
        "out": str(args.out), "action": args.action, "frames": clip.n_frames, "duration_s": clip.duration_s,
        "grasp_frame": task.grasp_frame, "release_frame": task.release_frame, "synth_ms": round(ms, 1),
        "realtime_factor": round(clip.duration_s / (ms / 1000), 3),
        "metrics": motion_metrics(clip, task.anchors, task.path, body=body),
    }
    emit(report, args)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from hosig.body import load_body_model
    from hosig.motion.bench import bench_motion
    from hosig.motion.checkpoint import MotionModel

    if args.seconds <= 0 or args.ref_seconds <= 0:
        raise UsageError("--seconds and --ref-seconds must be positive")
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    body = load_body_model(args.smplx_dir)
    model = MotionModel.load(args.model)
    report = bench_motion(model, body, seconds=args.seconds, ref_seconds=None if args.no_ref else args.ref_seconds, seed=args.seed)
    emit(report, args)
    return 0
