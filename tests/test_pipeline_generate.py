"""End to end through every stage (tiny motion checkpoint, preview quality): events in order for
each action, frames streamed contiguously, the carried object, the clip file, cancellation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline_support import tiny_kitchen

from hosig.clip import MotionClip
from hosig.pipeline.events import Done, Error, Frames, Grasp, Plan, Progress
from hosig.pipeline.run import generate, run

START = [1.3, -0.9, 0.0]  # about a metre from where one stands to reach the kitchen's cup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny engine with a cache folder of its own: the crude tiny model's clips depend on the
    exact grasp, and a grasp cached by another test module must not change what these assert."""
    d = tmp_path_factory.mktemp("gen")
    engine, scene = tiny_kitchen(d)
    engine.config.cache_dir = d / "cache"
    return engine, scene, d


def _signature(events) -> str:
    names = {Plan: "P", Grasp: "G", Frames: "F", Done: "D", Error: "E"}
    out = []
    for e in events:
        if isinstance(e, Progress):
            out.append("g" if e.stage == "grasp" else "m")
        else:
            out.append(names.get(type(e), "A"))
    return "".join(out)


@pytest.mark.parametrize("action", ["reach", "pick", "pick-place"])
def test_events_in_order_and_clip_for_each_action(setup, action) -> None:
    engine, scene, d = setup
    req = {"scene": str(scene), "start": START, "target": "cup", "action": action, "seed": 1}
    if action == "pick-place":
        req["place"] = "counter"
    out = d / f"{action}.npz"
    result = generate(req, engine=engine, clip_path=out)
    assert result.error is None, result.error
    sig = _signature(result.events)
    plans = "PP" if action == "pick-place" else "P"
    # the grasp event comes once, after the grasp stage starts: before the motion (grasp cached) or
    # between frames (the walk streams while the grasp is optimised, issue #21)
    assert re.fullmatch(f"A{plans}gm(Fm)+D", sig.replace("G", "")), sig
    assert sig.count("G") == 1 and sig.index("G") > sig.index("g"), sig

    frames = [e for e in result.events if isinstance(e, Frames)]
    assert frames[0].start == 0
    for a, b in zip(frames, frames[1:]):
        assert b.start == a.start + a.count  # contiguous chunks, streamed in order
    summary = result.summary
    total = sum(f.count for f in frames)
    assert summary["frames"] == total and summary["duration_s"] == pytest.approx(total / 30, abs=1e-3)
    assert {"navigation_ms", "grasp_ms", "motion_ms", "first_frames_ms", "total_ms"} <= set(summary["timings_ms"])
    assert summary["body_identity"] == "mannequin-v1" and summary["clip"] == str(out)
    fractions = [e.fraction for e in result.events if isinstance(e, Progress) and e.stage == "motion"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    with np.load(out, allow_pickle=False) as npz:
        for key in ("poses", "trans", "betas", "gender", "mocap_frame_rate", "surface_model_type", "joints",
                    "object_name", "object_transforms", "grasp_frame", "path", "body_identity"):
            assert key in npz.files, key
        assert npz["poses"].shape == (total, 165) and float(npz["mocap_frame_rate"]) == 30.0
    clip = MotionClip.load(out)
    streamed = np.concatenate([f.arrays()["poses"] for f in frames])
    np.testing.assert_allclose(clip.poses, streamed, atol=1e-5)
    g = summary["grasp_frame"]
    assert 0 < g < total

    if action == "reach":
        # The frames are what the add-on keys: smplx driven by poses/trans reproduces the joints.
        import torch

        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            out = engine.body().forward(global_orient=t(clip.poses[:, :3]), transl=t(clip.trans), body_pose=t(clip.poses[:, 3:66]),
                                        left_hand_pose=t(clip.poses[:, 75:120]), right_hand_pose=t(clip.poses[:, 120:165]))
        np.testing.assert_allclose(out.joints.numpy()[:, :55], clip.joints, atol=1e-4)
        assert all(f.object_name is None and f.object_transforms is None for f in frames)
        assert clip.object_transforms is None
        return
    obj = np.concatenate([f.arrays()["object_transforms"] for f in frames])
    assert all(f.object_name == "cup" for f in frames)
    np.testing.assert_allclose(obj[:g], np.tile(np.eye(4), (g, 1, 1)), atol=1e-6)  # untouched before the grasp
    # Once attached (after the blend-in), the cup is rigid in the grasping wrist's frame; the wrist
    # frame is computed here by the motion stage's own FK, independently of the pipeline's.
    from hosig.motion.task import wrist_transforms

    hand = next(e for e in result.events if isinstance(e, Grasp)).hand
    wrist = wrist_transforms(engine.body(), clip.poses, clip.joints[:, 0], hand).astype(np.float64)
    end = summary["release_frame"] if summary["release_frame"] > 0 else total
    rel = np.linalg.inv(wrist[g + 8 : end]) @ obj[g + 8 : end]
    np.testing.assert_allclose(rel, np.tile(rel[:1], (len(rel), 1, 1)), atol=2e-3)
    if action == "pick-place":
        r = summary["release_frame"]
        assert g < r < total
        # put down: no rotation or sideways motion after the release; it settles straight down (or up,
        # when it sank) onto the surface without a bounce, then stays put (how far depends on where
        # the tiny model's hand let go: the resting itself is the next test's)
        np.testing.assert_allclose(obj[r:, :3, :3], np.tile(obj[r - 1, :3, :3], (total - r, 1, 1)), atol=1e-6)
        np.testing.assert_allclose(obj[r:, :2, 3], np.tile(obj[r - 1, :2, 3], (total - r, 1)), atol=1e-6)
        z = obj[r - 1 :, 2, 3]
        assert np.all(np.diff(z) <= 1e-9) or np.all(np.diff(z) >= -1e-9)
        rest = r - 1 + int(np.argmax(np.isclose(z, z[-1], atol=1e-9)))
        assert rest < total - 1, "the released object never came to rest"
        np.testing.assert_allclose(obj[rest:], np.tile(obj[-1], (total - rest, 1, 1)), atol=1e-6)
        assert "place_error_m" in summary["metrics"]
    # the summary's skating figure is the touching-sole measure of this very clip
    from hosig.eval.geometry import clip_sole_sliding

    sole = clip_sole_sliding(engine.body(), clip.poses, clip.trans).mean_cm_s
    assert list(summary["metrics"])[1] == "sole_sliding_cm_s"
    assert summary["metrics"]["sole_sliding_cm_s"] == pytest.approx(sole, abs=1e-4)


def test_cancel_stops_within_a_window(setup) -> None:
    engine, scene, _ = setup
    flag = {"stop": False}
    events = []
    for event in run({"scene": str(scene), "start": [-1.5, -1.5], "target": "cup", "action": "pick"}, engine=engine, cancel=lambda: flag["stop"]):
        events.append(event)
        if isinstance(event, Frames):
            flag["stop"] = True  # cancel as soon as motion streams
    assert isinstance(events[-1], Error) and events[-1].code == "cancelled"
    assert not any(isinstance(e, Done) for e in events)
    assert sum(isinstance(e, Frames) for e in events) <= 2  # at most the window already finished


def test_pick_place_leaves_the_object_resting_on_its_support(setup) -> None:
    """Issue #18: the released cup ends on the counter's top (the stress judge's `placement_gap`), however
    high the (tiny, crude) motion let go of it."""
    from hosig.eval.gross import _footprint_support, placement_gap
    from hosig.scene import load_scene

    engine, scene_path, d = setup
    req = {"scene": str(scene_path), "start": START, "target": "cup", "action": "pick-place", "place": "counter", "seed": 1}
    out = d / "placed.npz"
    result = generate(req, engine=engine, clip_path=out)
    assert result.error is None, result.error
    clip = MotionClip.load(out)
    assert 0 <= clip.release_frame < clip.n_frames - 1
    scene = load_scene(scene_path)
    cup = scene.object("cup").mesh.copy()
    cup.apply_transform(np.asarray(clip.object_transforms[-1], dtype=np.float64))
    support = scene.mesh(exclude=("cup",))
    placed = np.asarray(cup.vertices)
    found = placement_gap(placed, _footprint_support(support, placed, float(scene.floor_z)))
    assert found.failures == [], found.details
    assert abs(found.details["gap_m"]) < 0.002
    bottoms = [float((np.asarray(scene.object("cup").vertices) @ m[:3, :3].T + m[:3, 3])[:, 2].min())
               for m in np.asarray(clip.object_transforms[clip.release_frame:], dtype=np.float64)]
    assert np.all(np.diff(bottoms) <= 1e-9) or np.all(np.diff(bottoms) >= -1e-9)  # straight down or up, no bounce
