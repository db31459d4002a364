"""A light, batched, differentiable SMPL-X posing for the grasp optimiser (Z-up world).

Why not ``BodyModel.forward`` in the loop: full skinning of ~10k vertices with pose blend shapes,
for 8-16 candidates and a few hundred Adam steps, costs seconds on two CPU cores. The optimiser
only needs joints and a few hundred vertices (hand, feet, a body sample), so this module does
forward kinematics by tree depth (about 11 batched steps instead of 55) and linear blend skinning
of a chosen vertex subset, without pose blend shapes (millimetre effect). Final metrics are always
measured on the full ``BodyModel.forward`` output.

Conventions match smplx with a Z-up global orient: joint j lands at ``posed_j + transl`` where the
root's posed position is the rest pelvis ``J0`` (the orient rotates about it), exactly as
`hosig.frames.transl_yup_to_zup` documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hosig.body.skeleton import NUM_JOINTS, PARENTS


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle -> (...,3,3) rotation matrices (safe at zero angle)."""
    angle = torch.sqrt((aa * aa).sum(-1, keepdim=True) + 1e-12)  # (...,1)
    axis = aa / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(k.shape)
    return eye + s * k + (1.0 - c) * (k @ k)


def matrix_to_axis_angle(mat: np.ndarray) -> np.ndarray:
    """(...,3,3) -> (...,3) axis-angle (numpy, via scipy; used outside the autograd loop)."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(mat, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*np.shape(mat)[:-2], 3)


@dataclass
class LiteBody:
    """Rest geometry of one body (fixed betas) ready for fast posing.

    rest_joints (55,3) and rest_vertices (V,3) are in the model's Y-up frame; lbs_weights (V,55);
    hand means (45,) are the smplx ``left/right_hand_mean`` added to hand poses (flat_hand_mean=False).
    """

    rest_joints: torch.Tensor
    rest_vertices: torch.Tensor
    lbs_weights: torch.Tensor
    left_hand_mean: torch.Tensor
    right_hand_mean: torch.Tensor
    faces: np.ndarray
    betas: torch.Tensor

    @staticmethod
    def from_body(body: object, betas: np.ndarray | None = None) -> "LiteBody":
        """Read v_template/shapedirs/J_regressor/lbs_weights from the body's smplx module."""
        model = body.smplx  # type: ignore[attr-defined]
        with torch.no_grad():
            v = model.v_template.detach().double()
            nb = model.shapedirs.shape[-1]
            b = torch.zeros(nb, dtype=torch.float64)
            if betas is not None:
                bb = torch.as_tensor(np.asarray(betas, dtype=np.float64)).flatten()[:nb]
                b[: len(bb)] = bb
            v = v + torch.einsum("vcb,b->vc", model.shapedirs.detach().double(), b)
            j = model.J_regressor.detach().double() @ v
            zeros = torch.zeros(45, dtype=torch.float64)
            lm = getattr(model, "left_hand_mean", None)
            rm = getattr(model, "right_hand_mean", None)
        return LiteBody(
            rest_joints=j.float(),
            rest_vertices=v.float(),
            lbs_weights=model.lbs_weights.detach().float(),
            left_hand_mean=(lm.detach().double() if lm is not None else zeros).float().flatten(),
            right_hand_mean=(rm.detach().double() if rm is not None else zeros).float().flatten(),
            faces=np.asarray(body.faces, dtype=np.int64),  # type: ignore[attr-defined]
            betas=b.float(),
        )

    @property
    def pelvis_rest(self) -> torch.Tensor:
        return self.rest_joints[0]


def _levels() -> list[np.ndarray]:
    depth = np.zeros(NUM_JOINTS, dtype=np.int64)
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    return [np.nonzero(depth == d)[0] for d in range(1, int(depth.max()) + 1)]


_LEVELS = _levels()


def local_rotations(
    lite: LiteBody,
    global_orient: torch.Tensor,
    body_pose: torch.Tensor,
    left_hand_pose: torch.Tensor,
    right_hand_pose: torch.Tensor,
) -> torch.Tensor:
    """(B,55,3,3) local rotations; hand poses are relative to the hand means (smplx convention)."""
    bsz = global_orient.shape[0]
    zeros = torch.zeros(bsz, 9, dtype=global_orient.dtype)
    aa = torch.cat(
        [
            global_orient,
            body_pose,
            zeros,  # jaw, eyes
            left_hand_pose + lite.left_hand_mean,
            right_hand_pose + lite.right_hand_mean,
        ],
        dim=1,
    ).reshape(bsz, NUM_JOINTS, 3)
    return rodrigues(aa)


def _level_parents() -> list[np.ndarray]:
    """For each level, the position of every joint's parent within the previous level."""
    prev = np.array([0])
    out = []
    for idx in _LEVELS:
        where = {int(j): k for k, j in enumerate(prev)}
        out.append(np.array([where[int(PARENTS[j])] for j in idx]))
        prev = idx
    return out


_LEVEL_PARENTS = _level_parents()
_ORDER = np.concatenate([[0]] + _LEVELS)
_INVERSE_ORDER = np.argsort(_ORDER)


def forward_kinematics(lite: LiteBody, rot: torch.Tensor, transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global rotations (B,55,3,3) and joint positions (B,55,3), Z-up world.

    One batched step per tree depth: a joint's parent always sits in the previous level.
    """
    bsz = rot.shape[0]
    rest = lite.rest_joints
    rel = rest - torch.cat([rest[:1] * 0, rest[PARENTS[1:]]], 0)  # (55,3) offset from parent
    rots = [rot[:, :1]]
    poss = [(rest[0] + transl).reshape(bsz, 1, 3)]
    for idx, par in zip(_LEVELS, _LEVEL_PARENTS):
        pr = rots[-1][:, par]  # (B,n,3,3)
        pp = poss[-1][:, par]
        rots.append(pr @ rot[:, idx])
        poss.append(pp + (pr @ rel[idx][None, :, :, None])[..., 0])
    inv = torch.as_tensor(_INVERSE_ORDER)
    return torch.cat(rots, 1)[:, inv], torch.cat(poss, 1)[:, inv]


def skin(lite: LiteBody, g_rot: torch.Tensor, g_pos: torch.Tensor, vert_idx: torch.Tensor) -> torch.Tensor:
    """(B,n,3) world positions of the rest vertices ``vert_idx`` (linear blend skinning)."""
    w = lite.lbs_weights[vert_idx]  # (n,55)
    v = lite.rest_vertices[vert_idx]  # (n,3)
    # Per joint: x -> R_j (x - J_j) + p_j  ==  R_j x + (p_j - R_j J_j)
    t = g_pos - (g_rot @ lite.rest_joints[None, :, :, None])[..., 0]  # (B,55,3)
    a = torch.cat([g_rot.reshape(*g_rot.shape[:2], 9), t], -1)  # (B,55,12)
    blended = torch.einsum("nj,bjk->bnk", w, a)  # (B,n,12), one BLAS call
    r = blended[..., :9].reshape(*blended.shape[:2], 3, 3)
    return (r @ v[None, :, :, None])[..., 0] + blended[..., 9:]
