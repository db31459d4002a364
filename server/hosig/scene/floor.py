"""Floor height: the lowest level that carries a large walkable (upward, near-horizontal) area.

An area-weighted histogram of face heights over near-horizontal faces finds the levels; the
floor is the lowest level holding at least 30 % of the largest level's area (and at least
`floor_min_area_m2`), so a big table top cannot win over the floor and a few stray faces below
the floor are ignored. Closed objects contribute only their upward faces (their downward faces
are undersides); open meshes contribute faces of either orientation, since their winding is
arbitrary (this is also what makes a scene that is a single plane work).
"""

from __future__ import annotations

import numpy as np

from hosig.errors import InputError


def horizontal_faces(objects, max_tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Heights (K,) and areas (K,) of the faces that may be walked on."""
    cos_tilt = float(np.cos(np.deg2rad(max_tilt_deg)))
    heights, areas = [], []
    for obj in objects:
        if len(obj.faces) == 0:
            continue
        tri = obj.vertices[obj.faces]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(cross, axis=1)
        ok = norm > 1e-12
        nz = np.zeros_like(norm)
        nz[ok] = cross[ok, 2] / norm[ok]
        walk = nz >= cos_tilt if obj.watertight else np.abs(nz) >= cos_tilt
        heights.append(tri[walk, :, 2].mean(axis=1))
        areas.append(0.5 * norm[walk])
    if not heights:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(heights), np.concatenate(areas)


def find_floor_z(objects, where: str, max_tilt_deg: float = 15.0, min_area: float = 0.5, bin_m: float = 0.02) -> float:
    """Floor height (m, Z up) of the scene made of `objects`; InputError when there is none."""
    heights, areas = horizontal_faces(objects, max_tilt_deg)
    total = float(areas.sum()) if len(areas) else 0.0
    if total < min_area:
        raise InputError(
            f"no floor found in {where}: {total:.2f} m2 of upward horizontal surface, need >= {min_area} m2"
        )
    lo = float(heights.min())
    bins = np.floor((heights - lo) / bin_m).astype(np.int64)
    hist = np.bincount(bins, weights=areas)
    # Merge each bin with its upper neighbour so a level split across a bin edge still counts whole.
    level = hist + np.concatenate([hist[1:], [0.0]])
    need = max(min_area, 0.3 * float(level.max()))
    first = int(np.flatnonzero(level >= need)[0])
    sel = (bins >= first) & (bins <= first + 1)
    return float(np.average(heights[sel], weights=areas[sel]))
