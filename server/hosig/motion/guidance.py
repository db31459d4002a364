"""Dual-space guidance: gradient steps on the x0 estimate at each denoising step.

The energy of a decoded window (canonical frame) sums
  position space  joint targets through differentiable FK (pelvis path x2, wrist at the grasp, any key)
  rotation space  the grasp stage's finger pose; the root's yaw towards heading anchors
  scene           body points (joints + bone midpoints) pushed out of the scene's signed distance field
  foot-floor      no sinking below the standing foot height; no sliding while the contact channel > 0.5
The same energy drives `hosig.motion.refine` after sampling (there on rotations directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hosig.motion.anchors import WindowAnchors
from hosig.motion.representation import (
    FOOT_CONTACT_JOINTS,
    LEFT_HAND_JOINTS,
    RIGHT_HAND_JOINTS,
    CanonFrame,
    Stats,
    decode,
    skeleton_fk,
)

BODY_POINT_JOINTS = list(range(22))  # pelvis .. wrists (fingers are too close to the object to push)
# radius (m) of the body around each joint for the scene term: small at the limbs' ends
JOINT_RADIUS = np.array([
    0.10, 0.08, 0.08, 0.10, 0.06, 0.06, 0.10, 0.05, 0.05, 0.10, 0.03, 0.03,
    0.06, 0.06, 0.06, 0.08, 0.05, 0.05, 0.04, 0.04, 0.02, 0.02,
], dtype=np.float32)


# body parts beyond a joint the scene term keeps out of the furniture, each a point `reach` m past
# ``joint`` along the bone from ``base``, with a radius: the palms and the skull (the hand and head
# joints sit at the wrist and at the top of the neck)
EXTENSIONS = (  # (base, joint, reach m, radius m)
    (18, 20, 0.08, 0.05),  # left palm
    (19, 21, 0.08, 0.05),  # right palm
    (12, 15, 0.08, 0.10),  # skull
)
# scene-term points, in order: the joints, the midpoints of the bones ending at BODY_POINT_JOINTS[1:],
# then the extensions; the index of the midpoint of the bone ending at a joint, and of each palm
MIDPOINT = {joint: len(BODY_POINT_JOINTS) + i for i, joint in enumerate(BODY_POINT_JOINTS[1:])}
HAND_POINT = {joint: 2 * len(BODY_POINT_JOINTS) - 1 + i for i, (_, joint, _, _) in enumerate(EXTENSIONS) if joint in (20, 21)}
# a touching joint's radius: the centre of a reaching wrist or elbow stays out of the scene
TOUCH_RADIUS_M = 0.0

MAX_PELVIS_TILT_RAD = np.pi / 3  # the pelvis tilts at most this far from upright (a deep stoop)


@dataclass
class GuidanceWeights:
    pelvis: float = 2.0
    joints: float = 1.0
    hand_rot: float = 0.5
    heading: float = 2.0
    upright: float = 2.0
    scene: float = 4.0
    floor: float = 2.0
    skate: float = 0.002


@dataclass
class Energy:
    """Energy of one window given its anchors, frame, scene and the body's foot heights."""

    body: object
    anchors: WindowAnchors
    frame: CanonFrame
    foot_height: torch.Tensor  # (4,) standing height of the foot joints above the floor
    scene_sdf: object | None = None
    weights: GuidanceWeights = field(default_factory=GuidanceWeights)
    touch_spans: tuple[tuple[int, int], ...] = ()  # frame spans [a, b) where the reaching wrist may touch the scene

    def __post_init__(self) -> None:
        g = self.anchors.guide
        self._gf = torch.tensor([a[0] for a in g], dtype=torch.long)
        self._gj = torch.tensor([a[1] for a in g], dtype=torch.long)
        tgt = np.array([a[2] for a in g], dtype=np.float32).reshape(-1, 3)
        self._gmask = torch.as_tensor(~np.isnan(tgt)).float()
        self._gt = torch.as_tensor(np.nan_to_num(tgt))
        w = np.array([a[3] * (self.weights.pelvis if a[1] == 0 else self.weights.joints) for a in g], np.float32)
        self._gw = torch.as_tensor(w)
        self._n = max([22] + [int(a[1]) + 1 for a in g])

    def __call__(self, rotmats: torch.Tensor, pelvis: torch.Tensor, contacts: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """rotmats (W,55,3,3), pelvis (W,3), contacts (W,4) canonical -> scalar energy, parts."""
        joints = skeleton_fk(self.body)(rotmats, pelvis, self._n)  # (W,n,3)
        parts: dict[str, torch.Tensor] = {}
        zero = rotmats.new_zeros(())
        if len(self._gf):
            d = (joints[self._gf, self._gj] - self._gt) * self._gmask
            parts["anchors"] = ((d ** 2).sum(-1) * self._gw).sum() / self._gw.sum().clamp_min(1e-6)
        for f, hand, target, w in self.anchors.hand_rot:
            idx = LEFT_HAND_JOINTS if hand == 0 else RIGHT_HAND_JOINTS
            parts["hand_rot"] = parts.get("hand_rot", zero) + self.weights.hand_rot * w * ((rotmats[f, idx] - target) ** 2).mean()
        if self.anchors.headings:
            parts["heading"] = self.weights.heading * self.heading_energy(rotmats)
            parts["upright"] = self.weights.upright * self.upright_energy(rotmats)
        feet = joints[:, FOOT_CONTACT_JOINTS]  # (W,4,3)
        sink = torch.relu(self.foot_height - 0.01 - feet[..., 2])  # the canonical floor is z = 0
        parts["floor"] = self.weights.floor * (sink ** 2).mean() * 100.0
        if contacts is not None and len(joints) > 1:
            c = ((contacts[1:] + contacts[:-1]) * 0.5 > 0.5).float()  # (W-1,4)
            v2 = (feet[1:, :, :2] - feet[:-1, :, :2]).pow(2).sum(-1) * 900.0  # (m/s)^2
            parts["skate"] = self.weights.skate * (v2 * c).sum() / c.sum().clamp_min(1.0)
        if self.scene_sdf is not None:
            parts["scene"] = self.weights.scene * self.scene_energy(joints)
        total = sum(parts.values()) if parts else zero
        return total, parts

    def heading_energy(self, rotmats: torch.Tensor) -> torch.Tensor:
        """1 - cos of the angle between the body's horizontal forward and each heading anchor
        (a stooping pelvis keeps its heading; `upright_energy` bars turning it over instead)."""
        frames = torch.tensor([h[0] for h in self.anchors.headings], dtype=torch.long)
        target = torch.as_tensor(np.stack([h[1] for h in self.anchors.headings]))  # (H,2)
        weight = torch.tensor([h[2] for h in self.anchors.headings], dtype=torch.float32)
        forward = rotmats[frames, 0][:, :2, 2]  # the model's +Z (its forward) in the canonical frame, (H,2)
        cos = (forward * target).sum(-1) / forward.norm(dim=-1).clamp_min(1e-6)
        return ((1.0 - cos) * weight).sum() / weight.sum().clamp_min(1e-6)

    def upright_energy(self, rotmats: torch.Tensor) -> torch.Tensor:
        """Squared shortfall of the pelvis's up axis (the model's +Y) below `MAX_PELVIS_TILT_RAD` from
        vertical, over the window: a stoop tilts the pelvis, nothing we make turns it over (the heading
        term alone could turn a heading round by pitching the trunk through the vertical, where its
        horizontal forward flips for free: bodies folded at sharp turns)."""
        up_z = rotmats[:, 0, 2, 1]  # (W,)
        return (torch.relu(float(np.cos(MAX_PELVIS_TILT_RAD)) - up_z) ** 2).mean() * 100.0

    def scene_energy(self, joints: torch.Tensor) -> torch.Tensor:
        """Penetration of body points (joints, bone midpoints, palms and skull) into the scene, squared metres."""
        from hosig.body.skeleton import PARENTS

        pts = joints[:, BODY_POINT_JOINTS]
        par = torch.as_tensor(np.asarray(PARENTS)[BODY_POINT_JOINTS[1:]], dtype=torch.long)
        mids = 0.5 * (joints[:, BODY_POINT_JOINTS[1:]] + joints[:, par])
        radius = torch.as_tensor(JOINT_RADIUS)
        r_all = torch.cat([radius, 0.5 * (radius[1:] + radius[par])])
        allp = torch.cat([pts, mids, extension_points(joints)], 1)  # (W,P,3)
        r_all = torch.cat([r_all, torch.tensor([e[3] for e in EXTENSIONS])])
        world = self.frame.to_world_points_t(allp)
        sdf = self.scene_sdf.query(world)  # (W,P)
        # the elbow and wrist of a hand with a target here (grasp, place) may approach the table
        # its object stands on: their skin may touch it, but their centres never enter furniture;
        # the free arm keeps its full radius like the rest of the body
        reaching = sorted({int(j) for j in self._gj.tolist() if int(j) in (20, 21)})
        radii = r_all.expand_as(sdf).clone()
        for a, b in self.touch_spans:
            lo, hi = max(a, 0), min(b, sdf.shape[0])
            for wrist in reaching if hi > lo else ():
                for j in (wrist - 2, wrist):  # elbow, wrist
                    radii[lo:hi, j] = TOUCH_RADIUS_M
                    radii[lo:hi, MIDPOINT[j]] = TOUCH_RADIUS_M  # the bone ending at that joint
                radii[lo:hi, HAND_POINT[wrist]] = TOUCH_RADIUS_M
        pen = torch.relu(radii - sdf)
        return (pen ** 2).sum(-1).mean() * 100.0


def extension_points(joints: torch.Tensor) -> torch.Tensor:
    """(W,J>=22,3) joints -> (W,len(`EXTENSIONS`),3): the palm centres and the skull, past their
    joints along the bone, without the cost of the finger and head joints' forward kinematics."""
    base = joints[:, [e[0] for e in EXTENSIONS]]
    end = joints[:, [e[1] for e in EXTENSIONS]]
    reach = torch.tensor([e[2] for e in EXTENSIONS], dtype=joints.dtype)[None, :, None]
    bone = end - base
    return end + reach * bone / bone.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def smooth_in_time(grad: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (1,W,D) along W: a Sobolev-style preconditioner.

    Every channel is per frame (the pelvis too), so a raw gradient would move only the anchored
    frames and leave spikes; smoothing spreads each correction over its neighbours.
    """
    if sigma <= 0:
        return grad
    r = int(3 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=grad.dtype) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    g = grad[0].T[:, None, :]  # (D,1,W)
    g = torch.nn.functional.pad(g, (r, r), mode="replicate")
    return torch.nn.functional.conv1d(g, k)[:, 0, :].T[None]


def guide_x0(x0: torch.Tensor, energy: Energy, stats: Stats, iters: int, lr: float, sigma: float = 4.0) -> torch.Tensor:
    """A few descent steps on x0 (1,W,D normalised) lowering the energy; returns a new x0.

    Steps are RMS-normalised, time-smoothed gradient steps of size ``lr`` (normalised units) with
    backtracking: a step is only taken when it lowers the energy, so guidance never makes it worse.
    """
    if iters <= 0:
        return x0

    def value(x: torch.Tensor) -> torch.Tensor:
        dec = decode(stats.denorm(x[0]))
        return energy(dec.rotmats, dec.pelvis, dec.contacts)[0]

    x = x0.detach().clone()
    step = lr
    for _ in range(iters):
        x.requires_grad_(True)
        with torch.enable_grad():
            loss = value(x)
            if not loss.requires_grad:
                return x0
            (grad,) = torch.autograd.grad(loss, x)
        x = x.detach()
        grad = smooth_in_time(torch.nan_to_num(grad), sigma)
        rms = grad.pow(2).mean().sqrt()
        if float(rms) < 1e-12:
            break
        direction = grad / rms
        base = float(loss.detach())
        with torch.no_grad():
            for _try in range(4):
                cand = x - step * direction
                if float(value(cand)) < base:
                    x = cand
                    step *= 1.5
                    break
                step *= 0.3
            else:
                break
    return x
