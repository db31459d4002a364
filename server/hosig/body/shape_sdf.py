"""The mannequin's volume: a smooth union of simple solids (round cones, ellipsoids, rounded boxes).

Why an SDF: a union of solids meshed by marching cubes is closed (watertight) by construction, and
the smooth blend (polynomial smooth-min) gives shoulders, hips and knuckles a believable shape
without sculpting. Each solid has its own blend radius so fingers stay separate while the torso
flows into the limbs. Evaluation is done per solid on the grid block its bounding box covers, which
keeps a 3 mm grid of a whole body to a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hosig.body.proportions import RestSkeleton


@dataclass(frozen=True)
class Solid:
    """One primitive: ``kind`` in {"cone", "ellipsoid", "box"}; ``blend`` = smooth-min radius (m)."""

    kind: str
    a: np.ndarray  # cone: start point; ellipsoid/box: centre
    b: np.ndarray  # cone: end point; ellipsoid/box: semi-axes / half extents
    ra: float  # cone: radius at a; box: corner rounding
    rb: float  # cone: radius at b
    blend: float
    rot: np.ndarray | None = None  # (3,3) local->world axes for ellipsoid/box
    part: tuple[str, ...] = ()  # joints whose bones this solid's surface follows (skinning labels)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "cone":
            r = max(self.ra, self.rb)
            return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r
        half = np.abs(self.rot if self.rot is not None else np.eye(3)) @ self.b
        return self.a - half, self.a + half

    def distance(self, p: np.ndarray) -> np.ndarray:
        """(N,3) points -> (N,) approximate signed distance (exact on the surface)."""
        if self.kind == "cone":
            ab = self.b - self.a
            t = np.clip(((p - self.a) @ ab) / float(ab @ ab), 0.0, 1.0)
            closest = self.a + t[:, None] * ab
            return np.linalg.norm(p - closest, axis=1) - (self.ra + t * (self.rb - self.ra))
        q = p - self.a
        if self.rot is not None:
            q = q @ self.rot
        if self.kind == "ellipsoid":
            k0 = np.linalg.norm(q / self.b, axis=1)
            k1 = np.linalg.norm(q / self.b**2, axis=1)
            return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)
        if self.kind == "box":
            d = np.abs(q) - (self.b - self.ra)
            outside = np.linalg.norm(np.maximum(d, 0.0), axis=1)
            inside = np.minimum(d.max(axis=1), 0.0)
            return outside + inside - self.ra
        raise ValueError(f"unknown solid kind {self.kind!r}")


def cone(a, b, ra, rb, blend) -> Solid:
    return Solid("cone", np.asarray(a, float), np.asarray(b, float), float(ra), float(rb), float(blend))


def ellipsoid(c, semi, blend, rot=None) -> Solid:
    return Solid("ellipsoid", np.asarray(c, float), np.asarray(semi, float), 0.0, 0.0, float(blend), rot)


def box(c, half, rounding, blend, rot=None) -> Solid:
    return Solid("box", np.asarray(c, float), np.asarray(half, float), float(rounding), 0.0, float(blend), rot)


def _part(solid: Solid, *joints: str) -> Solid:
    """Tag a solid with the body part it builds (the joints that may own its surface)."""
    return replace(solid, part=tuple(joints))


def owner_parts(solids: list[Solid], points: np.ndarray) -> list[tuple[str, ...]]:
    """For each point, the ``part`` of the solid whose surface is nearest (which limb it is on)."""
    dist = np.stack([s.distance(points) for s in solids], axis=1)
    return [solids[i].part for i in np.argmin(dist, axis=1)]


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blend radius k); k=0 is the plain union."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _frame(x_axis: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3,3) columns = local x, y, z with x along ``x_axis`` and y as close to ``up`` as possible."""
    x = x_axis / np.linalg.norm(x_axis)
    y = up - (up @ x) * x
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def body_solids(sk: RestSkeleton) -> list[Solid]:
    """The mannequin as an ordered list of solids (the order is part of the deterministic build)."""
    J = sk.joint
    s = sk.scale / 0.01066  # ~1 for a 1.75 m body: keeps the hand-tuned sizes proportional
    out: list[Solid] = []
    pelvis, sp1, sp2, sp3, neck, head = (J(n) for n in ("pelvis", "spine1", "spine2", "spine3", "neck", "head"))
    eye_l = J("left_eye_smplhf")
    up = np.array([0.0, 1.0, 0.0])

    # Torso: pelvis, belly, ribcage, shoulders girdle.
    out.append(_part(ellipsoid(pelvis + [0, -0.03 * s, 0.0], np.array([0.155, 0.115, 0.100]) * s, 0.0), "pelvis", "spine1"))
    out.append(_part(ellipsoid(sp2 + [0, -0.02 * s, 0.005 * s], np.array([0.135, 0.140, 0.092]) * s, 0.05 * s), "pelvis", "spine1", "spine2"))
    out.append(_part(ellipsoid(sp3 + [0, 0.045 * s, 0.005 * s], np.array([0.170, 0.165, 0.100]) * s, 0.05 * s), "spine2", "spine3"))
    sh_l, sh_r = J("left_shoulder"), J("right_shoulder")
    out.append(_part(cone(sh_l + [-0.03 * s, 0.0, -0.01 * s], sh_r + [0.03 * s, 0.0, -0.01 * s], 0.060 * s, 0.060 * s, 0.05 * s), "spine3", "neck", "left_collar", "right_collar"))
    for side, sx in (("left", 1.0), ("right", -1.0)):
        hip = J(f"{side}_hip")
        # buttock and hip mass
        out.append(_part(ellipsoid(hip + [-0.015 * s * sx, 0.0, -0.04 * s], np.array([0.078, 0.088, 0.068]) * s, 0.04 * s), "pelvis", f"{side}_hip"))
        # chest (pectoral) volume
        out.append(_part(ellipsoid(sp3 + [0.075 * s * sx, 0.07 * s, 0.04 * s], np.array([0.080, 0.065, 0.055]) * s, 0.04 * s), "spine3", f"{side}_collar"))
    # Neck and head.
    out.append(_part(cone(neck + [0, -0.02 * s, -0.005 * s], head + [0, 0.02 * s, 0.0], 0.058 * s, 0.052 * s, 0.03 * s), "neck", "head", "spine3"))
    crown = sk.crown
    head_c = np.array([0.0, crown[1] - 0.112 * s, head[2] + 0.025 * s])
    out.append(_part(ellipsoid(head_c, np.array([0.077, 0.112, 0.098]) * s, 0.02 * s), "head",))
    out.append(_part(ellipsoid(np.array([0.0, head[1] - 0.005 * s, head[2] + 0.06 * s]), np.array([0.058, 0.052, 0.058]) * s, 0.03 * s), "head", "jaw"))
    eye_y, face_z = eye_l[1], head_c[2] + 0.095 * s
    out.append(_part(cone([0.0, eye_y - 0.005 * s, face_z - 0.012 * s], [0.0, eye_y - 0.040 * s, face_z + 0.008 * s], 0.008 * s, 0.012 * s, 0.012 * s), "head",))
    for sx in (1.0, -1.0):
        out.append(_part(ellipsoid([sx * 0.079 * s, eye_y - 0.02 * s, head_c[2] - 0.01 * s], np.array([0.013, 0.030, 0.020]) * s, 0.008 * s), "head",))

    for side, sx in (("left", 1.0), ("right", -1.0)):
        collar, shoulder, elbow, wrist = (J(f"{side}_{n}") for n in ("collar", "shoulder", "elbow", "wrist"))
        hip, knee, ankle, ball = (J(f"{side}_{n}") for n in ("hip", "knee", "ankle", "foot"))
        # Arm: deltoid, upper arm, forearm.
        out.append(_part(ellipsoid(shoulder + [0.015 * s * sx, 0.005 * s, 0.0], np.array([0.07, 0.062, 0.062]) * s, 0.03 * s), f"{side}_collar", f"{side}_shoulder"))
        out.append(_part(cone(shoulder, elbow, 0.052 * s, 0.038 * s, 0.03 * s), f"{side}_shoulder", f"{side}_elbow"))
        out.append(_part(cone(elbow, wrist, 0.040 * s, 0.027 * s, 0.02 * s), f"{side}_elbow", f"{side}_wrist"))
        out.append(_part(ellipsoid(elbow + (wrist - elbow) * 0.28, np.array([0.075, 0.040, 0.043]) * s, 0.02 * s), f"{side}_elbow", f"{side}_wrist"))
        # Leg: thigh, knee, calf, shin.
        out.append(_part(cone(hip + [0.0, 0.02 * s, 0.0], knee, 0.082 * s, 0.055 * s, 0.05 * s), f"{side}_hip", f"{side}_knee"))
        out.append(_part(cone(knee, ankle + [0, 0.03 * s, 0], 0.052 * s, 0.032 * s, 0.03 * s), f"{side}_knee", f"{side}_ankle"))
        out.append(_part(ellipsoid(knee + (ankle - knee) * 0.3 + [0.0, 0.0, -0.018 * s], np.array([0.052, 0.11, 0.052]) * s, 0.03 * s), f"{side}_knee", f"{side}_ankle"))
        # Foot: heel-to-ball block and toes, flat sole on the floor.
        toe, heel = sk.toe_tips[side], sk.heels[side]
        fy = sk.floor_y
        out.append(_part(cone(ankle + [0, 0.01 * s, -0.005 * s], ankle + [0, -0.02 * s, 0.0], 0.036 * s, 0.038 * s, 0.02 * s), f"{side}_ankle",))
        mid_z = 0.5 * (heel[2] + ball[2])
        foot_axis = np.array([ball[0] - heel[0], 0.0, ball[2] - heel[2]])
        rot = _frame(foot_axis, up)
        length = np.linalg.norm(foot_axis) + 0.03 * s
        out.append(_part(box([0.5 * (heel[0] + ball[0]), fy + 0.032 * s, mid_z], np.array([length / 2, 0.032 * s, 0.042 * s]), 0.022 * s, 0.03 * s, rot), f"{side}_ankle", f"{side}_foot"))
        toe_axis = np.array([toe[0] - ball[0], 0.0, toe[2] - ball[2]])
        rot_t = _frame(toe_axis, up)
        toe_c = 0.5 * (ball + toe)
        out.append(_part(box([toe_c[0], fy + 0.018 * s, toe_c[2] - 0.005 * s], np.array([np.linalg.norm(toe_axis) / 2 + 0.012 * s, 0.018 * s, 0.047 * s]), 0.016 * s, 0.02 * s, rot_t), f"{side}_foot",))
        out.extend(_hand_solids(sk, side, s))
    return out


