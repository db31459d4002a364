"""An analytic scene for tests of the scene terms: one infinite slab (a wall, a table top)."""

from __future__ import annotations

import numpy as np
import torch


class Slab:
    """Signed distance to the slab ``lo <= p[axis] <= hi`` (negative inside), in torch and numpy."""

    def __init__(self, axis: int, lo: float, hi: float) -> None:
        self.axis, self.lo, self.hi = axis, lo, hi

    def query(self, points: torch.Tensor) -> torch.Tensor:
        v = points[..., self.axis]
        return torch.maximum(self.lo - v, v - self.hi)

    def query_np(self, points: np.ndarray) -> np.ndarray:
        v = np.asarray(points)[..., self.axis]
        return np.maximum(self.lo - v, v - self.hi)
