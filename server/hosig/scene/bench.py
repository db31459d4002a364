"""Scene ingestion benchmark: load + floor + occupancy + SDF wall-clock timings (ms).

Used by `hosig scene inspect --grids` and `hosig bench`. Caches are bypassed (fresh in-memory
load, disk cache off) so the figures are the cold cost a new scene pays.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import replace

import numpy as np
from pathlib import Path

from hosig.scene import cache as _cache
from hosig.scene.config import SceneConfig
from hosig.scene.loaders import load_scene


def bench_scene_load(path: str | Path, config: SceneConfig | None = None) -> dict:
    """Cold timings of one scene: {load_ms, floor_ms, occupancy_ms, sdf_ms, total_ms, ...}.

    total_ms = load + floor + occupancy + SDF construction (far field; near-field tiles are
    lazy). region_query_* time 10k SDF queries around a pickable object, cold (tiles computed)
    and warm."""
    cfg = replace(config or SceneConfig(), disk_cache=False)
    _cache.clear_memory()
    c0 = time.process_time()
    t0 = time.perf_counter()
    scene = load_scene(path, cfg)
    t1 = time.perf_counter()
    floor_z = scene.floor_z
    t2 = time.perf_counter()
    occ = scene.occupancy()
    t3 = time.perf_counter()
    sdf = scene.sdf()
    t4 = time.perf_counter()
    c4 = time.process_time()
    # A typical first use: 10k points in the +-0.8 m box around a pickable object (what a grasp
    # optimisation touches), which computes the 2 cm near-field tiles there.
    pick = scene.pickable()
    obj = scene.object(pick[0]) if pick else None
    lo, hi = (obj.bounds[0] - 0.8, obj.bounds[1] + 0.8) if obj is not None else scene.bounds
    pts = np.random.default_rng(0).uniform(lo, hi, size=(10_000, 3))
    importlib.import_module("torch")  # outside the timed span: the first import takes seconds

    t5 = time.perf_counter()
    sdf.query_np(pts)
    t6 = time.perf_counter()
    sdf.query_np(pts)
    t7 = time.perf_counter()
    _cache.clear_memory()
    return {
        "path": str(path),
        "objects": len(scene.objects),
        "triangles": scene.triangle_count,
        "floor_z": floor_z,
        "occupancy_voxel_m": occ.voxel,
        "occupancy_shape": list(occ.shape),
        "sdf_voxel_m": sdf.voxel,
        "sdf_shape": list(sdf.shape),
        "load_ms": (t1 - t0) * 1e3,
        "floor_ms": (t2 - t1) * 1e3,
        "occupancy_ms": (t3 - t2) * 1e3,
        "sdf_ms": (t4 - t3) * 1e3,
        "total_ms": (t4 - t0) * 1e3,
        # CPU time of the same span: on a shared machine wall time includes waiting for a core.
        "total_cpu_ms": (c4 - c0) * 1e3,
        "region_object": obj.name if obj is not None else None,
        "region_query_cold_ms": (t6 - t5) * 1e3,
        "region_query_warm_ms": (t7 - t6) * 1e3,
        "region_tiles": sdf.tiles_computed,
    }
