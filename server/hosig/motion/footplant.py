"""Planted feet: a foot in stance stays exactly where it landed; steps are timed from the body.

Why: the sampled legs glide. The few-step network's stance feet drift with the pelvis, the
sampler's temporal smoothing shortens the swing, and a soft foot-lock term leaves millimetres of
drift per frame, which an animator sees as skating. This pass runs on each window's finished
frames (world frame, before they are streamed) and decides, frame by frame, which foot is planted
and where; it then solves each leg analytically (two-bone IK, the knee over the toes) so that a
planted foot is flat on the floor and does not move at all, its heel rising over the ball of the
foot once the body has moved on (toe-off). A foot steps when that heel rise passes a
threshold or cannot reach, when the body turns away from it, or, while the body stands, when the
sampled motion puts it elsewhere. It lands, within reach, where the sampled motion puts that foot
a moment after touchdown, so stance width, turning and foot placement stay the network's; only
the timing and the stance are made exact. A swing takes 0.53 s, as real ones do, leaving at the
hips' pace; neither it nor a knee over a planted foot passes through furniture (the step lands
short, the knee turns about the hip-ankle line). The pelvis, spine, arms and hands stay as sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d, maximum_filter1d, minimum_filter1d

from hosig.easing import smoothstep
from hosig.motion.representation import LEFT_ANKLE, LEFT_FOOT, RIGHT_ANKLE, RIGHT_FOOT, matrix_to_aa, skeleton_fk

LEGS = ((1, 4, LEFT_ANKLE, LEFT_FOOT), (2, 5, RIGHT_ANKLE, RIGHT_FOOT))  # (hip, knee, ankle, ball) per side
N_JOINTS = 22


@dataclass(frozen=True)
class PlantConfig:
    swing_frames: int = 16  # a step's swing (0.53 s at 30 fps; real walks swing 0.5-0.65 s)
    reach: float = 0.97  # share of its length a leg may stretch to (more if the sampled leg does, standing)
    walk_reach: float = 0.96  # ... and at most this, walking (the knee stays bent at toe-off)
    max_heel_rise: float = 0.7  # rad: the heel may rise over the ball of the foot this far
    lift_heel_rise: float = 0.35  # rad: a foot whose heel has risen this far steps (toe-off)
    land_ahead_s: float = 0.2  # a step lands where the sampled foot is this long after touchdown
    idle_speed_m_s: float = 0.3  # a slower pelvis is standing: feet step only to follow the motion
    idle_drift_m: float = 0.12  # standing, a foot this far from the sampled one steps
    turn_drift_rad: float = 0.5  # a foot turned this far from the sampled one steps
    clearance_m: float = 0.05  # a swing's apex above the straight line between its ends
    min_stance_frames: int = 4
    min_double_support: int = 2  # frames both feet are down between two steps
    sole_lift_m: float = 0.002  # a planted sole sits this far over the floor
    foot_clearance_m: float = 0.025  # a landing foot's outline stays this far from furniture (2 cm SDF grid)
    smooth_sigma: float = 2.0  # frames: the sampled feet are followed after this smoothing
    stance_half_s: float = 0.2  # a walking stance foot is this much travel ahead of / behind the hips
    land_mid_s: float = 0.3  # a walking foot lands where its hip will be this long after touchdown
    hip_cap_reach: float = 0.97  # share of the leg's length `FootPlanter.hip_cap` allows
    max_drop_m: float = 0.06  # a walk is lowered by at most this (real walks: 4-5 cm under standing)


@dataclass
class _Swing:
    start: int  # frame the foot left the floor (global index)
    end: int  # frame it lands
    ankle: np.ndarray  # (3,) ankle at lift-off
    ankle_rot: np.ndarray  # (3,3) ankle global rotation at lift-off
    toe_local: np.ndarray  # (3,3) ball-joint local rotation at lift-off
    velocity: np.ndarray  # (3,) m/frame the swing leaves with: the hip's horizontal, the heel rise's upward


@dataclass
class _Foot:
    ball: np.ndarray  # (3,) ball-of-foot (SMPL-X "foot" joint) position while planted, or where it lands
    yaw: float  # heading of the planted foot
    since: int  # frame it landed (global index)
    swing: _Swing | None = None
    ankle: np.ndarray | None = None  # (3,) where the ankle was put on the last frame solved


@dataclass
class _PlantWindow:
    """One `FootPlanter.plant` call's window as the step decisions read it (world frame)."""

    g: np.ndarray  # (W,22,3,3) global joint rotations
    p: np.ndarray  # (W,22,3) joint positions
    look: int  # window frames [0, look) are read: the new ones and the prediction past them
    offset: int  # the window's first frame in the clip
    speed: np.ndarray  # (look,) smoothed horizontal pelvis speed (m/s)
    ref_ball: list[np.ndarray]  # per side: (look,3) the sampled ball joint, smoothed
    ref_yaw: list[np.ndarray]  # per side: (look,) the sampled foot's heading, unwrapped and smoothed
    limit: list[list[float]]  # per side, per frame [0, look): how far the leg may stretch (`reach_limit`)
    ahead: int  # frames after touchdown at which the sampled foot sets where a step lands

    def hip(self, side: int) -> np.ndarray:
        """(look,3) the hip joint of leg ``side``."""
        return self.p[:self.look, LEGS[side][0]]


@dataclass
class _LegTargets:
    """Where each leg's foot goes on a window's F new frames; the legs are then solved to reach it."""

    ankle: np.ndarray  # (2,F,3) ankle positions
    ankle_rot: np.ndarray  # (2,F,3,3) ankle global rotations
    toe_local: np.ndarray  # (2,F,3,3) ball-joint local rotations
    contacts: np.ndarray  # (F,4) float32: per side, [2 side] the foot flat, [2 side + 1] planted

    @classmethod
    def zeros(cls, n: int) -> "_LegTargets":
        return cls(np.zeros((2, n, 3)), np.zeros((2, n, 3, 3)), np.zeros((2, n, 3, 3)), np.zeros((n, 4), np.float32))


