"""Walk first, grasp beside it (issue #21): the walk's windows stream while the grasp is still
being optimised, and the clip is the one the grasp-first order makes, frame for frame."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from pipeline_support import tiny_kitchen

from hosig.motion.walkfirst import Deferred, prefix_matches, walk_task
from hosig.pipeline.engine import Engine
from hosig.pipeline.events import Done, Error, Frames, Grasp
from hosig.pipeline.run import generate, run

# a long walk to the kitchen's cup: several windows end before the arrival
FAR = {"start": [-1.5, -1.5, 0.0], "target": "cup", "seed": 3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("walkfirst")
    engine, scene = tiny_kitchen(d)
    return engine, scene


def _grasp_first(engine: Engine) -> Engine:
    """The same warm engine (models, scenes, grasps) with the old order: grasp, then motion."""
    other = Engine(replace(engine.config, grasp_beside_walk=False))
    other.scenes, other._motion, other._grasps = engine.scenes, engine.motion(), engine._grasps
    return other


def _arrays(result) -> dict[str, np.ndarray]:
    frames = [e for e in result.events if isinstance(e, Frames)]
    out = {}
    for key in ("poses", "trans", "joints", "object_transforms"):
        out[key] = np.concatenate([f.arrays()[key] for f in frames])
    return out


@pytest.mark.parametrize("action", ["pick", "pick-place"])
def test_walk_first_streams_the_grasp_first_clip(setup, action) -> None:
    engine, scene = setup
    req = dict(FAR, scene=str(scene), action=action)
    if action == "pick-place":
        req["place"] = "table"
    walk = generate(req, engine=engine)
    first = generate(req, engine=_grasp_first(engine))
    assert walk.error is None and first.error is None, (walk.error, first.error)
    a, b = _arrays(walk), _arrays(first)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert walk.summary["walk_first"] and not first.summary["walk_first"]
    assert walk.summary["walk_prefix_exact"]
    assert first.summary["frames_before_grasp"] == 0
    assert walk.summary["grasp_frame"] == first.summary["grasp_frame"]
    assert sum(isinstance(e, Grasp) for e in walk.events) == 1


def test_frames_stream_while_the_grasp_is_still_running(setup, monkeypatch) -> None:
    """The grasp stage is held until the consumer has seen frames: the walk streams without it."""
    engine, scene = setup
    seen_frames = threading.Event()
    real = engine.grasp

    def slow_grasp(*args, **kwargs):
        assert seen_frames.wait(timeout=120), "no frames streamed while the grasp was pending"
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "grasp", slow_grasp)
    order = []
    for event in run(dict(FAR, scene=str(scene), action="pick"), engine=engine):
        if isinstance(event, Frames):
            seen_frames.set()
        order.append(type(event).__name__)
        assert not isinstance(event, Error), event
    first_grasp = order.index("Grasp")
    assert "Frames" in order[:first_grasp]
    assert order[-1] == "Done"


def test_grasp_error_ends_the_stream_with_its_code(setup, monkeypatch) -> None:
    from hosig.errors import UnreachableError

    engine, scene = setup

    def failing(*args, **kwargs):
        raise UnreachableError("no grasp from here")

    monkeypatch.setattr(engine, "grasp", failing)
    result = generate(dict(FAR, scene=str(scene), action="pick"), engine=engine)
    assert result.error is not None and result.error.code == "unreachable"
    assert "no grasp" in result.error.message
    assert not any(isinstance(e, (Grasp, Done)) for e in result.events)


def test_walk_anchors_are_every_actions_anchors_before_the_arrival(setup) -> None:
    from hosig.motion.task import build_task
    from hosig.navigation import StartPose, plan_to_object, plan_to_point

    engine, scene = setup
    s = engine.scenes.get(str(scene))
    body = engine.body()
    approach = plan_to_object(s, StartPose(-1.5, -1.5, 0.0), "cup")
    grasp, _ = engine.grasp(s, "cup", tuple(float(v) for v in approach.stand), body, "auto")
    walk = walk_task(build_task, approach, grasp.hand, body)
    arrive = int(walk.reach_from)
    assert arrive > 64  # the test walk is long enough for windows before the arrival
    carry = plan_to_point(s, StartPose(*[float(v) for v in approach.stand]), np.array([0.0, 1.0, 0.8]))
    for action, legs in (("reach", [approach]), ("pick", [approach]), ("pick-place", [approach, carry])):
        task = build_task(action, legs, grasp=grasp, place_point=np.array([0.0, 1.0, 0.8]), body=body)
        assert task.reach_from == arrive and arrive <= task.touch_spans[0][0] < task.grasp_frame
        assert prefix_matches(walk.anchors, task.anchors, arrive), action
        assert walk.n_frames > arrive


def test_deferred_hands_back_value_or_error() -> None:
    assert Deferred(lambda: 41 + 1).result() == 42

    def boom() -> None:
        raise ValueError("x")

    d = Deferred(boom)
    with pytest.raises(ValueError):
        d.result()
    assert d.failed()


def test_a_grasp_being_optimised_is_waited_for_not_optimised_twice(setup, tmp_path, monkeypatch) -> None:
    """The /plan prefetch optimises a grasp in a thread; the job asking for it meanwhile waits."""
    import hosig.grasp.generator as generator
    import hosig.pipeline.graspcache as graspcache
    from hosig.pipeline.engine import EngineConfig

    engine, scene = setup
    fresh = Engine(EngineConfig(cache_dir=tmp_path))
    s = engine.scenes.get(str(scene))
    body = engine.body()
    release = threading.Event()
    calls = []

    def slow(*args, **kwargs):
        calls.append(1)
        assert release.wait(timeout=60)
        return "the grasp"

    monkeypatch.setattr(generator, "generate_grasp", slow)
    monkeypatch.setattr(graspcache, "save_grasp", lambda path, result: None)
    stand = (1.0, 0.0, 0.0)
    first = Deferred(lambda: fresh.grasp(s, "cup", stand, body, "right"))
    while not calls:
        threading.Event().wait(0.01)
    second = Deferred(lambda: fresh.grasp(s, "cup", stand, body, "right"))
    threading.Event().wait(0.2)
    assert not second.done()  # waiting for the first
    release.set()
    assert first.result() == ("the grasp", False)
    assert second.result() == ("the grasp", True)
    assert len(calls) == 1
