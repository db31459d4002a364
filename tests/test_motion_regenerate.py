"""Edit and regenerate (issue #20): a generated clip, the right hand moved 15 cm at one frame, the
pelvis 10 cm sideways at another, a joint turned at a third -> only the range changes, every key
is met, the seams stay below 8 m/s, the carried object follows the hand; impossible keys are
reported "not met" with their reason; the CLI does the same (tiny motion checkpoint, preview)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline_support import tiny_kitchen, tiny_motion_checkpoint

from hosig.body.skeleton import JOINT_INDEX
from hosig.cli.main import main
from hosig.clip import MotionClip
from hosig.errors import UsageError
from hosig.motion.edits import axis_angle_to_matrix, parse_anchors
from hosig.pipeline import events as events_module
from hosig.pipeline.events import Frames, Progress
from hosig.pipeline.run import generate

START = [1.3, -0.9, 0.0]
FIRST, LAST = 50, 110  # a 2 s range around the grasp (frame ~90) of the pick


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("regen")
    engine, scene = tiny_kitchen(d)
    ckpt = tiny_motion_checkpoint(d / "ckpt")  # the one the engine runs (trained once per process)
    base_path = d / "pick.npz"
    result = generate({"scene": str(scene), "start": START, "target": "cup", "action": "pick", "seed": 1},
                      engine=engine, clip_path=base_path)
    assert result.error is None, result.error
    return engine, scene, d, base_path, MotionClip.load(base_path), ckpt


def _sideways(base: MotionClip, frame: int) -> np.ndarray:
    """(3,) unit vector to the body's left at ``frame`` (horizontal)."""
    forward = axis_angle_to_matrix(base.poses[frame, 0:3].astype(np.float64))[:, 2]
    return np.array([-forward[1], forward[0], 0.0]) / max(np.hypot(forward[0], forward[1]), 1e-9)


def _turned(aa: np.ndarray, degrees: float) -> list[float]:
    """A local rotation turned by ``degrees`` about its parent's x axis, as [w, x, y, z]."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_rotvec(np.radians(degrees) * np.array([1.0, 0.0, 0.0])) * Rotation.from_rotvec(aa)
    x, y, z, w = rot.as_quat()
    return [float(w), float(x), float(y), float(z)]


def edit_keys(base: MotionClip, scene_path: Path) -> list[dict]:
    """The animator's keys: three good ones, then four the body or the scene cannot honour."""
    hand_f, pelvis_f, elbow_f = FIRST + 12, FIRST + 30, FIRST + 20
    hand = base.joints[hand_f, JOINT_INDEX["right_wrist"]] + np.array([0.0, 0.0, 0.15])
    pelvis = base.joints[pelvis_f, 0] + 0.10 * _sideways(base, pelvis_f)
    elbow = _turned(base.poses[elbow_f, 3 * 18:3 * 18 + 3].astype(np.float64), 20.0)
    head = base.joints[FIRST + 25, JOINT_INDEX["head"]] + np.array([0.0, 0.0, 2.0])
    wall = [0.0, 2.5, 1.2]  # inside the kitchen's north wall
    return [
        {"frame": hand_f, "joint": "right_wrist", "position": hand.tolist()},
        {"frame": pelvis_f, "joint": "pelvis", "position": pelvis.tolist()},
        {"frame": elbow_f, "joint": "left_elbow", "rotation": elbow},
        {"frame": FIRST + 25, "joint": "left_wrist", "position": head.tolist()},
        {"frame": FIRST + 40, "joint": "left_wrist", "position": wall},
        {"frame": FIRST - 5, "joint": "right_wrist", "position": hand.tolist()},
        {"frame": FIRST, "joint": "right_wrist", "position": (base.joints[FIRST - 1, 21] + [0.0, 0.0, 0.3]).tolist()},
    ]


@pytest.fixture(scope="module")
def regenerated(setup):
    engine, scene, d, base_path, base, _ = setup
    wall = engine.scenes.get(str(scene)).object("wall_north")
    keys = edit_keys(base, scene)
    keys[4]["position"] = np.asarray(wall.center, dtype=float).tolist()
    out = d / "regen.npz"
    result = generate({"scene": str(scene), "base_clip": str(base_path), "range": [FIRST, LAST], "anchors": keys, "seed": 3},
                      engine=engine, clip_path=out)
    assert result.error is None, result.error
    return result, MotionClip.load(out), base