# Finger radii (m, at the knuckle and at the tip) for a 1.75 m adult.
FINGER_RADII: dict[str, tuple[float, float]] = {
    "thumb": (0.0115, 0.0092),
    "index": (0.0092, 0.0078),
    "middle": (0.0095, 0.0080),
    "ring": (0.0088, 0.0074),
    "pinky": (0.0078, 0.0066),
}
FINGER_BLEND = 0.004


def _hand_solids(sk: RestSkeleton, side: str, s: float) -> list[Solid]:
    """Palm (flattened rounded box), thenar pad, five three-segment fingers."""
    J = sk.joint
    sx = 1.0 if side == "left" else -1.0
    wrist = J(f"{side}_wrist")
    idx1, mid1, pky1 = J(f"{side}_index1"), J(f"{side}_middle1"), J(f"{side}_pinky1")
    out: list[Solid] = []
    # Palm: from the wrist to just short of the knuckles, as wide as index..pinky knuckles.
    palm_len = (mid1[0] - wrist[0]) * sx
    palm_w = abs(idx1[2] - pky1[2]) + 2 * 0.009 * s
    centre = np.array([wrist[0] + sx * palm_len * 0.52, wrist[1] + 0.002 * s, 0.5 * (idx1[2] + pky1[2])])
    out.append(_part(box(centre, np.array([palm_len * 0.52, 0.0135 * s, palm_w / 2]), 0.0125 * s, 0.010 * s), f"{side}_wrist",))
    # knuckle row: rounds the palm's front edge like metacarpal heads
    out.append(_part(cone(idx1 - [sx * 0.006 * s, 0, 0], pky1 - [sx * 0.006 * s, 0, 0], 0.0125 * s, 0.0110 * s, 0.008 * s), f"{side}_wrist",))
    # Wrist cuff joins forearm and palm.
    out.append(_part(cone(wrist - [sx * 0.01 * s, 0, 0], wrist + [sx * 0.025 * s, 0, 0], 0.026 * s, 0.022 * s, 0.015 * s), f"{side}_elbow", f"{side}_wrist"))
    t1, t2 = J(f"{side}_thumb1"), J(f"{side}_thumb2")
    out.append(_part(ellipsoid(0.5 * (t1 + t2) + [-sx * 0.008 * s, -0.004 * s, -0.008 * s], np.array([0.030, 0.015, 0.018]) * s, 0.010 * s, _frame(t2 - t1, np.array([0.0, 1.0, 0.0]))), f"{side}_wrist", f"{side}_thumb1"))
    for finger, (r0, r1) in FINGER_RADII.items():
        j1, j2, j3 = (J(f"{side}_{finger}{k}") for k in (1, 2, 3))
        tip = sk.fingertips[f"{side}_{finger}"]
        r0, r1 = r0 * s, r1 * s
        rm = 0.5 * (r0 + r1)
        tip_c = tip - (tip - j3) / np.linalg.norm(tip - j3) * r1  # round end reaches the tip
        start = j1 if finger == "thumb" else j1 - (j2 - j1) * 0.25
        out.append(_part(cone(start, j2, r0 * (1.25 if finger == "thumb" else 1.0), rm, FINGER_BLEND), f"{side}_{finger}1",))
        out.append(_part(cone(j2, j3, rm, r1 * 1.02, FINGER_BLEND * 0.5), f"{side}_{finger}2",))
        out.append(_part(cone(j3, tip_c, r1 * 1.02, r1, FINGER_BLEND * 0.5), f"{side}_{finger}3",))
    return out


