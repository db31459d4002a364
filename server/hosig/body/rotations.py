"""Batched, differentiable rotation conversions in torch (axis-angle, matrices, 6D).

Why here: the body model, retargeting, the motion representation and guidance all convert between
SMPL-X's axis-angle parameters and the 6D representation the networks use (Zhou et al. 2019: the
first two COLUMNS of the rotation matrix). One implementation keeps them consistent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle -> (...,3,3) rotation matrices (Rodrigues; smooth at zero)."""
    angle_sq = (aa * aa).sum(-1, keepdim=True)  # (...,1)
    angle = torch.sqrt(angle_sq.clamp_min(1e-16))
    small = angle_sq < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor expansions near zero (keeps gradients finite)
    a = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / angle_sq.clamp_min(1e-16))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(aa.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(...,3,3) rotation matrices -> (...,3) axis-angle with angle in [0, pi]."""
    q = matrix_to_quaternion(R)
    return quaternion_to_axis_angle(q)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """(...,3,3) -> (...,4) unit quaternion (w, x, y, z) with w >= 0 (numerically robust branch)."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # (...,4,4): row k is 4*q*q_k
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(-1, keepdim=True)
    row = torch.gather(candidates, -2, best[..., None].expand(best.shape[:-1] + (1, 4))).squeeze(-2)
    q = F.normalize(row, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(...,4) (w,x,y,z) -> (...,3) axis-angle."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = torch.linalg.norm(xyz, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    scale = torch.where(s < 1e-8, 2.0 / q[..., :1].clamp_min(1e-8), angle / s.clamp_min(1e-12))
    return xyz * scale


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(...,4) (w,x,y,z) -> (...,3,3)."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(q.shape[:-1] + (3, 3))  # fmt: skip


def matrix_to_6d(R: torch.Tensor) -> torch.Tensor:
    """(...,3,3) -> (...,6): the first two columns, concatenated (column 0 then column 1)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(...,6) -> (...,3,3) by Gram-Schmidt (Zhou et al.); any 6-vector gives a valid rotation."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def axis_angle_to_6d(aa: torch.Tensor) -> torch.Tensor:
    """(...,3) -> (...,6)."""
    return matrix_to_6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    """(...,6) -> (...,3)."""
    return matrix_to_axis_angle(rot6d_to_matrix(d6))
