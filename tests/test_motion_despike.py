"""The despiker removes a flick faster than a person moves and leaves everything else alone."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.motion.despike import SPIKE_M_S, despike, joint_speeds, spike_spans

FPS = 30
ARM = 0.6  # m from the pivot to the end of a toy two-joint chain


def toy_fk(rot: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """(T,2,3,3) rotations (root, one child) and (T,3) pelvis -> (T,3,3): pelvis, elbow, hand."""
    down = np.array([0.0, 0.0, -ARM / 2])
    elbow = pelvis + np.einsum("tij,j->ti", rot[:, 0], down)
    hand = elbow + np.einsum("tij,tjk,k->ti", rot[:, 0], rot[:, 1], down)
    return np.stack([pelvis, elbow, hand], 1)


def swinging(n: int = 60, flick_at: int | None = None) -> np.ndarray:
    """(n,2,3,3): a child joint swinging slowly about x; at ``flick_at`` it jumps 150 degrees for one frame."""
    angle = 0.4 * np.sin(np.linspace(0, 2 * np.pi, n))
    rot = np.zeros((n, 2, 3, 3))
    rot[:, 0] = np.eye(3)
    child = angle.copy()
    if flick_at is not None:
        child[flick_at] += np.radians(150)
    rot[:, 1] = Rotation.from_rotvec(np.stack([child, 0 * child, 0 * child], 1)).as_matrix()
    return rot


def test_a_one_frame_flick_is_removed_and_calm_frames_are_kept():
    rot, pelvis = swinging(flick_at=30), np.zeros((60, 3))
    keyed = np.zeros(60, bool)
    assert joint_speeds(toy_fk(rot, pelvis)).max() > SPIKE_M_S
    fixed, changed = despike(rot, pelvis, toy_fk, 0, keyed, joints=[1], measured=[0, 1, 2])
    assert joint_speeds(toy_fk(fixed, pelvis)).max() < SPIKE_M_S
    assert 0 < changed <= 12
    np.testing.assert_array_equal(fixed[:20], rot[:20])  # far from the flick: untouched
    np.testing.assert_array_equal(fixed[40:], rot[40:])


def test_calm_motion_is_not_changed():
    rot, pelvis = swinging(), np.zeros((60, 3))
    fixed, changed = despike(rot, pelvis, toy_fk, 0, np.zeros(60, bool), joints=[1], measured=[0, 1, 2])
    assert changed == 0
    np.testing.assert_array_equal(fixed, rot)


def test_context_and_keyed_frames_are_never_changed():
    rot, pelvis = swinging(flick_at=30), np.zeros((60, 3))
    keyed = np.zeros(60, bool)
    keyed[33] = True  # a key just after the flick: an end point at most
    fixed, _ = despike(rot, pelvis, toy_fk, 28, keyed, joints=[1], measured=[0, 1, 2])
    np.testing.assert_array_equal(fixed[:28], rot[:28])
    np.testing.assert_array_equal(fixed[33], rot[33])
    assert joint_speeds(toy_fk(fixed, pelvis))[28:].max() < SPIKE_M_S


def test_spans_merge_and_stay_inside_the_window():
    speed = np.zeros(40)
    speed[[5, 8, 38]] = 10.0
    spans = spike_spans(speed, first=2, keyed=np.zeros(40, bool), margin=2)
    assert [(s.a, s.b) for s in spans] == [(2, 10), (35, 39)]
