"""Issue #20 without Blender or a model: the add-on's edit finding (keys back to SMPL-X frames,
anchors, range) and the engine's anchor parsing and feasibility reasons."""

from __future__ import annotations

import numpy as np
import pytest
from blender_support import fake_body, walking_clip

from hosig.errors import UsageError
from hosig.motion.edits import EditAnchor, Feasibility, check_feasible, parse_anchors
from hosig.motion.regenerate import eased_offsets
from hosig_blender import edits
from hosig_blender.posemath import bone_quaternions, pelvis_locations


def _rest_rot(seed: int = 0) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(55, random_state=seed).as_matrix()


def test_keys_read_back_are_the_streamed_frames() -> None:
    body = fake_body()
    clip = walking_clip(body, 20)
    rest = _rest_rot()
    quats = bone_quaternions(clip["poses"], rest)
    locs = pelvis_locations(clip["trans"], body.rest_joints, rest[0])
    poses = edits.poses_from_bones(quats, rest)
    np.testing.assert_allclose(edits.fk_joints(body.rest_joints, body.parents, poses, edits.trans_from_locations(locs, body.rest_joints, rest[0])),
                               clip["joints"], atol=1e-6)


def test_edits_become_anchors_and_a_range() -> None:
    body = fake_body()
    clip = walking_clip(body, 120)
    base_j = clip["joints"]
    poses, trans = clip["poses"].copy(), clip["trans"].copy()
    trans[70] += [0.0, 0.1, 0.0]  # the pelvis 10 cm sideways at frame 70
    poses[40, 3 * 17:3 * 17 + 3] += [0.0, 0.0, 0.3]  # the right shoulder turned at frame 40
    cur_j = edits.fk_joints(body.rest_joints, body.parents, poses, trans)
    anchors = edits.find_anchors(body.joint_names, base_j, clip["poses"], cur_j, poses)
    keys = {(a["joint"], a["frame"], "position" in a) for a in anchors}
    assert keys == {("pelvis", 70, True), ("right_wrist", 40, True), ("right_shoulder", 40, False)}
    pelvis = next(a for a in anchors if a["joint"] == "pelvis")
    np.testing.assert_allclose(pelvis["position"], cur_j[70, 0])
    first, last = edits.pick_range(edits.edited_frames(anchors), 120)
    assert (first, last) == (20, 90)
    assert edits.pick_range([5], 120) == (0, 27)  # at least MIN_RANGE_FRAMES long, inside the clip
    with pytest.raises(ValueError):
        edits.pick_range([], 120)


def test_anchor_parsing_and_reasons() -> None:
    with pytest.raises(UsageError, match="unknown joint"):
        parse_anchors([{"frame": 1, "joint": "wing", "position": [0, 0, 1]}])
    with pytest.raises(UsageError, match="unknown field"):
        parse_anchors([{"frame": 1, "joint": "head", "position": [0, 0, 1], "weight": 2}])
    with pytest.raises(UsageError, match="NaN"):
        parse_anchors([{"frame": 1, "joint": "head", "position": [0, float("nan"), 1]}])
    (a,) = parse_anchors({"anchors": [{"frame": 2, "joint": "pelvis", "rotation": [2, 0, 0, 0]}]})
    np.testing.assert_allclose(a.rotation, [1, 0, 0, 0])

    joints = np.zeros((100, 55, 3))
    joints[:, 0] = [0, 0, 0.9]
    joints[:, 21] = [0.3, -0.2, 1.0]
    chain = np.full(55, 0.7)
    inside = lambda p: np.where(np.abs(p[:, 0] - 3.0) < 0.1, -0.05, 0.5)  # noqa: E731 - a wall at x = 3
    ctx = Feasibility(first=40, last=60, n_frames=100, joints=joints, chain_m=chain, standing_pelvis_m=0.93, floor_z=0.0, sdf=inside)

    def reason(frame: int, joint: int, position) -> str | None:
        return check_feasible(EditAnchor(0, frame, joint, np.asarray(position, float)), ctx, lambda f: joints[f, 0])

    assert reason(50, 21, [0.4, -0.2, 1.1]) is None
    assert reason(30, 21, [0.4, -0.2, 1.1]) == "outside_range"
    assert reason(120, 21, [0.4, -0.2, 1.1]) == "outside_clip"
    assert reason(50, 21, [0.3, -0.2, 3.0]) == "unreachable"  # 2 m above the head
    assert reason(50, 0, [0.0, 0.0, 1.2]) == "unreachable"  # the pelvis higher than standing
    assert reason(50, 21, [3.0, -0.2, 1.0]) == "inside_furniture"
    assert reason(41, 21, [0.3, 0.4, 1.0]) == "too_fast"  # 60 cm in 2 frames from frame 39: 9 m/s


def test_pelvis_offsets_ease_in_and_out() -> None:
    off = eased_offsets({50: np.array([0.1, 0.0])}, 30, 80, 15)
    assert off[20, 0] == pytest.approx(0.1) and off[0, 0] == 0.0 and off[-1, 0] == 0.0
    assert np.abs(np.diff(off[:, 0])).max() * 30 < 0.4  # under 0.4 m/s added


def test_finger_keys_travel_with_the_hand_poses() -> None:
    from hosig.clip import MotionClip
    from hosig.motion.regenerate import build_anchor_set

    n = 40
    base = MotionClip(poses=np.zeros((n, 165)), trans=np.zeros((n, 3)), joints=np.zeros((n, 55, 3)))
    keys = parse_anchors([{"frame": 20, "joint": "right_index1", "rotation": [np.cos(0.2), 0.0, 0.0, np.sin(0.2)]},
                          {"frame": 22, "joint": "right_elbow", "rotation": [np.cos(0.3), np.sin(0.3), 0.0, 0.0]}])
    anchors = build_anchor_set(base, 2, 38, 10, 30, keys, None)
    hand = anchors.at(18, "right_hand_pose").value.reshape(15, 3)  # sub-clip frame 18 = clip frame 20
    np.testing.assert_allclose(hand[40 - 40], [0.0, 0.0, 0.4], atol=1e-9)  # right_index1 is the first right-hand joint
    assert anchors.at(20, "pose:right_elbow").hard and anchors.at(18, "pose:right_index1") is None
