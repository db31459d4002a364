"""Request validation, event serialisation and carried-object transforms (no heavy stages)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hosig.body.skeleton import JOINT_INDEX, PARENTS
from hosig.errors import UsageError
from hosig.pipeline.events import Accepted, Done, Error, Frames, Plan, Progress, parse_event
from hosig.pipeline.objects import CarryTracker, chain_rotations, object_top_centre, wrist_transforms
from hosig.pipeline.request import GenerateRequest, parse_request

BASE = {"scene": "s.glb", "start": [0.0, 1.0], "target": "cup"}


def test_request_defaults_and_heading() -> None:
    req = parse_request(dict(BASE))
    assert req.action == "pick" and req.seed == 0 and req.hand == "right" and req.heading is None
    assert parse_request(dict(BASE, start=[0, 1, 1.5])).heading == 1.5


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"start": [float("nan"), 0.0]}, "start"),
        ({"start": [0.0, float("inf")]}, "start"),
        ({"start": [0.0]}, "start"),
        ({"start": "0,0"}, "start"),
        ({"action": "throw"}, "action"),
        ({"seed": -1}, "seed"),
        ({"colour": "red"}, "colour"),
        ({"target": ""}, "target"),
        ({"action": "pick-place"}, "place"),
        ({"place": "shelf"}, "place"),
        ({"action": "pick-place", "place": [1.0, float("nan"), 0.0]}, "place"),
    ],
)
def test_request_rejects_bad_fields_naming_them(patch: dict, field: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_request(dict(BASE, **patch))
    assert field in str(info.value)


def test_request_place_forms() -> None:
    assert parse_request(dict(BASE, action="pick-place", place="shelf")).place == "shelf"
    assert parse_request(dict(BASE, action="pick-place", place=[1, 2, 0.9])).place == [1.0, 2.0, 0.9]


def test_events_serialise_as_wire_protocol() -> None:
    assert json.loads(Accepted(job_id="abc").to_line()) == {"type": "accepted", "job_id": "abc"}
    err = json.loads(Error(code="unreachable", message="no path").to_line())
    assert err == {"type": "error", "code": "unreachable", "message": "no path"}
    prog = json.loads(Progress(stage="motion", fraction=0.5).to_line())
    assert prog == {"type": "progress", "stage": "motion", "fraction": 0.5}
    plan = Plan(start=[0, 0, 0], stand=[1, 1, 0], waypoints=[[0, 0], [1, 1]], times=[0, 1], length_m=1.4, duration_s=1.0)
    wire = plan.to_wire()
    assert wire["type"] == "plan" and wire["waypoints"] == [[0, 0], [1, 1]] and wire["leg"] == "approach"
    done = json.loads(Done(summary={"frames": 3, "metrics": {"x": float("nan")}}).to_line())
    assert done["summary"]["frames"] == 3


def test_frames_event_round_trip_and_shapes() -> None:
    rng = np.random.default_rng(0)
    n = 4
    poses, trans, joints = rng.normal(size=(n, 165)), rng.normal(size=(n, 3)), rng.normal(size=(n, 55, 3))
    obj = np.tile(np.eye(4), (n, 1, 1))
    obj[:, 0, 3] = np.arange(n)
    ev = Frames.from_arrays(10, poses, trans, joints, "cup", obj)
    wire = json.loads(ev.to_line())
    assert wire["type"] == "frames" and wire["start"] == 10 and wire["count"] == n
    assert np.asarray(wire["poses"]).shape == (n, 165)
    assert np.asarray(wire["joints"]).shape == (n, 55, 3)
    assert np.asarray(wire["object_transforms"]).shape == (n, 16)
    assert wire["object_transforms"][2][3] == 2.0  # row-major: [0,3] is the x translation
    back = parse_event(ev.to_line()).arrays()
    np.testing.assert_allclose(back["poses"], poses, atol=1e-6)
    np.testing.assert_allclose(back["object_transforms"], obj, atol=1e-6)
    with pytest.raises(ValueError):
        Frames.from_arrays(0, np.full((1, 165), np.nan), trans[:1], joints[:1])


def test_chain_rotation_composes_parents() -> None:
    poses = np.zeros((2, 165))
    poses[1, 0:3] = [0, 0, math.pi / 2]  # root yaw 90 deg
    wrist = JOINT_INDEX["right_wrist"]
    poses[1, 3 * JOINT_INDEX["right_elbow"] : 3 * JOINT_INDEX["right_elbow"] + 3] = [0.3, 0, 0]
    rot = chain_rotations(poses, PARENTS, wrist)
    np.testing.assert_allclose(rot[0], np.eye(3), atol=1e-12)
    expected = Rotation.from_rotvec([0, 0, math.pi / 2]).as_matrix() @ Rotation.from_rotvec([0.3, 0, 0]).as_matrix()
    np.testing.assert_allclose(rot[1], expected, atol=1e-12)


def _moving_wrist(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.2, size=(n, 165)).cumsum(axis=0) * 0.1
    joints = rng.normal(scale=0.01, size=(n, 55, 3)).cumsum(axis=0)
    return poses, joints


def test_carried_object_is_rigid_with_the_wrist_and_stays_after_release() -> None:
    poses, joints = _moving_wrist()
    wrist = JOINT_INDEX["right_wrist"]
    w = wrist_transforms(poses, joints, PARENTS, wrist)
    grasp, release = 10, 30
    object_in_wrist = np.linalg.inv(w[grasp])  # object untouched (identity) at the grasp frame
    tracker = CarryTracker(PARENTS, wrist, object_in_wrist, grasp, release)
    whole = tracker.chunk(0, poses, joints)
    np.testing.assert_allclose(whole[:grasp], np.tile(np.eye(4), (grasp, 1, 1)))
    np.testing.assert_allclose(whole[grasp], np.eye(4), atol=1e-9)
    point = np.array([0.3, -0.2, 0.8, 1.0])  # a point of the object: fixed in the wrist frame while held
    in_wrist = [np.linalg.inv(w[t]) @ whole[t] @ point for t in range(grasp, release)]
    np.testing.assert_allclose(in_wrist, np.tile(in_wrist[0], (release - grasp, 1)), atol=1e-9)
    np.testing.assert_allclose(whole[release:], np.tile(whole[release - 1], (len(poses) - release, 1, 1)), atol=1e-12)
    # streaming in chunks gives the same transforms as one call
    chunked = CarryTracker(PARENTS, wrist, object_in_wrist, grasp, release)
    parts = [chunked.chunk(s, poses[s : s + 7], joints[s : s + 7]) for s in range(0, len(poses), 7)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-12)


def test_object_top_centre() -> None:
    np.testing.assert_allclose(object_top_centre(np.array([[0, 0, 0], [2, 4, 0.9]])), [1, 2, 0.9])


def test_request_model_is_the_api_schema() -> None:
    schema = GenerateRequest.model_json_schema()
    assert schema["additionalProperties"] is False
    # start and target are required unless the request regenerates a base clip (issue #20)
    assert set(schema["required"]) == {"scene"}
    assert {"base_clip", "range", "anchors", "variations"} <= set(schema["properties"])
    from hosig.errors import UsageError
    from hosig.pipeline.request import parse_request

    with pytest.raises(UsageError, match="start and target are required"):
        parse_request({"scene": "s", "target": "cup"})
    with pytest.raises(UsageError, match="need a base_clip"):
        parse_request({"scene": "s", "start": [0, 0], "target": "cup", "range": [0, 5]})
    req = parse_request({"scene": "s", "base_clip": "c.npz", "range": [3, 9], "variations": 2,
                         "anchors": [{"frame": 4, "joint": "head", "position": [0, 0, 1.6]}]})
    assert req.regenerates and req.anchors[0].joint == "head"


def test_place_spots_lie_on_the_top_surface_centre_first() -> None:
    import trimesh

    from hosig.pipeline.objects import place_candidates

    seat = trimesh.creation.box(extents=[0.6, 0.6, 0.5])
    seat.apply_translation([1.0, 2.0, 0.25])
    back = trimesh.creation.box(extents=[0.6, 0.1, 0.5])
    back.apply_translation([1.0, 2.25, 0.75])  # a backrest along the +y edge, up to 1.0 m
    spots = place_candidates(trimesh.util.concatenate([seat, back]), inset=0.05, step=0.1)
    assert len(spots) > 4
    np.testing.assert_allclose(spots[0], [1.0, 2.0, 0.5], atol=1e-6)  # centre first, on the seat
    dist = np.linalg.norm(spots[:, :2] - [1.0, 2.0], axis=1)
    assert np.all(np.diff(dist) >= -1e-9)
    on_back = np.isclose(spots[:, 2], 1.0)
    assert on_back.any() and np.allclose(spots[~on_back, 2], 0.5)
    assert np.all(spots[on_back, 1] >= 2.2 - 1e-9) and np.all(spots[~on_back, 1] <= 2.2 + 1e-9)


def test_grasp_cache_round_trip(tmp_path) -> None:
    import dataclasses

    from hosig.grasp.generator import GraspResult
    from hosig.pipeline.graspcache import grasp_key, load_grasp, save_grasp

    values = {}
    for f in dataclasses.fields(GraspResult):
        kind = str(f.type)
        if "ndarray" in kind:
            values[f.name] = np.arange(12, dtype=np.float64).reshape(3, 4) if f.name == "object_in_wrist" else np.linspace(0, 1, 5)
        elif "dict" in kind:
            values[f.name] = {"body": 1.5}
        elif "list" in kind:
            values[f.name] = [0.1, 0.2, 0.3]
        elif "str" in kind:
            values[f.name] = "right"
        elif "int" in kind:
            values[f.name] = 3
        else:
            values[f.name] = 0.25
    values["vertices"] = None
    result = GraspResult(**values)
    path = tmp_path / "g.npz"
    save_grasp(path, result)
    back = load_grasp(path)
    for f in dataclasses.fields(GraspResult):
        a, b = getattr(result, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, f.name
    assert load_grasp(tmp_path / "missing.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert load_grasp(tmp_path / "bad.npz") is None
    k1 = grasp_key("h", "cup", (1.0, 2.0, 0.5), "right", "mannequin-v1", "cfg")
    assert k1 == grasp_key("h", "cup", (1.0001, 2.0, 0.5), "right", "mannequin-v1", "cfg")
    assert k1 != grasp_key("h", "cup", (1.0, 2.0, 0.5), "left", "mannequin-v1", "cfg")


def test_put_down_object_settles_onto_the_surface_below() -> None:
    import trimesh

    from hosig.pipeline.settle import make_settler, settle_offsets

    table = trimesh.creation.box(extents=[1.0, 1.0, 0.05])
    table.apply_translation([0, 0, 0.725])  # top at 0.75
    cup = trimesh.creation.cylinder(radius=0.04, height=0.1)
    cup.apply_translation([0.2, 0.1, 0.05])  # bottom at 0
    settle = make_settler(table, cup.vertices)
    lift = np.eye(4)
    lift[:3, 3] = [0.0, 0.0, 0.77]  # bottom 2 cm above the table top
    assert settle(lift) == pytest.approx(-0.02, abs=1e-6)
    lift[2, 3] = 0.74  # sunk 1 cm into it
    assert settle(lift) == pytest.approx(0.01, abs=1e-6)
    lift[2, 3] = 0.95  # 20 cm above: it falls all the way
    assert settle(lift) == pytest.approx(-0.20, abs=1e-6)

    poses, joints = _moving_wrist(20)
    wrist = JOINT_INDEX["right_wrist"]
    tracker = CarryTracker(PARENTS, wrist, None, grasp_frame=2, release_frame=10, settle=lambda m: -0.02)
    out = tracker.chunk(0, poses, joints)
    drop = out[10:, 2, 3] - out[9, 2, 3]
    np.testing.assert_allclose(drop, settle_offsets(-0.02, 10), atol=1e-9)
    assert drop[0] > -0.02 and drop[-1] == pytest.approx(-0.02)
    np.testing.assert_allclose(out[10:, :3, :3], np.tile(out[9, :3, :3], (10, 1, 1)), atol=1e-12)
    chunked = CarryTracker(PARENTS, wrist, None, grasp_frame=2, release_frame=10, settle=lambda m: -0.02)
    parts = [chunked.chunk(a, poses[a:b], joints[a:b]) for a, b in ((0, 11), (11, 13), (13, 20))]
    np.testing.assert_allclose(np.concatenate(parts), out, atol=1e-12)