def rotation_z(angle: np.ndarray) -> np.ndarray:
    """(...,) angles -> (...,3,3) rotations about +Z."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(np.shape(angle) + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(...,3) unit axes, (...,) angles -> (...,3,3) rotations (Rodrigues)."""
    x, y, z = np.moveaxis(np.asarray(axis, dtype=np.float64), -1, 0)
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(x.shape + (3, 3))
    a = np.asarray(angle, dtype=np.float64)[..., None, None]
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,3),(...,3) -> (...,3,3): the smallest rotation turning direction a onto direction b."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-12)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = (a * b).sum(-1)
    safe = np.where(s[..., None] > 1e-9, axis / s.clip(1e-12)[..., None], _any_normal(a))
    return axis_angle(safe, np.arctan2(s, c))


def _any_normal(a: np.ndarray) -> np.ndarray:
    ref = np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    n = np.cross(a, ref)
    return n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-12)


def extrapolated(track: np.ndarray, k: int, span: int = 5) -> np.ndarray:
    """track (T,...) at frame ``k``, continued past its end at its last ``span`` frames' mean velocity.

    Why: a step decided near the end of a window lands past the frames the window predicts."""
    last = len(track) - 1
    if k <= last:
        return track[k]
    back = min(span, last)
    velocity = (track[last] - track[last - back]) / back if back > 0 else 0.0 * track[last]
    return track[last] + (k - last) * velocity


def wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


URGENT_RISE = 0.85  # share of the heel rise limit past which the other foot would be stranded
URGENT_LAG = 3  # frames: a step is urgent when waiting this long would strand the other foot
TOE_TIP_M = 0.07  # toe tip ahead of the ball joint, heel behind the ankle (mannequin-sized; the outline
HEEL_M = 0.06  # is only tested against furniture, so a bigger foot gains a few millimetres of margin)
FOOT_HALF_WIDTH_M = 0.045  # across the ball of the foot (a landed toe met a table foot 2.3 cm deep)
FLOOR_SDF_TOLERANCE_M = 0.01  # a scene distance this close to a point's height over the floor is the floor's
BALL_LIFT_PER_RAD = 0.01  # m the ball joint rises per radian of heel rise (3 mm of toe in the floor at 0.35 rad)
# joint centre to skin, for the swinging leg's clearance (mannequin-sized, a few millimetres over)
KNEE_RADIUS_M, SHIN_RADIUS_M, ANKLE_RADIUS_M, TOE_RADIUS_M, THIGH_RADIUS_M = 0.06, 0.05, 0.045, 0.025, 0.075
# rad a knee may turn outwards (+) or inwards to keep out of furniture, in order of preference
SWIVELS = (0.0, 0.15, -0.15, 0.3, -0.3, 0.45, -0.45, 0.6)
SWIVEL_EASE = 6  # frames a knee's turn is held and eased over
KEY_EASE_FRAMES = 8  # a leg eases from planted into an animator's hard key over this many frames


def eased_share(keep: np.ndarray, radius: int) -> np.ndarray:
    """(W,) bool kept frames -> (W,) share of the planted solution: 0 on them, rising to 1 ``radius`` frames away."""
    idx = np.flatnonzero(keep)
    frames = np.arange(len(keep))
    dist = np.abs(frames[:, None] - idx[None, :]).min(1) if len(idx) else np.full(len(keep), radius + 1)
    return np.clip(dist / (radius + 1), 0.0, 1.0)


def blend_rotations(r0: np.ndarray, r1: np.ndarray, share: np.ndarray) -> np.ndarray:
    """(...,3,3) rotations, (...) shares -> the rotations ``share`` of the way from r0 to r1 (geodesic)."""
    rel = np.swapaxes(r0, -1, -2) @ r1
    aa = matrix_to_aa(rel)
    angle = np.linalg.norm(aa, axis=-1)
    axis = aa / angle.clip(1e-12)[..., None]
    return r0 @ axis_angle(axis, angle * np.asarray(share))


