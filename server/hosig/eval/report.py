"""`hosig eval`: run every case through the pipeline and measure the clips against the scenes.

The measurements come from the clip and the meshes (`hosig.eval.metrics`, `hosig.eval.geometry`),
not from the stages' own self-reports, so a stage cannot grade itself.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hosig.eval.cases import CaseFile, EvalCase
from hosig.eval.geometry import (  # hand_vertex_mask: kept importable from here
    clip_sole_sliding,
    clip_vertices,
    hand_vertex_mask,
    penetration_depths,
    surface_distance,
)
from hosig.eval.metrics import (
    FOOT_JOINTS,
    FPS,
    foot_skating,
    joint_index,
    penetration_from_depths,
    pop_frames,
    trajectory_adherence,
)
from hosig.motion.data.contacts import planted_sliding

HAND_SUCCESS_M = 0.03  # hand within 3 cm of the object surface at the grasp frame
PENETRATION_FAIL_M = 0.02  # no body-scene penetration deeper than 2 cm in any frame


@dataclass
class CaseResult:
    """Everything measured for one case (None where it does not apply)."""

    index: int
    label: str
    expect: str
    outcome: str  # "ok", "unreachable", an error code, or "invalid"
    success: bool
    message: str = ""
    frames: int = 0
    duration_s: float = 0.0
    hand_object_m: float | None = None
    penetration_frame_fraction: float | None = None
    penetration_max_m: float | None = None
    foot_skating_cm_s: float | None = None
    planted_sliding_cm_s: float | None = None
    sole_sliding_cm_s: float | None = None  # metrics.sole_sliding: the touching part of a foot
    pelvis_path_m: float | None = None
    pop_frames: int | None = None  # frames with a body joint faster than metrics.POP_SPEED_M_S
    max_joint_speed_m_s: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    realtime_factor: float | None = None
    clip: str | None = None
    joints: np.ndarray | None = field(default=None, repr=False)
    path: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("joints")
        out.pop("path")
        return out


def measure_clip(clip: Any, scene: Any, body: Any, target: str, hand: str, approach_s: float | None,
                 path: np.ndarray | None, stride: int = 2) -> dict[str, Any]:
    """Metrics of one generated clip against the scene's meshes."""
    full = clip_vertices(body, clip.poses, clip.trans, clip.betas, stride=1)  # (T,V,3)
    verts = full[:, ::stride]  # (T,V',3)
    sole = clip_sole_sliding(body, clip.poses, clip.trans, float(scene.floor_z), vertices=full)
    del full
    exclude = [target]
    depths = penetration_depths(scene, verts, exclude=exclude)
    pen = penetration_from_depths(depths)
    skate = foot_skating(clip.joints, floor_z=float(scene.floor_z))
    feet = np.asarray(clip.joints, dtype=np.float64)[:, joint_index(FOOT_JOINTS)].copy()
    feet[..., 2] -= float(scene.floor_z)
    planted = planted_sliding(feet, FPS).mean_cm_s
    walk = slice(0, int(round(approach_s * FPS)) + 1) if approach_s else None
    pelvis = trajectory_adherence(clip.joints, path, walk) if path is not None and len(path) else None
    hand_obj = None
    g = int(clip.grasp_frame)
    if 0 <= g < len(verts):
        obj_mesh = scene.object(target).mesh
        if clip.object_transforms is not None:
            # The carried object's transform at the grasp frame is identity (it has not moved yet),
            # but apply it anyway so a reach clip and a pick clip are measured alike.
            obj_mesh = obj_mesh.copy()
            obj_mesh.apply_transform(np.asarray(clip.object_transforms[g], dtype=np.float64))
        mask = hand_vertex_mask(body, hand, stride)
        hand_obj = float(surface_distance(obj_mesh, verts[g][mask]).min())
    pops, fastest = pop_frames(clip.joints)
    return {
        "pop_frames": pops,
        "max_joint_speed_m_s": fastest,
        "hand_object_m": hand_obj,
        "penetration_frame_fraction": pen.frame_fraction,
        "penetration_max_m": pen.max_depth_m,
        "foot_skating_cm_s": skate.mean_cm_s,
        "planted_sliding_cm_s": None if not np.isfinite(planted) else planted,
        "sole_sliding_cm_s": None if not np.isfinite(sole.mean_cm_s) else sole.mean_cm_s,
        "pelvis_path_m": pelvis,
    }


