"""Gross-failure detectors on synthetic clips of the real (mannequin) body in a box scene.

Each test builds the failure it names and asserts that class (and its absence on the control case),
so a detector that never fires, or always fires, fails here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from hosig.body import load_body_model
from hosig.body.skeleton import JOINT_INDEX
from hosig.clip import MotionClip
from hosig.eval.geometry import clip_vertices, hand_vertex_mask
from hosig.eval.gross import (
    airborne_stretches,
    crouch_walk,
    judge_clip,
    joint_pops,
    longest_run,
    trunk_fold,
    trunk_twist,
)
from hosig.scene import encode_payload, load_scene

T = 45  # 1.5 s at 30 fps (the carry clips)
SHORT = 12  # frames of the clips that need no time to pass (each frame costs exact distance queries)
TABLE_XY = (-2.5, 0.0)
CRATE = ((2.2, 2.8), (-0.3, 0.3), (0.0, 2.0))  # x, y, z ranges of a tall box standing on the floor
STAGE_XY = (0.0, 3.0)  # a raised floor, top at +0.5 m


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    lo_a, hi_a = np.array(lo), np.array(hi)
    mesh = trimesh.creation.box(hi_a - lo_a)
    mesh.apply_translation((lo_a + hi_a) / 2)
    return mesh


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.fixture(scope="module")
def scene():
    """Floor top at z=0; a stage (top 0.5 m); a tall crate; a table (top 0.75 m) with a cup on it."""
    (cx0, cx1), (cy0, cy1), (cz0, cz1) = CRATE
    tx, ty = TABLE_XY
    objects = {
        "floor": _box((-4, -4, -0.1), (4, 4, 0.0)),
        "stage": _box((STAGE_XY[0] - 0.8, STAGE_XY[1] - 0.8, 0.0), (STAGE_XY[0] + 0.8, STAGE_XY[1] + 0.8, 0.5)),
        "crate": _box((cx0, cy0, cz0), (cx1, cy1, cz1)),
        "table": _box((tx - 0.4, ty - 0.4, 0.0), (tx + 0.4, ty + 0.4, 0.75)),
        "cup": _box((tx - 0.04, ty - 0.04, 0.75), (tx + 0.04, ty + 0.04, 0.87)),
    }
    return load_scene(encode_payload({n: (m.vertices, m.faces) for n, m in objects.items()}))


def _standing(body, x: float = 0.0, y: float = 0.0, z: float = 0.0, frames: int = T) -> tuple[np.ndarray, np.ndarray]:
    """(poses (T,165), trans (T,3)) of the rest (T-)pose body facing +x, soles at height z."""
    poses = np.zeros((frames, 165))
    poses[:, 0:3] = body.standing_orient(0.0)
    trans = np.tile(body.standing_transl(0.0, x, y), (frames, 1)) + np.array([0.0, 0.0, z])
    return poses, trans


def _clip(body, poses: np.ndarray, trans: np.ndarray, **kwargs) -> MotionClip:
    """A clip whose joints are the body model's for these poses."""
    import torch

    with torch.no_grad():
        out = body.forward(global_orient=poses[:, :3], transl=trans, body_pose=poses[:, 3:66],
                           left_hand_pose=poses[:, 75:120], right_hand_pose=poses[:, 120:165])
    return MotionClip(poses=poses, trans=trans, joints=out.joints.numpy(), **kwargs)


def _translation(v) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = v
    return m


def test_standing_on_the_floor_is_fine(body, scene) -> None:
    verdict = judge_clip(_clip(body, *_standing(body, frames=SHORT)), scene, body, target=None)
    assert verdict.ok(), verdict.details
    assert verdict.details["feet_off_floor"]["longest_airborne_frames"] == 0
    json.dumps(verdict.to_json())


def test_lifted_for_a_second_is_feet_off_floor_and_not_for_a_tenth(body, scene) -> None:
    poses, trans = _standing(body)
    up = trans.copy()
    up[10:40, 2] += 0.9  # 1 s in the air
    verdict = judge_clip(_clip(body, poses, up), scene, body, target=None)
    assert "feet_off_floor" in verdict.failures
    d = verdict.details["feet_off_floor"]
    assert d["longest_airborne_s"] == pytest.approx(1.0) and (d["first_frame"], d["last_frame"]) == (10, 39)
    short = trans.copy()
    short[10:13, 2] += 0.9  # 0.1 s: a hop, not a failure (but the 0.9 m jump is a pop)
    verdict = judge_clip(_clip(body, poses, short), scene, body, target=None)
    assert "feet_off_floor" not in verdict.failures
    assert "pop" in verdict.failures


def test_raised_floor_counts_and_standing_inside_it_penetrates(body, scene) -> None:
    on = judge_clip(_clip(body, *_standing(body, *STAGE_XY, z=0.5, frames=SHORT)), scene, body, target=None)
    assert on.ok(), on.details
    inside = judge_clip(_clip(body, *_standing(body, *STAGE_XY, z=0.0, frames=SHORT)), scene, body, target=None)
    assert "penetration" in inside.failures
    assert inside.details["penetration"]["max_depth_m"] > 0.1


