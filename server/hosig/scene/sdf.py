"""Signed distance field of a scene, queried from torch (differentiable), 2 cm near geometry.

Two levels, so a 10 m room costs well under a second instead of a ~7 s full-resolution EDT:

* far field: an exact Euclidean distance transform (scipy) of the occupancy max-pooled to a
  coarse voxel (`sdf_far_voxel`, 8 cm), built eagerly — cheap, and only used away from geometry;
* near field: tiles of 32^3 fine voxels (the occupancy's 2 cm), each computed on first use from
  an EDT of the tile plus a margin of `sdf_band` (16 cm). Inside that band the tile's distance
  is exact (everything within the band of a tile voxel lies in the margin); beyond it the far
  field is used, floored at the band so the two levels join without a step towards the surface.

Distances: outside voxels get the distance to the nearest occupied voxel centre, inside voxels
minus the distance to the nearest free one, each shifted by half a voxel so the zero level sits
on the voxel faces between them (surface error <= voxel/2 per axis). Open meshes and planes are
a one-voxel shell: about -voxel/2 on the shell, positive on both sides. Values are clamped to
+-clamp.

Lookups: trilinear interpolation over voxel centres. Corner values are gathered in numpy
(they are constants), the interpolation weights are torch expressions of the query points, so
gradients flow to the points. Points beyond the grid get the distance to the grid's centre box
added to the edge value: finite everywhere, and still pointing back towards the scene.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from hosig.scene.occupancy import Occupancy

if TYPE_CHECKING:  # torch is imported on first query: `hosig scene inspect` never needs it
    import torch

TILE = 32


def _signed_edt(grid: np.ndarray, voxel: float, slices=None, outside: np.ndarray | None = None) -> np.ndarray:
    """Signed distance (float32, metres) at voxel centres of a bool grid, see module docstring.

    Inside depths are computed per object box (`slices`), padded with free voxels, instead of a
    second EDT over the whole grid.
    """
    v = np.float32(voxel)
    if not grid.any():
        return np.full(grid.shape, np.inf, dtype=np.float32)
    if outside is None:
        outside = ndimage.distance_transform_edt(~grid)
    values = outside.astype(np.float32) * v - v / 2
    depth = np.zeros(grid.shape, dtype=np.float32)
    for sl in slices or [tuple(slice(0, n) for n in grid.shape)]:
        crop = grid[sl]
        if not crop.any():
            continue
        d_in = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1, 1:-1].astype(np.float32)
        view = depth[sl]
        np.maximum(view, d_in, out=view)
    values[grid] = -(depth[grid] * v - v / 2)
    return values


def pool_any(grid: np.ndarray, factor: int) -> np.ndarray:
    """Max-pool a bool grid by `factor` per axis (cells with any occupied voxel).

    numpy's `any` over several small axes is slow on 50 M voxels; OR-ing the `factor` strided
    slabs axis by axis costs a few passes over memory instead.
    """
    if factor == 1:
        return grid.copy()
    pad = [(0, (-n) % factor) for n in grid.shape]
    g = np.pad(grid, pad) if any(p[1] for p in pad) else grid
    for axis in range(3):
        idx = [slice(None)] * 3
        out = None
        for r in range(factor):
            idx[axis] = slice(r, None, factor)
            part = g[tuple(idx)]
            out = part.copy() if out is None else np.logical_or(out, part, out=out)
        g = out
    return np.ascontiguousarray(g)


def _pool_slices(slices, factor: int, shape) -> list[tuple[slice, ...]]:
    out = []
    for sl in slices:
        out.append(
            tuple(
                slice(max(s.start // factor - 1, 0), min(-(-s.stop // factor) + 1, n)) for s, n in zip(sl, shape)
            )
        )
    return out


class SceneSDF:
    """Signed distance (metres, negative inside) over an occupancy grid; see module docstring."""

    def __init__(self, occ: Occupancy, clamp: float, band: float, far_voxel: float) -> None:
        self.occ = occ
        self.voxel = float(occ.voxel)
        self.origin = np.asarray(occ.origin, dtype=np.float64)
        self.clamp = float(clamp)
        self.band_vox = max(int(np.ceil(band / self.voxel)), 2)
        self.band = self.band_vox * self.voxel
        factor = max(int(round(far_voxel / self.voxel)), 1)
        self.far_factor = factor
        self.far_voxel = factor * self.voxel
        # Far field: occupancy max-pooled by `factor` (fatter by < one coarse voxel).
        g = occ.grid
        coarse = pool_any(g, factor)
        cs = coarse.shape
        # Outside, the far field at a coarse cell centre is the exact distance to the occupied
        # fine voxels of the nearest occupied coarse cell (found by the coarse EDT's feature
        # transform), not to that cell's centre: floors and walls then read their true distance
        # instead of one off by up to a coarse voxel.
        self.feature = None
        dist = None
        if coarse.any() and not coarse.all():
            dist, feat = ndimage.distance_transform_edt(~coarse, return_distances=True, return_indices=True)
            self.feature = feat.astype(np.int32)
        far = _signed_edt(coarse, self.far_voxel, _pool_slices(occ.object_slices.values(), factor, cs), outside=dist)
        self.far = np.clip(far, -self.clamp, self.clamp)  # signed, at coarse voxel centres
        self.coarse = coarse
        f = factor
        self._cell_offsets = np.array([(a, b, c) for a in range(f) for b in range(f) for c in range(f)])  # (f^3,3)
        n_tiles = tuple(-(-n // TILE) for n in g.shape)
        self._far_memo = np.full(tuple(n + 2 for n in coarse.shape), np.nan, dtype=np.float32)
        self._slot = np.full(n_tiles, -1, dtype=np.int64)
        self._pool = np.zeros((0, TILE, TILE, TILE), dtype=np.float32)
        self._used = 0
        self._lock = threading.Lock()
        self._donor: SceneSDF | None = None  # another exclusion set's field whose equal tiles are copied
        self._shareable: np.ndarray | None = None  # (tiles) bool: tile provably equal in the donor
        self.tiles_shared = 0

    # -- geometry ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.occ.grid.shape)  # type: ignore[return-value]

    @property
    def tiles_computed(self) -> int:
        return self._used

    def nbytes(self) -> int:
        return int(self.far.nbytes + self._pool[: self._used].nbytes + self._slot.nbytes)

    def _far_coarse(self, cells: np.ndarray) -> np.ndarray:
        """Far-field values (float32, metres) at coarse cell centres cells (Q,3); cells one step
        beyond the grid are allowed (they take their neighbour's nearest cell) so that fine
        voxels at the grid's edge interpolate instead of clamping."""
        cells = np.asarray(cells)
        cl = np.clip(cells, 0, np.array(self.coarse.shape) - 1)
        val = self.far[cl[:, 0], cl[:, 1], cl[:, 2]].astype(np.float32)
        if self.feature is None:
            return val
        free = ~self.coarse[cl[:, 0], cl[:, 1], cl[:, 2]]
        if not free.any():
            return val
        cf, cfl = cells[free], cl[free]
        near = self.feature[:, cfl[:, 0], cfl[:, 1], cfl[:, 2]].T  # (Q,3) nearest occupied cell
        vox = near[:, None, :] * self.far_factor + self._cell_offsets[None]  # (Q,f^3,3) its voxels
        shape = np.array(self.occ.grid.shape)
        inside = np.all(vox < shape, axis=2)
        vc = np.minimum(vox, shape - 1)
        occupied = inside & self.occ.grid[vc[..., 0], vc[..., 1], vc[..., 2]]
        centre = (cf + 0.5) * self.far_factor  # fine-index coordinates of the cell centres
        d = np.linalg.norm(vox + 0.5 - centre[:, None, :], axis=2)
        d = np.where(occupied, d, np.inf).min(axis=1)
        val[free] = np.minimum(d * self.voxel - self.voxel / 2, self.clamp)
        return val

    def _far_cells(self, clo: list[int], chi: list[int]) -> np.ndarray:
        """Far-field values on the coarse cell box [clo, chi) (may reach one cell beyond the
        grid), memoised per coarse cell because neighbouring tiles share their margins."""
        lo_c = np.array(clo) + 1  # memo array has one extra cell on every side
        hi_c = np.array(chi) + 1
        view = self._far_memo[lo_c[0] : hi_c[0], lo_c[1] : hi_c[1], lo_c[2] : hi_c[2]]
        todo = np.isnan(view)
        if todo.any():
            cells = np.argwhere(todo) + np.array(clo)
            view[todo] = self._far_coarse(cells)
        return view

    def _far_at(self, lo: list[int], hi: list[int]) -> np.ndarray:
        """Far field (trilinear from coarse centres) at the fine voxels of the box [lo, hi).

        Separable: fine voxel i sits at coarse coordinate (i + 0.5) / f - 0.5, so each axis is a
        small (fine x coarse) interpolation matrix applied in turn."""
        f = self.far_factor
        clo = [a // f - 1 for a in lo]
        chi = [(b - 1) // f + 2 for b in hi]
        local = self._far_cells(clo, chi).astype(np.float32)
        for axis, (a, b, c0, c1) in enumerate(zip(lo, hi, clo, chi)):
            u = (np.arange(a, b) + 0.5) / f - 0.5 - c0
            i0 = np.clip(np.floor(u).astype(np.int64), 0, c1 - c0 - 2)
            w = (u - i0).astype(np.float32)
            mat = np.zeros((b - a, c1 - c0), dtype=np.float32)
            mat[np.arange(b - a), i0] = 1 - w
            mat[np.arange(b - a), i0 + 1] += w
            local = np.moveaxis(np.tensordot(mat, local, axes=([1], [axis])), 0, axis)
        return local

    def _compute_block(self, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Values (float32) of the fine voxels of tiles [t0, t1) (tile units), one EDT for all.

        Exact inside the band (the crop reaches `band` beyond the block on every side), the far
        field floored at the band elsewhere (see module docstring)."""
        g = self.occ.grid
        lo = [int(a) * TILE for a in t0]
        hi = [min(int(b) * TILE, n) for b, n in zip(t1, g.shape)]
        m = self.band_vox
        plo = [max(a - m, 0) for a in lo]
        phi = [min(b + m, n) for b, n in zip(hi, g.shape)]
        crop = g[plo[0] : phi[0], plo[1] : phi[1], plo[2] : phi[2]]
        core = tuple(slice(a - p, b - p) for a, b, p in zip(lo, hi, plo))
        band_val = np.float32(self.band - self.voxel / 2)
        v = np.float32(self.voxel)
        n_occ = int(np.count_nonzero(crop))
        if n_occ == crop.size:  # deep inside a solid
            vals = np.minimum(self._far_at(lo, hi), -band_val)
        elif n_occ == 0:  # nothing within the band
            vals = np.maximum(self._far_at(lo, hi), band_val)
        else:
            out = ndimage.distance_transform_edt(~crop)[core].astype(np.float32) * v
            occ_core = crop[core]
            vals = out - v / 2
            if occ_core.any():
                dep = ndimage.distance_transform_edt(crop)[core].astype(np.float32) * v
                vals = np.where(occ_core, -(dep - v / 2), vals)
                exact = np.where(occ_core, dep < self.band, out < self.band)
            else:
                exact = out < self.band
            if not exact.all():
                far = self._far_at(lo, hi)
                vals = np.where(exact, vals, np.where(occ_core, np.minimum(far, -band_val), np.maximum(far, band_val)))
        return np.clip(vals, -self.clamp, self.clamp)

    def _store(self, t: tuple[int, int, int], tile: np.ndarray) -> None:
        if self._used == len(self._pool):
            grown = np.zeros((max(8, 2 * len(self._pool)), TILE, TILE, TILE), dtype=np.float32)
            grown[: self._used] = self._pool[: self._used]
            self._pool = grown
        self._pool[self._used] = np.float32(self.clamp)
        self._pool[self._used, : tile.shape[0], : tile.shape[1], : tile.shape[2]] = tile
        self._slot[t] = self._used
        self._used += 1

    def _fill(self, tiles: np.ndarray) -> None:
        """Compute missing tiles (K,3) one by one (measured: sharing one EDT over a box of
        tiles saves margin work but loses it again to cache misses, so tiles stay 32^3);
        a tile provably equal in the donor field is copied from it (see `share_from`)."""
        for t in tiles:
            key = tuple(int(x) for x in t)
            if self._slot[key] >= 0:
                continue
            if self._shareable is not None and self._shareable[key]:
                self._store(key, self._donor.tile(key))
                self.tiles_shared += 1
            else:
                self._store(key, self._compute_block(t, t + 1))

    def tile(self, key: tuple[int, int, int]) -> np.ndarray:
        """(TILE,TILE,TILE) float32 copy of one tile's values (computed if missing)."""
        self._ensure(np.asarray([key], dtype=np.int64))
        return self._pool[self._slot[key]].copy()

    def share_from(self, donor: "SceneSDF") -> int:
        """Copy tiles from ``donor`` (the field of another exclusion set on the same lattice, e.g.
        the previous target's) wherever they are provably equal; returns how many tiles qualify.

        A tile's values are a function of the occupancy over the tile and its band margin and of
        the far field on the coarse cells around it; where both fields agree on those inputs
        (everything away from the objects the two exclusion sets differ in, and away from cells
        whose nearest geometry was such an object), the tile is the same. Why: every new target
        built all its path's tiles afresh (about 2 s on a loaded CPU), although the target changes
        only the tiles near it."""
        f = self.far_factor
        same_lattice = (donor.shape == self.shape and donor.far_factor == f and donor.band_vox == self.band_vox
                        and donor.clamp == self.clamp and np.allclose(donor.origin, self.origin) and donor.voxel == self.voxel)
        if not same_lattice or TILE % f or (donor.feature is None) != (self.feature is None):
            return 0
        changed = self.occ.grid != donor.occ.grid  # fine voxels whose occupancy differs
        dirty = (self.far != donor.far) | (self.coarse != donor.coarse)  # coarse cells whose far value may differ
        if self.feature is not None:
            dirty |= np.any(self.feature != donor.feature, axis=0)
            moved = pool_any(changed, f)[: dirty.shape[0], : dirty.shape[1], : dirty.shape[2]]
            dirty |= moved[tuple(self.feature)]  # the nearest cell's own voxels changed
        bad = pool_any(changed, TILE)
        bad_far = pool_any(dirty, TILE // f)
        n = self._slot.shape
        bad = _grow(bad[: n[0], : n[1], : n[2]], n) | _grow(bad_far[: n[0], : n[1], : n[2]], n)
        bad = ndimage.binary_dilation(bad, structure=np.ones((3, 3, 3), bool))  # margins reach into the neighbours
        self._donor, self._shareable = donor, ~bad
        return int(self._shareable.sum())

    def _ensure(self, tiles: np.ndarray) -> None:
        """Compute the missing tiles among tiles (K,3)."""
        missing = tiles[self._slot[tiles[:, 0], tiles[:, 1], tiles[:, 2]] < 0]
        if len(missing) == 0:
            return
        with self._lock:
            missing = missing[self._slot[missing[:, 0], missing[:, 1], missing[:, 2]] < 0]
            if len(missing):
                self._fill(missing)

    def values_at(self, idx: np.ndarray) -> np.ndarray:
        """Fine-grid values at integer voxel indices idx (K,3) inside the grid (computes tiles)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1, 3)
        tiles = idx // TILE
        slot = self._slot[tiles[:, 0], tiles[:, 1], tiles[:, 2]]
        if (slot < 0).any():
            keys = np.unique(np.ravel_multi_index(tuple(tiles[slot < 0].T), self._slot.shape))
            self._ensure(np.stack(np.unravel_index(keys, self._slot.shape), axis=1))
            slot = self._slot[tiles[:, 0], tiles[:, 1], tiles[:, 2]]
        r = idx % TILE
        return self._pool[slot, r[:, 0], r[:, 1], r[:, 2]]

    def tiles_near(self, points: np.ndarray, radius) -> np.ndarray:
        """(K,3) distinct tile indices within ``radius`` (m; scalar or (3,) per axis) of world
        points (P,3), first-touched first (so a path's tiles come in the order it is walked)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        rad = np.broadcast_to(np.asarray(radius, dtype=np.float64), (3,))
        span = TILE * self.voxel
        n_tiles = np.array(self._slot.shape)
        reach = int(np.ceil(rad.max() / span))
        offs = np.arange(-reach, reach + 1)
        grid = np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3)
        centre = np.floor((pts - self.origin) / span).astype(np.int64)  # (P,3)
        cand = (centre[:, None, :] + grid[None]).reshape(-1, 3)
        lo = self.origin + cand * span
        p = np.repeat(pts, len(grid), 0)
        near = np.all((lo - rad <= p) & (p <= lo + span + rad), 1)
        cand = cand[near & np.all((cand >= 0) & (cand < n_tiles), 1)]
        if len(cand) == 0:
            return np.zeros((0, 3), np.int64)
        keys = np.ravel_multi_index(tuple(cand.T), self._slot.shape)
        _, first = np.unique(keys, return_index=True)
        return cand[np.sort(first)]

    def fill(self, tiles: np.ndarray, stop=None) -> int:
        """Compute the missing ones of tiles (K,3) one at a time, in order (the lock is released
        between tiles, so queries from other threads interleave); stops early when ``stop()``
        turns true. Returns how many it computed (background prefetch along a planned path)."""
        done = 0
        for t in np.asarray(tiles, dtype=np.int64).reshape(-1, 3):
            if stop is not None and stop():
                break
            if self._slot[t[0], t[1], t[2]] < 0:
                self._ensure(t[None])
                done += 1
        return done

    def prefetch(self) -> int:
        """Compute every tile now (benchmarks, long optimisations); returns the tile count."""
        grid = np.argwhere(self._slot < 0)
        self._ensure(grid)
        return self._used

    def dense(self) -> np.ndarray:
        """(nx,ny,nz) float32 fine values of the whole grid (computes every tile)."""
        self.prefetch()
        nt = self._slot.shape
        full = self._pool[self._slot.reshape(-1)].reshape(*nt, TILE, TILE, TILE)
        full = full.transpose(0, 3, 1, 4, 2, 5).reshape(nt[0] * TILE, nt[1] * TILE, nt[2] * TILE)
        nx, ny, nz = self.shape
        return np.ascontiguousarray(full[:nx, :ny, :nz])

    def crop(self, lo: np.ndarray, hi: np.ndarray) -> GridSDF:
        """Dense `GridSDF` of the world box lo..hi (3,) (clipped to the grid), for hot loops."""
        shape = np.array(self.shape)
        i0 = np.clip(np.floor((np.asarray(lo) - self.origin) / self.voxel).astype(np.int64), 0, shape - 2)
        i1 = np.clip(np.ceil((np.asarray(hi) - self.origin) / self.voxel).astype(np.int64), i0 + 2, shape)
        axes = [np.arange(a, b) for a, b in zip(i0, i1)]
        ii, jj, kk = np.meshgrid(*axes, indexing="ij")
        vals = self.values_at(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)).reshape(ii.shape)
        return GridSDF(vals, self.origin + i0 * self.voxel, self.voxel)

    # -- queries -------------------------------------------------------------------------------
    def query(self, points: "torch.Tensor") -> "torch.Tensor":
        """points (...,3) world metres -> (...) signed distance (negative inside), differentiable."""
        import torch

        if not torch.is_tensor(points):
            points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
        dtype = points.dtype if points.dtype.is_floating_point else torch.float32
        p = points.reshape(-1, 3).to(dtype)
        shape_np = np.array(self.shape)
        lo_np = self.origin + 0.5 * self.voxel
        hi_np = self.origin + (shape_np - 0.5) * self.voxel
        lo = torch.as_tensor(lo_np, dtype=dtype, device=p.device)
        hi = torch.as_tensor(hi_np, dtype=dtype, device=p.device)
        pc = torch.minimum(torch.maximum(p, lo), hi)
        outside = torch.linalg.vector_norm(p - pc, dim=-1)
        u = (pc - lo) / self.voxel  # continuous index over voxel centres
        u_np = u.detach().cpu().double().numpy()
        i0 = np.minimum(np.floor(u_np), np.maximum(shape_np - 2, 0)).astype(np.int64)
        i0 = np.maximum(i0, 0)
        corners = np.minimum(i0[:, None, :] + _CORNERS, shape_np - 1)  # (N,8,3), x slowest as the weights below
        vals = self.values_at(corners.reshape(-1, 3)).reshape(-1, 8) if len(corners) else np.zeros((0, 8), np.float32)
        vals_t = torch.as_tensor(vals, dtype=dtype, device=p.device)
        frac = u - torch.as_tensor(i0, dtype=dtype, device=p.device)
        fx, fy, fz = frac[:, 0:1], frac[:, 1:2], frac[:, 2:3]
        wx = torch.cat([1 - fx, fx], dim=1)  # (N,2)
        wy = torch.cat([1 - fy, fy], dim=1)
        wz = torch.cat([1 - fz, fz], dim=1)
        w = (wx[:, :, None, None] * wy[:, None, :, None] * wz[:, None, None, :]).reshape(-1, 8)
        out = (w * vals_t).sum(dim=1) + outside
        return out.reshape(points.shape[:-1])

    def query_np(self, points: np.ndarray) -> np.ndarray:
        """points (N,3) -> (N,) float64 signed distance (no gradients)."""
        import torch

        pts = np.asarray(points, dtype=np.float64)
        with torch.no_grad():
            d = self.query(torch.from_numpy(pts.reshape(-1, 3)))
        return d.numpy().astype(np.float64).reshape(pts.shape[:-1])

    def gradient_np(self, points: np.ndarray) -> np.ndarray:
        """points (N,3) -> (N,3) gradient of the distance (outward direction near surfaces)."""
        import torch

        p = torch.tensor(np.asarray(points, dtype=np.float64).reshape(-1, 3), requires_grad=True)
        self.query(p).sum().backward()
        return p.grad.numpy().reshape(np.shape(points))  # type: ignore[union-attr]


_CORNERS = np.array([[cx, cy, cz] for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)], dtype=np.int64)  # (8,3)


class GridSDF:
    """A dense box of SDF values queried entirely in torch (no numpy per query).

    Why: an optimiser that queries the same region hundreds of times should pay the tile gather
    once; `SceneSDF.crop(lo, hi)` makes one. Same semantics as `SceneSDF.query` inside the box;
    outside it, the box's edge value plus the distance to the box.
    """

    def __init__(self, values: np.ndarray, origin: np.ndarray, voxel: float) -> None:
        import torch

        self.values = np.ascontiguousarray(values, dtype=np.float32)  # (nx,ny,nz), >= 2 per axis
        self.origin = np.asarray(origin, dtype=np.float64)  # min corner of voxel (0,0,0)
        self.voxel = float(voxel)
        self._table = torch.from_numpy(self.values.reshape(-1))
        self._cache: dict[tuple, torch.Tensor] = {}

    def query(self, points: "torch.Tensor") -> "torch.Tensor":
        """points (...,3) -> (...) signed distance, differentiable in the points.

        Trilinear interpolation by ``grid_sample``: one fused op forwards and backwards instead of
        eight gathers (measured a little faster, 7.5 against 8 ms for 67k points)."""
        import torch
        import torch.nn.functional as F

        p = points.reshape(-1, 3)
        dtype = p.dtype if p.dtype.is_floating_point else torch.float32
        p = p.to(dtype)
        key = (str(p.device), dtype)
        if key not in self._cache:
            # grid_sample reads (N,C,D,H,W) and takes coordinates as (w,h,d): x is D, z is W
            self._cache[key] = self._table.reshape(1, 1, *self.values.shape).to(device=p.device, dtype=dtype)
        volume = self._cache[key]
        n = torch.tensor(self.values.shape, device=p.device, dtype=dtype)
        lo = torch.as_tensor(self.origin + 0.5 * self.voxel, dtype=dtype, device=p.device)
        hi = lo + (n - 1) * self.voxel
        pc = torch.minimum(torch.maximum(p, lo), hi)
        outside = torch.linalg.vector_norm(p - pc, dim=-1)
        unit = 2.0 * (pc - lo) / (hi - lo) - 1.0  # (N,3) in [-1,1], voxel centres at the ends (align_corners)
        grid = unit.flip(-1).reshape(1, 1, 1, -1, 3)
        inside = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return (inside.reshape(-1) + outside).reshape(points.shape[:-1])

    def probe_blended(self) -> "GridSDF":
        """This box with each value v replaced by v/2 + (the mean of v and its six axis neighbours)/2.

        Why: `hosig.motion.refine.probed_distance` blends a point's distance with six probes one
        voxel away along the axes; trilinear interpolation commutes with that shift, so querying
        this grid once equals the seven queries (edges repeat their last voxel)."""
        v = self.values
        pad = np.pad(v, 1, mode="edge")
        ring = (pad[2:, 1:-1, 1:-1] + pad[:-2, 1:-1, 1:-1] + pad[1:-1, 2:, 1:-1] + pad[1:-1, :-2, 1:-1]
                + pad[1:-1, 1:-1, 2:] + pad[1:-1, 1:-1, :-2])
        return GridSDF(0.5 * v + 0.5 * (v + ring) / 7.0, self.origin, self.voxel)

    def query_np(self, points: np.ndarray) -> np.ndarray:
        import torch

        pts = np.asarray(points, dtype=np.float64)
        with torch.no_grad():
            return self.query(torch.from_numpy(pts.reshape(-1, 3))).numpy().reshape(pts.shape[:-1])


def _grow(arr: np.ndarray, shape) -> np.ndarray:
    """``arr`` zero-padded at the far ends to ``shape`` (pooling rounds a partial last block up; it never falls short)."""
    if arr.shape == tuple(shape):
        return arr
    out = np.zeros(shape, dtype=arr.dtype)
    out[: arr.shape[0], : arr.shape[1], : arr.shape[2]] = arr
    return out


def build_sdf(occ: Occupancy, clamp: float = 2.0, band: float = 0.16, far_voxel: float = 0.08) -> SceneSDF:
    """Two-level SDF over an occupancy grid (far field now, near-field tiles on first use)."""
    return SceneSDF(occ, clamp=clamp, band=band, far_voxel=far_voxel)