def generate_for_eval(request: dict[str, Any], engine: Any, clip_path: Path) -> tuple[dict[str, Any] | None, Any, Any]:
    """Run one request through the pipeline, writing its clip; (done summary or None, error event
    or None, the approach leg's plan event or None)."""
    from hosig.pipeline.events import Error, Plan
    from hosig.pipeline.run import run

    summary = error = approach = None
    for event in run(request, engine=engine, clip_path=clip_path):
        if isinstance(event, Plan) and event.leg == "approach":
            approach = event
        elif isinstance(event, Error):
            error = event
        elif getattr(event, "type", "") == "done":
            summary = event.summary
    return summary, error, approach


def run_case(case: EvalCase, workdir: Path, engine: Any = None) -> CaseResult:
    """Generate one case through the pipeline (``engine``: default one if None) and measure it."""
    from hosig.clip import MotionClip
    from hosig.pipeline.run import default_engine

    request = {"scene": str(case.scene), "start": list(case.start), "target": case.target,
               "action": case.action, "seed": case.seed}
    if case.place is not None:
        request["place"] = case.place if isinstance(case.place, str) else list(case.place)
    clip_path = workdir / f"case_{case.index:03d}.npz"
    engine = engine or default_engine()
    summary, error, approach = generate_for_eval(request, engine, clip_path)
    result = CaseResult(case.index, case.label, case.expect, "ok", False)
    if error is not None:
        result.outcome = error.code
        result.message = error.message
        result.success = case.expect == "unreachable" and error.code in ("unreachable", "infeasible")
        return result
    if case.expect == "unreachable":
        result.message = "expected an unreachable error but a clip was generated"
    assert summary is not None
    clip = MotionClip.load(clip_path)
    scene = engine.scenes.get(str(case.scene), allow_paths=True)
    body = engine.body(None)
    path = np.asarray(approach.waypoints) if approach is not None else clip.path
    hand = "right"
    measured = measure_clip(clip, scene, body, case.target, hand, approach.duration_s if approach else None, path)
    result.__dict__.update(measured)
    result.frames = clip.n_frames
    result.duration_s = clip.duration_s
    result.timings_ms = dict(summary.get("timings_ms", {}))
    result.realtime_factor = summary.get("realtime_factor")
    result.clip = str(clip_path)
    result.joints = np.asarray(clip.joints)
    result.path = path
    if case.expect == "ok":
        hand_ok = result.hand_object_m is not None and result.hand_object_m <= HAND_SUCCESS_M
        pen_ok = (result.penetration_max_m or 0.0) <= PENETRATION_FAIL_M
        result.success = hand_ok and pen_ok
        if not result.success:
            why = []
            if not hand_ok:
                why.append(f"hand {result.hand_object_m if result.hand_object_m is not None else float('nan'):.3f} m from the object")
            if not pen_ok:
                why.append(f"penetration {result.penetration_max_m:.3f} m")
            result.message = "; ".join(why)
    return result