class LegSkeleton:
    """What the planter needs of the body: rest offsets, leg lengths, the flat foot's geometry."""

    def __init__(self, body, sole_lift_m: float) -> None:
        from hosig.frames import heading_to_orient

        rest = np.asarray(body.rest_joints_y, dtype=np.float64)
        self._fk = skeleton_fk(body)  # the one skeleton FK (float32 is sub-micrometre here)
        off = self._fk.offsets.numpy().astype(np.float64)
        self.offsets = off[:N_JOINTS]  # (22,3) rest offsets from the parent, model frame
        self.lengths = [(float(np.linalg.norm(off[k])), float(np.linalg.norm(off[a]))) for _h, k, a, _b in LEGS]
        # heights over the floor of the ankle and ball joints of a flat, standing foot
        floor_y = float(body.floor_y)
        self.ankle_height = [float(rest[a, 1] - floor_y) + sole_lift_m for _h, _k, a, _b in LEGS]
        self.ball_height = [float(rest[b, 1] - floor_y) + sole_lift_m for _h, _k, _a, b in LEGS]
        self.foot_length = [float(np.linalg.norm(off[b])) for _h, _k, _a, b in LEGS]  # ankle -> ball
        self._flat0 = np.asarray(heading_to_orient(0.0), dtype=np.float64)
        # the heel rises about the foot's lateral axis; its sign is the one that lifts the ankle
        flat = self.flat_rotation(0.0)
        lateral = flat @ np.array([1.0, 0.0, 0.0])
        ball = self.offsets[LEGS[0][3]]
        up = (axis_angle(lateral, 0.2) @ flat @ ball)[2] < (flat @ ball)[2]
        self.heel_axis_model = np.array([1.0, 0.0, 0.0]) * (1.0 if up else -1.0)

    def flat_rotation(self, yaw: float) -> np.ndarray:
        """(3,3) global rotation of a foot standing flat, facing ``yaw`` (the rest foot turned)."""
        return rotation_z(yaw) @ self._flat0

    def fk(self, rot: np.ndarray, pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rot (T,>=22,3,3) local (rot[:,0] global), pelvis (T,3) -> global rot (T,22,3,3), pos (T,22,3)."""
        g, p = self._fk.transforms(torch.as_tensor(np.asarray(rot)[:, :N_JOINTS], dtype=torch.float32),
                                   torch.as_tensor(np.asarray(pelvis), dtype=torch.float32), N_JOINTS)
        return g.numpy().astype(np.float64), p.numpy().astype(np.float64)

    def planted_ankle(self, side: int, ball: np.ndarray, yaw: float, rise: float) -> tuple[np.ndarray, np.ndarray]:
        """(ankle position (3,), ankle global rotation (3,3)) of a foot on its ball with the heel raised ``rise`` rad."""
        flat = self.flat_rotation(yaw)
        rot = flat @ axis_angle(self.heel_axis_model, rise)
        # the ball joint sits above the sole: turning the foot about it tucks the skin in front of it
        # (blended between foot and toes) a few millimetres into the floor; the pivot rises to match
        pivot = ball + np.array([0.0, 0.0, BALL_LIFT_PER_RAD * rise])
        return pivot - rot @ self.offsets[LEGS[side][3]], rot


class FootPlanter:
    """Stateful across windows: call `plant` on each window's new frames, in order."""

    def __init__(self, body, floor_z: float = 0.0, fps: float = 30.0, cfg: PlantConfig = PlantConfig(),
                 clearance=None) -> None:
        """``clearance(points (N,3) world) -> (N,)``: distance to the scene (a scene SDF's
        ``query_np``; the floor may be part of it); a step never lands a foot where furniture is
        closer than `PlantConfig.foot_clearance_m`."""
        self.cfg = cfg
        self.scene_distance = clearance
        self.clearance = None if clearance is None else self.furniture_distance
        self.fps = fps
        self.floor_z = float(floor_z)
        self.legs = LegSkeleton(body, cfg.sole_lift_m)
        self.feet: list[_Foot] | None = None
        self.last_swivel = [0.0, 0.0]  # each knee's outward turn on the last frame solved

    def furniture_distance(self, points: np.ndarray) -> np.ndarray:
        """(N,3) world points -> (N,) distance to the scene other than the floor under them: where
        the nearest surface is the floor itself (the scene distance is the height over it, within
        the grid's error), nothing is in the way there (a foot lands on the floor; only furniture
        nearer than the floor can block it)."""
        d = np.asarray(self.scene_distance(points), dtype=np.float64)
        height = np.asarray(points)[:, 2] - self.floor_z
        return np.where(d >= height - FLOOR_SDF_TOLERANCE_M, np.inf, d)

    # ---------------------------------------------------------------- decisions
    def heel_rise(self, side: int, foot: _Foot, hip: np.ndarray, limit: float) -> tuple[float, bool]:
        """(heel rise a leg needs to reach its planted foot from ``hip`` stretched to ``limit`` m, whether it can)."""

        def gap(rise: float) -> float:
            ankle, _ = self.legs.planted_ankle(side, foot.ball, foot.yaw, rise)
            return float(np.linalg.norm(ankle - hip)) - limit

        if gap(0.0) <= 0:
            return 0.0, True
        hi = self.cfg.max_heel_rise
        if gap(hi) > 0:
            return hi, False
        lo = 0.0
        for _ in range(24):  # bisection: the gap shrinks monotonically as the heel rises
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
        return hi, True

    def reach_limit(self, side: int, sampled: float, walking: float) -> float:
        """How far a leg may stretch: `PlantConfig.reach` of its length, or as far as the sampled leg
        does — up to straight when standing (``walking`` 0), `PlantConfig.walk_reach` when walking (1).

        Why not straight in a walk: a foot that leaves the floor from a straight leg snaps its knee
        forward (the knee's offset grows like the square root of the leg's shortening: 6 m/s)."""
        length = sum(self.legs.lengths[side])
        top = 0.999 + walking * (self.cfg.walk_reach - 0.999)
        return float(np.clip(sampled, min(self.cfg.reach, top) * length, top * length))

    def walking_share(self, speed: np.ndarray) -> np.ndarray:
        """(T,) speeds -> (T,) 0 standing .. 1 walking (smooth, around `PlantConfig.idle_speed_m_s`)."""
        idle = self.cfg.idle_speed_m_s
        return smoothstep((np.asarray(speed) - 0.5 * idle) / idle)

    def _landing(self, side: int, ref_ball: np.ndarray, ref_yaw: float, hip: np.ndarray, limit: float) -> tuple[np.ndarray, float]:
        """Where a step lands: the sampled foot's place, pulled horizontally into reach of ``hip``."""
        ball = np.array([ref_ball[0], ref_ball[1], self.floor_z + self.legs.ball_height[side]])
        foot = _Foot(ball, ref_yaw, 0)
        if self.heel_rise(side, foot, hip, limit)[0] == 0.0:
            return ball, ref_yaw
        lo, hi = 0.0, 1.0  # share of the way from under the hip to the wanted place
        under = np.array([hip[0], hip[1], ball[2]])
        for _ in range(24):
            mid = 0.5 * (lo + hi)
            ankle, _ = self.legs.planted_ankle(side, under + mid * (ball - under), ref_yaw, 0.0)
            lo, hi = (mid, hi) if np.linalg.norm(ankle - hip) <= limit else (lo, mid)
        return under + lo * (ball - under), ref_yaw

    def _clear_landing(self, side: int, ball: np.ndarray, yaw: float, current: np.ndarray,
                       swing_room=None) -> np.ndarray | None:
        """``ball``, or the nearest clear place on the way back to ``current``; None if none is clear.

        Clear: the landed foot's outline (heel, ankle, ball and its sides, toe tip) keeps `PlantConfig.
        foot_clearance_m` from the furniture, and the leg swinging there keeps clear too
        (``swing_room(ball) -> m``, `_swing_room`); where no landing's swing is clear, the outline-clear
        one whose swing comes least close (a cancelled step would drag the planted foot instead)."""
        if self.clearance is None:
            return ball
        fallback, best = None, -np.inf
        for share in (1.0, 0.75, 0.5, 0.25):
            at = current + share * (ball - current)
            ankle, rot = self.legs.planted_ankle(side, at, yaw, 0.0)
            forward = rot[:, 2] * np.array([1.0, 1.0, 0.0])
            forward /= max(float(np.linalg.norm(forward)), 1e-9)
            side_way = np.array([-forward[1], forward[0], 0.0])
            toe = at + TOE_TIP_M * forward
            outline = np.stack([ankle - HEEL_M * forward, ankle, at, toe, at + FOOT_HALF_WIDTH_M * side_way,
                                at - FOOT_HALF_WIDTH_M * side_way, toe + 0.5 * FOOT_HALF_WIDTH_M * side_way,
                                toe - 0.5 * FOOT_HALF_WIDTH_M * side_way])
            if float(np.min(self.clearance(outline))) < self.cfg.foot_clearance_m:
                continue
            room = swing_room(at) if swing_room is not None else 0.0
            if room >= 0.0:
                return at
            if room > best:
                fallback, best = at, room
        return fallback

    def _swing_room(self, side: int, sw: _Swing, ball: np.ndarray, yaw: float, hips: np.ndarray) -> float:
        """m the swinging leg keeps clear of the furniture beyond its skin (negative: it would enter),
        on the way to ``ball``: knee, mid-shin, ankle and toes at a quarter, half and three quarters
        of the swing. ``hips`` (3,3) the hip there. Why: the landing alone was tested, and a shin
        or knee swinging past a desk's side or a table's edge went 2 cm in (4-10 % of a case's frames)."""
        end_ankle, _ = self.legs.planted_ankle(side, ball, yaw, 0.0)
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        points, radii = [], []
        for k, u in enumerate((0.25, 0.5, 0.75)):
            ankle = self._swing_ankle(sw, end_ankle, u)
            knee = self._knee(side, hips[k:k + 1], ankle[None], forward[None], forward[None])[0][0]
            toe = ankle + (self.legs.foot_length[side] + TOE_TIP_M) * forward
            points += [knee, 0.5 * (knee + ankle), ankle, toe]
            radii += [KNEE_RADIUS_M, SHIN_RADIUS_M, ANKLE_RADIUS_M, TOE_RADIUS_M]
        return float(np.min(self.clearance(np.stack(points)) - np.array(radii)))

    # ---------------------------------------------------------------- the pass
    def hip_cap(self, speed: np.ndarray) -> np.ndarray:
        """(T,) pelvis speeds -> (T,) highest hip joint z over the floor from which a stance foot
        `PlantConfig.stance_half_s` of travel ahead or behind is still in reach (a walk bends the knees)."""
        length = self.cfg.hip_cap_reach * min(sum(ls) for ls in self.legs.lengths)
        half = np.clip(np.asarray(speed) * self.cfg.stance_half_s, 0.0, 0.6 * length)
        return self.floor_z + min(self.legs.ankle_height) + np.sqrt(length ** 2 - half ** 2)

    def lowered_pelvis(self, rot: np.ndarray, pelvis: np.ndarray, new_from: int, look_to: int,
                       keep: np.ndarray | None = None) -> np.ndarray:
        """(W,3) pelvis lowered, smoothly, where its hips ride higher than `hip_cap` allows.

        rot (W,55,3,3), pelvis (W,3): a window in the world (the floor at ``floor_z``). Why: the network
        often walks as tall as it stands (legs straight under the hips); no planted foot a step
        ahead or behind is then in reach. Real walks carry the pelvis 4-5 cm lower. Frames before
        ``new_from`` are final (already lowered: the new frames continue them); frames from
        ``look_to`` on are not read; ``keep`` (W,) bool: frames whose pelvis height is a key.
        """
        look = max(look_to, new_from + 1)
        _, p = self.legs.fk(rot[:look].astype(np.float64), pelvis[:look].astype(np.float64))
        speed = self._speed(p[:, 0, :2])
        hips = p[:, [LEGS[0][0], LEGS[1][0]], 2].max(1)
        # a walk bends its knees; a standing body may stretch (a reach on tiptoe) and stands near furniture
        walk_excess = np.clip(hips - self.hip_cap(speed), 0.0, None) * self.walking_share(speed)
        drop = np.minimum(self._smooth_excess(walk_excess, len(pelvis)), self.cfg.max_drop_m)
        # at any speed: a body whose hips ride higher than its legs reach the floor from floats (a hop)
        float_excess = np.clip(hips - self.tiptoe_cap(self.walking_share(speed)), 0.0, None)
        drop = np.maximum(drop, self._smooth_excess(float_excess, len(pelvis)))
        drop[:new_from] = 0.0
        # eased in after the final frames: the network may stand taller again right after them
        ramp = np.clip((np.arange(len(drop)) - new_from + 1) / (KEY_EASE_FRAMES + 1), 0.0, 1.0) if new_from > 0 else 1.0
        drop *= ramp
        if keep is not None and keep.any():
            drop *= eased_share(keep, KEY_EASE_FRAMES)
        out = np.array(pelvis, dtype=np.float64)
        out[:, 2] -= drop
        return out.astype(np.asarray(pelvis).dtype)

    def tiptoe_cap(self, walking: np.ndarray | float = 0.0) -> np.ndarray | float:
        """Highest hip joint z from which a leg still reaches the floor: the foot on its ball with
        the heel risen `PlantConfig.max_heel_rise`, the leg stretched to `reach_limit` (straight
        standing, ``walking`` 0; `PlantConfig.walk_reach` walking, 1). ``walking`` (...,) -> (...,)."""
        length = min(sum(ls) for ls in self.legs.lengths)
        top = 0.999 + np.asarray(walking, dtype=np.float64) * (self.cfg.walk_reach - 0.999)
        ankle = min(self.legs.planted_ankle(side, np.array([0.0, 0.0, self.legs.ball_height[side]]), 0.0,
                                            self.cfg.max_heel_rise)[0][2] for side in range(2))
        return self.floor_z + ankle + top * length

    def _smooth_excess(self, excess: np.ndarray, n: int) -> np.ndarray:
        """(L,) per-frame excess height -> (n,) a smooth drop covering it (held past frame L)."""
        r = int(round(3 * self.cfg.smooth_sigma))
        drop = gaussian_filter1d(maximum_filter1d(excess, 2 * r + 1, mode="nearest"), 1.5 * self.cfg.smooth_sigma, mode="nearest")
        return np.concatenate([drop, np.full(n - len(drop), drop[-1])])

    def _speed(self, xy: np.ndarray) -> np.ndarray:
        """(T,2) pelvis positions -> (T,) smoothed horizontal speed (m/s)."""
        if len(xy) < 2:
            return np.zeros(len(xy))
        xy = gaussian_filter1d(xy, self.cfg.smooth_sigma, axis=0, mode="nearest")
        return np.linalg.norm(np.gradient(xy, axis=0), axis=-1) * self.fps

    def plant(self, rot: np.ndarray, pelvis: np.ndarray, new_from: int, new_to: int, look_to: int,
              offset: int, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Plant the feet on frames [new_from, new_to) of a window.

        rot (W,55,3,3) local rotations (rot[:,0] global), pelvis (W,3): one window, world frame;
        frames [new_to, look_to) are the window's prediction past them (read to place landings);
        ``offset`` is the window's first frame in the clip (a clip may end in mid-step);
        ``keep`` (W,2) bool: frames where a leg's rotations are hard anchors (an animator's key):
        that leg keeps them there, the planted solution eased into them over `KEY_EASE_FRAMES`.
        Call `lowered_pelvis` first where the sampled walk is tall (the arm IK must see the result).
        Returns (rot with the legs re-solved on the new frames, contacts (new_to-new_from,4)).

        `_read_window` -> (`_first_stances`) -> `_plant_frame` per frame -> `_solve_legs`.
        """
        win = self._read_window(rot, pelvis, max(look_to, new_to), offset)
        if self.feet is None:  # the first frame: both feet where the motion starts them, flat
            self._first_stances(win, new_from)
        targets = _LegTargets.zeros(new_to - new_from)
        for i, t in enumerate(range(new_from, new_to)):
            self._plant_frame(win, t, targets, i)
        return self._solve_legs(rot, win, new_from, new_to, targets, keep), targets.contacts

    def _read_window(self, rot: np.ndarray, pelvis: np.ndarray, look: int, offset: int) -> _PlantWindow:
        """The window's joints and what the sampled motion wants of the feet on frames [0, look)."""
        cfg = self.cfg
        sig = cfg.smooth_sigma
        g, p = self.legs.fk(rot.astype(np.float64), pelvis.astype(np.float64))
        speed = self._speed(p[:look, 0, :2])
        ref_ball = [gaussian_filter1d(p[:look, b], sig, axis=0, mode="nearest") if look > 1 else p[:look, b]
                    for _h, _k, _a, b in LEGS]
        ref_yaw = []
        for _h, _k, a, _b in LEGS:
            fwd = g[:look, a, :, 2]
            yaw = np.unwrap(np.arctan2(fwd[:, 1], fwd[:, 0]))
            ref_yaw.append(gaussian_filter1d(yaw, sig, mode="nearest") if look > 1 else yaw)
        ahead = int(round(cfg.land_ahead_s * self.fps))
        walking = self.walking_share(speed)
        limit = [[self.reach_limit(side, d, w) for d, w in zip(np.linalg.norm(p[:look, a] - p[:look, h], axis=-1), walking)]
                 for side, (h, _k, a, _b) in enumerate(LEGS)]
        return _PlantWindow(g, p, look, offset, speed, ref_ball, ref_yaw, limit, ahead)

    def _first_stances(self, win: _PlantWindow, t: int) -> None:
        """Both feet planted flat where the sampled motion has them at window frame ``t``, in reach,
        as if they had stood there long enough to step at once."""
        self.feet = []
        for side in range(2):
            ball, yaw = self._landing(side, win.ref_ball[side][t], float(win.ref_yaw[side][t]),
                                      win.p[t, LEGS[side][0]], win.limit[side][t])
            self.feet.append(_Foot(ball, yaw, win.offset + t - self.cfg.min_stance_frames))

    def _plant_frame(self, win: _PlantWindow, t: int, targets: _LegTargets, i: int) -> None:
        """Window frame ``t`` (the ``i``-th new one): swings that are over land, at most one step
        starts (`_maybe_lift`), and each foot's target is set (``targets``, index ``i``)."""
        now = win.offset + t
        for foot in self.feet:
            if foot.swing is not None and now >= foot.swing.end:
                foot.since, foot.swing = foot.swing.end, None
        rises = []
        for side, foot in enumerate(self.feet):
            rises.append(self.heel_rise(side, foot, win.p[t, LEGS[side][0]], win.limit[side][t]) if foot.swing is None else (0.0, True))
        self._maybe_lift(win, t, rises)
        for side in range(2):
            self._place_foot(win, t, side, rises[side], targets, i)

    def _place_foot(self, win: _PlantWindow, t: int, side: int, rise_reached: tuple[float, bool],
                    targets: _LegTargets, i: int) -> None:
        """Foot ``side``'s target on window frame ``t`` (``targets`` index ``i``): planted (slid into
        reach where the hips outran it; not planted then), or along its swing; never out of reach."""
        foot = self.feet[side]
        hip, limit = win.p[t, LEGS[side][0]], win.limit[side][t]
        if foot.swing is None:
            rise, reached = rise_reached
            if not reached:
                self._slide_into_reach(side, foot, rise, hip, limit)
            ankle, arot = self.legs.planted_ankle(side, foot.ball, foot.yaw, rise)
            flat = self.legs.flat_rotation(foot.yaw)
            targets.ankle[side, i], targets.ankle_rot[side, i], targets.toe_local[side, i] = ankle, arot, arot.T @ flat
            # out of reach (no step possible yet), the leg slides it: not planted
            targets.contacts[i, 2 * side] = 1.0 if rise < 0.1 and reached else 0.0
            targets.contacts[i, 2 * side + 1] = 1.0 if reached else 0.0
        else:
            targets.ankle[side, i], targets.ankle_rot[side, i], targets.toe_local[side, i] = \
                self._swing_pose(side, foot, win.offset + t)
        targets.ankle[side, i] = self._within_reach(targets.ankle[side, i], hip, limit)
        foot.ankle = targets.ankle[side, i].copy()

    def _solve_legs(self, rot: np.ndarray, win: _PlantWindow, new_from: int, new_to: int, targets: _LegTargets,
                    keep: np.ndarray | None) -> np.ndarray:
        """rot (W,55,3,3) with both legs solved to ``targets`` on frames [new_from, new_to), eased
        into a leg's hard keys (``keep`` (W,2)) over `KEY_EASE_FRAMES`; rot's dtype."""
        g, p = win.g, win.p
        out = rot.astype(np.float64)
        for side in range(2):
            out[new_from:new_to] = self._solve_leg(out[new_from:new_to], g[new_from:new_to], p[new_from:new_to], side,
                                                   targets.ankle[side], targets.ankle_rot[side], targets.toe_local[side])
            if keep is not None and keep[:, side].any():
                share = eased_share(keep[:, side], KEY_EASE_FRAMES)[new_from:new_to]
                joints = list(LEGS[side])
                new = out[new_from:new_to, joints]
                old = rot[new_from:new_to, joints].astype(np.float64)
                out[new_from:new_to, joints] = blend_rotations(old, new, share[:, None])
        return out.astype(rot.dtype)

    def _maybe_lift(self, win: _PlantWindow, t: int, rises: list[tuple[float, bool]]) -> None:
        """Start at most one step at window frame t: the foot that most needs it, if the other is
        down. ``rises`` per side: (heel rise, reached) of a planted foot at t (`heel_rise`)."""
        scores, feasible = zip(*(self._step_need(win, t, side, rises[side]) for side in range(2)))
        # the neediest foot whose step the other can carry; failing that, the neediest
        ranked = sorted(range(2), key=lambda k: (feasible[k], scores[k]), reverse=True)
        side = ranked[0] if scores[ranked[0]] >= 1.0 else max(range(2), key=lambda k: scores[k])
        if scores[side] < 1.0:
            return
        self._start_step(win, t, side, rises[side][0])

    def _step_need(self, win: _PlantWindow, t: int, side: int, rise_ok: tuple[float, bool]) -> tuple[float, bool]:
        """(how much foot ``side`` needs to step at window frame t: 1 or more steps, whether the other
        foot can carry the body through that step); (0, False) while either foot may not leave."""
        cfg = self.cfg
        now = win.offset + t
        foot, other = self.feet[side], self.feet[1 - side]
        if (foot.swing is not None or other.swing is not None or now - other.since < cfg.min_double_support
                or now - foot.since < cfg.min_stance_frames):
            return 0.0, False
        rise, ok = rise_ok
        if ok:  # a frame early: the foot leaves before its leg would have to stretch past reach
            k1 = min(t + 1, win.look - 1)
            ok = self.heel_rise(side, foot, extrapolated(win.hip(side), t + 1), win.limit[side][k1])[1]
        score = 2.0 if not ok else rise / cfg.lift_heel_rise
        score = max(score, abs(wrap(float(win.ref_yaw[side][t]) - foot.yaw)) / cfg.turn_drift_rad)
        if win.speed[t] < cfg.idle_speed_m_s:
            drift = float(np.linalg.norm(win.ref_ball[side][t][:2] - foot.ball[:2]))
            score = max(score, drift / cfg.idle_drift_m)
        # the other foot carries the body through this step: can it now, and could it a moment later?
        k = t + cfg.swing_frames + cfg.min_double_support
        holds = self._holds(win, 1 - side, k)
        if holds:
            k = k + URGENT_LAG
            later_rise, later_ok = self.heel_rise(1 - side, other, extrapolated(win.hip(1 - side), k),
                                                  win.limit[1 - side][min(k, win.look - 1)])
            if not later_ok or later_rise > URGENT_RISE * cfg.max_heel_rise:
                score = max(score, 1.0)  # now or never: waiting would strand the other foot
        return score, holds

    def _start_step(self, win: _PlantWindow, t: int, side: int, rise: float) -> None:
        """Foot ``side`` leaves at window frame t (heel risen ``rise``) for a landing in reach and
        clear of the furniture (`_landing`, `_clear_landing`); it stays if no landing is clear."""
        cfg = self.cfg
        foot = self.feet[side]
        now = win.offset + t
        land = now + cfg.swing_frames
        k_land = land - win.offset
        k_ref = k_land + win.ahead
        wanted = self._wanted_landing(win, t, side, k_land, k_ref)
        swing = self._lift_off(win, t, side, rise, land)
        hip = win.hip(side)
        hip_land = extrapolated(hip, k_land).copy()
        hip_land[2] = min(hip_land[2], win.p[t, LEGS[side][0], 2])  # a window's last frames may still ride high
        ball, yaw = self._landing(side, wanted, float(extrapolated(win.ref_yaw[side], k_ref)), hip_land,
                                  win.limit[side][min(k_land, win.look - 1)])
        hips = np.stack([extrapolated(hip, t + int(round(u * cfg.swing_frames))) for u in (0.25, 0.5, 0.75)])
        ball = self._clear_landing(side, ball, yaw, foot.ball, lambda at: self._swing_room(side, swing, at, yaw, hips))
        if ball is None:  # nowhere clear to step to: the foot stays
            return
        foot.swing = swing
        foot.ball, foot.yaw = ball, wrap(yaw)

    def _wanted_landing(self, win: _PlantWindow, t: int, side: int, k_land: int, k_ref: int) -> np.ndarray:
        """(3,) where the sampled motion would put foot ``side`` landing at window frame ``k_land``:
        its smoothed ball at ``k_ref``; walking, at its hip's mid-stance, at the sampled width."""
        cfg = self.cfg
        wanted = extrapolated(win.ref_ball[side], k_ref).copy()
        walking = float(self.walking_share(win.speed[min(t, win.look - 1)]))
        if walking > 0:  # a walking foot lands where its hip will be at mid-stance (the sampled one only sets the width)
            hips = win.hip(side)
            mid = extrapolated(hips, k_land + int(round(cfg.land_mid_s * self.fps)))
            heading = extrapolated(hips, k_land + 1)[:2] - extrapolated(hips, k_land - 1)[:2]
            heading = heading / max(float(np.linalg.norm(heading)), 1e-9)
            off = wanted[:2] - mid[:2]
            lateral = off - (off @ heading) * heading
            stride = mid[:2] + lateral + heading * 0.5 * self.legs.foot_length[side]
            wanted[:2] = (1 - walking) * wanted[:2] + walking * stride
        return wanted

    def _lift_off(self, win: _PlantWindow, t: int, side: int, rise: float, land: int) -> _Swing:
        """The swing of foot ``side`` leaving its stance at window frame t (heel risen ``rise``) to
        land at clip frame ``land``."""
        foot = self.feet[side]
        hip = win.hip(side)
        ankle, arot = self.legs.planted_ankle(side, foot.ball, foot.yaw, rise)
        toe_local = arot.T @ self.legs.flat_rotation(foot.yaw)
        ankle = self._within_reach(ankle, hip[t], win.limit[side][t])  # where a dragged foot was drawn
        # the foot leaves keeping pace with the hip (its heel rise kept it at a constant stretch) and
        # rising as the heel did; leaving from rest, the hips ran away from it and snapped the knee
        velocity = np.zeros(3)
        velocity[:2] = (hip[t] - hip[t - 1] if t > 0 else hip[min(t + 1, win.look - 1)] - hip[t])[:2]
        if foot.ankle is not None:
            velocity[2] = max(float(ankle[2] - foot.ankle[2]), 0.0)
        return _Swing(win.offset + t, land, ankle, arot, toe_local, velocity)

    def _holds(self, win: _PlantWindow, side: int, k: int) -> bool:
        """Can planted foot ``side`` still reach from its hip at window frame ``k``?"""
        return self.heel_rise(side, self.feet[side], extrapolated(win.hip(side), k), win.limit[side][min(k, win.look - 1)])[1]

    def _swing_pose(self, side: int, foot: _Foot, now: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ankle position, ankle global rotation and ball-joint local rotation of a foot in the air."""
        sw = foot.swing
        u = (now - sw.start) / max(sw.end - sw.start, 1)
        # world path, smoothstep in time, lifted by a sine; it lands at rest, so a toe near the floor
        # never slides. (A quintic, a sin^2 lift and capture's own lift profile, peaking early, were
        # measured: more acceleration, or soles skimming the floor late in the swing.)
        ease = smoothstep(u)
        end_ankle, end_rot = self.legs.planted_ankle(side, foot.ball, foot.yaw, 0.0)
        ankle = self._swing_ankle(sw, end_ankle, u)
        return ankle, blend_rotations(sw.ankle_rot, end_rot, ease), blend_rotations(sw.toe_local, np.eye(3), ease)

    def _swing_ankle(self, sw: _Swing, end_ankle: np.ndarray, u: float) -> np.ndarray:
        """(3,) the ankle ``u`` (0..1) of the way through swing ``sw`` to ``end_ankle``."""
        ease = smoothstep(u)
        ankle = (1 - ease) * sw.ankle + ease * end_ankle
        # cubic Hermite: the foot leaves with `_Swing.velocity` and lands at rest
        ankle = ankle + (u * (1 - u) ** 2) * (sw.end - sw.start) * sw.velocity
        ankle[2] += self.cfg.clearance_m * np.sin(np.pi * u)
        return ankle

    def _slide_into_reach(self, side: int, foot: _Foot, rise: float, hip: np.ndarray, limit: float) -> None:
        """Slide a planted foot the hips have outrun along the floor, towards the point under the
        hip, just far enough that the leg reaches it (``foot.ball`` moves; it stays there).

        A stranded foot stays on the floor: pulled up towards the hip, it left the body with both
        feet in the air until the next step landed (a float of up to a second)."""
        ankle, _ = self.legs.planted_ankle(side, foot.ball, foot.yaw, rise)
        drop = float(hip[2] - ankle[2])
        if drop >= limit:  # the hips are too high for any foot on the floor: `_within_reach` lifts it
            return
        radius = np.sqrt(limit ** 2 - drop ** 2) * (1.0 - 1e-6)
        away = ankle[:2] - hip[:2]
        dist = float(np.linalg.norm(away))
        if dist > radius:
            foot.ball = foot.ball + np.append(away * (radius / dist) - away, 0.0)

    @staticmethod
    def _within_reach(ankle: np.ndarray, hip: np.ndarray, limit: float) -> np.ndarray:
        """``ankle`` (3,), or the point ``limit`` m from ``hip`` towards it if it is further.

        Why: a foot out of reach (stranded, or a swing the hips outrun) used to be left to the IK,
        which straightened the leg fully; its knee then snapped 100 m/s² back when the foot came
        within reach again. Dragged at the reach limit, the knee keeps its bend."""
        to = ankle - hip
        d = float(np.linalg.norm(to))
        return ankle if d <= limit else hip + to * (limit / d)

    def _knee(self, side: int, hip: np.ndarray, ankle: np.ndarray, forward: np.ndarray, fallback: np.ndarray,
              swivel: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(knee (F,3), reached ankle (F,3)) of a leg from ``hip`` to ``ankle`` (F,3) bent towards
        ``forward`` (F,3; ``fallback`` where it is along the leg), turned ``swivel`` rad outwards (negative: inwards).

        Knee over the toes: the sampled knee's direction was tried and wobbles (a nearly straight
        sampled leg has no clear bend)."""
        l1, l2 = self.legs.lengths[side]
        to = ankle - hip
        dist = np.linalg.norm(to, axis=-1)
        u = to / dist.clip(1e-9)[:, None]
        d = dist.clip(abs(l1 - l2) + 1e-4, (l1 + l2) * (1 - 1e-4))
        bend = forward - (forward * u).sum(-1, keepdims=True) * u
        fb = fallback - (fallback * u).sum(-1, keepdims=True) * u
        weak = np.linalg.norm(bend, axis=-1) < 1e-3
        bend[weak] = fb[weak]
        bend /= np.linalg.norm(bend, axis=-1, keepdims=True).clip(1e-12)
        # outwards: about the hip-ankle line, away from the other leg (down x forward points right)
        out = np.cross(u, bend) * (-1.0 if side == 0 else 1.0)
        turn = np.asarray(swivel, dtype=np.float64)[..., None]
        bend = np.cos(turn) * bend + np.sin(turn) * out
        along = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
        across = np.sqrt(np.clip(l1 ** 2 - along ** 2, 0.0, None))
        return hip + along[:, None] * u + across[:, None] * bend, hip + d[:, None] * u

    def _swivel(self, side: int, hip: np.ndarray, ankle: np.ndarray, forward: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """(F,) rad the knee turns outwards (smooth in time, continuing the last window's) so that the
        knee and thigh keep out of the furniture: a planted leg's knee went into a desk's side as the
        body leant over it to pick (7 % of that case's frames), and `refine` may not move planted legs."""
        n = len(hip)
        if self.clearance is None or n == 0:  # no furniture: the knee never turns
            return np.zeros(n)
        rooms = []
        for turn in SWIVELS:
            knee, _ = self._knee(side, hip, ankle, forward, fallback, turn)
            pts = np.concatenate([knee, 0.5 * (knee + hip)])
            room = self.clearance(pts) - np.repeat([KNEE_RADIUS_M, THIGH_RADIUS_M], n)
            rooms.append(np.minimum(room[:n], room[n:]))
        rooms = np.stack(rooms, 1)  # (F, candidates)
        clear = rooms >= 0.0
        raw = np.asarray(SWIVELS)[np.where(clear.any(1), clear.argmax(1), rooms.argmax(1))]
        r = SWIVEL_EASE
        padded = np.concatenate([np.full(r, self.last_swivel[side]), raw])
        held = (maximum_filter1d(np.maximum(padded, 0.0), 2 * r + 1, mode="nearest")
                + minimum_filter1d(np.minimum(padded, 0.0), 2 * r + 1, mode="nearest"))  # each turn held its full width
        smooth = gaussian_filter1d(held, r / 2, mode="nearest")[r:]
        self.last_swivel[side] = float(smooth[-1])
        return smooth

    def _solve_leg(self, rot: np.ndarray, g: np.ndarray, p: np.ndarray, side: int, ankle: np.ndarray,
                   ankle_rot: np.ndarray, toe_local: np.ndarray) -> np.ndarray:
        """Two-bone IK over frames: hip and knee turned so the ankle reaches ``ankle`` (F,3) with the
        knee over the toes (turned out of furniture, `_swivel`); the ankle then takes ``ankle_rot``
        (F,3,3) and the ball ``toe_local``."""
        hip, knee, ank, ball = LEGS[side]
        h, k0 = p[:, hip], p[:, knee]
        forward, fallback = ankle_rot[:, :, 2], g[:, 0, :, 2]
        knee_at, ankle_at = self._knee(side, h, ankle, forward, fallback, self._swivel(side, h, ankle, forward, fallback))
        g_hip = rotation_between(k0 - h, knee_at - h) @ g[:, hip]
        knee_local = np.swapaxes(g[:, hip], -1, -2) @ g[:, knee]
        g_knee = g_hip @ knee_local
        shin = g_knee @ self.legs.offsets[ank]
        g_knee = rotation_between(shin, ankle_at - knee_at) @ g_knee
        out = rot.copy()
        out[:, hip] = np.swapaxes(g[:, 0], -1, -2) @ g_hip
        out[:, knee] = np.swapaxes(g_hip, -1, -2) @ g_knee
        out[:, ank] = np.swapaxes(g_knee, -1, -2) @ ankle_rot
        out[:, ball] = toe_local
        return out