def test_keys_met_and_the_rest_unchanged(regenerated) -> None:
    result, clip, base = regenerated
    anchors = result.summary["anchors"]
    hand, pelvis, elbow = anchors[:3]
    assert hand["met"] and hand["position_error_m"] <= 0.02, hand
    assert pelvis["met"] and pelvis["position_error_m"] <= 0.02, pelvis
    assert elbow["met"] and elbow["rotation_error_deg"] <= 5.0, elbow
    assert clip.n_frames == base.n_frames
    for name in ("poses", "trans", "joints", "object_transforms"):
        new, old = getattr(clip, name), getattr(base, name)
        assert np.array_equal(new[:FIRST], old[:FIRST]) and np.array_equal(new[LAST + 1:], old[LAST + 1:]), name
    assert not np.allclose(clip.poses[FIRST:LAST + 1], base.poses[FIRST:LAST + 1])
    # seamless: no velocity jump at the seams beyond the base clip's own, and (the tiny test model
    # pops on its own near the grasp) no joint faster than 8 m/s or than the base clip there
    seams = result.summary["seams"]
    base_speed = float((np.linalg.norm(np.diff(base.joints[FIRST - 2:LAST + 3], axis=0), axis=-1) * 30).max())
    assert seams["max_joint_speed_m_s"] <= max(8.0, 1.5 * base_speed), (seams, base_speed)
    assert seams["seam_velocity_jump_m_s"] <= seams["base_max_velocity_jump_m_s"], seams


def test_impossible_keys_not_met_with_reasons(regenerated) -> None:
    result, _, _ = regenerated
    reasons = [(a["met"], a.get("reason")) for a in result.summary["anchors"][3:]]
    assert reasons == [(False, "unreachable"), (False, "inside_furniture"), (False, "outside_range"), (False, "too_fast")]
    assert all(a["why"] for a in result.summary["anchors"][3:])
    assert result.summary["anchors_met"] is False


def test_frames_streamed_whole_clip_prefix_first(regenerated) -> None:
    result, clip, _ = regenerated
    frames = [e for e in result.events if isinstance(e, Frames)]
    assert frames[0].start == 0
    for a, b in zip(frames, frames[1:]):
        assert b.start == a.start + a.count
    assert frames[-1].start + frames[-1].count == clip.n_frames
    first_progress = next(i for i, e in enumerate(result.events) if isinstance(e, Progress))
    assert isinstance(result.events[first_progress - 1], Frames)  # the unchanged frames come before the work
    for name in ("poses", "trans", "joints", "object_transforms"):  # what was streamed is what was written
        streamed = np.concatenate([f.arrays()[name] for f in frames])
        written = np.asarray(getattr(clip, name), dtype=np.float64).reshape(streamed.shape)
        assert np.array_equal(streamed, np.round(written, events_module._DECIMALS)), name  # the wire's rounding


def test_range_streamed_per_window_and_equal_to_the_unstreamed_result(setup, regenerated) -> None:
    """One take streams the range window by window (the first window's frames while the second is
    sampled), then the suffix; the written clip is bit-identical to `regenerate` (no streaming)."""
    from hosig.motion.regenerate import RegenerateSpec, regenerate

    engine, scene, _, _, _, _ = setup
    result, clip, base = regenerated
    events = result.events
    frames = [i for i, e in enumerate(events) if isinstance(e, Frames)]
    in_range = [i for i in frames if FIRST <= events[i].start <= LAST]
    assert events[in_range[0]].start == FIRST and len(in_range) >= 2, [(events[i].start, events[i].count) for i in frames]
    between = [e for e in events[in_range[0]:in_range[1]] if isinstance(e, Progress)]
    assert between and 0.0 < between[0].fraction < 1.0  # a window of the range was final before the next
    assert events[frames[-1]].start + events[frames[-1]].count == base.n_frames
    timings = result.summary["timings_ms"]
    assert 0.0 <= timings["first_frames_ms"] <= timings["first_range_frames_ms"] <= timings["total_ms"]

    loaded = engine.scenes.get(str(scene))
    keys = edit_keys(base, scene)
    keys[4]["position"] = np.asarray(loaded.object("wall_north").center, dtype=float).tolist()
    spec = RegenerateSpec(MotionClip.load(setup[3]), FIRST, LAST, parse_anchors(keys), seed=3,
                          floor_z=float(loaded.floor_z), steps=engine.sampler_steps())
    exclude = (base.object_name,) if base.object_name in loaded.objects else ()  # as the pipeline does
    plain = regenerate(engine.motion(), engine.body(None), spec, scene_sdf=loaded.sdf(exclude=exclude))
    for name in ("poses", "trans", "joints", "object_transforms", "contacts"):
        assert np.array_equal(getattr(plain.clip, name), getattr(clip, name)), name
    assert [o.to_json() for o in plain.outcomes] == result.summary["anchors"]


