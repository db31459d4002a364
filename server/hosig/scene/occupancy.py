"""Boolean voxel occupancy of a scene: closed solids filled, open meshes/planes as a shell.

Closed (watertight) objects are filled by a winding count along +Z: every triangle that a voxel
column crosses adds +1 (face looking down: entering) or -1 (looking up: leaving), and a voxel
whose centre has a non-zero running sum is inside. This is exact at voxel centres, handles
overlapping parts of one object, and costs O(projected area), not O(volume) ray tests.
Open meshes (and objects thinner than two voxels) are voxelised from their surface: points are
laid on every triangle at half-voxel spacing and their voxels marked. A face lying on a voxel
boundary marks the voxel on its solid side only (closed objects: behind the outward normal; open
meshes: below a near-horizontal face, so an open floor plane's shell lies under the walking
surface). The grid's z lattice passes through the floor top, so the floor of every scene, plane,
thin slab or thick slab, at any height, is a voxel face: its zero level is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Surface points are moved this fraction of a voxel to the solid side of their face, so a face on a
# voxel boundary marks the voxel it bounds from inside, never the free one beyond it.
_INWARD = 1e-3

# Column centres are offset by this tiny amount so that they never fall exactly on a shared
# triangle edge of axis-aligned geometry (which would count a crossing twice or not at all).
_JITTER = np.array([1.3e-7, 2.9e-7])


@dataclass
class Occupancy:
    """grid (nx,ny,nz) bool; voxel (i,j,k) has centre origin + (i+0.5, j+0.5, k+0.5) * voxel."""

    grid: np.ndarray
    origin: np.ndarray  # (3,) min corner of the grid box
    voxel: float
    # Per object: voxel slices (tuple of 3 slices) of its bounding box, used for inside distances.
    object_slices: dict[str, tuple[slice, slice, slice]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.grid.shape)  # type: ignore[return-value]

    @property
    def box(self) -> np.ndarray:
        """(2,3) world box covered by the grid."""
        return np.stack([self.origin, self.origin + np.array(self.grid.shape) * self.voxel])

    def index(self, points: np.ndarray) -> np.ndarray:
        """(N,3) world points -> (N,3) int voxel indices (may lie outside the grid)."""
        return np.floor((np.asarray(points, dtype=np.float64) - self.origin) / self.voxel).astype(np.int64)

    def query(self, points: np.ndarray) -> np.ndarray:
        """(N,3) world points -> (N,) bool occupied (False outside the grid)."""
        idx = self.index(np.reshape(points, (-1, 3)))
        ok = np.all((idx >= 0) & (idx < np.array(self.grid.shape)), axis=1)
        out = np.zeros(len(idx), dtype=bool)
        out[ok] = self.grid[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return out

    def occupied_points(self) -> np.ndarray:
        """(K,3) centres of occupied voxels (world)."""
        return self.origin + (np.argwhere(self.grid) + 0.5) * self.voxel

    def nbytes(self) -> int:
        return int(self.grid.nbytes)


def grid_frame(
    bounds: np.ndarray, voxel: float, pad: float, min_height: float = 0.0, floor_z: float | None = None
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Origin (3,) snapped to the voxel lattice and shape covering bounds (2,3) plus pad, and at
    least `min_height` above the lowest geometry (so a standing body's head is inside the grid
    even in a scene of low furniture only). With `floor_z`, the z lattice passes through it."""
    lo = np.floor((bounds[0] - pad) / voxel) * voxel
    if floor_z is not None:
        lo[2] = floor_z - np.ceil((floor_z - (bounds[0][2] - pad)) / voxel) * voxel
    top = np.array(bounds[1], dtype=np.float64)
    top[2] = max(top[2], bounds[0][2] + min_height)
    hi = np.ceil((top + pad) / voxel) * voxel
    shape = tuple(int(n) for n in np.maximum(np.round((hi - lo) / voxel), 1).astype(np.int64))
    return lo, shape  # type: ignore[return-value]


