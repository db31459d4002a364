"""Grasp benchmark: time and quality of `generate_grasp` (a measurement, never a test assertion).

    .venv/bin/python -m hosig.grasp.bench            # the five generated test scenes
    .venv/bin/python -m hosig.grasp.bench --repeat 3 # best-of-3 timings

Reports wall time and process CPU time: on a shared machine the wall time includes other
people's load, the CPU time is what the grasp itself costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np


def bench_grasp(scene: Any, target: str, stand: tuple[float, float, float] | None = None, body: Any = None,
                hand: str = "right", repeat: int = 1, config: Any = None) -> dict[str, Any]:
    """Run one grasp ``repeat`` times; returns timings (first and best) and the quality figures.

    ``stand`` defaults to navigation's stand point for the target (planned from the scene centre).
    """
    from hosig.body import load_body_model
    from hosig.grasp.generator import generate_grasp

    body = body or load_body_model()
    if stand is None:
        from hosig.navigation import NavConfig, StartPose, plan_to_object

        c = scene.bounds.mean(axis=0)
        stand = tuple(float(v) for v in plan_to_object(scene, StartPose(float(c[0]), float(c[1])), target, NavConfig()).stand)
    walls, cpus, result = [], [], None
    for _ in range(max(1, repeat)):
        t, c = time.perf_counter(), time.process_time()
        result = generate_grasp(scene, target, stand, body, hand=hand, config=config)
        walls.append((time.perf_counter() - t) * 1e3)
        cpus.append((time.process_time() - c) * 1e3)
    assert result is not None
    return {
        "target": target,
        "stand": list(stand),
        "hand": result.hand,
        "grasp_kind": result.grasp_kind,
        "wall_ms_first": round(walls[0], 1),
        "wall_ms_best": round(min(walls), 1),
        "cpu_ms_first": round(cpus[0], 1),
        "cpu_ms_best": round(min(cpus), 1),
        "stages_ms": result.timings_ms,
        "contact_distance_m": result.contact_distance_m,
        "object_penetration_m": result.object_penetration_m,
        "scene_penetration_m": result.scene_penetration_m,
        "feet_height_m": result.feet_height_m,
        "finger_flexion_rad": result.finger_flexion_rad,
        "fingers_in_contact": result.fingers_in_contact,
        "candidates": result.candidates,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from hosig.body import load_body_model
    from hosig.grasp import testscenes

    parser = argparse.ArgumentParser(prog="python -m hosig.grasp.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--smplx-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    body = load_body_model(args.smplx_dir)
    rows = []
    for name, make in testscenes.CASES.items():
        case = make()
        row = {"case": name, **bench_grasp(case.scene, case.target, case.stand, body, repeat=args.repeat)}
        rows.append(row)
        sys.stderr.write(
            f"{name:24s} {row['grasp_kind']:4s} wall {row['wall_ms_best']:7.0f} ms  cpu {row['cpu_ms_best']:6.0f} ms  "
            f"contact {row['contact_distance_m'] * 100:.2f} cm  obj {row['object_penetration_m'] * 1000:.1f} mm  "
            f"scene {row['scene_penetration_m'] * 1000:.1f} mm  feet {max(abs(h) for h in row['feet_height_m']) * 100:.1f} cm  "
            f"flex {row['finger_flexion_rad']:.2f}\n"
        )
    summary = {
        "cases": rows,
        "mean_wall_ms": float(np.mean([r["wall_ms_best"] for r in rows])),
        "mean_cpu_ms": float(np.mean([r["cpu_ms_best"] for r in rows])),
        "max_contact_m": float(max(r["contact_distance_m"] for r in rows)),
        "max_object_penetration_m": float(max(r["object_penetration_m"] for r in rows)),
        "max_scene_penetration_m": float(max(r["scene_penetration_m"] for r in rows)),
        "max_abs_feet_height_m": float(max(abs(h) for r in rows for h in r["feet_height_m"])),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
