"""A dense signed-distance crop of the scene around one grasp, queried in pure torch.

Why: the optimiser asks for the scene distance of a few thousand body points per step, a few
hundred steps per grasp. The scene module's tiled SDF is built for whole rooms and pays a numpy
gather per query; here the occupancy (`scene.occupancy(exclude)`, the same voxels) is cropped to
the region the body can occupy and turned into a signed EDT once (~0.1 s), after which every query
is eight tensor gathers. Semantics match `hosig.scene.sdf`: distance between voxel centres shifted
by half a voxel (zero level on voxel faces), negative inside, trilinear between centres; points
outside the crop read the crop's edge value plus their distance to it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


class LocalSDF:
    """Signed distance (m) in the box ``lo..hi`` (world, Z-up) of a scene without some objects."""

    def __init__(self, scene: object, exclude: tuple[str, ...], lo: np.ndarray, hi: np.ndarray, clamp: float = 0.5) -> None:
        occ = scene.occupancy(exclude=exclude)  # type: ignore[attr-defined]
        v = float(occ.voxel)
        grid = occ.grid
        i0 = np.clip(np.floor((np.asarray(lo) - occ.origin) / v).astype(int), 0, np.array(grid.shape))
        i1 = np.clip(np.ceil((np.asarray(hi) - occ.origin) / v).astype(int), 0, np.array(grid.shape))
        crop = grid[i0[0] : i1[0], i0[1] : i1[1], i0[2] : i1[2]]
        self.voxel = v
        self.origin = occ.origin + i0 * v  # min corner of the crop box
        if crop.size == 0 or not crop.any():
            values = np.full(np.maximum(crop.shape, 2), clamp, dtype=np.float32)
        else:
            out = ndimage.distance_transform_edt(~crop).astype(np.float32) * v - v / 2
            depth = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1, 1:-1].astype(np.float32) * v - v / 2
            values = np.where(crop, -depth, out)
        self.values = np.clip(values, -clamp, clamp).astype(np.float32)
        self._table = torch.from_numpy(self.values.reshape(-1))
        self._shape = torch.tensor(self.values.shape)

    def query(self, points: torch.Tensor) -> torch.Tensor:
        """(...,3) -> (...) signed distance, differentiable in the points."""
        p = points.reshape(-1, 3)
        dtype = p.dtype
        shape = self._shape
        lo = torch.as_tensor(self.origin + 0.5 * self.voxel, dtype=dtype)
        hi = lo + (shape.to(dtype) - 1) * self.voxel
        pc = torch.minimum(torch.maximum(p, lo), hi)
        outside = torch.linalg.vector_norm(p - pc, dim=-1)
        u = (pc - lo) / self.voxel
        i0 = torch.minimum(torch.floor(u).detach(), (shape - 2).clamp(min=0).to(dtype))
        frac = u - i0
        i0 = i0.long()
        i1 = torch.minimum(i0 + 1, shape - 1)
        ny, nz = int(shape[1]), int(shape[2])
        out = torch.zeros(p.shape[0], dtype=dtype)
        for cx in (0, 1):
            ix, wx = (i1[:, 0], frac[:, 0]) if cx else (i0[:, 0], 1 - frac[:, 0])
            for cy in (0, 1):
                iy, wy = (i1[:, 1], frac[:, 1]) if cy else (i0[:, 1], 1 - frac[:, 1])
                for cz in (0, 1):
                    iz, wz = (i1[:, 2], frac[:, 2]) if cz else (i0[:, 2], 1 - frac[:, 2])
                    out = out + wx * wy * wz * self._table[(ix * ny + iy) * nz + iz].to(dtype)
        return (out + outside).reshape(points.shape[:-1])

    def query_np(self, points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.query(torch.as_tensor(np.asarray(points, dtype=np.float64))).numpy()


def grasp_region(stand: tuple[float, float, float], obj_bounds: np.ndarray, floor_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Box the body can occupy while grasping: around the stand point and the object."""
    s = np.array([stand[0], stand[1], floor_z])
    lo = np.minimum(s - [0.75, 0.75, 0.15], obj_bounds[0] - 0.35)
    hi = np.maximum(s + [0.75, 0.75, 2.3], obj_bounds[1] + 0.35)
    lo[2] = floor_z - 0.15
    return lo, hi
