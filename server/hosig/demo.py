"""`hosig demo`: the whole product in one command, headless.

Builds the kitchen demo scene, starts `hosig serve` on a free loopback port (a subprocess, exactly
as an animator would), runs the Blender add-on under the `bpy` module in a second subprocess
(`python -m hosig_blender.headless`: glTF import, shot list, Generate All through the add-on's own
client, save .blend, Workbench contact sheet) and stops the server. The engine never imports bpy,
hence the subprocess for the Blender half.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hosig.errors import InputError, UnreachableError

SUMMARY_PREFIX = "HOSIG_SUMMARY "


@dataclass
class DemoConfig:
    out: Path = Path("out/demo")
    kind: str = "kitchen"
    seed: int = 0
    frames: int = 6  # contact-sheet tiles
    server_start_timeout_s: float = 180.0
    timeout_s: float = 1800.0
    smplx_dir: str | None = None
    model: str | None = None  # motion checkpoint for the server (None = the committed default)
    quality: str | None = None  # "preview" or "final" (None = the server's default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def addon_root() -> Path:
    """Repository root holding hosig_blender/ (the add-on is not part of the installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "hosig_blender" / "headless.py").is_file():
        raise InputError(f"{root / 'hosig_blender'} not found: `hosig demo` runs from a source checkout")
    return root


def start_server(port: int, log_path: Path, smplx_dir: str | None = None, model: str | None = None,
                 quality: str | None = None) -> subprocess.Popen:
    """`hosig serve` on loopback as a subprocess (its output goes to ``log_path``)."""
    cmd = [sys.executable, "-m", "hosig.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if smplx_dir:
        cmd += ["--smplx-dir", smplx_dir]
    if model:
        cmd += ["--model", str(model)]
    if quality:
        cmd += ["--quality", quality]
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise InputError(f"`hosig serve` exited with code {proc.returncode} before answering; its log ({log_path}):\n{tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.3)
    raise UnreachableError(f"`hosig serve` did not answer {url}/health within {timeout_s:.0f} s (log: {log_path})")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def run_demo(config: DemoConfig, progress=lambda msg: None) -> dict[str, Any]:
    """Run the demo; returns the Blender side's summary plus server facts and wall time."""
    from hosig.scene.demo import write_demo_scene

    t0 = time.perf_counter()
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = addon_root()
    scene_path = write_demo_scene(out / f"{config.kind}.glb", config.kind, config.seed)
    progress(f"scene: {scene_path}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = out / "server.log"
    server = start_server(port, log_path, config.smplx_dir, config.model, config.quality)
    try:
        health = wait_healthy(url, server, log_path, config.server_start_timeout_s)
        progress(f"server: {url} ({health.get('device')}, body {health.get('body_model')})")
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "hosig_blender.headless", "--scene", str(scene_path), "--url", url,
               "--out", str(out), "--frames", str(config.frames)]
        progress("blender: importing the scene, generating the shot list (frames are keyed as they stream)")
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=config.timeout_s)
    finally:
        stop_server(server)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(SUMMARY_PREFIX)]
    if not lines:
        tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-2500:]).strip()
        raise InputError(f"the Blender half of the demo failed (exit {proc.returncode}):\n{tail}")
    summary = json.loads(lines[-1][len(SUMMARY_PREFIX):])
    summary["server"] = {"url": url, "health": health, "log": str(log_path)}
    summary["demo_wall_s"] = round(time.perf_counter() - t0, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
