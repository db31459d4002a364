"""Planted feet: a stance foot does not move, steps alternate, legs stay in reach, keys are kept."""

from __future__ import annotations

import numpy as np
import pytest

from hosig.motion.footplant import LEGS, FootPlanter, LegSkeleton, blend_rotations, eased_share
from hosig.runs import true_runs

FPS = 30.0


@pytest.fixture(scope="module")
def body():
    from hosig.body import load_body_model

    return load_body_model()


def gliding_walk(body, n: int, speed: float = 1.2, crouch: float = 0.06, turn: float = 0.0):
    """(rot (n,55,3,3), pelvis (n,3)): the rest pose carried along +x (speeding up over its first
    0.6 s, as a body starting from rest does), knees a little bent by a lowered pelvis — legs that
    never step, the worst the sampler does."""
    from hosig.frames import heading_to_orient

    t = np.arange(n) / FPS
    u = np.clip(t / 0.6, 0, 1)
    travelled = speed * np.where(t < 0.6, 0.6 * (u ** 3 - u ** 4 / 2), t - 0.3)  # speed * (3u^2 - 2u^3)
    heading = turn * t
    rot = np.tile(np.eye(3), (n, 55, 1, 1))
    rot[:, 0] = np.stack([heading_to_orient(h) for h in heading])
    standing = float(body.rest_joints_y[0, 1] - body.floor_y)
    pelvis = np.stack([travelled, np.zeros(n), np.full(n, standing - crouch)], 1)
    return rot, pelvis


