"""The FastAPI app in-process (TestClient): uploads, validation, token, errors, docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hosig.api.app import ServerConfig, create_app
from hosig.pipeline.engine import Engine, EngineConfig
from hosig.scene.demo import write_demo_scene

GLB = {"Content-Type": "model/gltf-binary"}
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory) -> Path:
    return write_demo_scene(tmp_path_factory.mktemp("scenes") / "kitchen.glb", "kitchen", 0)


def make_client(tmp_path: Path, **config) -> TestClient:
    engine = Engine(EngineConfig(cache_dir=tmp_path / "cache"))
    app = create_app(engine, ServerConfig(warm=False, prefetch_grasp=False, **config))
    return TestClient(app, base_url="http://localhost")  # a loopback Host, as a local client sends


@pytest.fixture()
def client(tmp_path):
    with make_client(tmp_path, max_upload_bytes=2_000_000) as c:
        yield c


@pytest.fixture()
def scene_id(client, kitchen) -> str:
    res = client.post("/scenes", content=kitchen.read_bytes(), headers=GLB)
    assert res.status_code == 200, res.text
    return res.json()["id"]


def test_health_reports_the_engine(client) -> None:
    res = client.get("/health")
    assert res.status_code == 200
    data = res.json()
    assert data["status"] == "ok" and data["queue_length"] == 0
    assert {"version", "device", "body_model", "model_loaded"} <= set(data)


def test_upload_glb_returns_id_objects_and_is_cached(client, kitchen) -> None:
    first = client.post("/scenes", content=kitchen.read_bytes(), headers=GLB).json()
    assert "cup" in first["objects"] and "table" in first["objects"]
    assert abs(first["floor_z"]) < 1e-6
    again = client.post("/scenes", content=kitchen.read_bytes(), headers=GLB).json()
    assert again["id"] == first["id"]


def test_upload_mesh_payload(client) -> None:
    from hosig.scene import encode_payload
    import numpy as np

    floor = (np.array([[-2, -2, 0], [2, -2, 0], [2, 2, 0], [-2, 2, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    box_v = np.array([[x, y, z] for x in (0, 0.1) for y in (0, 0.1) for z in (0, 0.1)], float)
    box_f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    payload = encode_payload({"floor": floor, "box": (box_v, box_f)})
    res = client.post("/scenes", content=json.dumps(payload), headers={"Content-Type": "application/vnd.hosig.mesh+json"})
    assert res.status_code == 200, res.text
    assert sorted(res.json()["objects"]) == ["box", "floor"]


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        (b"glTF-not-really", GLB, 400, "bad_input"),
        (b"{not json", {"Content-Type": "application/vnd.hosig.mesh+json"}, 400, "bad_input"),
        (b"\x00" * 10, {"Content-Type": "application/zip"}, 415, "unsupported_media_type"),
        (b"\x00" * 3_000_000, GLB, 413, "too_large"),
    ],
)
def test_bad_uploads_are_refused_clearly(client, body, headers, status, code) -> None:
    res = client.post("/scenes", content=body, headers=headers)
    assert res.status_code == status, res.text
    assert res.json()["code"] == code and res.json()["detail"]


def test_oversized_upload_without_content_length_is_cut_while_reading(client) -> None:
    def chunks():
        for _ in range(40):
            yield b"\x00" * 100_000

    res = client.post("/scenes", content=chunks(), headers=GLB)  # chunked: no Content-Length
    assert res.status_code == 413
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"scene": "x", "start": [0, 0], "target": "cup", "colour": 1}', "colour"),
        ('{"scene": "x", "start": [0, "a"], "target": "cup"}', "start"),
        ('{"scene": "x", "start": [NaN, 0], "target": "cup"}', "start"),
        ('{"scene": "x", "start": [0, 0], "target": "cup", "action": "dance"}', "action"),
        ('{"scene": "x", "start": [0, 0]}', "target"),
        ('{"scene": "x", "start": [0, 0], "target": "cup", "seed": "many"}', "seed"),
        ('{"scene": "x", "start": [0, 0], "target": "cup", "smplx_dir": "/etc"}', "smplx_dir"),
        ('{"scene": "x", "start": [0, 0], "target": "cup", "action": "pick-place"}', "place"),
    ],
)
def test_generate_validation_names_the_field(client, body, field) -> None:
    res = client.post("/generate", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 422, res.text
    data = res.json()
    assert data["code"] == "bad_request" and field in data["message"]


def test_malformed_json_is_422(client) -> None:
    res = client.post("/generate", content=b'{"scene": ', headers={"Content-Type": "application/json"})
    assert res.status_code == 422
    assert res.json()["code"] == "bad_request"


def test_unknown_scene_id_is_404_before_queueing(client) -> None:
    res = client.post("/generate", json={"scene": "deadbeef", "start": [0, 0], "target": "cup"})
    assert res.status_code == 404
    assert res.json()["code"] == "unknown_scene" and "POST /scenes" in res.json()["detail"]
    res = client.post("/plan", json={"scene": "/etc/passwd", "start": [0, 0], "target": "cup"})
    assert res.status_code == 404  # paths on the server's disk are not scene ids


def test_unknown_target_streams_an_error_event(client, scene_id) -> None:
    with client.stream("POST", "/generate", json={"scene": scene_id, "start": [-1, -1], "target": "unicorn"}) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in res.iter_lines() if line]
    assert events[0]["type"] == "accepted" and events[0]["job_id"]
    assert events[-1]["type"] == "error" and events[-1]["code"] == "unknown_object"
    assert "unicorn" in events[-1]["message"] and "cup" in events[-1]["message"]
    assert client.get("/health").json()["queue_length"] == 0


def test_cancel_unknown_job_is_404(client) -> None:
    res = client.post("/jobs/nope/cancel")
    assert res.status_code == 404 and res.json()["code"] == "unknown_job"


def test_openapi_docs_describe_the_endpoints(client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/health", "/scenes", "/plan", "/generate", "/jobs/{job_id}/cancel", "/body"} <= set(spec["paths"])
    assert "GenerateRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_token_is_required_on_every_route(tmp_path) -> None:
    with make_client(tmp_path, token=TOKEN) as c:
        assert c.get("/health").status_code == 401
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/health", headers={"Authorization": "Bearer wrong-token-here"}).status_code == 401
        assert c.post("/generate", json={}).status_code == 401  # refused before validation
        res = c.get("/health", headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and res.json()["status"] == "ok"


def test_plan_preview(client, scene_id) -> None:
    res = client.post("/plan", json={"scene": scene_id, "start": [-1.5, -1.5, 0.0], "target": "cup"})
    assert res.status_code == 200, res.text
    plan = res.json()
    assert plan["type"] == "plan" and plan["target"] == "cup"
    assert len(plan["waypoints"]) == len(plan["times"]) >= 2
    assert plan["waypoints"][0] == pytest.approx([-1.5, -1.5], abs=0.06)
    assert plan["length_m"] > 3.0 and plan["duration_s"] > 0


def test_plan_unreachable_and_unknown_target(client, tmp_path) -> None:
    sealed = write_demo_scene(tmp_path / "enclosed.glb", "enclosed", 0)
    sid = client.post("/scenes", content=sealed.read_bytes(), headers=GLB).json()["id"]
    res = client.post("/plan", json={"scene": sid, "start": [-2.0, -1.5], "target": "bottle"})
    assert res.status_code == 422 and res.json()["code"] == "unreachable"
    res = client.post("/plan", json={"scene": sid, "start": [-2.0, -1.5], "target": "dragon"})
    assert res.status_code == 404 and res.json()["code"] == "unknown_object"


def test_body_for_the_addon(client) -> None:
    import base64

    import numpy as np

    data = client.get("/body").json()
    assert len(data["joint_names"]) == 55 and data["joint_names"][0] == "pelvis"
    assert data["parents"][0] == -1 and np.asarray(data["rest_joints"]).shape == (55, 3)
    verts = np.frombuffer(base64.b64decode(data["vertices"]), "<f4").reshape(-1, 3)
    idx = np.frombuffer(base64.b64decode(data["weights_index"]), "<i4").reshape(-1, 4)
    val = np.frombuffer(base64.b64decode(data["weights_value"]), "<f4").reshape(-1, 4)
    faces = np.frombuffer(base64.b64decode(data["faces"]), "<i4").reshape(-1, 3)
    assert len(idx) == len(val) == len(verts) > 1000 and faces.max() < len(verts)
    np.testing.assert_allclose(val.sum(1), 1.0, atol=1e-4)
    assert verts[:, 2].max() - verts[:, 2].min() > 1.0  # stands along +Z


def test_body_carries_the_hands_mean(client) -> None:
    from hosig.body import load_body_model

    data = client.get("/body").json()
    body = load_body_model()
    assert len(data["hands_mean"]["left"]) == 45 and len(data["hands_mean"]["right"]) == 45
    assert data["hands_mean"]["right"] == pytest.approx(list(body.hands_mean["right"].reshape(-1)), abs=1e-6)


def test_an_exception_inside_a_job_is_an_error_event_and_the_server_goes_on(client, scene_id, monkeypatch) -> None:
    import importlib

    run_module = importlib.import_module("hosig.pipeline.run")

    def explode(self):
        raise RuntimeError("simulated failure inside a stage")
        yield  # pragma: no cover - makes this a generator like the real one

    monkeypatch.setattr(run_module._Job, "_stages", explode)
    with client.stream("POST", "/generate", json={"scene": scene_id, "start": [-1, -1], "target": "cup"}) as res:
        events = [json.loads(line) for line in res.iter_lines() if line]
    assert [e["type"] for e in events] == ["accepted", "error"]
    assert events[-1]["code"] == "internal" and "simulated failure" in events[-1]["message"]
    monkeypatch.undo()
    with client.stream("POST", "/generate", json={"scene": scene_id, "start": [-1, -1], "target": "unicorn"}) as res:
        events = [json.loads(line) for line in res.iter_lines() if line]
    assert events[-1]["code"] == "unknown_object"  # the next job runs normally
    assert client.get("/health").json()["status"] == "ok"


def test_regenerate_refuses_a_base_clip_path(client, scene_id) -> None:
    """Issue #20: the server reads no files a client names; the clip's frames go inline."""
    res = client.post("/generate", json={"scene": scene_id, "base_clip": "/etc/passwd", "range": [0, 5]})
    assert res.status_code == 422, res.text
    assert "base_clip" in res.text
    res = client.post("/generate", json={"scene": scene_id, "range": [0, 5]})  # neither a shot nor a base clip
    assert res.status_code == 422 and "start and target are required" in res.text
