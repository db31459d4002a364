"""Where to stand to reach an object (or a 3D point).

A stand point is a walkable floor cell (clearance >= body radius + grid margin, which already
keeps it off the target itself) from which the target's reference surface point -- the reachable
surface point nearest to the cell at the object's upper-quartile height -- is `reach_min` ..
`reach_max` horizontally from the pelvis, no higher than `reach_height_max` above the floor, with a
free straight line from the body (at the point's own height, or from the shoulder) to it. The
free line is tested in a small local voxel grid (2 cm) of the scene *without* the target, so the
object's own faces never block it. Candidates carry a comfort cost (distance from the preferred
reach) that the path search adds to the path cost when choosing among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from hosig.errors import UnreachableError
from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap, sample_triangles

_VOXEL = 0.02
_LOS_STOP = 0.04
_LOS_ABOVE_BASE = 2 * _VOXEL  # two voxels clear the support's top voxel whatever its alignment
_REFINE_STEP = 0.01  # stand-point refinement step (metres) ...
_REFINE_STEPS = 8  # ... and count  # the free line ends this short of the surface point (fingers wrap around it)


@dataclass
class LocalVoxels:
    """Boolean occupancy (nx, ny, nz) of a box of the scene, for free-line tests."""

    origin: np.ndarray  # (3,)
    voxel: float
    occ: np.ndarray  # (nx, ny, nz) bool

    def hits(self, pts: np.ndarray) -> np.ndarray:
        """(N,) bool: points (N, 3) inside an occupied voxel (outside the box = free)."""
        idx = np.floor((pts - self.origin) / self.voxel).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < np.asarray(self.occ.shape)), axis=1)
        out = np.zeros(len(pts), dtype=bool)
        out[ok] = self.occ[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return out

    def segments_clear(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(K,) bool: whether each segment a[k] -> b[k] (K, 3) avoids occupied voxels."""
        if len(a) == 0:
            return np.zeros(0, dtype=bool)
        length = np.linalg.norm(b - a, axis=1)
        n = int(max(2, math.ceil(length.max() / (self.voxel * 0.5)) + 1))
        t = np.linspace(0.0, 1.0, n)
        pts = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
        return ~self.hits(pts.reshape(-1, 3)).reshape(len(a), n).any(axis=1)


