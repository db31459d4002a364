"""`hosig.pipeline.run`: event order, errors as events with their codes, cancellation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosig.pipeline.engine import Engine, EngineConfig
from hosig.pipeline.events import Accepted, Error, Plan, Progress
from hosig.pipeline.run import generate, run
from hosig.scene.demo import write_demo_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pipe")
    return {k: write_demo_scene(d / f"{k}.glb", k, 0) for k in ("kitchen", "enclosed")}


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    return Engine(EngineConfig(cache_dir=tmp_path_factory.mktemp("cache")))


def test_events_start_accepted_then_plan_and_closing_stops_the_job(scenes, engine) -> None:
    events = run({"scene": str(scenes["kitchen"]), "start": [-1.5, -1.5, 0.0], "target": "cup"}, engine=engine, job_id="j1")
    first = next(events)
    assert first == Accepted(job_id="j1")
    plan = next(events)
    assert isinstance(plan, Plan) and plan.leg == "approach" and plan.target == "cup"
    assert plan.start[:2] == pytest.approx([-1.5, -1.5], abs=0.06)
    assert len(plan.waypoints) == len(plan.times)
    nxt = next(events)
    assert isinstance(nxt, Progress) and nxt.stage == "grasp"
    events.close()  # the consumer walks away: the generator ends without raising


def test_pick_place_plans_the_carry_leg(scenes, engine) -> None:
    events = run({"scene": str(scenes["kitchen"]), "start": [-1.5, -1.5], "target": "cup", "action": "pick-place", "place": "table"}, engine=engine)
    kinds = [next(events) for _ in range(3)]
    events.close()
    assert isinstance(kinds[1], Plan) and kinds[1].leg == "approach"
    assert isinstance(kinds[2], Plan) and kinds[2].leg == "carry"
    assert kinds[2].start[:2] == pytest.approx(kinds[1].stand[:2], abs=0.06)


@pytest.mark.parametrize(
    "patch, code, words",
    [
        ({"scene": "enclosed", "target": "bottle", "start": [-2.0, -1.5]}, "unreachable", ["unreachable"]),
        ({"target": "unicorn"}, "unknown_object", ["unicorn", "cup"]),
        ({"action": "pick-place", "place": "spaceship"}, "unknown_object", ["spaceship"]),
        ({"action": "pick-place", "place": "cup"}, "bad_request", ["itself"]),
        ({"scene": "missing"}, "bad_input", ["missing.glb"]),
        ({"start": [float("nan"), 0.0]}, "bad_request", ["start"]),
    ],
)
def test_errors_become_events_with_their_code(scenes, engine, tmp_path, patch, code, words) -> None:
    req = {"scene": str(scenes["kitchen"]), "start": [-1.5, -1.5], "target": "cup"}
    req.update(patch)
    if req["scene"] == "enclosed":
        req["scene"] = str(scenes["enclosed"])
    elif req["scene"] == "missing":
        req["scene"] = str(tmp_path / "missing.glb")
    result = generate(req, engine=engine)
    assert isinstance(result.events[0], Accepted)
    assert result.summary is None and isinstance(result.error, Error)
    assert result.error.code == code, result.error.message
    for word in words:
        assert word in result.error.message
    assert isinstance(result.events[-1], Error)  # the error ends the stream


def test_cancel_before_work_gives_cancelled(scenes, engine) -> None:
    result = generate({"scene": str(scenes["kitchen"]), "start": [-1.5, -1.5], "target": "cup"}, engine=engine, cancel=lambda: True)
    assert result.error is not None and result.error.code == "cancelled"
    assert not any(isinstance(e, Plan) for e in result.events)
