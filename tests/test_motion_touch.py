"""Where a reaching hand may touch the scene; the hands and the head keep out of it elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from hosig.motion.anchors import WindowAnchors
from hosig.motion.guidance import Energy
from hosig.motion.representation import CanonFrame

from slabs import Slab

W = 10
WALL_X = (1.0, 1.1)  # a 10 cm wall across x


def _energy(touch: tuple[tuple[int, int], ...], reaching_joint: int = 21) -> Energy:
    """A guidance energy whose only anchor is a wrist target (the hand that reaches)."""
    zeros = torch.zeros(W, 319)
    wa = WindowAnchors(zeros, zeros.bool(), zeros.bool(), torch.zeros(W, 18), torch.zeros(W, 18).bool(),
                       guide=[(W // 2, reaching_joint, np.array([0.99, 0.0, 1.0]), 1.0)], hand_rot=[])
    return Energy(body=None, anchors=wa, frame=CanonFrame(0.0, 0.0, 0.0, 0.0), foot_height=torch.zeros(4),
                  scene_sdf=Slab(0, *WALL_X), touch_spans=touch)


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


def test_a_regenerated_range_touches_the_scene_where_the_generated_clip_did():
    """Regenerating part of a pick-place clip gives the reaching hand the same touch spans as the
    task that made it (grasp and place only, never the carry between them), cut to the range."""
    from types import SimpleNamespace

    from hosig.motion.regenerate import _touch_spans
    from hosig.motion.task import LIFT_FRAMES, RELEASE_AFTER_PLACE, TOUCH_FRAMES, touch_spans_of

    grasp, release, n = 100, 300, 360
    spans = touch_spans_of(grasp, release, n)
    assert spans == ((grasp - TOUCH_FRAMES, grasp + LIFT_FRAMES), (release - RELEASE_AFTER_PLACE - TOUCH_FRAMES, n))
    clip = SimpleNamespace(grasp_frame=grasp, release_frame=release, n_frames=n, object_transforms=np.zeros((n, 4, 4)))
    assert _touch_spans(clip, 150, 250) == ()  # a range inside the carry: the carrying arm keeps out
    assert _touch_spans(clip, 80, 200) == ((grasp - TOUCH_FRAMES - 80, grasp + LIFT_FRAMES - 80),)
    assert _touch_spans(clip, 200, 320) == ((release - RELEASE_AFTER_PLACE - TOUCH_FRAMES - 200, 120),)
    walk = SimpleNamespace(grasp_frame=-1, release_frame=-1, n_frames=n, object_transforms=None)
    assert _touch_spans(walk, 0, 100) == ()