def ball_positions(body, rot: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """(n,2,3) world positions of the left and right ball-of-foot joints."""
    _, p = LegSkeleton(body, 0.0).fk(rot.astype(np.float64), pelvis.astype(np.float64))
    return p[:, [LEGS[0][3], LEGS[1][3]]]


def stance_runs(contacts: np.ndarray, side: int) -> list[tuple[int, int]]:
    return true_runs(contacts[:, 2 * side + 1] > 0.5)


def test_planted_feet_do_not_slide_and_steps_alternate(body):
    n = 120
    rot, pel = gliding_walk(body, n)
    out, con = FootPlanter(body).plant(rot, pel, 0, n, n, 0)
    balls = ball_positions(body, out, pel)
    legs = LegSkeleton(body, 0.0)
    for side in range(2):
        runs = stance_runs(con, side)
        assert len(runs) >= 3, f"{len(runs)} stances in 4 s of walking (a stride takes about 1.2 s)"
        for s, e in runs:
            slide = np.linalg.norm(balls[s:e, side, :2] - balls[s, side, :2], axis=-1).max()
            assert slide < 1e-3, f"planted foot moved {slide * 100:.2f} cm over frames {s}-{e}"
            flat = legs.ball_height[side] + 0.002
            assert np.allclose(balls[s, side, 2], flat, atol=1e-3)  # lands flat on the floor
            assert (balls[s:e, side, 2] >= flat - 1e-3).all() and (balls[s:e, side, 2] <= flat + 0.01).all()  # toe-off
        swing = ~(con[:, 2 * side + 1] > 0.5)
        assert balls[swing, side, 2].max() > legs.ball_height[side] + 0.03  # the foot lifts to step
    # no flight: a foot is planted, or a stance foot at the end of its reach is pulled onto its toes
    # (at most 2 cm up) for the frame before the other lands
    down = (con[:, 1] > 0.5) | (con[:, 3] > 0.5)
    toes_low = (balls[:, :, 2] - np.array(legs.ball_height)[None] < 0.02).any(1)
    assert (down | toes_low).all(), "both feet in the air at once"
    assert (~down).sum() <= 4, f"{(~down).sum()} frames with no planted foot"
    # only the legs change, and they stay within their length
    legs_j = [j for leg in LEGS for j in leg]
    others = [j for j in range(55) if j not in legs_j]
    assert np.allclose(out[:, others], rot[:, others])
    _, p = legs.fk(out.astype(np.float64), pel)
    for side, (h, _k, a, _b) in enumerate(LEGS):
        assert (np.linalg.norm(p[:, a] - p[:, h], axis=-1) <= sum(legs.lengths[side]) + 1e-6).all()
    # the body travels 4.4 m: the feet go with it
    assert balls[-1, :, 0].min() > 3.5


@pytest.mark.parametrize("speed", [1.2, 1.4])
def test_walking_legs_keep_their_bend_and_swing_smoothly(body, speed):
    """A stance foot the hips outrun is dragged at the leg's reach, not on a straight leg, and a
    swing leaves at the hips' pace: the knees never snap (real walking knees: 5.8 m/s² on average)."""
    n = 150
    rot, pel = gliding_walk(body, n, speed=speed, crouch=0.04)
    planter = FootPlanter(body)
    out, _con = planter.plant(rot, pel, 0, n, n, 0)
    legs = LegSkeleton(body, 0.0)
    _, p = legs.fk(out.astype(np.float64), pel)
    walking = slice(20, n)  # past the first steps from rest
    for side, (h, k, a, _b) in enumerate(LEGS):
        stretch = np.linalg.norm(p[walking, a] - p[walking, h], axis=-1) / sum(legs.lengths[side])
        assert stretch.max() <= planter.cfg.walk_reach + 1e-3, f"leg straightened to {stretch.max():.3f} of its length"
    knee_acc = np.linalg.norm(np.diff(p[:, [LEGS[0][1], LEGS[1][1]]], 2, axis=0), axis=-1)[walking] * FPS ** 2
    assert knee_acc.mean() < 8.5, f"knees accelerate {knee_acc.mean():.1f} m/s² on average"


def test_standing_body_keeps_its_feet_and_its_legs(body):
    n = 60
    rot, pel = gliding_walk(body, n, speed=0.0, crouch=0.0)
    planter = FootPlanter(body)
    assert np.allclose(planter.lowered_pelvis(rot, pel, 0, n), pel)  # a stand is never lowered
    out, con = planter.plant(rot, pel, 0, n, n, 0)
    assert (con[:, [1, 3]] > 0.5).all(), "a standing body stepped"
    before = ball_positions(body, rot, pel)
    after = ball_positions(body, out, pel)
    assert np.abs(after - before).max() < 0.01


def test_turning_on_the_spot_steps_round(body):
    n = 90
    rot, pel = gliding_walk(body, n, speed=0.0, turn=np.pi / 4)  # 135 degrees in 3 s
    out, con = FootPlanter(body).plant(rot, pel, 0, n, n, 0)
    assert len(stance_runs(con, 0)) + len(stance_runs(con, 1)) >= 4  # it stepped round
    fwd_end = LegSkeleton(body, 0.0).fk(out.astype(np.float64), pel)[0][-1, [LEGS[0][2], LEGS[1][2]], :, 2]
    yaw = np.arctan2(fwd_end[:, 1], fwd_end[:, 0])
    turned = (yaw - 0.75 * np.pi + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(turned).max() < 0.6  # the feet face roughly where the body does


def test_a_stance_continues_across_windows(body):
    n = 100
    rot, pel = gliding_walk(body, n)
    planter = FootPlanter(body)
    out = rot.copy()
    con = np.zeros((n, 4), np.float32)
    for s, (a, b) in zip((0, 40), ((0, 50), (10, 60))):  # windows [0,64) and [40,100): new frames 0-49, 50-99
        stop = min(s + 64, n)
        w_out, w_con = planter.plant(out[s:stop].copy(), pel[s:stop], a, b, stop - s, s)
        out[s + a:s + b] = w_out[a:b]
        con[s + a:s + b] = w_con
    balls = ball_positions(body, out, pel)
    for side in range(2):
        for s, e in stance_runs(con, side):
            assert np.linalg.norm(balls[s:e, side, :2] - balls[s, side, :2], axis=-1).max() < 1e-3
    speed = np.linalg.norm(np.diff(balls, axis=0), axis=-1) * FPS
    assert speed.max() < 6.0  # no jump at the seam


def test_an_animators_leg_key_is_kept_and_eased_into(body):
    n = 60
    rot, pel = gliding_walk(body, n)
    keep = np.zeros((n, 2), bool)
    keep[30, 0] = True
    out, _ = FootPlanter(body).plant(rot, pel, 0, n, n, 0, keep)
    assert np.allclose(out[30, list(LEGS[0])], rot[30, list(LEGS[0])], atol=1e-6)
    assert not np.allclose(out[20, list(LEGS[0])], rot[20, list(LEGS[0])], atol=1e-3)  # planted elsewhere
    speed = np.linalg.norm(np.diff(ball_positions(body, out, pel), axis=0), axis=-1) * FPS
    assert speed.max() < 6.0  # eased, not snapped


def test_rotation_blend_and_easing_helpers():
    from scipy.spatial.transform import Rotation

    r0 = Rotation.from_rotvec([0.0, 0.0, 0.2]).as_matrix()
    r1 = Rotation.from_rotvec([0.0, 0.0, 1.0]).as_matrix()
    mid = blend_rotations(r0, r1, 0.5)
    assert np.allclose(Rotation.from_matrix(mid).as_rotvec(), [0, 0, 0.6], atol=1e-9)
    share = eased_share(np.array([False] * 5 + [True] + [False] * 5), 2)
    assert share[5] == 0 and share[4] == pytest.approx(1 / 3) and share[0] == 1


def test_a_walk_as_tall_as_a_stand_is_lowered_so_its_feet_can_plant(body):
    n = 120
    rot, tall = gliding_walk(body, n, crouch=0.0)  # legs straight under the hips, walking
    planter = FootPlanter(body)
    pel = planter.lowered_pelvis(rot, tall, 0, n)
    drop = tall[:, 2] - pel[:, 2]
    assert 0.02 < drop[60:].mean() <= 0.06 + 1e-9  # walking bends the knees, within the cap
    assert np.abs(np.diff(drop, 2)).max() < 0.002  # smoothly
    assert np.allclose(pel[:, :2], tall[:, :2])
    out, con = planter.plant(rot, pel, 0, n, n, 0)
    balls = ball_positions(body, out, pel)
    for side in range(2):
        for s, e in stance_runs(con, side):
            assert np.linalg.norm(balls[s:e, side, :2] - balls[s, side, :2], axis=-1).max() < 1e-3


def test_a_step_never_lands_a_foot_in_furniture(body):
    n = 90
    rot, pel = gliding_walk(body, n)
    free_out, free_con = FootPlanter(body).plant(rot, pel, 0, n, n, 0)
    s, _ = stance_runs(free_con, 0)[1]  # put a low box where the left foot lands its first step
    at = ball_positions(body, free_out, pel)[s, 0]
    lo, hi = at + np.array([-0.1, -0.06, -1.0]), at + np.array([0.15, 0.3, 0.3])

    def clearance(points: np.ndarray) -> np.ndarray:
        d = np.maximum(lo - points, points - hi)  # box SDF
        return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)

    out, con = FootPlanter(body, clearance=clearance).plant(rot, pel, 0, n, n, 0)
    _, p = LegSkeleton(body, 0.0).fk(out.astype(np.float64), pel)
    ankle, ball = LEGS[0][2], LEGS[0][3]
    planted = con[:, 1] > 0.5
    landings = [s for s, _ in stance_runs(con, 0)]
    assert (clearance(p[landings][:, [ankle, ball]].reshape(-1, 3)) >= 0.02 - 1e-6).all()  # where it lands
    assert (clearance(p[planted][:, [ankle, ball]].reshape(-1, 3)) > 0.0).all()  # never inside
    assert len(stance_runs(con, 0)) >= 3  # it still walks


def test_a_swinging_knee_keeps_out_of_furniture_at_knee_height(body):
    """A low panel over the left foot's lane (a table's apron): the floor beyond it is free, so the
    landing alone passes, but the knee swinging there would go through; the step lands short of it
    and the knee turns out of its way."""
    n = 90
    rot, pel = gliding_walk(body, n)
    lo, hi = np.array([3.0, 0.0, 0.5]), np.array([3.1, 0.2, 0.8])  # where the free walk's left knee swings

    def clearance(points: np.ndarray) -> np.ndarray:
        d = np.maximum(lo - points, points - hi)  # box SDF
        return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)

    class LandingOnly(FootPlanter):  # the same planter testing only where feet land
        def _swing_room(self, *args) -> float:
            return 0.0

        def _swivel(self, side, hip, *args) -> np.ndarray:
            return np.zeros(len(hip))

    def swinging_knee_room(planter_type) -> float:
        out, con = planter_type(body, clearance=clearance).plant(rot, pel, 0, n, n, 0)
        _, p = LegSkeleton(body, 0.0).fk(out.astype(np.float64), pel)
        return float(clearance(p[con[:, 1] < 0.5, LEGS[0][1]]).min())

    assert swinging_knee_room(LandingOnly) < 0.0  # the panel is where the knee would go
    assert swinging_knee_room(FootPlanter) > 0.0


