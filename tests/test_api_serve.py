"""A real `hosig serve` subprocess on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import threading

import httpx
import pytest

from pipeline_support import tiny_motion_checkpoint

from hosig.scene.demo import write_demo_scene

TOKEN = "loopback-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSIG = [sys.executable, "-m", "hosig.cli.main"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, args: list[str], env: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `hosig serve` (tiny motion checkpoint, preview quality) on a free loopback port with
    ``args`` added; wait until /health answers; return (process, base URL). Output: tmp/server.log."""
    ckpt = tiny_motion_checkpoint(tmp / "ckpt")
    port = free_port()
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        HOSIG + ["serve", "--port", str(port), "--model", str(ckpt), "--quality", "preview", *args],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    log.close()  # the child keeps its own handle
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hosig serve exited with {proc.returncode}: {(tmp / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", headers=headers, timeout=1.0).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("hosig serve did not answer /health within 90 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Start `hosig serve` with a token and a queue of 2; yield (base_url, scene glb path)."""
    tmp = tmp_path_factory.mktemp("serve")
    # same $HOSIG_CACHE_DIR: shares cached grasps with the other tests
    proc, base = start_server(tmp, ["--token", TOKEN, "--queue", "2", "--max-upload-mb", "1"], headers=AUTH)
    scene = write_demo_scene(tmp / "kitchen.glb", "kitchen", 0)
    yield base, scene
    stop_server(proc)


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
    sealed = write_demo_scene(scene.parent / "enclosed.glb", "enclosed", 0)
    events = stream_events(base, {"scene": upload(base, sealed), "start": [-2.0, -1.5], "target": "bottle"})
    assert [e["type"] for e in events] == ["accepted", "error"] and events[-1]["code"] == "unreachable"
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


NEAR_CUP = [1.3, -0.9, 0.0]
# Cancel/disconnect tests carry the cup to the table: ~13 s of motion in several windows, so the
# job is still running when the cancel arrives, however fast the machine.


def job_state(base: str, job_id: str) -> dict:
    res = httpx.get(f"{base}/jobs/{job_id}", headers=AUTH, timeout=5)
    assert res.status_code == 200
    return res.json()


def wait_finished(base: str, job_id: str, limit_s: float = 60) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        state = job_state(base, job_id)
        if state["state"] == "finished":
            return state
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not finish")


def next_job_starts(base: str, scene_id: str) -> None:
    """Submit a job and read until its first stage event (a plan): the worker took it."""
    with httpx.stream("POST", f"{base}/generate", json={"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "reach"},
                      headers=AUTH, timeout=60) as res:
        assert res.status_code == 200
        lines = res.iter_lines()
        assert json.loads(next(lines))["type"] == "accepted"
        assert json.loads(next(lines))["type"] == "plan"


def test_stream_a_generation(server) -> None:
    base, scene = server
    scene_id = upload(base, scene)
    preview = httpx.post(f"{base}/plan", json={"scene": scene_id, "start": NEAR_CUP, "target": "cup"}, headers=AUTH, timeout=30)
    assert preview.status_code == 200 and preview.json()["type"] == "plan"  # also starts the grasp while idle
    with httpx.stream("POST", f"{base}/generate", json={"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "pick"},
                      headers=AUTH, timeout=120) as res:
        assert res.status_code == 200 and res.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in res.iter_lines() if line]
    assert events[0] == {"type": "accepted", "job_id": res.headers["x-job-id"]}
    types = [e["type"] for e in events]
    assert types[1] == "plan" and "grasp" in types and types[-1] == "done", types
    frames = [e for e in events if e["type"] == "frames"]
    assert frames and sum(f["count"] for f in frames) == events[-1]["summary"]["frames"]
    assert len(frames[0]["poses"][0]) == 165 and len(frames[0]["joints"][0]) == 55
    assert len(frames[-1]["object_transforms"][0]) == 16 and frames[-1]["object_name"] == "cup"
    assert job_state(base, events[0]["job_id"]) == {"job_id": events[0]["job_id"], "state": "finished", "outcome": "done"}


def test_cancel_mid_stream_frees_the_worker(server) -> None:
    base, scene = server
    scene_id = upload(base, scene)
    with httpx.stream("POST", f"{base}/generate", json={"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "pick-place", "place": "table"},
                      headers=AUTH, timeout=120) as res:
        seen = []
        for line in res.iter_lines():
            event = json.loads(line)
            seen.append(event)
            if event["type"] == "frames" and len([e for e in seen if e["type"] == "frames"]) == 1:
                answer = httpx.post(f"{base}/jobs/{seen[0]['job_id']}/cancel", headers=AUTH, timeout=5)
                assert answer.status_code == 200 and answer.json()["state"] in ("cancelling", "finished")
    assert seen[-1] == {"type": "error", "code": "cancelled", "message": seen[-1]["message"]}
    assert not any(e["type"] == "done" for e in seen)
    assert job_state(base, seen[0]["job_id"])["outcome"] == "cancelled"
    next_job_starts(base, scene_id)


def test_disconnect_mid_stream_cancels_the_job(server) -> None:
    base, scene = server
    scene_id = upload(base, scene)
    with httpx.stream("POST", f"{base}/generate", json={"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "pick-place", "place": "table"},
                      headers=AUTH, timeout=120) as res:
        lines = res.iter_lines()
        job_id = json.loads(next(lines))["job_id"]
        for line in lines:
            if json.loads(line)["type"] == "frames":
                break  # leave with the job mid-stream: the connection closes
    assert wait_finished(base, job_id)["outcome"] == "cancelled"
    next_job_starts(base, scene_id)


def test_twenty_concurrent_requests_all_answered(server) -> None:
    base, scene = server
    scene_id = upload(base, scene)
    answers: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = {"scene": scene_id, "start": NEAR_CUP, "target": "cup", "action": "reach", "seed": i}
        try:
            with httpx.stream("POST", f"{base}/generate", json=body, headers=AUTH, timeout=120) as res:
                if res.status_code == 200:
                    last = [json.loads(line) for line in res.iter_lines() if line][-1]
                    result = (200, last["type"], None)
                else:
                    res.read()
                    result = (res.status_code, res.json().get("code"), res.headers.get("retry-after"))
        except httpx.HTTPError as err:
            result = (0, type(err).__name__, None)
        with lock:
            answers.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(answers) == 20
    for status, kind, retry in answers:
        assert (status, kind) == (200, "done") or (status == 503 and kind == "busy" and retry and int(retry) >= 1), answers
    assert any(a[0] == 200 for a in answers) and any(a[0] == 503 for a in answers)
    assert httpx.get(f"{base}/health", headers=AUTH, timeout=5).json()["queue_length"] == 0


def test_threads_option_reaches_torch(monkeypatch) -> None:
    """`hosig serve --threads N` (or $HOSIG_THREADS) sets torch's intra-op threads before the engine
    loads; without either torch keeps its default; a bad value is a usage error (exit 2)."""
    import torch

    from hosig.api import serve as serve_mod
    from hosig.cli.main import main
    from hosig.pipeline import engine as engine_mod

    calls: list[int] = []

    class Stop(Exception):
        pass

    def no_engine(*args, **kwargs):
        raise Stop("engine not needed here")

    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(engine_mod, "Engine", no_engine)
    monkeypatch.delenv(serve_mod.THREADS_ENV, raising=False)
    port = str(free_port())
    assert main(["serve", "--port", port, "--threads", "3"]) == 1 and calls == [3]  # 1: the Stop above
    monkeypatch.setenv(serve_mod.THREADS_ENV, "2")
    assert main(["serve", "--port", port]) == 1 and calls == [3, 2]
    assert main(["serve", "--port", port, "--threads", "1"]) == 1 and calls == [3, 2, 1]  # the flag wins
    monkeypatch.delenv(serve_mod.THREADS_ENV)
    assert main(["serve", "--port", port]) == 1 and calls == [3, 2, 1]  # torch's default kept
    assert main(["serve", "--port", port, "--threads", "0"]) == 2
    monkeypatch.setenv(serve_mod.THREADS_ENV, "many")
    assert main(["serve", "--port", port]) == 2 and calls == [3, 2, 1]
