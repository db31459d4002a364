"""`hosig bench`: every stage's speed on this machine, in one report.

Each stage owns its benchmark function (scene, navigation, grasp, motion, pipeline, Blender keying);
this module only runs them on one furnished 10 m × 10 m room, describes the machine, and lays the
figures out as a table and one JSON object. Blender keying runs in a subprocess so bpy never loads
into the engine's process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[3]


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version, device."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _stage(name: str, fn: Callable[[], dict[str, Any]], results: dict[str, Any], errors: dict[str, str]) -> None:
    sys.stderr.write(f"hosig bench: {name} …\n")
    t = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as err:  # noqa: BLE001 - one stage failing must not hide the others
        errors[name] = f"{type(err).__name__}: {err}"
    sys.stderr.write(f"hosig bench: {name} done in {time.perf_counter() - t:.1f} s\n")


def _stand_for(scene: Any, target: str) -> tuple[float, float, float]:
    """Navigation's stand point for ``target``, planned from the first free start on a coarse grid."""
    import numpy as np

    from hosig.errors import HosigError
    from hosig.navigation import NavConfig, StartPose, plan_to_object

    lo, hi = scene.bounds[0], scene.bounds[1]
    for x in np.linspace(lo[0] + 0.6, hi[0] - 0.6, 7):
        for y in np.linspace(lo[1] + 0.6, hi[1] - 0.6, 7):
            try:
                plan = plan_to_object(scene, StartPose(float(x), float(y)), target, NavConfig())
            except HosigError:
                continue
            return tuple(float(v) for v in plan.stand)  # type: ignore[return-value]
    raise RuntimeError(f"no start in the scene reaches {target!r}")


def _blender_keying() -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "hosig_blender.bench"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("HOSIG_BENCH "):
            return json.loads(line.removeprefix("HOSIG_BENCH "))
    raise RuntimeError(f"Blender keying benchmark failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")


def run_bench(device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    """Run every stage's benchmark; ``quick`` shrinks workloads to a smoke run."""
    from hosig.body import load_body_model
    from hosig.scene import load_scene
    from hosig.scene.bench import bench_scene_load
    from hosig.scene.demo import write_demo_scene

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hosig-bench-") as tmp:
        kind = "kitchen" if quick else "large"
        path = Path(tmp) / f"{kind}.glb"
        write_demo_scene(path, kind=kind, seed=0)
        _stage("scene", lambda: bench_scene_load(path), results, errors)
        scene = load_scene(path)
        body = load_body_model()
        target = "bottle" if quick else "bottle_4"

        def navigation() -> dict[str, Any]:
            from hosig.navigation.bench import bench_navigation

            out = bench_navigation(scene, targets=[target], repeats=1 if quick else 3, n_starts=2 if quick else 4,
                                   reference=not quick, methods=("mcp",))
            return {k: v for k, v in out.items() if k != "rows"}

        _stage("navigation", navigation, results, errors)

        def grasp() -> dict[str, Any]:
            from hosig.grasp.bench import bench_grasp

            return bench_grasp(scene, target, stand=_stand_for(scene, target), body=body)

        _stage("grasp", grasp, results, errors)

        def motion() -> dict[str, Any]:
            from hosig.motion.bench import bench_motion
            from hosig.motion.checkpoint import MotionModel

            model = MotionModel.load(device=device)
            return bench_motion(model, body, seconds=3.0 if quick else 10.0, ref_seconds=0.5 if quick else 2.0)

        _stage("motion", motion, results, errors)

        def pipeline() -> dict[str, Any]:
            from hosig.pipeline.bench import bench

            return bench(device=device, repeats=1 if quick else 3, batch=not quick)

        _stage("pipeline", pipeline, results, errors)
        _stage("blender_keying", _blender_keying, results, errors)
    return {"machine": machine(), "device": device, "quick": quick, "scene_kind": kind,
            "summary": summarise(results), "stages": results, "errors": errors}


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures (DESIGN §4) picked out of the stage reports."""
    return {
        "scene_load_sdf_ms": _get(results, "scene", "total_ms"),
        "navigation_plan_ms_median": _get(results, "navigation", "mcp_plan_ms", "median"),
        "navigation_length_ratio_max": _get(results, "navigation", "length_ratio", "max"),
        "grasp_ms": _get(results, "grasp", "wall_ms_best"),
        "realtime_factor": _get(results, "motion", "realtime_factor"),
        "speedup_vs_1000_steps": _get(results, "motion", "reference", "speedup"),
        "first_frames_s": _get(results, "pipeline", "first_frames_s_median"),
        "pipeline_realtime_factor": _get(results, "pipeline", "realtime_factor_median"),
        "batch_shots_per_minute": _get(results, "pipeline", "batch", "shots_per_minute"),
        "blender_key_10s_55_bones_s": _get(results, "blender_keying", "key_10s_55_bones_s"),
    }


def render_table(report: dict[str, Any]) -> str:
    """Human table on stderr."""
    m = report["machine"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']}, device {report['device']}"
             f"{' (quick)' if report['quick'] else ''}", "", f"{'figure':<34} value"]
    for key, value in report["summary"].items():
        shown = "–" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"{key:<34} {shown}")
    for stage, err in report["errors"].items():
        lines.append(f"error in {stage}: {err}")
    return "\n".join(lines)