def test_a_planted_knee_turns_out_of_furniture_beside_it(body):
    """A cabinet side just beside a standing body's bent left knee: the knee turns about its
    hip-ankle line out of it, eased in (no pop), and the planted foot does not move."""
    n = 40
    rot, pel = gliding_walk(body, n, speed=0.0, crouch=0.06)
    free, _ = FootPlanter(body).plant(rot, pel, 0, n, n, 0)
    _, p0 = LegSkeleton(body, 0.0).fk(free.astype(np.float64), pel)
    knee = p0[0, LEGS[0][1]]
    lo, hi = knee + np.array([-0.1, 0.03, -0.1]), knee + np.array([0.1, 0.3, 0.1])  # from 3 cm left of it

    def clearance(points: np.ndarray) -> np.ndarray:
        d = np.maximum(lo - points, points - hi)
        return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)

    from hosig.motion.footplant import KNEE_RADIUS_M

    assert clearance(knee[None])[0] < KNEE_RADIUS_M  # the skin of the unturned knee is in the cabinet
    out, _ = FootPlanter(body, clearance=clearance).plant(rot, pel, 0, n, n, 0)
    _, p = LegSkeleton(body, 0.0).fk(out.astype(np.float64), pel)
    settled = slice(10, n)
    assert (clearance(p[settled, LEGS[0][1]]) >= KNEE_RADIUS_M - 1e-3).all()
    assert np.allclose(p[:, [LEGS[0][2], LEGS[0][3]]], p0[:, [LEGS[0][2], LEGS[0][3]]], atol=1e-4)  # foot stays
    speed = np.linalg.norm(np.diff(p[:, LEGS[0][1]], axis=0), axis=-1) * FPS
    assert speed.max() < 0.5, f"the knee moved {speed.max():.2f} m/s turning"