@dataclass
class EvalReport:
    cases: list[CaseResult]
    problems: list[str]
    wall_s: float

    def overall(self) -> dict[str, Any]:
        valid = [c for c in self.cases if c.outcome != "invalid"]
        clips = [c for c in valid if c.frames > 0]

        def mean(key: str) -> float | None:
            vals = [getattr(c, key) for c in clips if getattr(c, key) is not None]
            return float(np.mean(vals)) if vals else None

        return {
            "cases": len(self.cases) + len(self.problems),
            "evaluated": len(valid),
            "invalid": len(self.problems),
            "success_rate": (sum(c.success for c in valid) / len(valid)) if valid else 0.0,
            "hand_object_m": mean("hand_object_m"),
            "penetration_frame_fraction": mean("penetration_frame_fraction"),
            "penetration_max_m": max((c.penetration_max_m or 0.0 for c in clips), default=None),
            "foot_skating_cm_s": mean("foot_skating_cm_s"),
            "planted_sliding_cm_s": mean("planted_sliding_cm_s"),
            "sole_sliding_cm_s": mean("sole_sliding_cm_s"),
            "pelvis_path_m": mean("pelvis_path_m"),
            "pop_frames": sum(c.pop_frames or 0 for c in clips),
            "max_joint_speed_m_s": max((c.max_joint_speed_m_s or 0.0 for c in clips), default=None),
            "realtime_factor": mean("realtime_factor"),
            "wall_s": round(self.wall_s, 2),
        }

    def to_json(self) -> dict[str, Any]:
        return {"overall": self.overall(), "cases": [c.to_json() for c in self.cases], "problems": self.problems}


def evaluate(case_file: CaseFile, workdir: Path | None = None,
             on_case: Callable[[CaseResult], None] | None = None, engine: Any = None) -> EvalReport:
    """Run every valid case; invalid ones are listed as problems, never abort the run."""
    t0 = time.perf_counter()
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="hosig-eval-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for case in case_file.cases:
            result = run_case(case, work, engine)
            results.append(result)
            if on_case:
                on_case(result)
    return EvalReport(results, [str(p) for p in case_file.problems], time.perf_counter() - t0)


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown_table(report: EvalReport) -> str:
    """The per-case and overall table (stdout for humans, --md file)."""
    head = ("| # | case | expect | outcome | success | hand–object (cm) | pen. frames (%) | max pen. (cm) "
            "| skate (cm/s) | planted slide (cm/s) | sole slide (cm/s) | pelvis–path (cm) | pops | frames | RTF |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [head]
    for c in report.cases:
        rows.append(
            f"| {c.index} | {c.label} | {c.expect} | {c.outcome} | {'yes' if c.success else 'no'} | "
            f"{_fmt(None if c.hand_object_m is None else c.hand_object_m * 100, '.1f')} | "
            f"{_fmt(None if c.penetration_frame_fraction is None else c.penetration_frame_fraction * 100, '.1f')} | "
            f"{_fmt(None if c.penetration_max_m is None else c.penetration_max_m * 100, '.1f')} | "
            f"{_fmt(c.foot_skating_cm_s, '.2f')} | {_fmt(c.planted_sliding_cm_s, '.2f')} | {_fmt(c.sole_sliding_cm_s, '.2f')} | {_fmt(None if c.pelvis_path_m is None else c.pelvis_path_m * 100, '.1f')} | "
            f"{_fmt(c.pop_frames, 'd')} | {c.frames} | {_fmt(c.realtime_factor, '.2f')} |"
        )
    o = report.overall()
    rows.append("")
    rows.append(f"**Overall**: success rate {o['success_rate']:.2f} over {o['evaluated']} cases"
                f" ({o['invalid']} invalid); mean hand–object {_fmt(None if o['hand_object_m'] is None else o['hand_object_m'] * 100, '.1f')} cm, "
                f"penetration frames {_fmt(None if o['penetration_frame_fraction'] is None else o['penetration_frame_fraction'] * 100, '.1f')} %, "
                f"foot skating {_fmt(o['foot_skating_cm_s'], '.2f')} cm/s (touching soles {_fmt(o['sole_sliding_cm_s'], '.2f')} cm/s), pelvis–path {_fmt(None if o['pelvis_path_m'] is None else o['pelvis_path_m'] * 100, '.1f')} cm, "
                f"pops {o['pop_frames']} frames (fastest body joint {_fmt(o['max_joint_speed_m_s'], '.1f')} m/s).")
    for problem in report.problems:
        rows.append(f"- invalid {problem}")
    return "\n".join(rows) + "\n"
