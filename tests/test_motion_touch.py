"""Where a reaching hand may touch the scene, and how it comes in to the grasp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hosig.body import load_body_model
from hosig.body.skeleton import JOINT_INDEX
from hosig.motion.anchors import AnchorSet, WindowAnchors
from hosig.motion.guidance import Energy
from hosig.motion.representation import CanonFrame
from hosig.motion.task import APPROACH_M, APPROACH_STEPS, TOUCH_FRAMES, _approach, approach_length, palm_normal

W = 10
WALL_X = (1.0, 1.1)  # a 10 cm wall across x


class WallSDF:
    """Signed distance to the slab WALL_X[0] <= x <= WALL_X[1] (negative inside)."""

    def query(self, points: torch.Tensor) -> torch.Tensor:
        x = points[..., 0]
        outside = torch.maximum(WALL_X[0] - x, x - WALL_X[1])
        return outside


def _energy(touch: tuple[tuple[int, int], ...], reaching_joint: int = 21) -> Energy:
    """A guidance energy whose only anchor is a wrist target (the hand that reaches)."""
    zeros = torch.zeros(W, 319)
    wa = WindowAnchors(zeros, zeros.bool(), zeros.bool(), torch.zeros(W, 18), torch.zeros(W, 18).bool(),
                       guide=[(W // 2, reaching_joint, np.array([0.99, 0.0, 1.0]), 1.0)], hand_rot=[])
    return Energy(body=None, anchors=wa, frame=CanonFrame(0.0, 0.0, 0.0, 0.0), foot_height=torch.zeros(4),
                  scene_sdf=WallSDF(), touch_spans=touch)


def _joints(wrist_x: float, side: str = "right") -> torch.Tensor:
    """(W,22,3) a body far from the wall but for one forearm lying along it, wrist 1 cm from its face."""
    joints = torch.zeros(W, 22, 3)
    joints[..., 0] = -1.0
    joints[..., 2] = 1.0
    elbow, wrist = (19, 21) if side == "right" else (18, 20)
    joints[:, elbow] = torch.tensor([wrist_x, -0.25, 1.0])
    joints[:, wrist] = torch.tensor([wrist_x, 0.0, 1.0])
    return joints


def test_a_reaching_hand_may_touch_the_wall_but_its_centre_never_enters_it() -> None:
    touching = _joints(WALL_X[0] - 0.01)
    assert float(_energy(((0, W),)).scene_energy(touching)) == 0.0  # skin on the wall: allowed while reaching
    assert float(_energy(()).scene_energy(touching)) > 0.0  # not in a touch span: the arm keeps its radius
    inside = _joints(0.5 * (WALL_X[0] + WALL_X[1]))
    assert float(_energy(((0, W),)).scene_energy(inside)) > 0.0  # the wrist inside the wall: never


def test_only_the_reaching_hand_may_touch() -> None:
    free_hand_on_wall = _joints(WALL_X[0] - 0.01, side="left")
    assert float(_energy(((0, W),), reaching_joint=21).scene_energy(free_hand_on_wall)) > 0.0


def test_palm_normal_of_the_rest_pose_points_down() -> None:
    """SMPL-X rests in a T-pose with the palms down: both palm normals point to the floor (-Y in
    the model frame), whichever side's cross product is used."""
    rest = np.asarray(load_body_model().rest_joints_y, dtype=np.float64)
    for hand in ("left", "right"):
        normal = palm_normal(rest, hand)
        assert normal is not None and normal[1] < -0.9, (hand, normal)
    assert palm_normal(np.zeros((55, 3)), "right") is None  # an unposed stand-in has no palm


@pytest.mark.parametrize("board_above, expect", [(1.0, APPROACH_M[0]), (0.16, APPROACH_M[1]), (0.05, 0.0)])
def test_the_approach_line_stops_short_of_a_board_above(board_above: float, expect: float) -> None:
    """A top grasp's hand comes down from above: as far up as a board over the object leaves free."""
    wrist = np.array([0.0, 0.0, 0.0])

    def free_space(points: np.ndarray) -> np.ndarray:
        return board_above - points[:, 2]

    assert approach_length(wrist, np.array([0.0, 0.0, 1.0]), free_space) == pytest.approx(expect)


def test_the_wrist_is_anchored_on_the_approach_line_before_the_grasp() -> None:
    rest = np.asarray(load_body_model().rest_joints_y, dtype=np.float64)
    joints = rest[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # Y-up -> Z-up: the palms face -Z
    wrist = joints[JOINT_INDEX["right_wrist"]]
    grasp = type("Grasp", (), {"wrist": wrist, "joints": joints})()
    anchors = AnchorSet(100)
    g = 60
    _approach(anchors, "right_wrist", g, g - TOUCH_FRAMES, grasp, "right", free_space=None)
    got = sorted((a.frame, tuple(a.value)) for a in anchors.anchors)
    assert [f for f, _ in got] == [g - k * (TOUCH_FRAMES // APPROACH_STEPS) for k in range(APPROACH_STEPS, 0, -1)]
    heights = [p[2] - wrist[2] for _, p in got]  # earlier frames further back along the palm normal (up)
    assert heights == sorted(heights, reverse=True) and heights[0] == pytest.approx(APPROACH_M[0], abs=0.02)
    for _, p in got:
        assert np.linalg.norm(np.asarray(p)[:2] - wrist[:2]) < 0.03  # straight down onto the grasp