def test_a_hop_on_the_spot_is_brought_down_to_the_floor_and_tiptoe_is_kept(body):
    """A standing body whose hips the sampler lifts 18 cm (a hop while turning) comes down until a
    straight leg on tiptoe reaches the floor; a 5 cm rise onto the toes (a reach) is left alone."""
    n = 60
    rot, pel = gliding_walk(body, n, speed=0.0, crouch=0.0)
    planter = FootPlanter(body)
    rise = 0.18 * np.sin(np.linspace(0.0, np.pi, n)) ** 2
    hop = pel.copy()
    hop[:, 2] += rise
    lowered = planter.lowered_pelvis(rot, hop, 0, n)
    _, joints = LegSkeleton(body, 0.0).fk(rot.astype(np.float64), lowered.astype(np.float64))
    hips = joints[:, [LEGS[0][0], LEGS[1][0]], 2].max(1)
    assert hips.max() <= planter.tiptoe_cap() + 0.005
    assert np.abs(np.diff(lowered[:, 2], 2)).max() < 0.004  # brought down smoothly
    reach = pel.copy()
    reach[:, 2] += 0.05 * np.sin(np.linspace(0.0, np.pi, n)) ** 2
    assert np.allclose(planter.lowered_pelvis(rot, reach, 0, n), reach)


def test_a_stance_foot_the_hips_outrun_stays_on_the_floor(body):
    """Windows planted one after another, each seeing only its own frames, while the pelvis
    lurches ahead (2.4 m/s for 0.4 s, as a window that lags its path catches up): at every frame
    a foot is on the floor — a stranded foot slides after the body, it is not lifted off."""
    n, window = 150, 12
    rot, pel = gliding_walk(body, n, speed=1.0, crouch=0.05)
    t = np.arange(n)
    lurch = np.clip((t - 70) / 12.0, 0.0, 1.0) * 0.56  # 0.56 m more in 12 frames
    pel[:, 0] += lurch
    planter = FootPlanter(body)
    out = rot.copy()
    for start in range(0, n, window):
        end = min(start + window, n)
        out[start:end] = planter.plant(rot[start:end], pel[start:end], 0, end - start, end - start, start)[0]
    balls = ball_positions(body, out, pel)
    legs = LegSkeleton(body, 0.0)
    height = balls[:, :, 2] - np.array(legs.ball_height)[None]
    lowest = height.min(1)
    assert lowest.max() < 0.03, f"both feet {lowest.max() * 100:.1f} cm off the floor at frame {lowest.argmax()}"
