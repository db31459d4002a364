"""Navigation benchmark: planning time (floor map cached) and path optimality vs a fine reference.

`bench_navigation(scene)` plans from several start points to the scene's pickable objects, with
each search back end, and compares every path's length with the shortest collision-free path at
the same body radius, found independently: Dijkstra (scikit-image MCP) on a 2x finer floor map,
then string-pulled against the exact geometry distance (so it is close to the true any-angle
shortest path, not an 8-connected staircase). Used by `hosig bench`; runnable on its own:
``python -m hosig.navigation.bench [--kinds large corridor]`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from hosig.errors import HosigError
from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap, build_floor_map, floor_map_for, scene_bounds_xy
from hosig.navigation.planner import NavPlan, StartPose, plan_to_object
from hosig.navigation.smoothing import corner_indices


def _pull_string(path: np.ndarray, fmap: FloorMap, radius: float) -> np.ndarray:
    """Greedy farthest-visible shortcutting with the exact distance >= radius along each segment."""
    out = [path[0]]
    i, n = 0, len(path)
    while i < n - 1:
        best = i + 1
        for j in range(n - 1, i, -1):  # the farthest vertex with a clear straight segment
            a, b = path[i], path[j]
            k = max(2, int(math.ceil(np.linalg.norm(b - a) / (fmap.cell * 0.25))) + 1)
            pts = a + np.linspace(0, 1, k)[:, None] * (b - a)
            if fmap.distance(pts, upper=radius).min() >= radius:
                best = int(j)
                break
        out.append(path[best])
        i = best
    return np.asarray(out)


def reference_length(scene: Any, start_xy: np.ndarray, goal_xy: np.ndarray, config: NavConfig, fine: FloorMap | None = None) -> float:
    """Length of the shortest collision-free path at `config.body_radius`, on a floor map with half
    the cell size, string-pulled against the exact geometry distance. inf if none."""
    from skimage.graph import MCP_Geometric

    if fine is None:
        fine = _fine_map(scene, config)
    walk = fine.clearance >= config.body_radius + fine.cell * 0.7072
    costs = np.where(walk, 1.0, np.inf)
    s = tuple(int(v) for v in fine.to_cell(start_xy))
    g = tuple(int(v) for v in fine.to_cell(goal_xy))
    if not (np.isfinite(costs[s]) and np.isfinite(costs[g])):
        # ends in the thin margin the grid refuses: walk to the nearest walkable cell first
        s = _nearest(walk, s)
        g = _nearest(walk, g)
    mcp = MCP_Geometric(costs, fully_connected=True, sampling=(fine.cell, fine.cell))
    cum, _ = mcp.find_costs([s], ends=[g])
    if not np.isfinite(cum[g]):
        return math.inf
    cells = np.asarray(mcp.traceback(g))
    pts = fine.to_world(cells[corner_indices(cells)])
    pts = np.concatenate([[start_xy], pts, [goal_xy]])
    pulled = _pull_string(pts, fine, config.body_radius)
    return float(np.linalg.norm(np.diff(pulled, axis=0), axis=1).sum())


def _nearest(mask: np.ndarray, cell: tuple[int, int]) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    k = int(np.argmin((ys - cell[0]) ** 2 + (xs - cell[1]) ** 2))
    return int(ys[k]), int(xs[k])


def _fine_map(scene: Any, config: NavConfig) -> FloorMap:
    mesh = scene.mesh()
    return build_floor_map(np.asarray(mesh.vertices), np.asarray(mesh.faces), float(scene.floor_z), scene_bounds_xy(scene), replace(config, cell=config.cell / 2))


def _starts(fmap: FloorMap, config: NavConfig, count: int, seed: int) -> list[np.ndarray]:
    """Deterministic start points spread over the largest walkable region."""
    labels, n = fmap.components(config.hard_clearance)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    big = int(np.argmax(sizes)) + 1
    ys, xs = np.nonzero(labels == big)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ys), size=min(count, len(ys)), replace=False)
    return [fmap.to_world(np.array([ys[k], xs[k]])) for k in pick]


def bench_navigation(
    scene: Any,
    starts: Iterable[Iterable[float]] | None = None,
    targets: Iterable[str] | None = None,
    config: NavConfig = NavConfig(),
    repeats: int = 3,
    n_starts: int = 4,
    reference: bool = True,
    methods: Iterable[str] = ("mcp", "astar"),
    seed: int = 0,
) -> dict[str, Any]:
    """Plan every (start, target) pair; report timings per back end and length ratios."""
    t0 = time.perf_counter()
    fmap = floor_map_for(scene, config)
    map_ms = (time.perf_counter() - t0) * 1000.0
    start_list = [np.asarray(list(s), dtype=np.float64)[:2] for s in starts] if starts is not None else _starts(fmap, config, n_starts, seed)
    target_list = list(targets) if targets is not None else list(scene.pickable())
    fine = _fine_map(scene, config) if reference else None
    per_method: dict[str, list[float]] = {}
    per_method_cpu: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for method in methods:
        cfg = replace(config, search=method)
        times: list[float] = []
        cpu: list[float] = []
        for s in start_list:
            for name in target_list:
                try:
                    plan_to_object(scene, StartPose(float(s[0]), float(s[1])), name, cfg)  # warm the target cache
                except HosigError as err:
                    if method == "mcp":
                        errors.append(f"{name} from {np.round(s, 2).tolist()}: {err}")
                    continue
                best: NavPlan | None = None
                for _ in range(repeats):
                    c0 = time.process_time()
                    p = plan_to_object(scene, StartPose(float(s[0]), float(s[1])), name, cfg)
                    cpu.append((time.process_time() - c0) * 1000.0)
                    times.append(p.plan_ms)
                    best = p
                if method == "mcp" and best is not None:
                    row: dict[str, Any] = {
                        "start": np.round(s, 3).tolist(),
                        "target": name,
                        "length_m": round(best.length_m, 3),
                        "plan_ms": round(best.plan_ms, 2),
                        "clearance_min_m": round(best.clearance_min_m, 4),
                    }
                    if reference and fine is not None:
                        ref = reference_length(scene, best.waypoints[0], best.waypoints[-1], config, fine)
                        row["reference_m"] = round(ref, 3)
                        row["ratio"] = round(best.length_m / ref, 4) if ref > 1e-6 and math.isfinite(ref) else None
                    rows.append(row)
        per_method[method] = times
        per_method_cpu[method] = cpu
    summary: dict[str, Any] = {
        "scene": getattr(scene, "source", "?"),
        "cells": list(fmap.shape[::-1]),
        "cell_m": fmap.cell,
        "floor_map_ms": round(map_ms, 1),
        "plans": len(rows),
        "unreachable": errors,
    }
    for method, times in per_method.items():
        for label, values in (("plan_ms", times), ("cpu_ms", per_method_cpu[method])):
            if values:
                arr = np.asarray(values)
                summary[f"{method}_{label}"] = {
                    "median": round(float(np.median(arr)), 2),
                    "p90": round(float(np.quantile(arr, 0.9)), 2),
                    "max": round(float(arr.max()), 2),
                }
    try:
        import os

        summary["load_average"] = round(os.getloadavg()[0], 2)  # wall times on a shared machine
    except OSError:
        pass
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    if ratios:
        summary["length_ratio"] = {"median": round(float(np.median(ratios)), 4), "max": round(float(np.max(ratios)), 4)}
    summary["rows"] = rows
    return summary


def _demo_scene(kind: str):
    from hosig.scene import Scene, SceneConfig, SceneObject
    from hosig.scene.demo import demo_objects

    objs = demo_objects(kind, 0)
    return Scene({n: SceneObject(n, m.vertices, m.faces) for n, m in objs.items()}, f"demo:{kind}", f"bench-demo-{kind}", SceneConfig())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="navigation benchmark on demo scenes (one JSON object on stdout)")
    ap.add_argument("--kinds", nargs="+", default=["large", "corridor"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    for kind in args.kinds:
        scene = _demo_scene(kind)
        if kind == "corridor":
            out[kind] = bench_navigation(scene, starts=[(0.0, 0.0), (-1.0, 1.0)], targets=["bottle", "box_floor"], repeats=args.repeats)
        else:
            out[kind] = bench_navigation(scene, repeats=args.repeats)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