def test_one_frame_sideways_jump_is_a_pop(body, scene) -> None:
    poses, trans = _standing(body, frames=SHORT)
    trans[6, 1] += 0.5
    verdict = judge_clip(_clip(body, poses, trans), scene, body, target=None)
    assert verdict.failures == ["pop"]
    assert verdict.details["pop"]["frame"] in (6, 7) and verdict.details["pop"]["max_joint_speed_m_s"] > 14.0
    assert isinstance(verdict.details["pop"]["joint"], str)


@pytest.mark.parametrize("overlap, fails", [(0.10, True), (0.01, False)])
def test_hand_inside_a_box_penetrates_by_depth(body, scene, overlap: float, fails: bool) -> None:
    """The T-pose's left hand (+y side when facing +x) pushed ``overlap`` into the crate's -y face."""
    poses, trans = _standing(body, x=2.5, y=0.0, frames=SHORT)
    tip = clip_vertices(body, poses[:1], trans[:1], stride=1)[0, :, 1].max()  # the left fingertips' y
    trans[:, 1] += CRATE[1][0] + overlap - tip
    verdict = judge_clip(_clip(body, poses, trans), scene, body, target=None)
    assert ("penetration" in verdict.failures) == fails, verdict.details["penetration"]
    assert verdict.details["penetration"]["max_depth_m"] == pytest.approx(overlap, abs=0.01)


def test_nan_is_reported_without_crashing(body, scene) -> None:
    clip = _clip(body, *_standing(body, frames=SHORT))
    clip.trans[10, 0] = np.nan  # after construction: MotionClip itself refuses NaN
    verdict = judge_clip(clip, scene, body, target="cup", action="pick")
    assert verdict.failures == ["nan"]
    assert verdict.details["nan"]["nonfinite_values"] == {"trans": 1}
    json.dumps(verdict.to_json())


def test_upside_down_is_a_trunk_flip(body, scene) -> None:
    poses, trans = _standing(body, z=1.0, frames=SHORT)
    flipped = Rotation.from_euler("x", 180, degrees=True) * Rotation.from_rotvec(poses[0, :3])
    poses[:, :3] = flipped.as_rotvec()
    verdict = judge_clip(_clip(body, poses, trans), scene, body, target=None)
    assert "trunk_flip" in verdict.failures
    assert "trunk_twist" not in verdict.failures and "trunk_fold" not in verdict.failures


