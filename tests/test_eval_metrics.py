"""Each metric on constructed clips with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from hosig.body.skeleton import JOINT_NAMES
from hosig.eval.cases import load_cases
from hosig.eval.metrics import (
    foot_skating,
    motion_statistics,
    naturalness_ratios,
    penetration_from_depths,
    point_to_polyline_distance,
    trajectory_adherence,
)
from hosig.errors import InputError

LF, RF = JOINT_NAMES.index("left_foot"), JOINT_NAMES.index("right_foot")
LA, RA = JOINT_NAMES.index("left_ankle"), JOINT_NAMES.index("right_ankle")


def standing_clip(frames: int = 90) -> np.ndarray:
    """(T,55,3): all joints at 1 m except feet/ankles standing on the floor."""
    joints = np.zeros((frames, 55, 3))
    joints[..., 2] = 1.0
    joints[:, [LA, RA], 2] = 0.08
    joints[:, [LF, RF], 2] = 0.02
    joints[:, LA, 0] = joints[:, LF, 0] = 0.1
    joints[:, RA, 0] = joints[:, RF, 0] = -0.1
    return joints


def test_foot_sliding_at_known_speed() -> None:
    joints = standing_clip()
    speed = 0.05  # m/s: the left foot slides along +y while staying on the floor
    t = np.arange(len(joints)) / 30.0
    joints[:, LF, 1] += speed * t
    joints[:, LA, 1] += speed * t
    result = foot_skating(joints)
    # two of four foot points slide at 5 cm/s, two stand still: mean 2.5 cm/s
    assert result.mean_cm_s == pytest.approx(2.5, abs=0.05)
    assert result.per_point_cm_s["left_foot"] == pytest.approx(5.0, abs=0.05)
    assert result.per_point_cm_s["right_foot"] == pytest.approx(0.0, abs=1e-9)


def test_swinging_foot_is_not_skating() -> None:
    joints = standing_clip()
    # right foot lifted 20 cm and moving fast: out of contact, must not count
    joints[30:60, [RF, RA], 2] += 0.2
    joints[30:60, [RF, RA], 1] += np.linspace(0, 1.0, 30)[:, None]
    joints[60:, [RF, RA], 1] += 1.0
    assert foot_skating(joints).mean_cm_s < 0.5


def test_pelvis_offset_from_path_by_known_distance() -> None:
    joints = standing_clip(60)
    joints[:, 0, 0] = np.linspace(0, 3, 60)
    joints[:, 0, 1] = 0.07
    path = np.array([[0.0, 0.0], [1.5, 0.0], [3.0, 0.0]])
    assert trajectory_adherence(joints, path) == pytest.approx(0.07, abs=1e-9)


def test_polyline_distance_beyond_the_ends() -> None:
    d = point_to_polyline_distance(np.array([[-1.0, 0.0], [2.0, 1.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert d == pytest.approx([1.0, np.sqrt(2.0)])


def test_body_placed_through_a_box_by_known_depth() -> None:
    """A point 3 cm inside a box measured with the exact mesh distance, as eval does."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    points = np.array([[0.0, 0.0, 0.47], [0.0, 0.0, 0.6]])  # 3 cm inside the top face, 10 cm above
    depth = trimesh.proximity.signed_distance(box, points)  # >0 inside
    depths = np.zeros((10, 2))
    depths[4] = np.maximum(depth, 0)
    pen = penetration_from_depths(depths)
    assert pen.max_depth_m == pytest.approx(0.03, abs=1e-6)
    assert pen.frame_fraction == pytest.approx(0.1)
    assert pen.frames_over_2cm == 1


def test_naturalness_of_a_clip_against_itself_is_one_and_faster_is_more() -> None:
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.01, size=(200, 55, 3)), axis=0)
    ratios = naturalness_ratios([walk], [walk])
    assert ratios["velocity"] == pytest.approx(1.0)
    fast = naturalness_ratios([walk * 2.0], [walk])
    assert fast["velocity"] == pytest.approx(2.0)
    assert fast["acceleration"] == pytest.approx(2.0)
    stats = motion_statistics(walk)
    assert stats["velocity"] > 0 and stats["jerk"] > stats["acceleration"] > 0


