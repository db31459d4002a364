"""The 2D floor map: which floor cells a standing body may occupy, and how far each is from geometry.

WHY this shape: the body is a vertical column from just above the floor to head height, so every
triangle between floor+`band_low` and floor+`band_high` blocks the floor below it (a table top
blocks, a rug does not). Triangles are clipped to that band exactly (trimesh plane slicing) and
their 2D footprints are sampled densely (spacing cell/4), so large flat faces count as much as
detailed ones -- no vertex counting. Clearance is the distance from a cell centre to the nearest
geometry sample (a KD-tree, accurate to ~2 cm) or to the scene's outer bounds, whichever is
closer; everything outside the scene bounds is not walkable.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from hosig.errors import InputError
from hosig.navigation.config import NavConfig

_MAX_POINTS_PER_CHUNK = 2_000_000
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class FloorMap:
    """A 2D grid over the scene's XY bounds. Index order is [iy, ix] (row = y)."""

    origin: np.ndarray  # (2,) world XY of the lower-left corner of cell [0, 0]
    cell: float
    floor_z: float
    bounds_xy: np.ndarray  # (2, 2) [[xmin, ymin], [xmax, ymax]]: outside is not walkable
    blocked: np.ndarray  # (ny, nx) bool: geometry in the height band over this cell
    clearance: np.ndarray  # (ny, nx) float64 metres from the cell centre to geometry / bounds
    points: np.ndarray  # (P, 2) geometry samples in the band (XY)
    sample_error: float  # metres: any geometry point lies within this of a sample
    build_ms: float = 0.0
    _tree: cKDTree | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.blocked.shape  # type: ignore[return-value]

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """World X (nx,) and Y (ny,) of the cell centres."""
        ny, nx = self.shape
        xs = self.origin[0] + (np.arange(nx) + 0.5) * self.cell
        ys = self.origin[1] + (np.arange(ny) + 0.5) * self.cell
        return xs, ys

    def to_cell(self, xy: np.ndarray) -> np.ndarray:
        """World XY (..., 2) -> integer [iy, ix] (..., 2), not clipped to the grid."""
        xy = np.asarray(xy, dtype=np.float64)
        ij = np.floor((xy - self.origin) / self.cell).astype(np.int64)
        return ij[..., ::-1]

    def to_world(self, iyx: np.ndarray) -> np.ndarray:
        """[iy, ix] (..., 2) -> world XY (..., 2) of the cell centres."""
        iyx = np.asarray(iyx, dtype=np.float64)
        return self.origin + (iyx[..., ::-1] + 0.5) * self.cell

    def in_grid(self, iyx: np.ndarray) -> np.ndarray:
        iyx = np.asarray(iyx)
        ny, nx = self.shape
        return (iyx[..., 0] >= 0) & (iyx[..., 0] < ny) & (iyx[..., 1] >= 0) & (iyx[..., 1] < nx)

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """Whether world XY points lie inside the scene bounds."""
        xy = np.asarray(xy, dtype=np.float64)
        lo, hi = self.bounds_xy
        return np.all((xy >= lo) & (xy <= hi), axis=-1)

    @property
    def tree(self) -> cKDTree | None:
        if self._tree is None and len(self.points):
            self._tree = cKDTree(self.points)
        return self._tree

    def distance(self, xy: np.ndarray, upper: float | None = None) -> np.ndarray:
        """Conservative distance (N,) from world XY points (N, 2) to band geometry or the bounds.

        0 inside geometry cells and outside the bounds. Used for continuous checks of the final
        path (not only at cell centres). With `upper`, distances beyond it may be reported as
        anything >= upper (the KD-tree search stops early: faster threshold tests)."""
        xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        lo, hi = self.bounds_xy
        edge = np.minimum(xy - lo, hi - xy).min(axis=1)
        dist = np.maximum(edge, 0.0)
        if self.tree is not None and len(xy):
            bound = np.inf if upper is None else upper + self.sample_error + 1e-9
            d_geo, _ = self.tree.query(xy, k=1, distance_upper_bound=bound)
            d_geo = np.minimum(d_geo, bound)  # beyond the bound: report the bound (a lower bound)
            dist = np.minimum(dist, np.maximum(d_geo - self.sample_error, 0.0))
        iyx = self.to_cell(xy)
        ok = self.in_grid(iyx)
        blocked = np.ones(len(xy), dtype=bool)
        blocked[ok] = self.blocked[iyx[ok, 0], iyx[ok, 1]]
        dist[blocked] = 0.0
        return dist

    def walkable(self, clearance: float) -> np.ndarray:
        """(ny, nx) bool: cells whose clearance is at least `clearance`."""
        return self.clearance >= clearance

    def components(self, clearance: float) -> tuple[np.ndarray, int]:
        """8-connected components of the walkable cells at this clearance (cached)."""
        key = ("labels", round(float(clearance), 6))
        if key not in self._cache:
            labels, count = ndimage.label(self.walkable(clearance), structure=_EIGHT)
            self._cache[key] = (labels, int(count))
        return self._cache[key]

    def summary(self) -> dict[str, Any]:
        ny, nx = self.shape
        return {
            "cells": [int(nx), int(ny)],
            "cell_m": self.cell,
            "origin": [float(v) for v in self.origin],
            "blocked_fraction": float(self.blocked.mean()) if self.blocked.size else 0.0,
            "geometry_samples": int(len(self.points)),
            "build_ms": round(self.build_ms, 2),
        }


