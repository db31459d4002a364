"""Scene ingestion benchmark: load + floor + occupancy + SDF wall-clock timings (ms).

Used by `hosig scene inspect --grids` and `hosig bench`. Caches are bypassed (fresh in-memory
load, disk cache off) so the figures are the cold cost a new scene pays.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from hosig.scene import cache as _cache
from hosig.scene.config import SceneConfig
from hosig.scene.loaders import load_scene


def bench_scene_load(path: str | Path, config: SceneConfig | None = None) -> dict:
    """Cold timings of one scene: {load_ms, floor_ms, occupancy_ms, sdf_ms, total_ms, ...}."""
    cfg = replace(config or SceneConfig(), disk_cache=False)
    _cache.clear_memory()
    t0 = time.perf_counter()
    scene = load_scene(path, cfg)
    t1 = time.perf_counter()
    floor_z = scene.floor_z
    t2 = time.perf_counter()
    occ = scene.occupancy()
    t3 = time.perf_counter()
    sdf = scene.sdf()
    t4 = time.perf_counter()
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
    }
