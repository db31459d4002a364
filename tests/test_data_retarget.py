"""Retarget, BVH export and mirroring against the body model itself (the embedded mannequin)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hosig.body import load_body_model
from hosig.body.skeleton import FOOT_JOINTS, JOINT_INDEX, NUM_JOINTS
from hosig.motion.data.bvh import read_bvh
from hosig.motion.data.capture import bvh_to_capture
from hosig.motion.data.export_bvh import SMPLX_JOINT_MAP, smplx_to_bvh
from hosig.motion.data.mirror import mirror_contacts, mirror_joints, mirror_poses, mirror_trans, mirror_valid
from hosig.motion.data.retarget import RetargetConfig, TreeFK, retarget
from hosig.motion.data.smplx_motion import body_joints


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def synthetic_motion(n: int = 36, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth, plausible SMPL-X motion: walking-like legs, swinging arms, turning root (Z-up)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 30.0
    poses = np.zeros((n, NUM_JOINTS, 3))
    phase = 2 * np.pi * 1.0 * t
    yaw = 0.3 * np.sin(0.5 * phase)
    # Z-up orient: YUP_TO_ZUP (+90 deg about X), then a yaw about world Z.
    from scipy.spatial.transform import Rotation

    orient = Rotation.from_euler("z", yaw[:, None]) * Rotation.from_euler("x", np.full((n, 1), np.pi / 2))
    poses[:, 0] = orient.as_rotvec()
    for side, s in (("left", 1.0), ("right", -1.0)):
        poses[:, JOINT_INDEX[f"{side}_hip"], 0] = 0.4 * s * np.sin(phase)
        poses[:, JOINT_INDEX[f"{side}_knee"], 0] = 0.6 + 0.5 * np.sin(phase + s)
        poses[:, JOINT_INDEX[f"{side}_ankle"], 0] = 0.2 * np.sin(phase)
        poses[:, JOINT_INDEX[f"{side}_shoulder"], 2] = -s * 1.1 + 0.1 * np.sin(phase)
        poses[:, JOINT_INDEX[f"{side}_elbow"], 1] = -s * (0.5 + 0.3 * np.sin(phase))
    poses[:, JOINT_INDEX["spine1"]] = 0.1 * rng.normal(size=3)
    poses[:, JOINT_INDEX["head"], 1] = 0.3 * np.sin(phase / 2)
    trans = np.stack([0.8 * t, 0.1 * np.sin(phase), 0.02 * np.sin(2 * phase)], axis=1)
    return poses.reshape(n, -1), trans


def test_tree_fk_matches_body_fk(body) -> None:
    tree = TreeFK(body.rest_joints_y)
    poses, trans = synthetic_motion(8)
    rot = body.full_pose_rotmats(torch.as_tensor(poses, dtype=torch.float32))
    root = torch.as_tensor(trans + body.rest_joints_y[0], dtype=torch.float32)
    ref = body.fk(rot, root)[:, :22]
    np.testing.assert_allclose(tree(rot[:, :22], root).numpy(), ref.numpy(), atol=1e-5)


def test_export_bvh_round_trip_matches_body_joints(body, tmp_path: Path) -> None:
    poses, trans = synthetic_motion(12)
    poses[:, 75:] = 0.2 * np.random.default_rng(1).normal(size=(12, 90))  # fingers too
    hands = body.hands_mean
    motion = smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"], fps=30.0)
    from hosig.motion.data.bvh import write_bvh

    back = read_bvh(write_bvh(tmp_path / "clip.bvh", motion))
    assert set(back.skeleton.names) == set(body.joint_names)
    cap = bvh_to_capture(back, unit_scale=0.01, up="y", target_fps=30.0)
    joints = body_joints(body, poses, trans)
    order = [cap.point_index(n) for n in body.joint_names]
    np.testing.assert_allclose(cap.points[:, order], joints, atol=2e-4)


def test_retarget_of_body_posed_capture_recovers_joints(body, tmp_path: Path) -> None:
    poses, trans = synthetic_motion(36)
    hands = body.hands_mean
    from hosig.motion.data.bvh import write_bvh

    path = write_bvh(tmp_path / "synthetic.bvh", smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"]))
    cap = bvh_to_capture(read_bvh(path), unit_scale=0.01, up="y", target_fps=30.0)
    res = retarget(cap, SMPLX_JOINT_MAP, body, RetargetConfig(iterations=60))
    truth = body_joints(body, poses, trans)[:, :22]
    got = body_joints(body, res.poses, res.root_pos - body.rest_joints_y[0])[:, :22]
    dz = np.median(got[:, 0, 2] - truth[:, 0, 2])  # the retarget puts the floor at z = 0
    err = np.linalg.norm(got - truth - np.array([0, 0, dz]), axis=-1)
    assert err.mean() < 0.01, err.mean()
    assert err.max() < 0.03, err.max()
    assert res.scale == pytest.approx(1.0, abs=1e-3)
    # Feet end up on the floor: the lowest foot point stands at its standing height.
    rest_h = body.rest_joints_y[FOOT_JOINTS, 1] - body.floor_y
    assert (got[:, FOOT_JOINTS, 2] - rest_h).min() > -0.02


def test_unknown_skeleton_names_missing_joints(body, tmp_path: Path) -> None:
    from hosig.errors import InputError
    from hosig.motion.data.cmu import CMU_JOINT_MAP

    poses, trans = synthetic_motion(4)
    hands = body.hands_mean
    cap = bvh_to_capture(smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"]), target_fps=30.0)
    with pytest.raises(InputError, match=r"missing joints: .*abdomen"):
        retarget(cap, CMU_JOINT_MAP, body)


def test_mirror_of_mirror_is_identity_and_mirror_matches_fk(body) -> None:
    poses, trans = synthetic_motion(10)
    poses[:, 75:] = 0.3 * np.random.default_rng(2).normal(size=(10, 90))
    hl, hr = body.hands_mean["left"], body.hands_mean["right"]
    j0 = body.rest_joints_y[0]
    joints = body_joints(body, poses, trans)
    contacts = np.random.default_rng(3).integers(0, 2, size=(10, 4))
    valid = np.zeros(NUM_JOINTS, dtype=bool)
    valid[[0, JOINT_INDEX["left_hip"]]] = True
    np.testing.assert_allclose(mirror_poses(mirror_poses(poses, hl, hr), hl, hr), poses, atol=1e-12)
    np.testing.assert_allclose(mirror_trans(mirror_trans(trans, j0), j0), trans, atol=1e-12)
    np.testing.assert_array_equal(mirror_joints(mirror_joints(joints)), joints)
    np.testing.assert_array_equal(mirror_contacts(mirror_contacts(contacts)), contacts)
    np.testing.assert_array_equal(mirror_valid(mirror_valid(valid)), valid)
    # Roles swap: the left hip's rotation becomes the right hip's, reflected.
    m = mirror_poses(poses, hl, hr).reshape(10, NUM_JOINTS, 3)
    np.testing.assert_allclose(m[:, JOINT_INDEX["right_hip"]], poses.reshape(10, -1, 3)[:, JOINT_INDEX["left_hip"]] * [1, -1, -1])
    assert mirror_valid(valid)[JOINT_INDEX["right_hip"]] and not mirror_valid(valid)[JOINT_INDEX["left_hip"]]
    # On the (symmetric) mannequin the mirrored pose's FK is the reflected skeleton.
    mj = body_joints(body, mirror_poses(poses, hl, hr), mirror_trans(trans, j0))
    np.testing.assert_allclose(mj[:, :22], mirror_joints(joints)[:, :22], atol=2e-3)


def test_retarget_normalises_other_proportions(body, tmp_path: Path) -> None:
    """A capture with longer legs and shorter arms than the body still fits the body's bones."""
    poses, trans = synthetic_motion(24, seed=4)
    hands = body.hands_mean
    motion = smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"])
    sk = motion.skeleton
    for k, name in enumerate(sk.names):
        if any(p in name for p in ("knee", "ankle", "foot")):
            sk.offsets[k] *= 1.15
        elif any(p in name for p in ("elbow", "wrist")):
            sk.offsets[k] *= 0.9
    cap = bvh_to_capture(motion, unit_scale=0.01, up="y", target_fps=30.0)
    res = retarget(cap, SMPLX_JOINT_MAP, body, RetargetConfig(iterations=40))
    assert 0.85 < res.scale < 0.95  # body legs are shorter than the capture's
    got = body_joints(body, res.poses, res.root_pos - body.rest_joints_y[0])
    err = np.linalg.norm(got[:, res.target_joints] - res.targets, axis=-1)
    assert err.mean() < 0.01
    # Bone lengths are the body's own (FK), and the fitted pose keeps the capture's bone directions.
    knee, ankle = JOINT_INDEX["left_knee"], JOINT_INDEX["left_ankle"]
    src_dir = cap.point("left_ankle") - cap.point("left_knee")
    fit_dir = got[:, ankle] - got[:, knee]
    cos = (src_dir * fit_dir).sum(-1) / np.linalg.norm(src_dir, axis=-1) / np.linalg.norm(fit_dir, axis=-1)
    assert cos.min() > 0.99