def band_triangles(vertices: np.ndarray, faces: np.ndarray, z_lo: float, z_hi: float) -> np.ndarray:
    """Triangles (T, 3, 3) of the mesh clipped exactly to the slab z_lo <= z <= z_hi."""
    if len(faces) == 0:
        return np.zeros((0, 3, 3))
    tri = vertices[faces]
    zmin, zmax = tri[:, :, 2].min(axis=1), tri[:, :, 2].max(axis=1)
    keep = (zmax >= z_lo) & (zmin <= z_hi)
    if not keep.any():
        return np.zeros((0, 3, 3))
    inner = (zmin >= z_lo) & (zmax <= z_hi) & keep
    straddle = keep & ~inner
    parts = [tri[inner]]
    if straddle.any():
        v = tri[straddle].reshape(-1, 3)
        f = np.arange(len(v)).reshape(-1, 3)
        v, f, _ = trimesh.intersections.slice_faces_plane(v, f, plane_normal=[0, 0, 1], plane_origin=[0, 0, z_lo])
        if len(f):
            v, f, _ = trimesh.intersections.slice_faces_plane(v, f, plane_normal=[0, 0, -1], plane_origin=[0, 0, z_hi])
        if len(f):
            parts.append(np.asarray(v)[np.asarray(f)])
    return np.concatenate(parts, axis=0)