def _object_slices(vmin: np.ndarray, vmax: np.ndarray, origin: np.ndarray, voxel: float, shape) -> tuple[slice, ...]:
    """Voxel index box (inclusive of boundary voxels) of a world box, clipped to the grid."""
    i0 = np.clip(np.floor((vmin - origin) / voxel).astype(np.int64) - 1, 0, np.array(shape))
    i1 = np.clip(np.floor((vmax - origin) / voxel).astype(np.int64) + 2, 0, np.array(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))


def winding_fill(tris: np.ndarray, origin: np.ndarray, voxel: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Inside test at voxel centres of a closed mesh. tris (F,3,3) world; returns bool `shape`.

    Scanline rasterisation of every non-vertical triangle onto the voxel columns: per (triangle,
    row) the x-interval covered at the row's centre line, then the columns in it, so the work is
    proportional to the projected area, not to the triangles' bounding boxes.
    """
    nx, ny, nz = shape
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    normal = np.cross(b - a, c - a)  # (F,3); z sign: facing up (+) or down (-)
    keep = np.abs(normal[:, 2]) > 1e-14
    if not keep.any():
        return np.zeros(shape, dtype=bool)
    tris, normal = tris[keep], normal[keep]
    ox, oy, oz = origin
    # Rows (y centres) crossed by each triangle.
    y_min, y_max = tris[:, :, 1].min(axis=1), tris[:, :, 1].max(axis=1)
    j0 = np.maximum(np.ceil((y_min - oy - _JITTER[1]) / voxel - 0.5).astype(np.int64), 0)
    j1 = np.minimum(np.floor((y_max - oy - _JITTER[1]) / voxel - 0.5).astype(np.int64), ny - 1)
    rows = np.maximum(j1 - j0 + 1, 0)
    if rows.sum() == 0:
        return np.zeros(shape, dtype=bool)
    t_id = np.repeat(np.arange(len(tris)), rows)
    cj = j0[t_id] + (np.arange(rows.sum()) - np.repeat(np.cumsum(rows) - rows, rows))
    yc = oy + (cj + 0.5) * voxel + _JITTER[1]
    # x-interval of the triangle on the line y = yc: intersections with its three edges.
    t = tris[t_id]  # (R,3,3)
    xs_lo = np.full(len(t_id), np.inf)
    xs_hi = np.full(len(t_id), -np.inf)
    for e0, e1 in ((0, 1), (1, 2), (2, 0)):
        p0, p1 = t[:, e0], t[:, e1]
        dy = p1[:, 1] - p0[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (yc - p0[:, 1]) / dy
        hit = (dy != 0) & (u >= 0) & (u <= 1)
        x = p0[:, 0] + u * (p1[:, 0] - p0[:, 0])
        xs_lo = np.where(hit, np.minimum(xs_lo, x), xs_lo)
        xs_hi = np.where(hit, np.maximum(xs_hi, x), xs_hi)
    ok = np.isfinite(xs_lo)
    i0 = np.zeros(len(t_id), dtype=np.int64)
    i1 = np.full(len(t_id), -1, dtype=np.int64)
    i0[ok] = np.maximum(np.ceil((xs_lo[ok] - ox - _JITTER[0]) / voxel - 0.5), 0).astype(np.int64)
    i1[ok] = np.minimum(np.floor((xs_hi[ok] - ox - _JITTER[0]) / voxel - 0.5), nx - 1).astype(np.int64)
    cols = np.maximum(i1 - i0 + 1, 0)
    total = int(cols.sum())
    if total == 0:
        return np.zeros(shape, dtype=bool)
    r_id = np.repeat(np.arange(len(t_id)), cols)
    ci = i0[r_id] + (np.arange(total) - np.repeat(np.cumsum(cols) - cols, cols))
    f_id = t_id[r_id]
    n = normal[f_id]
    a = tris[f_id, 0]
    xc = ox + (ci + 0.5) * voxel + _JITTER[0]
    # Plane through the triangle: n . (p - a) = 0  ->  z at the column centre.
    z = a[:, 2] - (n[:, 0] * (xc - a[:, 0]) + n[:, 1] * (yc[r_id] - a[:, 1])) / n[:, 2]
    step = np.where(n[:, 2] < 0, 1.0, -1.0)  # facing down = entering the solid when going up
    k = np.clip(np.ceil((z - oz) / voxel - 0.5).astype(np.int64), 0, nz)  # first centre above z
    flat = (ci * ny + cj[r_id]) * (nz + 1) + k
    acc = np.bincount(flat, weights=step, minlength=nx * ny * (nz + 1)).astype(np.int16).reshape(nx, ny, nz + 1)
    wind = np.cumsum(acc, axis=2, dtype=np.int16)[:, :, :nz]
    return wind != 0


def solid_side(tris: np.ndarray, closed: bool) -> np.ndarray:
    """(F,3) unit directions from each face of tris (F,3,3) into its solid: minus the outward
    normal of a closed mesh; for an open mesh straight down under a near-horizontal face, else 0."""
    normal = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    unit = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    if closed:
        return -unit
    down = np.zeros_like(unit)
    down[np.abs(unit[:, 2]) > 0.9, 2] = -1.0
    return down


def surface_points(tris: np.ndarray, spacing: float, inward: np.ndarray | None = None) -> np.ndarray:
    """(K,3) points covering every triangle of tris (F,3,3) at most `spacing` apart, each moved by
    its face's `inward` (F,3) offset when given."""
    edge = np.max(
        np.stack(
            [
                np.linalg.norm(tris[:, 1] - tris[:, 0], axis=1),
                np.linalg.norm(tris[:, 2] - tris[:, 1], axis=1),
                np.linalg.norm(tris[:, 0] - tris[:, 2], axis=1),
            ]
        ),
        axis=0,
    )
    n_sub = np.maximum(np.ceil(edge / spacing).astype(np.int64), 1)
    if inward is not None:
        tris = tris + inward[:, None, :]
    out = [tris.reshape(-1, 3)]
    for n in np.unique(n_sub):
        sel = tris[n_sub == n]
        # Barycentric lattice (u, v) with u + v <= 1 at step 1/n.
        u, v = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        m = (u + v) <= n
        u = u[m] / n
        v = v[m] / n
        pts = sel[:, None, 0] + u[None, :, None] * (sel[:, None, 1] - sel[:, None, 0]) + v[None, :, None] * (
            sel[:, None, 2] - sel[:, None, 0]
        )
        out.append(pts.reshape(-1, 3))
    return np.concatenate(out)


def mark_points(grid: np.ndarray, origin: np.ndarray, voxel: float, points: np.ndarray) -> None:
    """Set the voxels containing points (K,3) to True (points outside the grid are ignored)."""
    idx = np.floor((points - origin) / voxel).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < np.array(grid.shape)), axis=1)
    idx = idx[ok]
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True


