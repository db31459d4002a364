"""Where a reaching hand may touch the scene; the hands and the head keep out of it elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from hosig.motion.anchors import WindowAnchors
from hosig.motion.guidance import Energy
from hosig.motion.representation import CanonFrame

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


def test_a_head_bowed_into_a_wall_costs_though_its_joint_is_clear() -> None:
    """The head joint sits at the top of the neck; the skull beyond it is what meets a wall."""
    joints = _joints(-1.0)
    joints[:, 12] = torch.tensor([WALL_X[0] - 0.20, 0.0, 1.5])  # neck
    joints[:, 15] = torch.tensor([WALL_X[0] - 0.12, 0.0, 1.5])  # head joint, 12 cm from the wall
    assert float(_energy(()).scene_energy(joints)) > 0.0
    joints[:, 15] = torch.tensor([WALL_X[0] - 0.20, 0.0, 1.6])  # upright: the skull clear of the wall
    assert float(_energy(()).scene_energy(joints)) == 0.0