def sample_triangles(tri2: np.ndarray, spacing: float) -> Iterable[np.ndarray]:
    """Dense samples (P, D) of triangles (T, 3, D) (D = 2 or 3), in chunks; spacing <= `spacing`.

    Rows run parallel to the longest edge, so a sliver (a vertical wall seen from above) costs
    ~length/spacing samples, not (length/spacing)^2."""
    if len(tri2) == 0:
        return
    e = np.stack([tri2[:, 1] - tri2[:, 0], tri2[:, 2] - tri2[:, 1], tri2[:, 0] - tri2[:, 2]], axis=1)
    lens = np.linalg.norm(e, axis=2)
    longest = lens.argmax(axis=1)  # edge k goes from vertex k to vertex k+1
    t = np.arange(len(tri2))
    a = tri2[t, longest]
    b = tri2[t, (longest + 1) % 3]
    c = tri2[t, (longest + 2) % 3]
    ab = b - a
    length = lens[t, longest]
    ac = c - a
    along = np.einsum("ij,ij->i", ac, ab) / np.maximum(length, 1e-12) ** 2
    height = np.linalg.norm(ac - along[:, None] * ab, axis=1)
    nc = np.ceil(length / spacing).astype(np.int64) + 1
    nr = np.ceil(height / spacing).astype(np.int64) + 1
    count = nc * nr
    start = 0
    while start < len(tri2):
        csum = np.cumsum(count[start:])
        stop = start + max(1, int(np.searchsorted(csum, _MAX_POINTS_PER_CHUNK, side="right")))
        sl = slice(start, stop)
        cnt = count[sl]
        ti = np.repeat(np.arange(start, stop), cnt)
        local = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        ncs, nrs = nc[ti], nr[ti]
        u = (local % ncs) / np.maximum(ncs - 1, 1)
        v = (local // ncs) / np.maximum(nrs - 1, 1)
        u, v = u[:, None], v[:, None]
        yield (1 - v) * ((1 - u) * a[ti] + u * b[ti]) + v * c[ti]
        start = stop


def _floor_support(
    vertices: np.ndarray, faces: np.ndarray, floor_z: float, origin: np.ndarray, cell: float, shape: tuple[int, int], tol: float
) -> np.ndarray | None:
    """(ny, nx) bool: cells over the floor's own up-facing faces (within `tol` of floor_z).

    None when the scene has too little floor geometry to say (a scene of furniture without a
    floor): then the whole bounds count as floor. Small sampling gaps are closed."""
    if len(faces) == 0:
        return None
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    flat = (n[:, 2] > 0.9 * np.maximum(norm, 1e-12)) & (norm > 0)  # facing up: not furniture bottoms
    near = np.all(np.abs(tri[:, :, 2] - floor_z) <= tol, axis=1)
    sel = tri[flat & near]
    if len(sel) == 0:
        return None
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    for pts in sample_triangles(sel[:, :, :2], cell / 2.0):
        ij = np.floor((pts - origin) / cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < nx) & (ij[:, 1] >= 0) & (ij[:, 1] < ny)
        mask[ij[ok, 1], ij[ok, 0]] = True
    mask = ndimage.binary_closing(mask, structure=_EIGHT, border_value=1) | mask
    # a sample on a cell's lower/left border marks that cell although the floor only touches it:
    # erode one cell so the walkable floor never reaches past the real edge (conservative)
    mask = ndimage.binary_erosion(mask, structure=_EIGHT, border_value=1)
    if mask.mean() < 0.25:
        return None
    return mask


def _fill_solids(
    solids: Sequence[tuple[np.ndarray, np.ndarray]], z_lo: float, z_hi: float, origin: np.ndarray, cell: float, shape: tuple[int, int]
) -> np.ndarray:
    """(ny, nx) bool: cell centres inside a closed object's cross-section somewhere in the band.

    Clipping to the band leaves only the walls of a tall closed object (a wardrobe, a pillar, a
    thick wall); its inside is solid too. Cross-sections at three heights are filled by even-odd
    scanlines. Objects with inward normals (a room modelled as one closed shell) are skipped."""
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    for vertices, faces in solids:
        if len(faces) < 4:
            continue
        tri = vertices[faces]
        signed_volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
        if signed_volume <= 0:
            continue
        zmin, zmax = max(tri[:, :, 2].min(), z_lo), min(tri[:, :, 2].max(), z_hi)
        if zmax <= zmin:
            continue
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        for h in np.unique(np.clip([zmin + 0.01, 0.5 * (zmin + zmax), zmax - 0.01], zmin, zmax)):
            seg = trimesh.intersections.mesh_plane(mesh, [0.0, 0.0, 1.0], [0.0, 0.0, float(h)])
            if len(seg) < 3:
                continue
            a, b = seg[:, 0, :2], seg[:, 1, :2]
            lo = np.minimum(a, b).min(axis=0)
            hi = np.maximum(a, b).max(axis=0)
            iy0, ix0 = max(int(np.floor((lo[1] - origin[1]) / cell)), 0), max(int(np.floor((lo[0] - origin[0]) / cell)), 0)
            iy1, ix1 = min(int(np.ceil((hi[1] - origin[1]) / cell)), ny - 1), min(int(np.ceil((hi[0] - origin[0]) / cell)), nx - 1)
            if iy1 < iy0 or ix1 < ix0:
                continue
            yc = origin[1] + (np.arange(iy0, iy1 + 1) + 0.5) * cell  # (R,)
            xc = origin[0] + (np.arange(ix0, ix1 + 1) + 0.5) * cell  # (C,)
            rows = max(1, 4_000_000 // max(len(seg) * len(xc), 1))
            for r0 in range(0, len(yc), rows):
                y = yc[r0 : r0 + rows, None]  # (R, 1)
                cross = (a[None, :, 1] <= y) != (b[None, :, 1] <= y)  # half-open: vertices count once
                t = (y - a[None, :, 1]) / np.where(cross, b[None, :, 1] - a[None, :, 1], 1.0)
                x = np.where(cross, a[None, :, 0] + t * (b[None, :, 0] - a[None, :, 0]), np.inf)  # (R, S)
                inside = (x[:, :, None] < xc[None, None, :]).sum(axis=1) % 2 == 1  # (R, C)
                mask[iy0 + r0 : iy0 + r0 + len(y), ix0 : ix1 + 1] |= inside
    return mask


def build_floor_map(
    vertices: np.ndarray,
    faces: np.ndarray,
    floor_z: float,
    bounds_xy: np.ndarray,
    config: NavConfig = NavConfig(),
    solids: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> FloorMap:
    """Floor map of a triangle mesh (Z-up world) over `bounds_xy` (2, 2).

    `solids`: (vertices, faces) of the closed objects among them, whose insides are filled."""
    import time

    t0 = time.perf_counter()
    cell = float(config.cell)
    if not (0.005 <= cell <= 0.05 + 1e-9):
        raise InputError(f"navigation config: cell must be between 0.005 and 0.05 m, got {cell}")
    bounds_xy = np.asarray(bounds_xy, dtype=np.float64).reshape(2, 2)
    extent = bounds_xy[1] - bounds_xy[0]
    if not np.all(np.isfinite(extent)) or np.any(extent <= 0):
        raise InputError(f"scene bounds {bounds_xy.tolist()} have no floor area to walk on")
    nx, ny = (int(math.ceil(extent[0] / cell - 1e-9)), int(math.ceil(extent[1] / cell - 1e-9)))
    if nx * ny > 25_000_000:
        raise InputError(f"scene floor {extent[0]:.1f} x {extent[1]:.1f} m is too large for a {cell} m floor map")
    origin = bounds_xy[0].copy()
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    tri = band_triangles(vertices, faces, floor_z + config.band_low, floor_z + config.band_high)

    spacing = cell / 4.0
    quant = spacing / 2.0  # samples are de-duplicated on this grid
    blocked = np.zeros((ny, nx), dtype=bool)
    keys: list[np.ndarray] = []
    for pts in sample_triangles(tri[:, :, :2], spacing):
        q = np.round(pts / quant).astype(np.int64)
        keys.append(np.unique(q[:, 0] * (1 << 31) + q[:, 1]))
        ij = np.floor((pts - origin) / cell).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < nx) & (ij[:, 1] >= 0) & (ij[:, 1] < ny)
        blocked[ij[ok, 1], ij[ok, 0]] = True
    if solids:
        blocked |= _fill_solids(solids, floor_z + config.band_low, floor_z + config.band_high, origin, cell, (ny, nx))
    support = _floor_support(vertices, faces, floor_z, origin, cell, (ny, nx), config.band_low)
    if support is not None:
        # off the floor is not walkable: block it, and sample the floor's edge like geometry
        rim = ~support & ndimage.binary_dilation(support, structure=_EIGHT)
        blocked |= ~support
        ry, rx = np.nonzero(rim)
        if len(ry):
            g = (np.arange(5) / 4.0) * cell
            gx, gy = np.meshgrid(g, g)
            pts = (origin + np.stack([rx, ry], axis=1) * cell)[:, None, :] + np.stack([gx.ravel(), gy.ravel()], axis=1)[None]
            q = np.round(pts.reshape(-1, 2) / quant).astype(np.int64)
            keys.append(np.unique(q[:, 0] * (1 << 31) + q[:, 1]))
    if keys:
        uk = np.unique(np.concatenate(keys))
        qx = np.floor_divide(uk + (1 << 30), 1 << 31)
        qy = uk - qx * (1 << 31)
        points = np.stack([qx, qy], axis=1).astype(np.float64) * quant
    else:
        points = np.zeros((0, 2))
    # sampling (rows and columns <= spacing apart) leaves any surface point <= spacing*sqrt(2)/2 from
    # a sample; rounding to the de-duplication grid moves a sample <= quant*sqrt(2)/2
    sample_error = (spacing + quant) * math.sqrt(2.0) / 2.0

    xs = origin[0] + (np.arange(nx) + 0.5) * cell
    ys = origin[1] + (np.arange(ny) + 0.5) * cell
    edge = np.minimum.outer(np.minimum(ys - bounds_xy[0, 1], bounds_xy[1, 1] - ys), np.minimum(xs - bounds_xy[0, 0], bounds_xy[1, 0] - xs))
    clearance = np.maximum(edge, 0.0)
    fmap = FloorMap(origin, cell, float(floor_z), bounds_xy, blocked, clearance, points, sample_error)
    free = ~blocked
    if len(points) and free.any():
        # Far from geometry the grid's own distance transform is accurate enough; near it, the
        # KD-tree gives the distance to the actual samples.
        coarse = ndimage.distance_transform_edt(free, sampling=cell)
        near = free & (coarse < 2.5)
        iy, ix = np.nonzero(near)
        d, _ = fmap.tree.query(np.stack([xs[ix], ys[iy]], axis=1), k=1, distance_upper_bound=3.0)
        geo = np.array(coarse - cell * 0.7072, dtype=np.float64)
        geo[iy, ix] = np.minimum(d, 3.0) - sample_error
        clearance = np.minimum(clearance, np.maximum(geo, 0.0))
    clearance[blocked] = 0.0
    fmap.clearance = clearance
    fmap.build_ms = (time.perf_counter() - t0) * 1000.0
    return fmap


# ---------------------------------------------------------------------------------------------
# Cache per (scene content hash, map settings, excluded objects)

_CACHE: "OrderedDict[tuple, FloorMap]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 24


def scene_bounds_xy(scene: Any) -> np.ndarray:
    """XY bounds (2, 2) of the whole scene (the walkable area never extends past them)."""
    b = np.asarray(scene.bounds, dtype=np.float64)
    return b[:, :2]


def floor_map_for(scene: Any, config: NavConfig = NavConfig(), exclude: Iterable[str] = ()) -> FloorMap:
    """The (cached) floor map of a `hosig.scene.Scene`, optionally without some objects.

    The bounds are always those of the whole scene, so maps with and without an object align
    cell for cell."""
    excl = tuple(sorted(set(exclude)))
    key = (getattr(scene, "content_hash", id(scene)), config.map_key(), excl)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    mesh = scene.mesh(exclude=excl)
    vertices = np.asarray(mesh.vertices) if mesh is not None else np.zeros((0, 3))
    faces = np.asarray(mesh.faces) if mesh is not None else np.zeros((0, 3), dtype=np.int64)
    solids = [(o.vertices, o.faces) for n, o in scene.objects.items() if n not in excl and getattr(o, "watertight", False)]
    fmap = build_floor_map(vertices, faces, float(scene.floor_z), scene_bounds_xy(scene), config, solids)
    with _CACHE_LOCK:
        _CACHE[key] = fmap
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return fmap


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