def test_cases_file_problems_name_the_index_and_field(tmp_path) -> None:
    (tmp_path / "room.glb").write_bytes(b"x")
    cases = [
        {"scene": "room.glb", "start": [0, 0], "target": "bottle"},
        {"scene": "room.glb", "start": [0], "target": "bottle"},
        {"scene": "missing.glb", "start": [0, 0], "target": "bottle"},
        {"scene": "room.glb", "start": [0, 0]},
        {"scene": "room.glb", "start": [0, 0], "target": "cup", "action": "pick-place"},
        {"scene": "room.glb", "start": [0, 0], "target": "cup", "colour": "red"},
    ]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    loaded = load_cases(path)
    assert [c.index for c in loaded.cases] == [0]
    problems = {p.index: p.field for p in loaded.problems}
    assert problems == {1: "start", 2: "scene", 3: "target", 4: "place", 5: "colour"}


def test_cases_file_that_is_not_a_list(tmp_path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"scene": "x"}))
    with pytest.raises(InputError, match="must hold a JSON list"):
        load_cases(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_cases(path)


def test_moving_segments_keep_only_locomotion() -> None:
    from hosig.eval.naturalness import moving_segments

    t = np.arange(120)
    joints = np.zeros((120, 55, 3))
    x = np.where(t < 40, 0.0, (t - 40) * 1.2 / 30)  # stands 40 frames, then walks at 1.2 m/s
    x = np.where(t >= 100, x[99], x)  # and stops for the last 20
    joints[:, 0, 0] = x
    segs = moving_segments([("clip", joints)])
    assert len(segs) == 1
    name, seg = segs[0]
    assert name == "clip#0" and 55 <= len(seg) <= 62  # the 60 walking frames (edges: central differences)
    assert moving_segments([("still", np.zeros((50, 55, 3)))]) == []


def test_eval_with_a_missing_model_fails_once_naming_it(tmp_path, capsys) -> None:
    from hosig.cli.main import main

    (tmp_path / "room.glb").write_bytes(b"x")
    path = tmp_path / "cases.json"
    path.write_text(json.dumps([{"scene": "room.glb", "start": [0, 0], "target": "bottle"}]))
    code = main(["eval", "--cases", str(path), "--model", str(tmp_path / "nope")])
    assert code != 0
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_quick_runs_every_stage(tmp_path) -> None:
    """`hosig bench --quick --json` prints one JSON object with every stage and the headline keys."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "hosig.cli.main", "bench", "--quick", "--json"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["errors"] == {}, report["errors"]
    for stage in ("scene", "navigation", "grasp", "motion", "pipeline", "blender_keying"):
        assert stage in report["stages"]
    summary = report["summary"]
    assert summary["realtime_factor"] > 0
    assert summary["speedup_vs_1000_steps"] > 1.0
    assert summary["blender_key_10s_55_bones_s"] > 0
    assert report["machine"]["cores"] >= 1


def test_pop_frames_catch_a_one_frame_snap_and_not_a_brisk_walk() -> None:
    """A foot that jumps 30 cm for one frame and back is two pop frames; a 1.5 m/s walk is none."""
    from hosig.eval.metrics import pop_frames

    t = np.arange(90) / 30.0
    joints = np.zeros((90, 55, 3))
    joints[:, :, 0] = 1.5 * t[:, None]  # the whole body walks at 1.5 m/s
    assert pop_frames(joints) == (0, pytest.approx(1.5))
    joints[40, 10, 1] += 0.30  # the left toe snaps sideways for one frame
    count, fastest = pop_frames(joints)
    assert count == 2 and fastest > 9.0


def test_sole_sliding_counts_the_touching_part_only() -> None:
    """A planted foot rolling onto its toes does not slide; a foot dragged along the floor does."""
    from hosig.eval.metrics import sole_sliding

    t, v = 60, 20
    left = np.arange(2 * v) < v
    soles = np.zeros((t, 2 * v, 3))
    soles[:, :v, 0] = np.linspace(0.0, 0.25, v)  # left foot, heel (x = 0) to toes (x = 0.25)
    # heel rises from frame 20 while the toes stay put (a roll, not a slide)
    lift = np.clip((np.arange(t) - 20) / 20.0, 0, 1)[:, None] * (0.25 - soles[0, :v, 0]) * 0.4
    soles[:, :v, 2] = lift
    rolled = sole_sliding(soles[:, :v], left[:v])
    assert rolled.mean_cm_s < 0.01
    # the right foot slides along y at 0.3 m/s on the floor; a swing 5 cm up is not contact
    soles[:, v:, 1] = 0.3 * np.arange(t)[:, None] / 30.0
    soles[40:, v:, 2] = 0.05
    both = sole_sliding(soles, left)
    right_steps, left_steps = 39, 59  # right touches over steps 0..38, left always (toes)
    assert both.mean_cm_s == pytest.approx(30.0 * right_steps / (right_steps + left_steps), rel=1e-6)
    assert both.contact_fraction == pytest.approx((right_steps + left_steps) / (2 * (t - 1)))


def test_sole_sliding_of_a_body_clip_reads_the_mesh() -> None:
    """A standing body is not sliding; the same body translated along the floor slides at that speed."""
    from hosig.eval.geometry import clip_sole_sliding
    from hosig.pipeline.engine import default_engine

    body = default_engine().body()
    t = 20
    poses = np.zeros((t, 165), np.float32)
    poses[:, :3] = body.standing_orient(0.0)
    trans = np.tile(body.standing_transl(0.0, 0.0, 0.0), (t, 1)).astype(np.float32)  # soles on z = 0
    still = clip_sole_sliding(body, poses, trans)
    assert still.contact_fraction == pytest.approx(1.0)
    assert still.mean_cm_s < 1e-3
    moving = trans.copy()
    moving[:, 0] += 0.2 * np.arange(t) / 30.0
    assert clip_sole_sliding(body, poses, moving).mean_cm_s == pytest.approx(20.0, rel=1e-3)


def test_anchor_following_tells_a_network_that_reads_its_anchors_from_one_that_does_not(tmp_path) -> None:
    """`hosig eval anchors` measures the network alone: a denoiser that copies its conditioning sits
    on the anchors; one that ignores it is as far off as the walk is long."""
    from types import SimpleNamespace

    import torch

    from hosig.eval.anchor_following import anchor_following
    from hosig.motion.checkpoint import SamplerConfig
    from hosig.motion.train import compute_stats, load_dataset
    from hosig.pipeline.engine import default_engine
    from motion_toy import write_toy_dataset

    data_path = write_toy_dataset(tmp_path / "toy.npz", default_engine().body(), n_clips=4, frames=96)
    stats = compute_stats(load_dataset(data_path, 64, holdout_every=10**9), 64, torch.Generator().manual_seed(0), 128)

    def copying(x, t, fv, fm, jv, jm):
        return torch.where(fm > 0, fv, torch.zeros_like(x))  # the anchors where given, the mean elsewhere

    def deaf(x, t, fv, fm, jv, jm):
        return torch.zeros_like(x)

    def model(net):
        return SimpleNamespace(window=64, stats=stats, sampler=SamplerConfig(steps=4), net=net)

    good = anchor_following(model(copying), data_path, windows=4)
    bad = anchor_following(model(deaf), data_path, windows=4)
    assert good["windows"] == 4 and good["travel_m"] > 1.0  # the toy clips walk ~2 m per window
    assert good["sampled_anchor_cm"] < 0.5 and good["one_step_anchor_cm"] < 0.5
    assert bad["sampled_anchor_cm"] > 30.0
