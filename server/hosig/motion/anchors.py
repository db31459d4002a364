"""Anchors: the one kind of control the motion stage takes (DESIGN.md §5).

An anchor pins a joint position or a rotation channel at a frame, in Blender world coordinates.
Path waypoints, the stand pose, the grasp pose, the first frames of a window (continuity) and, later,
an animator's own keys are all anchors.

Targets:
  "<joint name>"        world position (3,) of a joint; NaN components are free (e.g. pelvis xy
                        only: ``[x, y, nan]``). "pelvis" is also a feature channel (hard-able);
                        pelvis/wrists/feet/head condition the network, every joint is guided.
  "root_orient"         global orient, axis-angle (3,) or matrix (3,3), Z-up world.
  "pose:<joint name>"   a joint's local rotation, axis-angle (3,).
  "body_pose"           (63,) the 21 body joints' local rotations.
  "left_hand_pose" / "right_hand_pose"  (45,) the 15 finger joints (same convention as poses).
  "contacts"            (4,) foot contacts in [0,1].
  "heading"             (1,) the direction the body faces, radians about +Z (0 = +X); soft only:
                        it drives guidance on the root's yaw and leaves tilt and roll to the model.
Hard anchors are imposed exactly by inpainting (feature channels only); soft anchors condition the
network and drive guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.errors import UsageError
from hosig.motion.representation import (
    ANCHOR_JOINTS,
    LAYOUT,
    LEFT_HAND_JOINTS,
    RIGHT_HAND_JOINTS,
    BODY_JOINTS,
    CanonFrame,
    aa_to_matrix,
    matrix_to_6d,
)

try:  # the skeleton module owns the names; fall back to smplx's list (same order)
    from hosig.body.skeleton import JOINT_NAMES as _NAMES
except ImportError:  # pragma: no cover
    from smplx.joint_names import JOINT_NAMES as _ALL

    _NAMES = list(_ALL[:55])
JOINT_NAMES: list[str] = list(_NAMES)


@dataclass
class Anchor:
    """Pin ``target`` to ``value`` at ``frame`` (world frame); ``weight`` scales its guidance."""

    frame: int
    target: str
    value: np.ndarray
    hard: bool = False
    weight: float = 1.0

    def __post_init__(self) -> None:
        self.value = np.asarray(self.value, dtype=np.float64)
        self.frame = int(self.frame)
        kind, _ = parse_target(self.target)
        want = {"joint": (3,), "root": None, "pose": (3,), "body_pose": (63,), "hand": (45,), "contacts": (4,),
                "heading": (1,)}[kind]
        if kind == "heading" and self.hard:
            raise UsageError(f"anchor 'heading' at frame {self.frame}: a heading is soft only (use 'root_orient' to pin a rotation)")
        if kind == "root" and self.value.shape not in ((3,), (3, 3)):
            raise UsageError(f"anchor {self.target!r} at frame {self.frame}: value must be (3,) or (3,3), got {self.value.shape}")
        if want is not None and self.value.shape != want:
            raise UsageError(f"anchor {self.target!r} at frame {self.frame}: value must have shape {want}, got {self.value.shape}")
        if kind != "joint" and not np.isfinite(self.value).all():
            raise UsageError(f"anchor {self.target!r} at frame {self.frame}: value contains NaN/inf")
        if kind == "joint" and (np.isinf(self.value).any() or np.isnan(self.value).all()):
            raise UsageError(f"anchor {self.target!r} at frame {self.frame}: position must have finite components")


def parse_target(target: str) -> tuple[str, int | None]:
    """target string -> (kind, joint index or None)."""
    if target in JOINT_NAMES:
        return "joint", JOINT_NAMES.index(target)
    if target == "root_orient":
        return "root", 0
    if target.startswith("pose:"):
        name = target[5:]
        if name not in JOINT_NAMES:
            raise UsageError(f"anchor target {target!r}: unknown joint {name!r}")
        return "pose", JOINT_NAMES.index(name)
    if target == "body_pose":
        return "body_pose", None
    if target in ("left_hand_pose", "right_hand_pose"):
        return "hand", 0 if target.startswith("left") else 1
    if target == "contacts":
        return "contacts", None
    if target == "heading":
        return "heading", 0
    raise UsageError(
        f"anchor target {target!r} is not a joint name, 'root_orient', 'pose:<joint>', 'body_pose', "
        "'left_hand_pose', 'right_hand_pose', 'contacts' or 'heading'"
    )


@dataclass
class WindowAnchors:
    """Anchors of one window in its canonical frame, as tensors the sampler uses."""

    feat_val: torch.Tensor  # (W,319) raw (not normalised) feature values
    feat_mask: torch.Tensor  # (W,319) bool: channel conditioned
    hard_mask: torch.Tensor  # (W,319) bool: channel inpainted exactly
    joint_val: torch.Tensor  # (W,18) canonical joint positions
    joint_mask: torch.Tensor  # (W,18) bool
    guide: list[tuple[int, int, np.ndarray, float]]  # (frame, joint, canonical position (3,) NaN=free, weight)
    hand_rot: list[tuple[int, int, torch.Tensor, float]]  # (frame, hand 0/1, (15,3,3) target local rots, weight)
    headings: list[tuple[int, np.ndarray, float]] = field(default_factory=list)  # (frame, canonical forward (2,), weight)


@dataclass
class AnchorSet:
    """All anchors of a clip of ``n_frames`` frames."""

    n_frames: int
    anchors: list[Anchor] = field(default_factory=list)

    def add(self, frame: int, target: str, value, hard: bool = False, weight: float = 1.0) -> None:
        self.anchors.append(Anchor(frame, target, np.asarray(value, dtype=np.float64), hard, weight))

    def validate(self) -> None:
        if self.n_frames < 2:
            raise UsageError(f"a clip needs at least 2 frames, got n_frames={self.n_frames}")
        for a in self.anchors:
            if not 0 <= a.frame < self.n_frames:
                raise UsageError(f"anchor {a.target!r} at frame {a.frame} is outside the clip's {self.n_frames} frames")

    def at(self, frame: int, target: str) -> Anchor | None:
        """The last anchor on ``target`` at ``frame`` (or None)."""
        hits = [a for a in self.anchors if a.frame == frame and a.target == target]
        return hits[-1] if hits else None

    def joint_anchors(self, target: str) -> list[Anchor]:
        return sorted((a for a in self.anchors if a.target == target), key=lambda a: a.frame)

    def _path_bridge(self, start: int, length: int) -> list[Anchor]:
        """A soft pelvis-xy anchor on the window's last frame, interpolated along the path.

        Why: the frames after a window's last path anchor are unconstrained, and the sampler lets
        the body stop or even step back there; those frames seed the next window's blend, so the
        walk stuttered at every seam (pelvis speed 1.5 -> 0 -> 3.7 m/s). The next anchor of the
        full timeline says where the body is heading; the bridge tells the window.
        """
        last = start + length - 1
        path = sorted((a for a in self.anchors if a.target == "pelvis" and not np.isnan(a.value[:2]).any()),
                      key=lambda a: a.frame)
        before = [a for a in path if start <= a.frame <= last]
        after = [a for a in path if a.frame > last]
        if not before or not after or before[-1].frame == last:
            return []
        a0, a1 = before[-1], after[0]
        t = (last - a0.frame) / (a1.frame - a0.frame)
        xy = (1 - t) * a0.value[:2] + t * a1.value[:2]
        return [Anchor(last, "pelvis", np.array([xy[0], xy[1], np.nan]), False, min(a0.weight, a1.weight))]

    def window(self, start: int, length: int, frame: CanonFrame) -> WindowAnchors:
        """The anchors falling in frames [start, start+length), expressed in ``frame``."""
        d, jd = LAYOUT.dim, LAYOUT.joint_dim
        fv = torch.zeros(length, d)
        fm = torch.zeros(length, d, dtype=torch.bool)
        hm = torch.zeros(length, d, dtype=torch.bool)
        jv = torch.zeros(length, jd)
        jm = torch.zeros(length, jd, dtype=torch.bool)
        guide: list = []
        hand_rot: list = []
        headings: list = []
        yaw_inv = frame.yaw().T
        for a in self.anchors + self._path_bridge(start, length):
            f = a.frame - start
            if not 0 <= f < length:
                continue
            kind, j = parse_target(a.target)
            if kind == "joint":
                p = frame.to_canon_points(np.nan_to_num(a.value))
                free = np.isnan(a.value)
                if free[0] != free[1]:
                    raise UsageError(f"anchor {a.target!r} at frame {a.frame}: x and y must both be set or both be free")
                p = np.where(free, np.nan, p)
                guide.append((f, j, p, a.weight))
                comp = torch.as_tensor(~np.isnan(p))
                val = torch.as_tensor(np.nan_to_num(p), dtype=torch.float32)
                if j in ANCHOR_JOINTS:  # only the set components are written (several anchors may share a frame)
                    sl = LAYOUT.joint_slice(j)
                    jv[f, sl] = torch.where(comp, val, jv[f, sl])
                    jm[f, sl] |= comp
                if j == 0:
                    if not a.hard:  # a soft value never overrides a hard one
                        comp = comp & ~hm[f, 0:3]
                    fv[f, 0:3] = torch.where(comp, val, fv[f, 0:3])
                    fm[f, 0:3] |= comp
                    if a.hard:
                        hm[f, 0:3] |= comp
                continue
            if kind == "heading":
                h = float(a.value[0])
                forward = yaw_inv @ np.array([np.cos(h), np.sin(h), 0.0])
                headings.append((f, forward[:2].astype(np.float32), a.weight))
                continue
            if kind == "contacts":
                sl = LAYOUT.contacts
                if not a.hard and bool(hm[f, sl].any()):
                    continue
                fv[f, sl] = torch.as_tensor(a.value, dtype=torch.float32)
                fm[f, sl] = True
                hm[f, sl] |= a.hard
                continue
            if kind == "root":
                mat = a.value if a.value.shape == (3, 3) else aa_to_matrix(torch.as_tensor(a.value)).numpy()
                mats = {0: yaw_inv @ mat}
            elif kind == "pose":
                mats = {j: aa_to_matrix(torch.as_tensor(a.value)).numpy()}
            elif kind == "body_pose":
                rot = aa_to_matrix(torch.as_tensor(a.value.reshape(21, 3))).numpy()
                mats = {jj: rot[k] for k, jj in enumerate(BODY_JOINTS)}
            else:  # hand
                joints = LEFT_HAND_JOINTS if j == 0 else RIGHT_HAND_JOINTS
                rot = aa_to_matrix(torch.as_tensor(a.value.reshape(15, 3))).numpy()
                mats = {jj: rot[k] for k, jj in enumerate(joints)}
                hand_rot.append((f, j, torch.as_tensor(rot, dtype=torch.float32), a.weight))
            for jj, m in mats.items():
                if jj in (22, 23, 24):  # jaw and eyes are not modelled
                    continue
                sl = LAYOUT.rot_slice(jj)
                if not a.hard and bool(hm[f, sl].any()):
                    continue  # a soft value never overrides a hard one
                fv[f, sl] = matrix_to_6d(torch.as_tensor(m, dtype=torch.float32))
                fm[f, sl] = True
                hm[f, sl] |= a.hard
        return WindowAnchors(fv, fm, hm, jv, jm, guide, hand_rot, headings)
