"""Issue #21 hardening against a real `hosig serve`: foreign Host headers (DNS rebinding), odd scene
ids, the disk cache cap, uploads that do not hold up other requests, SIGTERM ending open streams.
Plus the store-level pieces a socket cannot see: the in-memory byte bound and the lock-free parse."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from test_api_serve import NEAR_CUP, start_server, stop_server, upload

from hosig import diskcache
from hosig.pipeline.scenes import SceneStore
from hosig.scene import encode_payload
from hosig.scene.demo import write_demo_scene

MESH_JSON = {"Content-Type": "application/vnd.hosig.mesh+json"}


def payload_bytes(shift: float, subdivisions: int = 3) -> bytes:
    """A small mesh-payload scene (floor + a sphere moved by ``shift``): a distinct id per shift,
    the same size for every shift."""
    import trimesh

    floor = (np.array([[-2, -2, 0], [2, -2, 0], [2, 2, 0], [-2, 2, 0]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    ball = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.05)
    vertices = np.asarray(ball.vertices) + [shift, 0.0, 0.5]
    return json.dumps(encode_payload({"floor": floor, "ball": (vertices, np.asarray(ball.faces))})).encode()


PAYLOAD_SIZE = len(payload_bytes(0.0))
CACHE_CAP_MB = 2.5 * PAYLOAD_SIZE / 1024**2  # room for two stored payload scenes, not three


@pytest.fixture(scope="module")
def hardened(tmp_path_factory):
    """`hosig serve` without a token, its own cache folder (capped), one allowed host by flag and
    one by environment; yield (base URL, cache folder, kitchen glb)."""
    tmp = tmp_path_factory.mktemp("hardened")
    cache = tmp / "cache"
    env = dict(os.environ, HOSIG_CACHE_DIR=str(cache), HOSIG_ALLOW_HOSTS="render-box.lan, ")
    proc, base = start_server(tmp, ["--allow-host", "studio.example", "--max-upload-mb", "16", "--queue", "2",
                                    "--cache-max-mb", repr(CACHE_CAP_MB)], env=env)
    yield base, cache, write_demo_scene(tmp / "kitchen.glb", "kitchen", 0)
    stop_server(proc)


def raw_status(base: str, request: bytes) -> int:
    """Send ``request`` as is on a fresh connection; the status code of the answer (0: none)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        head = sock.recv(4096).decode("latin-1")
    parts = head.split(" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


# -- Host header -----------------------------------------------------------------------------------

ROUTES = [("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/body"), ("POST", "/scenes"),
          ("POST", "/plan"), ("POST", "/generate"), ("POST", "/jobs/abc/cancel"), ("GET", "/jobs/abc"), ("GET", "/no-such-route")]


@pytest.mark.parametrize("method, path", ROUTES)
def test_a_foreign_host_is_refused_on_every_route(hardened, method, path) -> None:
    base, _, _ = hardened
    res = httpx.request(method, base + path, headers={"Host": "evil.example:8765", "Content-Type": "application/json"},
                        content=b"{}", timeout=10)
    assert res.status_code == 421, res.text
    assert res.json()["code"] == "bad_host" and "evil.example" in res.json()["detail"]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:80", "0.0.0.0",
                                  "192.168.1.20:8765", "studio.example.evil", "[::2]:8765", ""])
def test_rebinding_names_are_refused(hardened, host) -> None:
    base, _, _ = hardened
    res = httpx.get(f"{base}/health", headers={"Host": host}, timeout=10)
    assert res.status_code == 421 and res.json()["code"] == "bad_host", (host, res.text)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "127.9.8.7:8765", "[::1]", "[::1]:8765",
                                  "localhost.", "studio.example", "Studio.Example:8765", "render-box.lan"])
def test_loopback_and_allowed_hosts_are_answered(hardened, host) -> None:
    base, _, _ = hardened
    res = httpx.get(f"{base}/health", headers={"Host": host}, timeout=10)
    assert res.status_code == 200 and res.json()["status"] == "ok", (host, res.text)


def test_a_request_without_host_is_refused(hardened) -> None:
    base, _, _ = hardened
    assert raw_status(base, b"GET /health HTTP/1.0\r\n\r\n") == 421  # HTTP/1.0 may omit it: the app refuses
    assert 400 <= raw_status(base, b"GET /health HTTP/1.1\r\n\r\n") < 500  # HTTP/1.1 requires it