def _carry_clip(body, hand: str = "right") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(poses, trans, wrist transforms (T,4,4)) of a body walking at 0.6 m/s while swinging its arm."""
    from hosig.motion.task import wrist_transforms

    poses, trans = _standing(body)
    trans[:, 0] += 0.6 * np.arange(T) / 30.0
    shoulder = JOINT_INDEX[f"{hand}_shoulder"]
    swing = np.linspace(0.0, 0.8, T)
    poses[:, 3 * shoulder:3 * shoulder + 3] = np.stack([np.zeros(T), swing, 0.5 * swing], axis=1)
    wrists = wrist_transforms(body, poses, trans + body.rest_joints_y[0], hand).astype(np.float64)
    return poses, trans, wrists


def _object_in_hand(body, scene, poses, trans, wrists, grasp: int, hand: str = "right", drift_m: float = 0.0,
                    release: int | None = None, placed: np.ndarray | None = None) -> np.ndarray:
    """(T,4,4) cup transforms: moved into the hand at ``grasp``, rigid with the wrist afterwards, plus a
    drift growing to ``drift_m`` along x by the end; from ``release`` on, ``placed``."""
    verts = clip_vertices(body, poses[grasp:grasp + 1], trans[grasp:grasp + 1], stride=1)[0]
    palm = verts[hand_vertex_mask(body, hand, 1)].mean(axis=0)
    into_hand = _translation(palm - scene.object("cup").center)
    out = np.tile(np.eye(4), (T, 1, 1))
    ramp = np.clip((np.arange(T) - grasp) / (T - 1 - grasp), 0.0, 1.0)
    for t in range(grasp, T):
        out[t] = _translation([drift_m * ramp[t], 0, 0]) @ wrists[t] @ np.linalg.inv(wrists[grasp]) @ into_hand
    if release is not None:
        out[release:] = placed
    return out


@pytest.mark.parametrize("drift, fails", [(0.0, False), (0.10, True)])
def test_carried_object_must_follow_the_wrist(body, scene, drift: float, fails: bool) -> None:
    poses, trans, wrists = _carry_clip(body)
    obj = _object_in_hand(body, scene, poses, trans, wrists, grasp=5, drift_m=drift)
    clip = _clip(body, poses, trans, object_name="cup", object_transforms=obj, grasp_frame=5)
    verdict = judge_clip(clip, scene, body, target="cup", action="pick")
    assert ("object_not_following" in verdict.failures) == fails, verdict.details["object_not_following"]
    assert verdict.details["hand"] == "right"  # inferred: the cup is in the right hand
    assert "hand_miss" not in verdict.failures
    assert "placement" not in verdict.details  # a pick never puts the object down


def test_hand_far_from_the_target_is_a_miss(body, scene) -> None:
    clip = _clip(body, *_standing(body, frames=SHORT), grasp_frame=10)
    verdict = judge_clip(clip, scene, body, target="cup", action="reach")
    assert "hand_miss" in verdict.failures and verdict.details["hand_miss"]["hand_object_m"] > 1.0


@pytest.mark.parametrize("lift, expect", [(0.10, "object_floating"), (0.0, None), (-0.03, "object_sunk")])
def test_released_object_rests_on_the_table(body, scene, lift: float, expect: str | None) -> None:
    """Put back where it came from (on the table top), raised by ``lift``."""
    poses, trans, wrists = _carry_clip(body)
    obj = _object_in_hand(body, scene, poses, trans, wrists, grasp=5, release=30, placed=_translation([0, 0, lift]))
    clip = _clip(body, poses, trans, object_name="cup", object_transforms=obj, grasp_frame=5, release_frame=30)
    verdict = judge_clip(clip, scene, body, target="cup", action="pick-place")
    placement = {"object_floating", "object_sunk"} & set(verdict.failures)
    assert placement == ({expect} if expect else set()), verdict.details["placement"]
    assert verdict.details["placement"]["gap_m"] == pytest.approx(lift, abs=1e-3)
    assert "object_not_following" not in verdict.failures


# ------------------------------------------------------------------ detectors on plain arrays


def test_longest_run_and_airborne_stretch_boundaries() -> None:
    assert longest_run(np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)) == (3, 4, 6)
    assert longest_run(np.zeros(5, bool)) == (0, -1, -1)
    heights = np.zeros((60, 2))
    heights[10:17] = 0.2  # 7 frames > 0.2 s
    assert airborne_stretches(heights).failures == ["feet_off_floor"]
    heights[16] = 0.0  # 6 frames = 0.2 s: not more than the limit
    assert airborne_stretches(heights).failures == []
    heights[30:50, 0] = 0.3  # one foot up (a step) is never airborne
    assert airborne_stretches(heights).details["both_feet_up_fraction"] == pytest.approx(6 / 60)


def test_joint_pops_use_every_joint() -> None:
    joints = np.zeros((30, 55, 3))
    joints[:, :, 0] = 1.5 * np.arange(30)[:, None] / 30.0  # a brisk walk
    assert joint_pops(joints).failures == []
    joints[12, JOINT_INDEX["right_index3"], 2] += 0.3  # a fingertip snaps for one frame (9 m/s)
    found = joint_pops(joints)
    assert found.failures == ["pop"] and found.details["joint"] == "right_index3" and found.details["frame"] == 12


def test_crouch_walk_needs_low_fast_and_long() -> None:
    t = np.arange(60) / 30.0
    pelvis = np.stack([1.0 * t, np.zeros(60), np.full(60, 0.4)], axis=1)  # 0.4 m high, 1 m/s
    floor = np.zeros(60)
    assert crouch_walk(pelvis, floor, standing_pelvis_m=0.9).failures == ["crouch_walk"]
    assert crouch_walk(pelvis + [0, 0, 0.5], floor, standing_pelvis_m=0.9).failures == []  # upright walk
    still = pelvis.copy()
    still[:, 0] = 0.0
    assert crouch_walk(still, floor, standing_pelvis_m=0.9).failures == []  # crouching in place
    short = pelvis.copy()
    short[8:, 0] = short[7, 0]  # only ~0.25 s of motion
    assert crouch_walk(short, floor, standing_pelvis_m=0.9).failures == []


def test_trunk_twist_and_fold_on_constructed_skeletons() -> None:
    j = np.zeros((2, 55, 3))
    j[:, JOINT_INDEX["spine3"]] = [0, 0, 0.4]
    j[:, JOINT_INDEX["head"]] = [0, 0, 0.7]
    j[:, JOINT_INDEX["left_hip"]], j[:, JOINT_INDEX["right_hip"]] = [0, 0.1, 0], [0, -0.1, 0]
    j[:, JOINT_INDEX["left_shoulder"]], j[:, JOINT_INDEX["right_shoulder"]] = [0, 0.2, 0.4], [0, -0.2, 0.4]
    assert trunk_twist(j).failures == [] and trunk_fold(j).failures == []
    j[1, JOINT_INDEX["left_shoulder"]], j[1, JOINT_INDEX["right_shoulder"]] = [-0.2, 0, 0.4], [0.2, 0, 0.4]  # 90 deg
    twisted = trunk_twist(j)
    assert twisted.failures == ["trunk_twist"] and twisted.details["frame"] == 1
    j[1, JOINT_INDEX["head"]] = [0.1, 0, 0.2]  # head folded down in front of the chest
    assert trunk_fold(j).failures == ["trunk_fold"]
