"""The motion features the denoiser sees: SMPL-X rotations (6D) + root position, per window.

Per frame (D = 319 channels):
  pelvis   3   pelvis joint position in the window's canonical frame (exact, no integration drift)
  root     6   global orient (Z-up) as 6D, canonical frame
  body   126   21 body joints, local rotations as 6D
  hands  180   30 finger joints (15 left, 15 right), local rotations as 6D
  contact  4   foot contacts (left ankle, left toe, right ankle, right toe) in [0,1]

Canonical frame of a window: origin at the first frame's pelvis (x, y; z stays absolute so the
floor is z=0), rotated about +Z so that the first frame's heading is 0 (+X). Keyframes come out
directly (rotations, not joint positions), so no post-hoc IK is needed to animate a rig.

Joint-position channels (conditioning only, J = 18): pelvis, wrists, feet (toe joints) and head,
canonical frame; they let anchors talk about positions at any frame.

6D follows Zhou et al. (first two rows of the matrix, as pytorch3d); decoding uses Gram-Schmidt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.body.rotations import axis_angle_to_matrix

# SMPL-X joint indices (smplx.joint_names.JOINT_NAMES[:55]).
PELVIS, HEAD = 0, 15
LEFT_WRIST, RIGHT_WRIST = 20, 21
LEFT_ANKLE, RIGHT_ANKLE, LEFT_FOOT, RIGHT_FOOT = 7, 8, 10, 11
BODY_JOINTS = list(range(1, 22))  # 21
HAND_JOINTS = list(range(25, 55))  # 30 (15 left, 15 right)
LEFT_HAND_JOINTS = list(range(25, 40))
RIGHT_HAND_JOINTS = list(range(40, 55))
ROT_JOINTS = [0] + BODY_JOINTS + HAND_JOINTS  # 52 joints carried as 6D, in feature order
FOOT_CONTACT_JOINTS = [LEFT_ANKLE, LEFT_FOOT, RIGHT_ANKLE, RIGHT_FOOT]
ANCHOR_JOINTS = [PELVIS, LEFT_WRIST, RIGHT_WRIST, LEFT_FOOT, RIGHT_FOOT, HEAD]
ANCHOR_JOINT_NAMES = ["pelvis", "left_wrist", "right_wrist", "left_foot", "right_foot", "head"]


class Layout:
    """Channel slices of the feature vector (constants)."""

    pelvis = slice(0, 3)
    root = slice(3, 9)
    body = slice(9, 135)
    hands = slice(135, 315)
    contacts = slice(315, 319)
    dim = 319
    joint_dim = 3 * len(ANCHOR_JOINTS)  # 18

    def rot_slice(self, joint: int) -> slice:
        """Feature channels of one joint's 6D rotation (joint index in SMPL-X order)."""
        k = ROT_JOINTS.index(joint)
        return slice(3 + 6 * k, 9 + 6 * k)

    def joint_slice(self, joint: int) -> slice:
        """Joint-position channels of an anchorable joint."""
        k = ANCHOR_JOINTS.index(joint)
        return slice(3 * k, 3 * k + 3)


LAYOUT = Layout()


# ---------------------------------------------------------------- rotations (torch, differentiable)

def aa_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle -> (...,3,3) rotation matrices (`hosig.body.rotations`, smooth at zero)."""
    return axis_angle_to_matrix(aa)


def matrix_to_aa(mat: np.ndarray) -> np.ndarray:
    """(...,3,3) -> (...,3) axis-angle (scipy, robust near pi); numpy only (output path)."""
    from scipy.spatial.transform import Rotation

    shape = mat.shape[:-2]
    out = Rotation.from_matrix(np.asarray(mat, dtype=np.float64).reshape(-1, 3, 3)).as_rotvec()
    return out.reshape(*shape, 3)


def matrix_to_6d(mat: torch.Tensor) -> torch.Tensor:
    """(...,3,3) -> (...,6): the first two rows."""
    return mat[..., :2, :].reshape(*mat.shape[:-2], 6)


def sixd_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(...,6) -> (...,3,3) by Gram-Schmidt (rows), the inverse of `matrix_to_6d` on rotations."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def rot_z(angle: torch.Tensor) -> torch.Tensor:
    """(...,) radians -> (...,3,3) rotation about +Z."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(*angle.shape, 3, 3)


def heading_of(root_mat: torch.Tensor) -> torch.Tensor:
    """(...,3,3) Z-up global orient -> (...,) heading: the body's forward (model +Z) about +Z."""
    fwd = root_mat[..., :, 2]
    return torch.atan2(fwd[..., 1], fwd[..., 0])


# ---------------------------------------------------------------- canonical frames