def test_host_rule_in_process() -> None:
    from hosig.api.security import HostMiddleware, host_name

    assert [host_name(h) for h in ("[::1]:8765", "LocalHost:80", "localhost.", "::1", "a.b:1")] == ["::1", "localhost", "localhost", "::1", "a.b"]
    strict, anything = HostMiddleware(None, ["studio.example:9"]), HostMiddleware(None, ["*"])
    assert strict.permits("studio.example") and strict.permits("127.0.0.2:1") and not strict.permits("evil.example")
    assert anything.permits("evil.example") and not anything.permits(None) and not strict.permits("")


# -- scene ids ---------------------------------------------------------------------------------------

ODD_IDS = ["a" * 300, "0" * 256, "0" * 64 + "/" + "0" * 64, "../../../../etc/passwd", "..", "/", "A" * 64, "0" * 63,
           "0" * 65, "0" * 64 + ".glb", "..\\..\\x", "%2e%2e%2f" * 30, "\u00e9" * 300]


@pytest.mark.parametrize("route", ["/plan", "/generate"])
def test_odd_scene_ids_are_unknown_scenes(hardened, route) -> None:
    base, cache, kitchen = hardened
    upload(base, kitchen)  # the upload folder exists: a long name then fails in the file system, not "missing"
    for scene_id in ODD_IDS:
        res = httpx.post(base + route, json={"scene": scene_id, "start": [0, 0], "target": "cup"}, timeout=10)
        assert res.status_code == 404, (scene_id[:20], res.text)
        body = res.json()
        assert body["code"] == "unknown_scene" and len(body["detail"]) < 300
        assert str(cache) not in res.text and "scenes/" not in res.text


# -- disk cache cap ------------------------------------------------------------------------------------

def stored(cache: Path, scene_id: str) -> Path:
    return cache / "scenes" / f"{scene_id}.json"


def test_stored_scenes_are_capped_least_recently_used_first(hardened) -> None:
    base, cache, _ = hardened
    ids = []
    for shift in (0.0, 0.1):
        res = httpx.post(f"{base}/scenes", content=payload_bytes(shift), headers=MESH_JSON, timeout=30)
        assert res.status_code == 200, res.text
        ids.append(res.json()["id"])
    first, second = ids
    events = [json.loads(line) for line in _stream(base, {"scene": first, "start": [-1, -1], "target": "unicorn"})]
    assert events[-1]["code"] == "unknown_object"  # a use of the first scene: now the most recent
    third = httpx.post(f"{base}/scenes", content=payload_bytes(0.2), headers=MESH_JSON, timeout=30).json()["id"]
    assert stored(cache, first).is_file() and stored(cache, third).is_file()
    assert not stored(cache, second).exists()  # the least recently used went
    assert sum(size for _, size, _ in diskcache.cache_files(cache)) <= CACHE_CAP_MB * 1024**2
    events = [json.loads(line) for line in _stream(base, {"scene": second, "start": [-1, -1], "target": "unicorn"})]
    assert events[-1]["code"] == "unknown_object"  # still known: it is kept in memory


def _stream(base: str, body: dict) -> list[str]:
    with httpx.stream("POST", f"{base}/generate", json=body, timeout=60) as res:
        assert res.status_code == 200, res.read()
        return [line for line in res.iter_lines() if line]


# -- uploads do not hold up other requests ----------------------------------------------------------------