def clip_to_box(tri: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Triangles (T, 3, 3) clipped exactly to an axis-aligned box."""
    tmin, tmax = tri.min(axis=1), tri.max(axis=1)
    keep = np.all((tmax >= lo) & (tmin <= hi), axis=1)
    v = tri[keep].reshape(-1, 3)
    f = np.arange(len(v)).reshape(-1, 3)
    for axis in range(3):
        for sign, bound in ((1.0, lo[axis]), (-1.0, hi[axis])):
            if len(f) == 0:
                return np.zeros((0, 3, 3))
            normal = np.zeros(3)
            normal[axis] = sign
            origin = np.zeros(3)
            origin[axis] = bound
            v, f, _ = trimesh.intersections.slice_faces_plane(v, f, plane_normal=normal, plane_origin=origin)
            v, f = np.asarray(v), np.asarray(f)
    return v[f] if len(f) else np.zeros((0, 3, 3))


def build_local_voxels(vertices: np.ndarray, faces: np.ndarray, lo: np.ndarray, hi: np.ndarray, voxel: float = _VOXEL) -> LocalVoxels:
    """Voxelise the triangles inside the box [lo, hi] by dense surface sampling (spacing voxel/2)."""
    shape = np.maximum(np.ceil((hi - lo) / voxel).astype(np.int64), 1)
    occ = np.zeros(tuple(shape), dtype=bool)
    if len(faces):
        tri = clip_to_box(np.asarray(vertices, dtype=np.float64)[np.asarray(faces)], lo, hi)
        for pts in sample_triangles(tri, voxel * 0.5):
            idx = np.floor((pts - lo) / voxel).astype(np.int64)
            idx = np.clip(idx, 0, shape - 1)
            occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return LocalVoxels(np.asarray(lo, dtype=np.float64), voxel, occ)


@dataclass
class TargetGeometry:
    """What the stand-point search needs to know about the thing to reach (cached per scene)."""

    name: str | None  # object name, or None for a bare 3D point
    reachable: np.ndarray  # (P, 3) surface samples no higher than floor + reach_height_max
    z_ref: float  # height at which the reference point is sought (object's upper quartile)
    los_lift: float  # a bare point on a surface is checked this much above it
    voxels: LocalVoxels  # the scene around it, target excluded
    _tree: cKDTree | None = None
    _tree2: cKDTree | None = None

    @property
    def tree(self) -> cKDTree:
        if self._tree is None:
            self._tree = cKDTree(self.reachable)
        return self._tree

    @property
    def tree2(self) -> cKDTree:
        if self._tree2 is None:
            self._tree2 = cKDTree(self.reachable[:, :2])
        return self._tree2


def target_geometry(
    name: str | None,
    target_points: np.ndarray,
    scene_vertices: np.ndarray,
    scene_faces: np.ndarray,
    floor_z: float,
    config: NavConfig,
    los_lift: float = 0.0,
) -> TargetGeometry:
    """Reachable samples and the local voxels of the rest of the scene for a target.

    `target_points` (P, 3): dense surface samples of the object (or one point)."""
    pts = np.asarray(target_points, dtype=np.float64).reshape(-1, 3)
    label = repr(name) if name else f"point {np.round(pts[0], 3).tolist()}"
    rel = pts[:, 2] - floor_z
    ok = (rel >= -0.02) & (rel <= config.reach_height_max)
    if not ok.any():
        lo_h, hi_h = float(rel.min()), float(rel.max())
        if lo_h > config.reach_height_max:
            raise UnreachableError(
                f"{label} is out of reach: it lies {lo_h:.2f}-{hi_h:.2f} m above the floor, "
                f"higher than the reachable {config.reach_height_max:.2f} m"
            )
        raise UnreachableError(f"{label} is out of reach: it lies {-hi_h:.2f} m below the floor")
    reach = pts[ok]
    z_ref = float(np.quantile(reach[:, 2], 0.75))
    margin = config.reach_max + 0.15
    lo = np.array([reach[:, 0].min() - margin, reach[:, 1].min() - margin, floor_z + 0.03])
    hi = np.array([reach[:, 0].max() + margin, reach[:, 1].max() + margin, max(floor_z + config.shoulder_height, reach[:, 2].max()) + 0.1])
    vox = build_local_voxels(scene_vertices, scene_faces, lo, hi)
    # The free line runs at least `_LOS_ABOVE_BASE` above the target's lowest point: a line at the
    # height of a phone lying on a board passes through the board's own voxels.
    los_lift = max(los_lift, float(reach[:, 2].min()) + _LOS_ABOVE_BASE - z_ref)
    return TargetGeometry(name, reach, z_ref, los_lift, vox)


@dataclass
class Candidates:
    cells: np.ndarray  # (C, 2) [iy, ix]
    xy: np.ndarray  # (C, 2) cell centres
    target_point: np.ndarray  # (C, 3) the surface point the hand goes to from there
    reach: np.ndarray  # (C,) horizontal pelvis -> point distance
    exit_cost: np.ndarray  # (C,) comfort cost in path-cost units


def find_candidates(fmap: FloorMap, walkable: np.ndarray, target: TargetGeometry, config: NavConfig) -> tuple[Candidates, dict]:
    """All walkable cells from which the target is within comfortable reach (no free-line test).

    Also returns a small diagnosis dict (nearest walkable floor) for error messages."""
    reach = target.reachable
    ny, nx = fmap.shape
    lo = reach[:, :2].min(axis=0) - config.reach_max - fmap.cell
    hi = reach[:, :2].max(axis=0) + config.reach_max + fmap.cell
    (iy0, ix0), (iy1, ix1) = fmap.to_cell(lo), fmap.to_cell(hi)
    iy0, ix0 = max(iy0, 0), max(ix0, 0)
    iy1, ix1 = min(iy1, ny - 1), min(ix1, nx - 1)
    empty = Candidates(np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    if iy1 < iy0 or ix1 < ix0:
        return empty, {"nearest_floor_m": None}
    sub = walkable[iy0 : iy1 + 1, ix0 : ix1 + 1]
    ly, lx = np.nonzero(sub)
    if len(ly) == 0:
        return empty, {"nearest_floor_m": None}
    cells = np.stack([ly + iy0, lx + ix0], axis=1)
    xy = fmap.to_world(cells)
    d2, _ = target.tree2.query(xy, k=1)
    diag = {"nearest_floor_m": float(d2.min())}
    slack = _REFINE_STEPS * _REFINE_STEP
    near = d2 <= config.reach_max + slack
    cells, xy = cells[near], xy[near]
    if len(cells) == 0:
        return empty, diag
    q = np.concatenate([xy, np.full((len(xy), 1), target.z_ref)], axis=1)
    _, idx = target.tree.query(q, k=1)
    tp = reach[idx]
    xy, r = _refine(fmap, xy, tp, config)
    ok = (r >= config.reach_min) & (r <= config.reach_max)
    cells, xy, tp, r = cells[ok], xy[ok], tp[ok], r[ok]
    span = max(config.reach_max - config.reach_min, 1e-3)
    comfort = ((r - config.reach_preferred) / span) ** 2
    return Candidates(cells, xy, tp, r, config.comfort_weight * comfort), diag


def nearest_walkable_m(fmap: FloorMap, walkable: np.ndarray, target: TargetGeometry, radius: float = 3.0) -> float | None:
    """Horizontal distance from the target's reachable surface to the nearest walkable cell within
    `radius` (None when there is none): for "too far from any free floor" messages."""
    lo = target.reachable[:, :2].min(axis=0) - radius
    hi = target.reachable[:, :2].max(axis=0) + radius
    ny, nx = fmap.shape
    (iy0, ix0), (iy1, ix1) = fmap.to_cell(lo), fmap.to_cell(hi)
    iy0, ix0, iy1, ix1 = max(iy0, 0), max(ix0, 0), min(iy1, ny - 1), min(ix1, nx - 1)
    if iy1 < iy0 or ix1 < ix0:
        return None
    ly, lx = np.nonzero(walkable[iy0 : iy1 + 1, ix0 : ix1 + 1])
    if len(ly) == 0:
        return None
    d, _ = target.tree2.query(fmap.to_world(np.stack([ly + iy0, lx + ix0], axis=1)), k=1)
    return float(d.min()) if d.min() <= radius else None


def _refine(fmap: FloorMap, xy: np.ndarray, tp: np.ndarray, config: NavConfig) -> tuple[np.ndarray, np.ndarray]:
    """Slide each stand point off its cell centre straight towards its target point, by up to
    `_REFINE_STEPS` x 1 cm, while the exact clearance stays >= body radius all the way and the
    reach stays >= the preferred one. Cell centres keep a grid margin (half a cell diagonal) plus
    the sampling error from geometry; this wins those centimetres back where they matter (a cup
    at the back of a table against a wall)."""
    d = tp[:, :2] - xy
    r = np.linalg.norm(d, axis=1)
    u = d / np.maximum(r, 1e-9)[:, None]
    steps = np.arange(1, _REFINE_STEPS + 1) * _REFINE_STEP  # (S,)
    useful = (r[:, None] - steps[None, :]) >= config.reach_preferred  # (C, S): still not too close
    ci, si = np.nonzero(useful)
    ok = np.zeros(useful.shape, dtype=bool)
    if len(ci):
        q = xy[ci] + steps[si, None] * u[ci]
        need = config.body_radius + 0.005
        ok[ci, si] = fmap.distance(q, upper=need) >= need
    ok = np.logical_and.accumulate(ok, axis=1)
    n = ok.sum(axis=1)  # prefix length of valid steps
    t = np.where(n > 0, steps[np.maximum(n - 1, 0)], 0.0)
    new = xy + t[:, None] * u
    return new, np.linalg.norm(tp[:, :2] - new, axis=1)


def free_line(cands: Candidates, target: TargetGeometry, floor_z: float, config: NavConfig) -> np.ndarray:
    """(C,) bool: a straight line from the body to the target point misses the rest of the scene,
    either level at the point's height or down/up from the shoulder — or the hand can rise
    straight up over the body to the point's height and go in level (an object above the
    shoulder on a deep shelf board: a line from the shoulder would cut the board's front)."""
    if len(cands.xy) == 0:
        return np.zeros(0, dtype=bool)
    end = cands.target_point + np.array([0.0, 0.0, target.los_lift])
    ok = np.zeros(len(end), dtype=bool)
    for z in (np.clip(end[:, 2], floor_z + 0.1, floor_z + config.shoulder_height), np.full(len(end), floor_z + config.shoulder_height)):
        todo = ~ok
        if not todo.any():
            break
        a = np.concatenate([cands.xy[todo], z[todo, None]], axis=1)
        ok[np.nonzero(todo)[0]] = target.voxels.segments_clear(a, _stopped_short(a, end[todo]))
    todo = np.flatnonzero(~ok & (end[:, 2] > floor_z + config.shoulder_height))
    if len(todo):
        shoulder = np.concatenate([cands.xy[todo], np.full((len(todo), 1), floor_z + config.shoulder_height)], axis=1)
        above = np.concatenate([cands.xy[todo], end[todo, 2:3]], axis=1)
        ok[todo] = target.voxels.segments_clear(shoulder, above) & target.voxels.segments_clear(above, _stopped_short(above, end[todo]))
    return ok


def _stopped_short(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,3) segment ends ``b`` moved `_LOS_STOP` back towards ``a`` (the line stops at the object's skin)."""
    d = b - a
    length = np.linalg.norm(d, axis=1, keepdims=True)
    return a + d * np.clip((length - _LOS_STOP) / np.maximum(length, 1e-9), 0.0, 1.0)
