"""Motion-stage benchmark and clip measurements (used by `hosig motion bench` and `hosig bench`).

`bench_motion` measures, in one run on this machine: the real-time factor of the few-step sampler
with guidance on a generated walk-and-reach of ``seconds`` seconds, and the speed-up against the
1000-step DDPM sampler of the same network with the same guidance on a short clip. Quality numbers
come from `motion_metrics`: pelvis-to-path error, foot skating, hand error at the grasp frame.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from hosig.eval.metrics import foot_skating, point_to_polyline_distance
from hosig.motion.anchors import AnchorSet


def motion_metrics(clip, anchors: AnchorSet | None = None, path: np.ndarray | None = None, hand: str | None = None,
                   body=None) -> dict[str, Any]:
    """Quality numbers of a clip: pelvis-to-path (cm), foot skating (cm/s; with ``body``, also the
    sliding of the soles touching the floor, the measure the target is set on), wrist error at the
    grasp frame (cm)."""
    out: dict[str, Any] = {}
    j = clip.joints
    if path is not None and len(path) >= 2 and clip.grasp_frame != 0:
        walk_end = clip.grasp_frame if clip.grasp_frame > 0 else clip.n_frames
        out["pelvis_path_error_cm"] = round(float(point_to_polyline_distance(j[:walk_end, 0], np.asarray(path)).mean()) * 100, 2)
    if anchors is not None:
        pel = [a for a in anchors.joint_anchors("pelvis") if np.isfinite(a.value[:2]).all()]
        if pel:
            err = [np.linalg.norm(j[a.frame, 0, :2] - a.value[:2]) for a in pel]
            out["pelvis_anchor_error_cm"] = round(float(np.mean(err)) * 100, 2)
        if clip.grasp_frame >= 0:
            for side in ("right", "left"):
                a = anchors.at(clip.grasp_frame, f"{side}_wrist")
                if a is not None:
                    k = 21 if side == "right" else 20
                    out["hand_error_cm"] = round(float(np.linalg.norm(j[clip.grasp_frame, k] - a.value)) * 100, 2)
    out["foot_skating_cm_s"] = round(foot_skating(j).mean_cm_s, 2)
    if body is not None:
        from hosig.eval.geometry import clip_sole_sliding

        out["sole_sliding_cm_s"] = round(float(clip_sole_sliding(body, clip.poses, clip.trans).mean_cm_s), 2)
    vel = np.linalg.norm(np.diff(j[:, :22], axis=0), axis=-1) * 30
    out["joint_speed_mean_m_s"] = round(float(vel.mean()), 4)
    return out


def bench_walk(seconds: float, speed: float = 1.2):
    """A timed, gently curving walk of ``seconds`` seconds ending in front of a target point."""
    n = max(2, int(seconds * 30))
    walk_s = max(0.5, seconds - 1.6)  # leave time for the reach and hold
    t = np.linspace(0, walk_s, max(2, int(walk_s * 2) + 1))
    ang = 0.25 * np.sin(t / max(walk_s, 1e-6) * np.pi)
    d = speed * t
    x = d * np.cos(ang)
    y = d * np.sin(ang) * 0.8
    head = float(np.arctan2(y[-1] - y[-2], x[-1] - x[-2]))
    stand = np.array([x[-1], y[-1], head])
    target = np.array([x[-1] + 0.5 * np.cos(head), y[-1] + 0.5 * np.sin(head), 0.95])
    plan = SimpleNamespace(start=np.array([0.0, 0.0, float(np.arctan2(y[1], x[1]))]), stand=stand,
                           waypoints=np.stack([x, y], 1), times=t, target_point=target, target=None)
    return plan, n


def bench_motion(model, body, seconds: float = 10.0, ref_seconds: float | None = 2.0, seed: int = 0, scene_sdf=None) -> dict[str, Any]:
    """Real-time factor (with guidance) for ``seconds`` of motion; speed-up vs 1000-step DDPM."""
    from hosig.motion.task import build_task

    # warm-up (one-time imports and allocations; the server is warm when it serves a request)
    wplan, _ = bench_walk(1.0)
    wtask = build_task("reach", [wplan], None, body=body)
    model.synthesize(wtask.anchors, body, seed=seed, grasp_frame=wtask.grasp_frame)
    plan, _ = bench_walk(seconds)
    task = build_task("reach", [plan], None, body=body)
    t0 = time.perf_counter()
    clip = model.synthesize(task.anchors, body, scene_sdf=scene_sdf, seed=seed, grasp_frame=task.grasp_frame, path=task.path)
    dt = time.perf_counter() - t0
    report: dict[str, Any] = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "clip_seconds": round(clip.duration_s, 3),
        "synth_seconds": round(dt, 3),
        "realtime_factor": round(clip.duration_s / dt, 3),
        "ddim_steps": model.sampler.steps,
        "window": model.window,
        "metrics": motion_metrics(clip, task.anchors, task.path, body=body),
    }
    if ref_seconds:
        rplan, _ = bench_walk(ref_seconds)
        rtask = build_task("reach", [rplan], None, body=body)
        anchors = rtask.anchors
        # few-step vs 1000-step on the same short clip, same guidance, measured back to back
        t0 = time.perf_counter()
        fast = model.synthesize(anchors, body, seed=seed, grasp_frame=rtask.grasp_frame, path=rtask.path)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = model.synthesize(anchors, body, seed=seed, ddpm=True, grasp_frame=rtask.grasp_frame, path=rtask.path)
        t_ref = time.perf_counter() - t0
        report["reference"] = {
            "clip_seconds": round(ref.duration_s, 3),
            "fast_seconds": round(t_fast, 3),
            "ddpm1000_seconds": round(t_ref, 3),
            "speedup": round(t_ref / t_fast, 2),
            "fast_metrics": motion_metrics(fast, anchors, rtask.path, body=body),
            "ddpm1000_metrics": motion_metrics(ref, anchors, rtask.path, body=body),
        }
    return report
