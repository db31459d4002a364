"""Signed distance field of a scene from its occupancy, queried from torch (differentiable).

Distances come from scipy's exact Euclidean distance transform on the occupancy grid: outside
voxels get the distance to the nearest occupied voxel centre, inside voxels minus the distance to
the nearest free one, each shifted by half a voxel so the zero level sits on the voxel faces
between the two. Values are clamped to +-clamp. Open meshes and planes are a one-voxel shell,
so they read about -voxel/2 on the shell and positive on both sides.

Lookups are hand-written trilinear interpolation over voxel centres, in torch so gradients flow
to the query points; points beyond the grid get the distance to the grid's centre box added to
the edge value, so the result is finite everywhere and keeps pointing back towards the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from hosig.scene.occupancy import Occupancy

if TYPE_CHECKING:  # torch is imported on first query: `hosig scene inspect` never needs it
    import torch


@dataclass
class SceneSDF:
    """values (nx,ny,nz) float32 metres at voxel centres origin + (idx + 0.5) * voxel."""

    values: np.ndarray
    origin: np.ndarray  # (3,) min corner of the grid box
    voxel: float
    clamp: float

    def __post_init__(self) -> None:
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        self.origin = np.asarray(self.origin, dtype=np.float64)
        self._flat: dict[tuple, "torch.Tensor"] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    def _table(self, device: "torch.device", dtype: "torch.dtype") -> "torch.Tensor":
        import torch

        key = (str(device), dtype)
        if key not in self._flat:
            self._flat[key] = torch.from_numpy(self.values.reshape(-1)).to(device=device, dtype=dtype)
        return self._flat[key]

    def query(self, points: "torch.Tensor") -> "torch.Tensor":
        """points (...,3) world metres -> (...) signed distance (negative inside), differentiable."""
        import torch

        if not torch.is_tensor(points):
            points = torch.as_tensor(points, dtype=torch.float32)
        dtype = points.dtype if points.dtype.is_floating_point else torch.float32
        device = points.device
        p = points.reshape(-1, 3).to(dtype)
        shape = torch.tensor(self.values.shape, device=device)
        origin = torch.as_tensor(self.origin, device=device, dtype=dtype)
        lo = origin + 0.5 * self.voxel
        hi = origin + (shape.to(dtype) - 0.5) * self.voxel
        pc = torch.minimum(torch.maximum(p, lo), hi)
        outside = torch.linalg.vector_norm(p - pc, dim=-1)
        # Continuous index over voxel centres; `floor` is piecewise constant, gradients flow via frac.
        u = (pc - lo) / self.voxel
        i0 = torch.floor(u).detach()
        i0 = torch.minimum(i0, (shape - 2).clamp(min=0).to(dtype))
        frac = u - i0
        i0 = i0.long()
        i1 = torch.minimum(i0 + 1, shape - 1)
        table = self._table(device, dtype)
        ny, nz = int(shape[1]), int(shape[2])
        out = torch.zeros(p.shape[0], dtype=dtype, device=device)
        for cx in (0, 1):
            ix = i1[:, 0] if cx else i0[:, 0]
            wx = frac[:, 0] if cx else 1 - frac[:, 0]
            for cy in (0, 1):
                iy = i1[:, 1] if cy else i0[:, 1]
                wy = frac[:, 1] if cy else 1 - frac[:, 1]
                for cz in (0, 1):
                    iz = i1[:, 2] if cz else i0[:, 2]
                    wz = frac[:, 2] if cz else 1 - frac[:, 2]
                    out = out + wx * wy * wz * table[(ix * ny + iy) * nz + iz]
        return (out + outside).reshape(points.shape[:-1])

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

    def nbytes(self) -> int:
        return int(self.values.nbytes)


def build_sdf(occ: Occupancy, clamp: float) -> SceneSDF:
    """Signed distance at voxel centres from an occupancy grid (see module docstring)."""
    grid = occ.grid
    v = occ.voxel
    if not grid.any():
        values = np.full(grid.shape, clamp, dtype=np.float32)
        return SceneSDF(values=values, origin=occ.origin, voxel=v, clamp=clamp)
    # Outside: distance from each free voxel centre to the nearest occupied centre.
    out = ndimage.distance_transform_edt(~grid).astype(np.float32)
    values = out * np.float32(v) - np.float32(0.5 * v)
    # Inside: only inside each object's voxel box (cheap crops instead of a second full EDT).
    depth = np.zeros(grid.shape, dtype=np.float32)
    slices = list(occ.object_slices.values()) or [tuple(slice(0, n) for n in grid.shape)]
    for sl in slices:
        crop = grid[sl]
        if not crop.any():
            continue
        padded = np.pad(crop, 1, constant_values=False)
        d_in = ndimage.distance_transform_edt(padded)[1:-1, 1:-1, 1:-1].astype(np.float32)
        np.maximum(depth[sl], d_in, out=depth[sl])
    inside = grid
    values[inside] = -(depth[inside] * np.float32(v) - np.float32(0.5 * v))
    np.clip(values, -clamp, clamp, out=values)
    return SceneSDF(values=values, origin=occ.origin, voxel=v, clamp=clamp)
