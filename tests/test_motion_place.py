"""The place phase's hand targets (issue #18): the grasp's hand moved rigidly with the object onto the place point."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hosig.body.skeleton import JOINT_INDEX
from hosig.motion.task import PLACE_ABOVE_M, PLACE_HAND_JOINTS, place_hand_targets


def _grasp(seed: int = 0) -> SimpleNamespace:
    """A grasp whose (55,3) joints lie around an object with its base at (1, 2, 0.8)."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(joints=np.array([1.0, 2.0, 0.8]) + rng.normal(0, 0.2, (55, 3)), hand="right")


def test_the_hand_moves_rigidly_with_the_object_onto_the_place_point() -> None:
    grasp, base = _grasp(), np.array([1.0, 2.0, 0.8])
    place, turn = np.array([-3.0, 0.5, 0.45]), 0.7
    got = place_hand_targets(grasp, "right", base, place, turn)
    assert list(got) == [f"right_{p}" for p in PLACE_HAND_JOINTS]
    c, s = np.cos(turn), np.sin(turn)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    for name, p in got.items():
        expect = place + [0, 0, PLACE_ABOVE_M] + rot @ (grasp.joints[JOINT_INDEX[name]] - base)
        np.testing.assert_allclose(p, expect, atol=1e-12)
    # heights above the base are kept: the object comes down upright, as it stood where it was picked up
    for name, p in got.items():
        assert p[2] - place[2] == pytest.approx(grasp.joints[JOINT_INDEX[name], 2] - base[2] + PLACE_ABOVE_M)


def test_no_turn_is_a_pure_translation() -> None:
    grasp, base = _grasp(1), np.array([1.0, 2.0, 0.8])
    got = place_hand_targets(grasp, "left", base, base, 0.0, above=0.0)
    for name, p in got.items():
        np.testing.assert_allclose(p, grasp.joints[JOINT_INDEX[name]], atol=1e-12)


def test_the_step_back_after_a_place_never_walks_into_what_stands_behind():
    """A wall 40 cm behind the stand point: the body steps back less (or not at all), never into it."""
    import numpy as np

    from hosig.motion.task import BODY_RADIUS_M, STEP_BACK_M, step_back_distance

    stand = np.array([0.0, 0.0, 0.0])  # facing +x: behind is -x

    def wall_behind(at: float):
        return lambda xy: float(xy[0] - at)  # free floor up to the wall plane x = at

    assert step_back_distance(stand, None) == STEP_BACK_M
    assert step_back_distance(stand, wall_behind(-2.0)) == STEP_BACK_M
    short = step_back_distance(stand, wall_behind(-0.45))
    assert 0.0 < short < STEP_BACK_M and 0.45 - short >= BODY_RADIUS_M
    assert step_back_distance(stand, wall_behind(-0.26)) == 0.0
