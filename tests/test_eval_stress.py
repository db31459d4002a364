"""`hosig eval stress` end to end on two random rooms: every case judged from its clip and meshes,
nothing crashes, turns NaN or leaves both feet off the floor, and a saved request replays to the
very same clip.

The full 200-case run and its figures are in docs/BENCHMARKS.md (it takes ~28 min on 2 cores with --jobs 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hosig.cli.main import main

DETECTORS = {"nan", "feet_off_floor", "pop", "penetration", "crouch_walk", "trunk_flip", "trunk_twist", "trunk_fold"}


@pytest.fixture(scope="module")
def stress(tmp_path_factory):
    out = tmp_path_factory.mktemp("stress")
    assert main(["eval", "stress", "--n", "2", "--seed", "3", "--out", str(out), "--json"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_every_case_is_answered_and_judged(stress):
    out, report = stress
    overall = report["overall"]
    assert overall["cases"] == 2 and overall["nan_clips"] == 0
    assert overall["failure_counts"]["error"] == 0, [c["message"] for c in report["cases"]]
    for case in report["cases"]:
        assert (out / case["request"]).is_file() and (out / "scenes" / f"case_{case['index']:03d}.glb").is_file()
        assert case["replay"].startswith("hosig generate ")
        if case["clip"]:
            assert (out / case["clip"]).is_file() and case["frames"] > 0
            assert DETECTORS <= set(case["details"]), sorted(case["details"])
            assert set(case["failures"]) <= set(overall["failure_counts"])
            # walking always has a foot down: the one gross failure already at its target (0 of 200)
            assert "feet_off_floor" not in case["failures"], case["details"]["feet_off_floor"]
        else:  # a refusal, checked against how the room was built
            assert case["outcome"] in ("unreachable", "infeasible") and case["justified"] is not None


def test_a_saved_request_replays_to_the_same_clip(stress, tmp_path):
    from hosig.clip import MotionClip
    from hosig.eval.report import generate_for_eval
    from hosig.pipeline.run import default_engine

    out, report = stress
    made = [c for c in report["cases"] if c["clip"]]
    if not made:
        pytest.skip("both drawn cases were refused: nothing to replay")
    case = made[0]
    request = json.loads((out / case["request"]).read_text())
    request["scene"] = str(out / request["scene"])
    summary, error, _ = generate_for_eval(request, default_engine(), tmp_path / "replay.npz")
    assert error is None and summary is not None
    again, first = MotionClip.load(tmp_path / "replay.npz"), MotionClip.load(out / case["clip"])
    np.testing.assert_allclose(again.joints, first.joints, atol=1e-5)
