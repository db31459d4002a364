"""Loss terms of the grasp optimiser as pure torch functions, each (B,...) -> (B,) per candidate.

Per-candidate values (not batch means) so the same numbers rank the candidates afterwards.
"""

from __future__ import annotations

import torch


def palm_position(palm_centre: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,3),(B,3) -> squared distance of the palm centre to its target."""
    return ((palm_centre - target) ** 2).sum(-1)


def direction_mismatch(actual: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,3),(B,3) unit vectors -> 1 - cos (0 aligned, 2 opposite)."""
    return 1.0 - (actual * target).sum(-1)


def penetration(sdf_values: torch.Tensor, margin: float | torch.Tensor) -> torch.Tensor:
    """(B,N) signed distances -> summed squared depth below ``margin`` (scalar or (N,); hinge)."""
    return (torch.relu(margin - sdf_values) ** 2).sum(-1)


def feet_on_floor(sole_z: torch.Tensor, floor_z: float) -> torch.Tensor:
    """(B,N) sole vertex heights -> mean squared height above/below the floor (flat feet)."""
    return ((sole_z - floor_z) ** 2).mean(-1)


def stand_offset(feet_mid_xy: torch.Tensor, stand_xy: torch.Tensor, slack: float) -> torch.Tensor:
    """(B,2) midpoint of the feet vs (2,) stand point: squared excess over ``slack``."""
    d = torch.sqrt(((feet_mid_xy - stand_xy) ** 2).sum(-1) + 1e-12)
    return torch.relu(d - slack) ** 2


def heading_error(forward: torch.Tensor, heading: float) -> torch.Tensor:
    """(B,3) body forward axis -> 1 - cos of its horizontal angle to ``heading``."""
    f = forward[:, :2] / torch.sqrt((forward[:, :2] ** 2).sum(-1, keepdim=True) + 1e-9)
    h = torch.tensor([float(torch.cos(torch.tensor(heading))), float(torch.sin(torch.tensor(heading)))])
    return 1.0 - (f * h).sum(-1)


def com_support(com_xy: torch.Tensor, left_xy: torch.Tensor, right_xy: torch.Tensor, radius: float) -> torch.Tensor:
    """Squared distance of the centre of mass beyond ``radius`` from the segment between the feet.

    The support polygon of two flat feet is approximated by that segment thickened by ``radius``.
    """
    seg = right_xy - left_xy
    t = ((com_xy - left_xy) * seg).sum(-1) / ((seg * seg).sum(-1) + 1e-9)
    closest = left_xy + t.clamp(0.0, 1.0)[:, None] * seg
    d = torch.sqrt(((com_xy - closest) ** 2).sum(-1) + 1e-12)
    return torch.relu(d - radius) ** 2


def gaze(head_pos: torch.Tensor, head_forward: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,3) head joint, (B,3) head forward axis, (3,) look-at point -> 1 - cos."""
    to = target - head_pos
    to = to / torch.sqrt((to * to).sum(-1, keepdim=True) + 1e-9)
    return 1.0 - (head_forward * to).sum(-1)
