"""The retarget math without Blender (`hosig_blender.retarget`, `bonemaps`): FK and its inverse,
two-bone IK, planted-foot holds, rest alignment, presets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hosig_blender import bonemaps  # noqa: E402
from hosig_blender import retarget as core  # noqa: E402
from hosig_blender.posemath import quat_to_mat, rotation_between  # noqa: E402


def _chain_rig(n: int = 4, seed: int = 0) -> core.Rig:
    """A chain of bones with random rest orientations (rolls) along +Z."""
    rng = np.random.default_rng(seed)
    rest = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        rest[i, :3, :3] = Rotation.random(random_state=rng.integers(1 << 30)).as_matrix()
        rest[i, :3, 3] = [0.0, 0.0, 0.3 * i]
    return core.Rig([f"b{i}" for i in range(n)], [-1, *range(n - 1)], rest)


def test_pose_to_basis_inverts_forward_kinematics() -> None:
    rig = _chain_rig()
    rng = np.random.default_rng(1)
    basis = np.tile(np.eye(4), (5, 4, 1, 1))
    basis[..., :3, :3] = Rotation.random(20, random_state=2).as_matrix().reshape(5, 4, 3, 3)
    basis[:, 0, :3, 3] = rng.normal(size=(5, 3))
    mats = core.forward_kinematics(rig, basis)
    assert np.allclose(core.pose_to_basis(rig, mats), basis, atol=1e-9)


def test_solve_pose_puts_mapped_bones_at_their_rotation_and_keeps_heads_attached() -> None:
    rig = _chain_rig()
    rot = Rotation.random(2 * 3, random_state=3).as_matrix().reshape(2, 3, 3, 3)
    mats = core.solve_pose(rig, np.array([0, 1, 3]), rot, 0, np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    assert np.allclose(mats[:, [0, 1, 3], :3, :3], rot)
    assert np.allclose(mats[:, 0, :3, 3], [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    basis = core.pose_to_basis(rig, mats)
    assert np.allclose(basis[:, 1:, :3, 3], 0.0, atol=1e-9)  # only the hips translate
    assert np.allclose(basis[:, 2, :3, :3], np.eye(3), atol=1e-9)  # the unmapped bone stays at rest


def test_two_bone_ik_reaches_and_keeps_lengths() -> None:
    rng = np.random.default_rng(4)
    T = 50
    root = np.zeros((T, 3))
    mid = np.tile([0.0, -0.05, -0.45], (T, 1))
    end = np.tile([0.0, 0.0, -0.9], (T, 1))
    goal = rng.uniform(-0.5, 0.5, size=(T, 3)) * [1, 1, 0.4] + [0, 0, -0.55]
    r1, r2 = core.two_bone_ik(root, mid, end, goal, np.tile([0.0, -1.0, 0.0], (T, 1)))
    mid_new = root + np.einsum("tij,tj->ti", r1, mid - root)
    end_new = mid_new + np.einsum("tij,tj->ti", r2 @ r1, end - mid)
    reach = np.linalg.norm(mid - root, axis=-1) + np.linalg.norm(end - mid, axis=-1)
    ok = np.linalg.norm(goal - root, axis=-1) < reach * 0.999
    assert ok.sum() > 10
    assert np.abs(end_new[ok] - goal[ok]).max() < 1e-6
    assert np.allclose(np.linalg.norm(mid_new - root, axis=-1), np.linalg.norm(mid - root, axis=-1))
    # the knee bends the way it did (toward -Y)
    line = goal - root
    off = mid_new - root - np.sum((mid_new - root) * line, -1, keepdims=True) * line / np.sum(line * line, -1, keepdims=True)
    assert (off[ok, 1] < 0).all()


def test_held_goal_does_not_move_within_a_plant_and_eases_out() -> None:
    t = np.arange(40)
    track = np.stack([0.01 * t, np.zeros(40), np.zeros(40)], 1)
    mask = (t >= 10) & (t < 25)
    held = core.held_goal(track, mask)
    assert np.ptp(held[10:25], axis=0).max() == 0.0
    assert np.allclose(held[:4], track[:4]) and np.allclose(held[31:], track[31:])
    assert np.abs(np.diff(held[:, 0])).max() < 0.05  # no jump into or out of the hold


def test_planted_finds_still_low_feet() -> None:
    n = 60
    ball = np.zeros((n, 3))
    ball[20:40, 0] = np.linspace(0, 0.8, 20)  # a step
    ball[20:40, 2] = 0.1 * np.sin(np.linspace(0, np.pi, 20))
    ball[40:, 0] = 0.8
    mask = core.planted(ball)
    assert mask[:18].all() and mask[42:].all() and not mask[24:36].any()
    assert core.slide_cm_s(ball, mask) < 1e-9


def test_rest_alignment_turns_an_a_pose_arm_onto_a_t_pose_arm() -> None:
    joints = ["left_shoulder", "left_elbow", "left_wrist"]
    src = np.array([[0.2, 0, 1.4], [0.45, 0, 1.4], [0.7, 0, 1.4]])  # T-pose
    a = np.radians(40)
    tgt = np.array([[0.2, 0, 1.4], [0.2 + 0.25 * np.cos(a), 0, 1.4 - 0.25 * np.sin(a)], [0.2 + 0.5 * np.cos(a), 0, 1.4 - 0.5 * np.sin(a)]])
    align = core.rest_alignment(joints, bonemaps.CHILD, src, tgt)
    for k in range(2):
        d_t = tgt[k + 1] - tgt[k]
        assert np.allclose(align[k] @ d_t / np.linalg.norm(d_t), (src[k + 1] - src[k]) / np.linalg.norm(src[k + 1] - src[k]))
    assert np.allclose(align[2], np.eye(3))  # the wrist's child (middle1) is not mapped


def test_rest_alignment_turns_a_rig_facing_the_other_way() -> None:
    joints = ["left_ankle", "left_foot", "right_ankle", "right_foot", "head"]
    src = np.array([[0.1, 0, 0.08], [0.1, -0.12, 0.02], [-0.1, 0, 0.08], [-0.1, -0.12, 0.02], [0, 0, 1.6]])  # faces -Y
    tgt = src * [-1, -1, 1]  # the same body facing +Y
    align = core.rest_alignment(joints, bonemaps.CHILD, src, tgt)
    half_turn = np.diag([-1.0, -1.0, 1.0])
    assert np.allclose(align, half_turn, atol=1e-9)  # no limb children here: the turn alone
    assert core.facing({"left_ankle": src[0], "left_foot": src[1]}) == pytest.approx([0, -1, 0])


def test_rotation_helpers_agree_with_scipy() -> None:
    q = Rotation.random(8, random_state=5).as_quat()  # x, y, z, w
    assert np.allclose(quat_to_mat(q[:, [3, 0, 1, 2]]), Rotation.from_quat(q).as_matrix())
    a, b = np.random.default_rng(6).normal(size=(2, 8, 3))
    r = rotation_between(a, b)
    assert np.allclose(np.einsum("tij,tj->ti", r, a / np.linalg.norm(a, axis=-1, keepdims=True)),
                       b / np.linalg.norm(b, axis=-1, keepdims=True))
    assert np.allclose(rotation_between(np.array([1.0, 0, 0]), np.array([-1.0, 0, 0])) @ [1, 0, 0], [-1, 0, 0])


@pytest.mark.parametrize("names,expected", [
    (["mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:LeftHandThumb2"],
     {"pelvis": "mixamorig:Hips", "left_hip": "mixamorig:LeftUpLeg", "left_thumb2": "mixamorig:LeftHandThumb2"}),
    (["DEF-spine", "DEF-thigh.L", "DEF-f_index.01.R"],
     {"pelvis": "DEF-spine", "left_hip": "DEF-thigh.L", "right_index1": "DEF-f_index.01.R"}),
    (["root.x", "thigh.l", "leg.l", "index2.r"], {"pelvis": "root.x", "left_hip": "thigh.l", "left_knee": "leg.l", "right_index2": "index2.r"}),
])
def test_preset_names(names, expected) -> None:
    preset = {"mixamorig:Hips": "mixamo", "DEF-spine": "rigify_def", "root.x": "auto_rig_pro"}[names[0]]
    assert bonemaps.preset_map(preset, names) == expected


def test_side_tokens() -> None:
    for name, side in (("thigh.L", "left"), ("thigh_l", "left"), ("LeftUpLeg", "left"), ("L_thigh", "left"),
                       ("thigh.R", "right"), ("calf_r", "right"), ("RightArm", "right"), ("spine", None)):
        assert bonemaps._side_of_name(name) == side, name


def test_cli_preset_choices_match_the_add_on() -> None:
    from hosig.cli.blender_cmd import RETARGET_PRESETS

    assert set(RETARGET_PRESETS) == {"auto", *bonemaps.PRESETS}