def grid_sdf(solids: list[Solid], lo: np.ndarray, shape: tuple[int, int, int], voxel: float) -> np.ndarray:
    """Smooth-union SDF sampled on the grid ``lo + voxel * index`` -> float32 (nx,ny,nz).

    Each solid only touches the grid block covering its bounds plus a margin; outside that its
    distance exceeds the margin, so the surface (where the union is ~0) is exact.
    """
    margin = 0.03
    vol = np.full(shape, 1.0, dtype=np.float32)
    for solid in solids:
        blo, bhi = solid.bounds()
        i0 = np.maximum(np.floor((blo - margin - solid.blend - lo) / voxel).astype(int), 0)
        i1 = np.minimum(np.ceil((bhi + margin + solid.blend - lo) / voxel).astype(int) + 1, np.array(shape))
        if np.any(i1 <= i0):
            continue
        axes = [lo[k] + voxel * np.arange(i0[k], i1[k]) for k in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        d = solid.distance(pts).reshape(tuple(i1 - i0)).astype(np.float32)
        block = vol[i0[0] : i1[0], i0[1] : i1[1], i0[2] : i1[2]]
        vol[i0[0] : i1[0], i0[1] : i1[1], i0[2] : i1[2]] = smooth_min(block, d, solid.blend)
    return vol


def points_sdf(solids: list[Solid], points: np.ndarray) -> np.ndarray:
    """The same smooth union at arbitrary (N,3) points (for projecting new vertices to the surface)."""
    f = np.full(len(points), 1.0)
    for solid in solids:
        f = smooth_min(f, solid.distance(points), solid.blend)
    return f
