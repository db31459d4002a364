"""The pipeline's repair of a finished clip (`pipeline.repair`): the frames around a gross failure
are redrawn and kept only when the whole clip judges better; the redrawn frames are streamed again
and the saved clip is exactly what a client assembles (a frame sent again replaces the first)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline_support import tiny_kitchen

from hosig.clip import MotionClip
from hosig.eval.gross import GrossVerdict as Verdict
from hosig.pipeline.events import Done, Frames, Progress
from hosig.pipeline.repair import REPAIR_SEED_STRIDE, grasp_keys, improves, located_failure, repair_clip, repair_range
from hosig.pipeline.run import generate


def _clip(n: int = 120) -> SimpleNamespace:
    return SimpleNamespace(n_frames=n, poses=np.zeros((n, 165)), grasp_frame=-1)


def _pop_at(frame: int) -> Verdict:
    return Verdict(["pop"], {"pop": {"frame": frame}})


def test_failure_is_located_by_its_detector_frame() -> None:
    assert located_failure(Verdict(["hand_miss", "penetration"], {"penetration": {"frame": 40}})) == ("penetration", 40)
    assert located_failure(Verdict(["hand_miss"], {"hand_miss": {"hand_object_m": 0.1}})) is None  # not local
    assert located_failure(Verdict(["feet_off_floor"], {"feet_off_floor": {"first_frame": 7}})) == ("feet_off_floor", 7)


def test_range_stays_inside_the_clip() -> None:
    assert repair_range(50, 200) == (20, 80)
    assert repair_range(3, 200) == (1, 33)  # frame 0 is kept: the range's seam needs a base frame before it
    assert repair_range(195, 200) == (165, 199)


def test_a_candidate_is_better_only_without_new_failure_classes() -> None:
    current = Verdict(["pop", "penetration"], {"pop": {"frame": 50}, "penetration": {"frame": 10}})
    assert improves(Verdict(["penetration"], {"penetration": {"frame": 10}}), current, "pop", 20, 80)
    assert not improves(Verdict(["penetration", "trunk_twist"], {}), current, "pop", 20, 80)  # a new class
    moved = Verdict(["pop", "penetration"], {"pop": {"frame": 100}, "penetration": {"frame": 10}})
    assert improves(moved, current, "pop", 20, 80)  # the range is clean; the worst pop is elsewhere now
    assert not improves(current, current, "pop", 20, 80)


def test_repair_redraws_until_the_judge_passes_and_keeps_only_better_takes() -> None:
    draws = []

    def redraw(clip, first, last, seed):
        draws.append((first, last, seed))
        new = SimpleNamespace(n_frames=clip.n_frames, fixed=len(draws) >= 2)  # the first redraw is no better
        return new

    def judge(clip):
        return Verdict() if getattr(clip, "fixed", False) else _pop_at(60)

    start = _clip()
    out, report = repair_clip(start, judge, redraw, seed=5, rounds=3)
    assert out.fixed and report.before == ["pop"] and report.after == []
    assert [(a.kept, a.first, a.last) for a in report.attempts] == [(False, 30, 90), (True, 30, 90)]
    assert [d[2] for d in draws] == [5 + REPAIR_SEED_STRIDE, 5 + 2 * REPAIR_SEED_STRIDE]  # a seed per round
    assert report.kept_ranges == [(30, 90)]


def test_repair_never_returns_a_worse_clip_and_stops_after_its_rounds() -> None:
    start = _clip()

    def judge(clip):
        return Verdict(["pop", "trunk_twist"], {"pop": {"frame": 60}}) if clip is not start else _pop_at(60)

    out, report = repair_clip(start, judge, lambda c, a, b, s: _clip(), seed=0, rounds=2)
    assert out is start and report.after == ["pop"] and len(report.attempts) == 2
    assert not any(a.kept for a in report.attempts) and report.kept_ranges == []


def test_a_clean_clip_is_judged_once_and_never_redrawn() -> None:
    calls = []
    out, report = repair_clip(_clip(), lambda c: calls.append(c) or Verdict(), lambda *a: pytest.fail("redrawn"), 0)
    assert len(calls) == 1 and report.attempts == [] and report.before == report.after == []


def test_the_grasp_is_a_hard_key_of_a_range_that_holds_it() -> None:
    clip = SimpleNamespace(grasp_frame=40, joints=np.arange(60 * 55 * 3, dtype=float).reshape(60, 55, 3))
    keys = grasp_keys(clip, "right", 20, 50)
    assert len(keys) == 1 and keys[0].frame == 40 and keys[0].name == "right_wrist"
    np.testing.assert_array_equal(keys[0].position, clip.joints[40, 21])
    assert grasp_keys(clip, "right", 45, 50) == [] and grasp_keys(clip, None, 20, 50) == []


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    d = tmp_path_factory.mktemp("repair")
    engine, scene = tiny_kitchen(d)
    engine.config.cache_dir = d / "cache"
    return engine, scene, d


def test_pipeline_streams_the_redrawn_frames_and_saves_what_was_streamed(kitchen, monkeypatch) -> None:
    """A judge that fails the clip as first made (a pop at frame 30) and passes any clip whose frame 30
    changed: the pipeline redraws frames around 30, sends them again, and saves that clip."""
    engine, scene, d = kitchen
    import hosig.eval.gross as gross

    first_made: dict[str, np.ndarray] = {}

    def judge(clip, *args, **kwargs):
        first_made.setdefault("poses", np.array(clip.poses))
        same = np.allclose(clip.poses[30], first_made["poses"][30])
        return Verdict(["pop"], {"pop": {"frame": 30}}) if same else Verdict()

    monkeypatch.setattr(gross, "judge_clip", judge)
    out = d / "repaired.npz"
    result = generate({"scene": str(scene), "start": [1.3, -0.9, 0.0], "target": "cup", "action": "pick", "seed": 2,
                       "repair": 2}, engine=engine, clip_path=out)
    assert result.error is None, result.error
    report = result.summary["repair"]
    assert report["before"] == ["pop"] and report["after"] == []
    kept = [a for a in report["attempts"] if a["kept"]]
    assert len(kept) == 1 and kept[0]["range"] == [1, 60]

    frames = [e for e in result.events if isinstance(e, Frames)]
    resent = [f for f in frames if f.start < sum(g.count for g in frames[:frames.index(f)])]
    assert [(f.start, f.count) for f in resent] == [(1, 60)]  # the redrawn range, once, after the stream
    stages = [e.stage for e in result.events if isinstance(e, Progress)]
    assert "repair" in stages and isinstance(result.events[-1], Done)

    assembled = np.zeros((result.summary["frames"], 165))
    for f in frames:  # what a client keys: a frame sent again replaces the first
        assembled[f.start:f.start + f.count] = f.arrays()["poses"]
    clip = MotionClip.load(out)
    np.testing.assert_allclose(clip.poses, assembled, atol=1e-5)
    np.testing.assert_array_equal(clip.poses[61:], first_made["poses"][61:])  # outside the range: unchanged
    np.testing.assert_array_equal(clip.poses[0], first_made["poses"][0])
    assert not np.allclose(clip.poses[30], first_made["poses"][30])


def test_preview_quality_and_repair_0_never_judge(kitchen, monkeypatch) -> None:
    engine, scene, d = kitchen
    import hosig.eval.gross as gross

    monkeypatch.setattr(gross, "judge_clip", lambda *a, **k: pytest.fail("judged"))
    req = {"scene": str(scene), "start": [1.3, -0.9, 0.0], "target": "cup", "action": "reach", "seed": 3}
    assert engine.config.quality == "preview" and engine.repair_rounds() == 0
    result = generate(req, engine=engine)
    assert result.error is None and result.summary["repair"] is None
    assert generate(dict(req, repair=0), engine=engine).summary["repair"] is None