def test_chunked_fit_matches_single_batch(body, tmp_path: Path) -> None:
    """Long clips are fitted in overlapping, warm-started chunks; the seams must not show."""
    poses, trans = synthetic_motion(30, seed=6)
    hands = body.hands_mean
    cap = bvh_to_capture(smplx_to_bvh(poses, trans, body.rest_joints_y, hands["left"], hands["right"]), target_fps=30.0)
    one = retarget(cap, SMPLX_JOINT_MAP, body, RetargetConfig(iterations=40))
    chunked = retarget(cap, SMPLX_JOINT_MAP, body, RetargetConfig(iterations=40, chunk=12, overlap=4))
    j0 = body.rest_joints_y[0]
    a = body_joints(body, one.poses, one.root_pos - j0)[:, :22]
    b = body_joints(body, chunked.poses, chunked.root_pos - j0)[:, :22]
    for res, joints in ((one, a), (chunked, b)):
        assert np.linalg.norm(joints[:, res.target_joints] - res.targets, axis=-1).mean() < 0.01
    assert np.linalg.norm(a - b, axis=-1).mean() < 0.005
    jump = np.linalg.norm(np.diff(b, axis=0), axis=-1).max()
    assert jump < 1.5 * np.linalg.norm(np.diff(a, axis=0), axis=-1).max()
