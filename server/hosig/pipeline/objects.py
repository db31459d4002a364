"""The carried object's world transform per frame (pick, pick-place).

WHY here and not in the motion model: the object is rigidly attached to the grasping wrist from the
grasp frame on, so its transform follows from the finished frames alone (poses -> wrist rotation
by forward kinematics, joints -> wrist position) and can be streamed chunk by chunk.

Convention: an object transform ``M (4,4)`` maps the object's vertices as loaded in the scene
(Z-up world) to where they are at that frame, ``v_t = M @ [v, 1]``; identity = untouched. The wrist
frame is SMPL-X's: rotation = product of the local joint rotations along the kinematic chain (with
the Z-up global orient), origin = the wrist joint. ``GraspResult.object_in_wrist`` is the object's
transform expressed in that frame at the grasp pose, so ``M_t = W_t @ object_in_wrist`` once
attached (see `CarryTracker` for how attachment starts without a jump).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from hosig.clip import FPS
from hosig.pipeline.settle import settle_offsets


def chain_rotations(poses: np.ndarray, parents: np.ndarray, upto: int) -> np.ndarray:
    """(T,165) axis-angle poses -> (T,3,3) global rotation of joint ``upto`` (product along its chain)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(len(poses), -1, 3)
    chain = []
    j = int(upto)
    while j >= 0:
        chain.append(j)
        j = int(parents[j])
    rot = np.broadcast_to(np.eye(3), (poses.shape[0], 3, 3)).copy()
    for j in reversed(chain):  # root first: R = R_root @ ... @ R_j
        rot = rot @ Rotation.from_rotvec(poses[:, j]).as_matrix()
    return rot


def wrist_transforms(poses: np.ndarray, joints: np.ndarray, parents: np.ndarray, wrist: int) -> np.ndarray:
    """(T,4,4) world transforms of the wrist joint from poses (T,165) and joints (T,55,3)."""
    n = len(poses)
    out = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    out[:, :3, :3] = chain_rotations(poses, parents, wrist)
    out[:, :3, 3] = np.asarray(joints, dtype=np.float64)[:, wrist]
    return out


@dataclass
class CarryTracker:
    """Streams object transforms chunk by chunk: rest before ``grasp_frame``, attached to the wrist
    until ``release_frame`` (pick-place), then where it was put down, settled straight down (a
    short fall) or up onto the surface under it by the gap ``settle`` reports (see `hosig.pipeline.settle`).

    Attachment starts from where the generated wrist actually is at the grasp frame, so the object
    never jumps; over ``blend_frames`` the object's pose in the wrist frame then moves to the grasp
    stage's ``object_in_wrist`` (the exact hand-object contact), unless the two differ by more than
    ``max_blend_m`` (then the motion missed the grasp and sliding the object would look worse).
    """

    parents: np.ndarray  # (55,)
    wrist: int  # joint index of the grasping wrist
    object_in_wrist: np.ndarray | None  # (4,4) from the grasp stage, or None (keep the grasp-frame offset)
    grasp_frame: int
    release_frame: int | None = None
    blend_frames: int = 8
    max_blend_m: float = 0.05
    settle: Callable[[np.ndarray], float] | None = None  # put-down transform -> height to the support (m)
    fps: float = FPS
    _start_rel: np.ndarray | None = None  # (4,4) object in wrist frame at the grasp frame
    _settle_dz: float | None = None
    _last_attached: np.ndarray = field(default_factory=lambda: np.eye(4))

    def _relative(self, frame: int) -> np.ndarray:
        """(4,4) object-in-wrist transform used at ``frame`` (>= grasp_frame)."""
        start = self._start_rel
        goal = self.object_in_wrist
        if goal is None or start is None:
            return start
        if np.linalg.norm(goal[:3, 3] - start[:3, 3]) > self.max_blend_m:
            return start
        s = min(1.0, (frame - self.grasp_frame) / max(self.blend_frames, 1))
        if s <= 0.0:
            return start
        if s >= 1.0:
            return goal
        rots = Rotation.from_matrix(np.stack([start[:3, :3], goal[:3, :3]]))
        out = np.eye(4)
        out[:3, :3] = Slerp([0.0, 1.0], rots)(s).as_matrix()
        out[:3, 3] = (1 - s) * start[:3, 3] + s * goal[:3, 3]
        return out

    def chunk(self, start: int, poses: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """(n,4,4) transforms for frames [start, start + n); chunks must arrive in order."""
        n = len(poses)
        frames = np.arange(start, start + n)
        out = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        attached = frames >= self.grasp_frame
        if self.release_frame is not None:
            attached &= frames < self.release_frame
        if attached.any():
            idx = np.flatnonzero(attached)
            wrist_t = wrist_transforms(poses[idx], joints[idx], self.parents, self.wrist)
            if self._start_rel is None:  # first attached frame = the grasp frame
                self._start_rel = np.linalg.inv(wrist_t[0])
            for k, i in enumerate(idx):
                out[i] = wrist_t[k] @ self._relative(int(frames[i]))
            self._last_attached = out[idx[-1]].copy()
        if self.release_frame is not None:
            released = np.flatnonzero(frames >= self.release_frame)
            if len(released) and self._settle_dz is None:
                self._settle_dz = float(self.settle(self._last_attached)) if self.settle else 0.0
            if len(released):
                since = frames[released] - self.release_frame  # (k,) frames since the release, >= 0
                drop = settle_offsets(self._settle_dz or 0.0, int(since[-1]) + 1, self.fps)
                out[released] = self._last_attached
                out[released, 2, 3] += drop[since]
        return out


def place_candidates(mesh, inset: float = 0.08, step: float = 0.1, limit: int = 24) -> np.ndarray:
    """(K,3) spots on an object's top surface, nearest the centre first.

    WHY not just the centre: a big table's centre is often out of arm's reach from any free floor;
    the pipeline tries these in order and takes the first one navigation can reach. Heights come
    from casting rays straight down onto the mesh, so a chair gives its seat, not its backrest top.
    """
    lo, hi = np.asarray(mesh.bounds, dtype=np.float64)
    centre = (lo[:2] + hi[:2]) / 2
    axes = []
    for k in range(2):
        half = max((hi[k] - lo[k]) / 2 - inset, 0.0)
        n = int(np.floor(half / step))
        axes.append(centre[k] + step * np.arange(-n, n + 1))
    gx, gy = np.meshgrid(*axes, indexing="ij")
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    xy = xy[np.argsort(np.linalg.norm(xy - centre, axis=1), kind="stable")][: max(limit * 4, 1)]
    origins = np.column_stack([xy, np.full(len(xy), hi[2] + 0.5)])
    directions = np.tile([0.0, 0.0, -1.0], (len(xy), 1))
    locations, index_ray, _ = mesh.ray.intersects_location(origins, directions, multiple_hits=False)
    top = np.full(len(xy), np.nan)
    top[index_ray] = locations[:, 2]
    keep = np.isfinite(top)
    return np.column_stack([xy[keep], top[keep]])[:limit]


def object_top_centre(bounds: np.ndarray) -> np.ndarray:
    """(3,) centre of an object's top face from its (2,3) bounds: where pick-place puts things down."""
    b = np.asarray(bounds, dtype=np.float64)
    return np.array([(b[0, 0] + b[1, 0]) / 2, (b[0, 1] + b[1, 1]) / 2, b[1, 2]])