def test_a_slow_upload_does_not_hold_up_other_requests(hardened) -> None:
    base, _, kitchen = hardened
    scene_id = upload(base, kitchen)
    host, port = base.removeprefix("http://").split(":")
    total = 8 * 1024 * 1024
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall((f"POST /scenes HTTP/1.1\r\nHost: {host}\r\nContent-Type: model/gltf-binary\r\n"
                      f"Content-Length: {total}\r\n\r\n").encode() + b"\0" * (total // 2))
        # half the body is in; the upload waits for the rest while these are answered
        assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
        events = [json.loads(line) for line in _stream(base, {"scene": scene_id, "start": [-1, -1], "target": "unicorn"})]
        assert events[-1]["code"] == "unknown_object"
        sock.sendall(b"\0" * (total - total // 2))
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 400")  # zeros are no glb: parsed and refused, not hung


def test_health_answers_while_a_large_upload_is_parsed(hardened) -> None:
    base, _, _ = hardened
    big = payload_bytes(0.3, subdivisions=7)  # ~330k triangles, a few MB of JSON
    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(httpx.post(f"{base}/scenes", content=big, headers=MESH_JSON, timeout=120)))
    sender.start()
    polls = []
    while sender.is_alive():
        polls.append(httpx.get(f"{base}/health", timeout=10).status_code)
        time.sleep(0.05)
    sender.join()
    assert polls and set(polls) == {200}
    assert answer[0].status_code == 200, answer[0].text


def test_parsing_an_upload_does_not_lock_the_store(tmp_path, monkeypatch) -> None:
    """While one upload is being parsed, a scene already loaded is served (the parse holds no lock)."""
    import hosig.scene

    store = SceneStore(tmp_path)
    known = store.add_bytes(payload_bytes(0.0), MESH_JSON["Content-Type"]).content_hash
    real_load, parsing, release = hosig.scene.load_scene, threading.Event(), threading.Event()

    def slow_load(source, *args, **kwargs):
        parsing.set()
        release.wait(30)
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(hosig.scene, "load_scene", slow_load)
    uploader = threading.Thread(target=store.add_bytes, args=(payload_bytes(0.1), MESH_JSON["Content-Type"]))
    uploader.start()
    try:
        assert parsing.wait(10)
        got: list = []
        reader = threading.Thread(target=lambda: got.append(store.get(known, allow_paths=False)))
        reader.start()
        reader.join(10)
        assert got and got[0].content_hash == known
    finally:
        release.set()
        uploader.join(30)


# -- memory and disk bounds (store level) ----------------------------------------------------------------

def test_scenes_in_memory_are_bounded_by_bytes(tmp_path) -> None:
    one = SceneStore(tmp_path).add_bytes(payload_bytes(0.0), MESH_JSON["Content-Type"])
    assert one.nbytes() > 0
    store = SceneStore(tmp_path, max_scenes=16, max_memory_bytes=int(one.nbytes() * 1.5))
    ids = [store.add_bytes(payload_bytes(s), MESH_JSON["Content-Type"]).content_hash for s in (0.0, 0.1, 0.2)]
    assert len(store) == 1  # by count 16 would fit; by bytes only the newest does
    assert store.get(ids[0], allow_paths=False).content_hash == ids[0]  # evicted from memory, read from disk


def test_scene_bytes_count_the_derived_grids(tmp_path) -> None:
    scene = SceneStore(tmp_path).add_bytes(payload_bytes(0.7), MESH_JSON["Content-Type"])  # a scene no test has used
    before = scene.nbytes()
    scene.occupancy()
    assert scene.nbytes() > before


def test_prune_removes_the_least_recently_used_and_keeps_the_new_file(tmp_path) -> None:
    paths = []
    for i, folder in enumerate(["scenes", "grasps", "scene", "grasps"]):
        path = tmp_path / folder / f"f{i}.npz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1000 + i, 1000 + i))
        paths.append(path)
    (tmp_path / "grasps" / "half.tmp.npz").write_bytes(b"x" * 1000)  # being written: not counted
    os.utime(paths[0], (2000, 2000))  # used last
    removed = diskcache.prune(tmp_path, 250, keep=[paths[1]])
    assert removed == 200 and [p.exists() for p in paths] == [True, True, False, False]


def test_cache_cap_setting(monkeypatch) -> None:
    assert diskcache.max_bytes({}) == 2 * 1024**3
    assert diskcache.max_bytes({diskcache.ENV: "1.5"}) == int(1.5 * 1024**2)
    with pytest.raises(Exception, match="HOSIG_CACHE_MAX_MB"):
        diskcache.max_bytes({diskcache.ENV: "lots"})


# -- SIGTERM ----------------------------------------------------------------------------------------------

def test_sigterm_ends_open_streams_with_a_shutdown_error(tmp_path) -> None:
    proc, base = start_server(tmp_path, ["--queue", "2"])
    try:
        scene_id = upload(base, write_demo_scene(tmp_path / "kitchen.glb", "kitchen", 0))
        streams: dict[str, list] = {"running": [], "queued": []}
        started = {name: threading.Event() for name in streams}

        def consume(name: str, first: str) -> None:
            body = {"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "pick-place", "place": "table"}
            try:
                with httpx.stream("POST", f"{base}/generate", json=body, timeout=120) as res:
                    for line in res.iter_lines():
                        streams[name].append(json.loads(line))
                        if streams[name][-1]["type"] == first:
                            started[name].set()
            except httpx.HTTPError as err:  # a stream cut without its last line
                streams[name].append({"type": "cut", "error": type(err).__name__})
            finally:
                started[name].set()

        running = threading.Thread(target=consume, args=("running", "plan"))
        running.start()
        assert started["running"].wait(60)
        queued = threading.Thread(target=consume, args=("queued", "accepted"))
        queued.start()
        assert started["queued"].wait(60)
        proc.send_signal(signal.SIGTERM)
        running.join(60)
        queued.join(60)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for name, events in streams.items():
        assert events[0]["type"] == "accepted", (name, events)
        assert events[-1]["type"] == "error" and events[-1]["code"] == "shutdown", (name, events[-1])
    assert code == -signal.SIGTERM  # uvicorn re-raises the signal after the graceful stop (143 in a shell)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=5)
