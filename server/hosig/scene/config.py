"""Scene ingestion settings in one dataclass, so the cache key can include every knob."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class SceneConfig:
    """How a scene is read and which derived grids are built from it.

    Frozen (hashable) because it is part of the cache key: two loads with different settings must
    not share derived grids.
    """

    # Up axis of .obj/.ply files ('z': taken as written, Blender-style; 'y': converted like glTF).
    # glTF is always Y-up by specification and always converted.
    up_axis: str = "z"
    # Occupancy voxel edge (m); doubled for scenes whose grid would exceed max_grid_voxels
    # (bool bytes: 150 M = 150 MB, e.g. a 25 x 25 m floor plan at 2 cm).
    voxel: float = 0.02
    max_grid_voxels: int = 150_000_000
    # SDF near-field voxel edge (m) = the occupancy it is computed from; doubled while the grid
    # would exceed `sdf_max_voxels` (bool occupancy bytes). Near field is exact within
    # `sdf_band` of geometry (tiles computed lazily); farther, an EDT at `sdf_far_voxel`.
    sdf_voxel: float = 0.02
    sdf_max_voxels: int = 80_000_000
    sdf_band: float = 0.16
    sdf_far_voxel: float = 0.08
    # Signed distances are clamped to +-sdf_clamp (m) so far-away values stay bounded.
    sdf_clamp: float = 2.0
    # Empty margin around the scene bounds in the grids (m); grids also reach at least
    # grid_min_height above the lowest geometry so standing bodies are inside them.
    grid_pad: float = 0.30
    grid_min_height: float = 2.3
    # Sanity limits (absurd input is rejected, not swapped to disk).
    max_extent_m: float = 200.0
    max_triangles: int = 5_000_000
    # Floor detection: faces within this angle of horizontal count, levels need this much area.
    floor_max_tilt_deg: float = 15.0
    floor_min_area_m2: float = 0.5
    floor_bin_m: float = 0.02
    # Hand-pickable rule (see Scene.pickable).
    pick_max_dim_m: float = 0.45
    pick_grip_m: float = 0.12
    pick_two_hand_m: float = 0.35
    # On-disk cache of derived grids (occupancy, SDF); None = $HOSIG_CACHE_DIR or ~/.cache/hosig.
    disk_cache: bool = True
    cache_dir: str | None = None

    def key(self) -> str:
        """Stable text of the settings that change derived results (cache_dir excluded)."""
        d = asdict(self)
        d.pop("cache_dir")
        d.pop("disk_cache")
        return ";".join(f"{k}={d[k]}" for k in sorted(d))

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        env = os.environ.get("HOSIG_CACHE_DIR")
        if env:
            return Path(env)
        return Path.home() / ".cache" / "hosig"
