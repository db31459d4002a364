"""A real `hosig serve` subprocess on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hosig.scene.demo import write_demo_scene

TOKEN = "loopback-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSIG = [sys.executable, "-m", "hosig.cli.main"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start `hosig serve` with a token and a queue of 2; yield (base_url, scene glb path)."""
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = dict(os.environ, HOSIG_CACHE_DIR=str(tmp / "cache"), PYTHONUNBUFFERED="1")
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        HOSIG + ["serve", "--port", str(port), "--token", TOKEN, "--queue", "2", "--max-upload-mb", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hosig serve exited with {proc.returncode}: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", headers=AUTH, timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("hosig serve did not answer /health within 90 s")
    scene = write_demo_scene(tmp / "kitchen.glb", "kitchen", 0)
    yield base, scene
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def upload(base: str, path: Path) -> str:
    res = httpx.post(f"{base}/scenes", content=path.read_bytes(), headers={**AUTH, "Content-Type": "model/gltf-binary"}, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()["id"]


def stream_events(base: str, body: dict, timeout: float = 120) -> list[dict]:
    with httpx.stream("POST", f"{base}/generate", json=body, headers=AUTH, timeout=timeout) as res:
        assert res.status_code == 200, res.read()
        return [json.loads(line) for line in res.iter_lines() if line]


def test_public_bind_without_token_is_refused() -> None:
    res = subprocess.run(HOSIG + ["serve", "--host", "0.0.0.0", "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "token" in res.stderr and "0.0.0.0" in res.stderr


def test_token_checked_over_the_wire(server) -> None:
    base, _ = server
    assert httpx.get(f"{base}/health", timeout=5).status_code == 401
    assert httpx.get(f"{base}/health", headers={"Authorization": "Bearer nope-nope-nope"}, timeout=5).status_code == 401
    health = httpx.get(f"{base}/health", headers=AUTH, timeout=5).json()
    assert health["status"] == "ok"


def test_bad_inputs_get_clear_answers_and_the_server_stays_up(server) -> None:
    base, scene = server
    scene_id = upload(base, scene)
    post = lambda body, **kw: httpx.post(f"{base}/generate", content=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=10, **kw)
    assert post(b"{oops").status_code == 422
    res = post(json.dumps({"scene": scene_id, "start": [0, 0], "target": "cup", "speed": 3}))
    assert res.status_code == 422 and "speed" in res.json()["message"]
    res = post(b'{"scene": "%s", "start": [NaN, 0], "target": "cup"}' % scene_id.encode())
    assert res.status_code == 422 and "start" in res.json()["message"]
    res = post(json.dumps({"scene": scene_id, "start": [0, "x"], "target": "cup"}))
    assert res.status_code == 422 and "start" in res.json()["message"]
    assert post(json.dumps({"scene": "0" * 64, "start": [0, 0], "target": "cup"})).status_code == 404
    events = stream_events(base, {"scene": scene_id, "start": [-1, -1], "target": "unicorn"})
    assert events[0]["type"] == "accepted" and events[-1]["code"] == "unknown_object"
    big = httpx.post(f"{base}/scenes", content=b"\0" * (1024 * 1024 + 1), headers={**AUTH, "Content-Type": "model/gltf-binary"}, timeout=30)
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    assert httpx.get(f"{base}/health", headers=AUTH, timeout=5).json()["status"] == "ok"


def test_declared_oversize_is_refused_before_the_body_is_sent(server) -> None:
    """Only headers go out (Content-Length 300 MB, no body): the answer must come anyway."""
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (f"POST /scenes HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
             f"Content-Type: model/gltf-binary\r\nContent-Length: {300 * 1024 * 1024}\r\n\r\n").encode()
        )
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413")