def test_carried_object_follows_the_new_hand(regenerated) -> None:
    from hosig.body import load_body_model
    from hosig.motion.task import wrist_transforms

    _, clip, base = regenerated
    body = load_body_model()
    frames = np.arange(max(FIRST, base.grasp_frame), LAST + 1)
    assert len(frames) > 5 and clip.object_transforms is not None

    def in_hand(c: MotionClip) -> np.ndarray:
        wt = wrist_transforms(body, c.poses[frames], c.joints[frames, 0], "right").astype(np.float64)
        return np.linalg.inv(wt) @ c.object_transforms[frames].astype(np.float64)

    np.testing.assert_allclose(in_hand(clip)[:, :3, 3], in_hand(base)[:, :3, 3], atol=2e-3)


def test_bad_input_is_a_clear_usage_error(setup) -> None:
    engine, scene, _, base_path, _, _ = setup
    with pytest.raises(UsageError, match="unknown joint 'right_pinky_toe'"):
        parse_anchors([{"frame": 3, "joint": "right_pinky_toe", "position": [0, 0, 1]}])
    with pytest.raises(UsageError, match="position"):
        parse_anchors([{"frame": 3, "joint": "head"}])
    bad = [
        ({"range": [FIRST, 10_000]}, "range"),
        ({"anchors": [{"frame": 60, "joint": "elbow", "position": [0, 0, 1]}]}, "unknown joint"),
        ({"anchors": [{"frame": 60, "joint": "head", "rotation": [0, 0, 0, 0]}]}, "zero quaternion"),
    ]
    for extra, words in bad:
        req = {"scene": str(scene), "base_clip": str(base_path), "range": [FIRST, LAST], **extra}
        result = generate(req, engine=engine)
        assert result.error is not None and result.error.code == "bad_request" and words in result.error.message, result.error
        assert not any(isinstance(e, Frames) for e in result.events)


def test_cli_regenerates_with_variations_ranked(setup, capsys) -> None:
    _, scene, d, base_path, base, ckpt = setup
    keys = edit_keys(base, scene)[:1] + [{"frame": 20, "joint": "neck", "position": [0, 0, 1]}]
    keys[0]["frame"] = 30
    keys[0]["position"] = (base.joints[30, JOINT_INDEX["right_wrist"]] + [0.0, 0.0, 0.15]).tolist()
    (d / "keys.json").write_text(json.dumps(keys))
    out = d / "cli.npz"
    argv = ["generate", str(scene), "--from-clip", str(base_path), "--range", "20:50", "--anchors", str(d / "keys.json"),
            "--out", str(out), "--variations", "2", "--seed", "5", "--json", "--model", str(ckpt), "--quality", "preview"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["range"] == [20, 50] and report["mode"] == "regenerate"
    hand, neck = report["anchors"]
    assert hand["met"] and hand["position_error_m"] <= 0.02, hand
    assert neck["met"] is False and neck["reason"] in ("unreachable", "too_fast", "inside_furniture"), neck
    takes = report["takes"]
    assert [t["rank"] for t in takes] == [1, 2] and sorted(t["seed"] for t in takes) == [5, 6]
    assert takes[0]["score"] <= takes[1]["score"]
    assert out.is_file() and (d / "cli.take2.npz").is_file()
    clip = MotionClip.load(out)
    assert np.array_equal(clip.poses[:20], base.poses[:20]) and np.array_equal(clip.poses[51:], base.poses[51:])


def test_cli_bad_arguments_exit_2(setup, tmp_path) -> None:
    _, scene, _, base_path, _, ckpt = setup
    keys = tmp_path / "k.json"
    keys.write_text(json.dumps([{"frame": 30, "joint": "tail", "position": [0, 0, 1]}]))
    common = ["generate", str(scene), "--from-clip", str(base_path), "--model", str(ckpt), "--quality", "preview"]
    assert main(common + ["--range", "30-40"]) == 2
    assert main(common + ["--range", "30:40", "--anchors", str(keys)]) == 2
    assert main(["generate", str(scene), "--range", "30:40"]) == 2
    assert main(common + ["--range", "30:40", "--repair", "2"]) == 2  # a new shot's option, named as such
    assert main(["generate", str(scene), "--start=1,1", "--target", "cup", "--repair", "9"]) == 2  # at most 8
