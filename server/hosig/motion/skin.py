"""A sparse stand-in for the body surface that the motion stage can afford to test every frame.

Why: joints and bone midpoints with radii (the guidance's scene term) miss what actually touches
furniture — fingertips, the back of a hand, a knee cap — while full linear-blend skinning of 10 k
vertices inside an optimiser is too slow on a CPU. These points are ~1450 rest-mesh vertices: 512 spread
evenly over the skin (farthest-point sampling), 128 per hand, and every sole vertex (a toe pitched
at toe-off dips between sparser samples: 96 sole samples left 5 mm dips between them),
skinned by their four heaviest joints, i.e. the mesh's own linear blend skinning at those vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BODY_JOINT_COUNT = 22  # pelvis .. wrists: what `refine` rotates
LEFT_WRIST, RIGHT_WRIST = 20, 21


def farthest_point_indices(points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` points spread evenly over (N,3) ``points`` (greedy farthest-point)."""
    n = len(points)
    if count >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = np.empty(count, np.int64)
    chosen[0] = int(rng.integers(n))
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for k in range(1, count):
        chosen[k] = int(dist.argmax())
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[k]], axis=1))
    return chosen


@dataclass(frozen=True)
class SkinPoints:
    """Surface points of a body, skinned by their top-K joints (linear blend skinning).

    Each influence k of point p is joint ``joint[p,k]`` with weight ``weight[p,k]`` and rest offset
    ``offset[p,k]`` (model frame). `refine` only rotates the 22 body joints, so each influence is
    also expressed in its ``carrier`` body joint's frame (fingers -> wrist, jaw/eyes -> head).
    """

    vertex: np.ndarray  # (P,) vertex index in the body mesh
    joint: np.ndarray  # (P,K) influencing joints (0..54)
    weight: np.ndarray  # (P,K) skinning weights, rows sum to 1
    carrier: np.ndarray  # (P,K) body joint (0..21) carrying each influence
    offset: np.ndarray  # (P,K,3) rest position minus the rest position of the joint, model frame

    @property
    def main_carrier(self) -> np.ndarray:
        """(P,) the carrier of each point's heaviest influence."""
        return self.carrier[np.arange(len(self.carrier)), self.weight.argmax(1)]

    @property
    def on_hands(self) -> np.ndarray:
        """(P,) bool: mainly carried by a wrist (palm and fingers)."""
        return np.isin(self.main_carrier, (LEFT_WRIST, RIGHT_WRIST))


_CACHE: dict[tuple[int, int, int, int | None, int], SkinPoints] = {}
SOLE_HEIGHT_M = 0.02  # rest vertices this close to the lowest one are the soles


def _carriers(joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Body joint (0..21) above each joint: fingers -> wrist, jaw/eyes -> head."""
    carrier = np.array(joints, copy=True)
    while (carrier >= BODY_JOINT_COUNT).any():
        deep = carrier >= BODY_JOINT_COUNT
        carrier[deep] = parents[carrier[deep]]
    return carrier


def _sole_mask(verts: np.ndarray, main: np.ndarray) -> np.ndarray:
    """(V,) bool: rest vertices (V,3), Y up, within `SOLE_HEIGHT_M` of the lowest one, hands excluded."""
    on_hand = np.isin(main, (LEFT_WRIST, RIGHT_WRIST))
    return ~on_hand & (verts[:, 1] < verts[:, 1].min() + SOLE_HEIGHT_M)


def sole_vertices(body) -> np.ndarray:
    """Indices of the body's sole vertices (the ones `skin_points` keeps all of)."""
    weights = body.smplx.lbs_weights.detach().cpu().numpy()
    main = _carriers(weights.argmax(1), np.asarray(body.parents))
    return np.flatnonzero(_sole_mask(np.asarray(body.v_template_y, dtype=np.float64), main))


def skin_points(body, count: int = 512, per_hand: int = 128, per_sole: int | None = None, influences: int = 4) -> SkinPoints:
    """The body's sparse surface points (cached per body and counts).

    Hands get their own ``per_hand`` points: they are what reaches into furniture, and their
    fingers are too thin for an even sampling of the whole body to cover. The soles (both feet
    together) get ``per_sole`` (default: all of them): a pitched foot touches the floor with its
    heel edge or toe tip, and `refine` tests them against the floor plane, which is cheap."""
    key = (id(body), count, per_hand, per_sole, influences)
    if key not in _CACHE:
        verts = np.asarray(body.v_template_y, dtype=np.float64)  # (V,3)
        weights = body.smplx.lbs_weights.detach().cpu().numpy().astype(np.float64)  # (V,55)
        parents = np.asarray(body.parents)
        main = _carriers(weights.argmax(1), parents)
        on_hand = np.isin(main, (LEFT_WRIST, RIGHT_WRIST))
        sole = _sole_mask(verts, main)
        groups = [np.flatnonzero(~on_hand & ~sole), np.flatnonzero(sole)]
        groups += [np.flatnonzero(main == wrist) for wrist in (LEFT_WRIST, RIGHT_WRIST)]
        counts = (count, len(groups[1]) if per_sole is None else per_sole, per_hand, per_hand)
        idx = np.concatenate([g[farthest_point_indices(verts[g], n)] for g, n in zip(groups, counts)])
        joint = np.argsort(-weights[idx], axis=1)[:, :influences]  # (P,K)
        weight = np.take_along_axis(weights[idx], joint, 1)
        weight /= weight.sum(1, keepdims=True)
        offset = verts[idx][:, None, :] - np.asarray(body.rest_joints_y)[joint]
        _CACHE[key] = SkinPoints(idx, joint, weight.astype(np.float32), _carriers(joint, parents),
                                 offset.astype(np.float32))
    return _CACHE[key]


def _influences(skin: SkinPoints, glob: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Where each influence puts each point: (W,P,K,3) from (W,55,3,3) rotations and (W,55,3) positions."""
    j = torch.as_tensor(skin.joint, dtype=torch.long)  # (P,K)
    off = torch.as_tensor(skin.offset, dtype=glob.dtype)  # (P,K,3)
    return pos[:, j] + (glob[:, j] @ off[..., None])[..., 0]


def world_points(skin: SkinPoints, glob: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Posed points from the 55 joints' global rotations (W,55,3,3) and positions (W,55,3) -> (W,P,3)."""
    per = _influences(skin, glob, pos)
    return (per * torch.as_tensor(skin.weight, dtype=glob.dtype)[..., None]).sum(-2)


def carried_local(skin: SkinPoints, glob: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Each influence's posed point in its carrier's frame: (W,P,K,3). Fixed while only body joints move."""
    c = torch.as_tensor(skin.carrier, dtype=torch.long)
    per = _influences(skin, glob, pos)
    return (glob[:, c].transpose(-1, -2) @ (per - pos[:, c])[..., None])[..., 0]