def build_occupancy(objects, voxel: float, bounds: np.ndarray, pad: float, min_height: float = 0.0,
                    floor_z: float | None = None) -> Occupancy:
    """Voxelise `objects` (iterable of SceneObject) into one grid over bounds (2,3) + pad, its z
    lattice through `floor_z` when given."""
    origin, shape = grid_frame(bounds, voxel, pad, min_height, floor_z)
    grid = np.zeros(shape, dtype=bool)
    slices: dict[str, tuple[slice, slice, slice]] = {}
    for obj in objects:
        if len(obj.faces) == 0:
            continue
        tris = obj.vertices[obj.faces]
        sl = _object_slices(obj.bounds[0], obj.bounds[1], origin, voxel, shape)
        slices[obj.name] = sl  # type: ignore[assignment]
        sub_origin = origin + np.array([s.start for s in sl]) * voxel
        sub_shape = tuple(s.stop - s.start for s in sl)
        if min(sub_shape) <= 0:
            continue
        sub = grid[sl]
        if obj.watertight:
            sub |= winding_fill(tris, sub_origin, voxel, sub_shape)  # type: ignore[arg-type]
        if not obj.watertight or float(np.min(obj.size)) < 2.0 * voxel:
            inward = _INWARD * voxel * solid_side(tris, bool(obj.watertight))
            mark_points(sub, sub_origin, voxel, surface_points(tris, 0.5 * voxel, inward))
    return Occupancy(grid=grid, origin=origin, voxel=float(voxel), object_slices=slices)