@dataclass(frozen=True)
class CanonFrame:
    """Where a window sits in the world: pelvis xy of its first frame, its heading and the floor.

    Canonical coordinates stand on the floor (z = 0 is the floor's top, as in the training data),
    whatever the floor's height in the world: a raised or lowered floor looks the same to the network.
    """

    x: float
    y: float
    heading: float
    z: float = 0.0  # world height of the floor

    def to_canon_points(self, p: np.ndarray) -> np.ndarray:
        """(...,3) world -> canonical."""
        c, s = np.cos(-self.heading), np.sin(-self.heading)
        q = np.asarray(p, dtype=np.float64) - np.array([self.x, self.y, self.z])
        return np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1], q[..., 2]], -1)

    def to_world_points_t(self, p: torch.Tensor) -> torch.Tensor:
        """(...,3) canonical -> world (torch, differentiable)."""
        c, s = float(np.cos(self.heading)), float(np.sin(self.heading))
        x = c * p[..., 0] - s * p[..., 1] + self.x
        y = s * p[..., 0] + c * p[..., 1] + self.y
        return torch.stack([x, y, p[..., 2] + self.z], -1)

    def yaw(self) -> np.ndarray:
        c, s = np.cos(self.heading), np.sin(self.heading)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def compose(self, inner: "CanonFrame") -> "CanonFrame":
        """The world frame of a frame given in this frame's canonical coordinates."""
        p = self.to_world_points_t(torch.tensor([inner.x, inner.y, inner.z], dtype=torch.float64))
        return CanonFrame(float(p[0]), float(p[1]), float(self.heading + inner.heading), float(p[2]))


# ---------------------------------------------------------------- encode / decode

def world_tensors(poses: np.ndarray, pelvis: np.ndarray) -> dict[str, torch.Tensor]:
    """Per-frame, frame-independent tensors from world data (precomputed once for training).

    poses (T,165) axis-angle (Z-up global orient), pelvis (T,3) world pelvis joint position.
    Returns root (T,3,3), local6d (T,51*6) body+hands 6D, pelvis (T,3).
    """
    aa = torch.as_tensor(np.asarray(poses, dtype=np.float32)).reshape(-1, 55, 3)
    mats = aa_to_matrix(aa)
    local = matrix_to_6d(mats[:, ROT_JOINTS[1:]]).reshape(len(aa), -1)
    return {"root": mats[:, 0], "local6d": local, "pelvis": torch.as_tensor(np.asarray(pelvis, dtype=np.float32))}


def canonicalize(root: torch.Tensor, pelvis: torch.Tensor, joints: torch.Tensor | None = None):
    """Canonicalise windows on their first frame.

    root (B,W,3,3), pelvis (B,W,3), joints (B,W,J,3) world -> same in canonical frame, plus the
    first-frame (x, y, heading) (B,3) that undoes it.
    """
    h0 = heading_of(root[:, 0])  # (B,)
    r = rot_z(-h0)[:, None]  # (B,1,3,3)
    origin = torch.zeros_like(pelvis[:, 0])
    origin[:, :2] = pelvis[:, 0, :2]
    root_c = r @ root
    pel_c = ((pelvis - origin[:, None]) [..., None, :] @ r.transpose(-1, -2))[..., 0, :]
    out = [root_c, pel_c]
    if joints is not None:
        j = joints - origin[:, None, None]
        out.append(torch.einsum("bij,bwkj->bwki", r[:, 0], j))
    frame = torch.stack([origin[:, 0], origin[:, 1], h0], -1)
    return (*out, frame)


def assemble(pelvis_c: torch.Tensor, root_c: torch.Tensor, local6d: torch.Tensor, contacts: torch.Tensor) -> torch.Tensor:
    """(…,W,3),(…,W,3,3),(…,W,306),(…,W,4) -> features (…,W,319)."""
    return torch.cat([pelvis_c, matrix_to_6d(root_c), local6d, contacts], dim=-1)


def encode_window(poses: np.ndarray, pelvis: np.ndarray, contacts: np.ndarray, frame: CanonFrame | None = None):
    """World clip -> (features (T,319) float32 tensor, CanonFrame). Canonical on frame 0 unless given."""
    wt = world_tensors(poses, pelvis)
    root, pel = wt["root"][None], wt["pelvis"][None]
    if frame is None:
        root_c, pel_c, f = canonicalize(root, pel)
        frame = CanonFrame(float(f[0, 0]), float(f[0, 1]), float(f[0, 2]))
    else:
        yaw_inv = torch.as_tensor(frame.yaw().T, dtype=torch.float32)
        root_c = yaw_inv @ root
        pel_c = torch.as_tensor(frame.to_canon_points(pelvis), dtype=torch.float32)[None]
    feats = assemble(pel_c, root_c, wt["local6d"][None], torch.as_tensor(np.asarray(contacts, np.float32))[None])
    return feats[0], frame


