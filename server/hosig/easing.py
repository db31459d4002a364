"""Easing curves shared by the stages (one home, like `hosig.body.rotations` for rotations)."""

from __future__ import annotations

import numpy as np


def smoothstep(u):
    """0..1 -> 0..1 with zero slope at both ends (clamped outside): a scalar or an array of any shape."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)