@dataclass
class Decoded:
    """Features turned back into what FK and the clip need (canonical frame unless moved)."""

    rotmats: torch.Tensor  # (…,W,55,3,3) local rotations, [0] = global orient; jaw/eyes identity
    pelvis: torch.Tensor  # (…,W,3)
    contacts: torch.Tensor  # (…,W,4)


def decode(feats: torch.Tensor) -> Decoded:
    """(…,W,319) features -> rotation matrices + pelvis + contacts. Differentiable."""
    lead = feats.shape[:-1]
    rots6 = feats[..., 3:315].reshape(*lead, 52, 6)
    mats52 = sixd_to_matrix(rots6)
    eye = torch.eye(3, dtype=feats.dtype, device=feats.device).expand(*lead, 3, 3, 3)
    full = torch.cat([mats52[..., :22, :, :], eye, mats52[..., 22:, :, :]], dim=-3)  # jaw, eyes = identity
    return Decoded(rotmats=full, pelvis=feats[..., 0:3], contacts=feats[..., 315:319])


def to_world(dec: Decoded, frame: CanonFrame) -> tuple[np.ndarray, np.ndarray]:
    """Decoded canonical window -> (poses (W,165) axis-angle Z-up world, pelvis (W,3) world)."""
    rot = dec.rotmats.detach().double().cpu().numpy().copy()
    rot[..., 0, :, :] = frame.yaw() @ rot[..., 0, :, :]
    pel = frame.to_world_points_t(dec.pelvis.detach().double()).cpu().numpy()
    poses = matrix_to_aa(rot).reshape(*rot.shape[:-3], 165)
    return poses.astype(np.float32), pel.astype(np.float32)


def channel_validity(valid_joints: np.ndarray) -> np.ndarray:
    """(N,55) per-joint rotation validity -> (N,319) per-channel validity (position/contacts always valid)."""
    v = np.asarray(valid_joints, dtype=bool)
    out = np.ones((v.shape[0], LAYOUT.dim), dtype=bool)
    for k, j in enumerate(ROT_JOINTS):
        out[:, 3 + 6 * k: 9 + 6 * k] = v[:, j: j + 1]
    return out


@dataclass
class Stats:
    """Per-channel normalisation (stored in the checkpoint)."""

    mean: torch.Tensor  # (319,)
    std: torch.Tensor  # (319,)
    jmean: torch.Tensor  # (18,)
    jstd: torch.Tensor  # (18,)
    foot_height: torch.Tensor = field(default_factory=lambda: torch.tensor([0.08, 0.03, 0.08, 0.03]))  # (4,) z in contact

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denorm(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def jnorm(self, j: torch.Tensor) -> torch.Tensor:
        return (j - self.jmean) / self.jstd


class SkeletonFK:
    """Fast differentiable FK over the first ``n`` joints (guidance needs body + wrists, not fingers).

    Same maths as `BodyModel.fk` (rest offsets of the body's skeleton, model frame; rotations
    local, ``[0]`` the Z-up global orient), but stops early: 22 joints instead of 55.
    """

    def __init__(self, body) -> None:
        parents = np.asarray(body.parents, dtype=np.int64)
        rest = np.asarray(body.rest_joints_y, dtype=np.float64)
        off = rest.copy()
        off[1:] -= rest[parents[1:]]
        self.parents = parents
        self.offsets = torch.tensor(off, dtype=torch.float32)
        self.identity = getattr(body, "identity", "")

    def __call__(self, rotmats: torch.Tensor, root: torch.Tensor, n: int = 22) -> torch.Tensor:
        """rotmats (...,>=n,3,3), root (...,3) -> joints (...,n,3)."""
        return self.transforms(rotmats, root, n)[1]

    def transforms(self, rotmats: torch.Tensor, root: torch.Tensor, n: int = 22) -> tuple[torch.Tensor, torch.Tensor]:
        """rotmats (...,>=n,3,3), root (...,3) -> global rotations (...,n,3,3), positions (...,n,3)."""
        glob = [rotmats[..., 0, :, :]]
        pos = [root]
        for j in range(1, n):
            p = int(self.parents[j])
            glob.append(glob[p] @ rotmats[..., j, :, :])
            pos.append(pos[p] + (glob[p] @ self.offsets[j]))
        return torch.stack(glob, dim=-3), torch.stack(pos, dim=-2)


_FK_CACHE: dict[int, SkeletonFK] = {}


def skeleton_fk(body) -> SkeletonFK:
    """Cached `SkeletonFK` per body object."""
    key = id(body)
    if key not in _FK_CACHE:
        _FK_CACHE[key] = SkeletonFK(body)
    return _FK_CACHE[key]
