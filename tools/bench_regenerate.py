"""Benchmark of issue #20: regenerate a 2 s range of a long clip around an animator's keys.

    HOSIG_CACHE_DIR=$(mktemp -d) .venv/bin/python tools/bench_regenerate.py --out /tmp/bench_regen [--threads 1] [--http] [--json]

Generates a long pick-place in the 10 m x 10 m demo hall (default model, final quality), then
regenerates 2 s in its middle with the right hand moved 15 cm up, the pelvis 10 cm sideways and the
left foot 10 cm sideways, three times on the warm engine (seeds 0-2). Reports per run: the
first `frames` event (the unchanged frames before the range), the first regenerated frames, the
last regenerated frame, the total, the real-time factor of the range, the engine's own timings
(per window, the keys' correction), each key's achieved error and the seams.

``--http``: the regenerations go to a real ``hosig serve --threads N`` on loopback instead (the
clip's frames inline, as the add-on sends them), after one unreported warm-up regeneration; times
are seen by the client, from sending the request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _keys(base, first: int) -> list[dict]:
    from hosig.motion.edits import axis_angle_to_matrix

    f_hand, f_foot, f_pelvis = first + 15, first + 30, first + 42
    fwd = axis_angle_to_matrix(base.poses[f_pelvis, 0:3].astype(np.float64))[:, 2]
    side = np.array([-fwd[1], fwd[0], 0.0]) / max(float(np.hypot(fwd[0], fwd[1])), 1e-9)
    return [
        {"frame": f_hand, "joint": "right_wrist", "position": (base.joints[f_hand, 21] + [0.0, 0.0, 0.15]).tolist()},
        {"frame": f_pelvis, "joint": "pelvis", "position": (base.joints[f_pelvis, 0] + 0.10 * side).tolist()},
        {"frame": f_foot, "joint": "left_foot", "position": (base.joints[f_foot, 10] + 0.10 * side).tolist()},
    ]


def _timed(request: dict, engine, clip_path: Path | None = None) -> dict:
    from hosig.pipeline.events import Done, Error, Frames
    from hosig.pipeline.run import run

    t0 = time.perf_counter()
    out: dict = {"first_frames_s": None, "first_range_frames_s": None, "range_done_s": None}
    first, last = request.get("range") or [0, 1 << 30]
    for event in run(request, engine=engine, clip_path=clip_path):
        now = time.perf_counter() - t0
        if isinstance(event, Frames):
            _seen(out, event.start, event.count, first, last, now)
        elif isinstance(event, Error):
            raise SystemExit(f"{event.code}: {event.message}")
        elif isinstance(event, Done):
            out["summary"] = event.summary
    out["total_s"] = time.perf_counter() - t0
    return out


def _seen(out: dict, start: int, count: int, first: int, last: int, now: float) -> None:
    """Note the times of the first frames, the first regenerated frame and the range's last frame."""
    out["first_frames_s"] = out["first_frames_s"] or now
    if out["first_range_frames_s"] is None and start + count > first:
        out["first_range_frames_s"] = now
    if out["range_done_s"] is None and start + count > last:
        out["range_done_s"] = now


def _timed_http(url: str, request: dict) -> dict:
    """`_timed` against a server: seconds from sending the request, as the client sees them."""
    import httpx

    t0 = time.perf_counter()
    out: dict = {"first_frames_s": None, "first_range_frames_s": None, "range_done_s": None}
    first, last = request["range"]
    with httpx.stream("POST", f"{url}/generate", json=request, timeout=600) as res:
        if res.status_code != 200:
            raise SystemExit(f"HTTP {res.status_code}: {res.read()[:500]!r}")
        for line in res.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            now = time.perf_counter() - t0
            if event["type"] == "frames":
                _seen(out, event["start"], event["count"], first, last, now)
            elif event["type"] == "error":
                raise SystemExit(f"{event['code']}: {event['message']}")
            elif event["type"] == "done":
                out["summary"] = event["summary"]
    out["total_s"] = time.perf_counter() - t0
    return out


def _wire_clip(base) -> dict:
    """The base clip as the add-on sends it (`BaseFrames`)."""
    obj = None if base.object_transforms is None else np.asarray(base.object_transforms, dtype=np.float64).reshape(-1, 16).tolist()
    return {"poses": np.asarray(base.poses, dtype=np.float64).tolist(), "trans": np.asarray(base.trans, dtype=np.float64).tolist(),
            "object_name": base.object_name, "object_transforms": obj, "grasp_frame": int(base.grasp_frame),
            "release_frame": int(base.release_frame)}


class Server:
    """`hosig serve --threads N` on a free loopback port (context manager); ``url`` once it answers."""

    def __init__(self, threads: int | None, log: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "hosig.cli.main", "serve", "--port", str(self.port)]
        if threads:
            self.cmd += ["--threads", str(threads)]
        self.log = log

    def __enter__(self) -> "Server":
        import subprocess

        import httpx

        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)
        t = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).json().get("model_loaded"):
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - t > 300:
                raise SystemExit(f"hosig serve did not come up; see {self.log}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/bench_regen")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own); --http: the server's")
    parser.add_argument("--http", action="store_true", help="regenerate through a real `hosig serve` on loopback")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from hosig.clip import MotionClip
    from hosig.pipeline.engine import Engine, EngineConfig
    from hosig.scene.demo import write_demo_scene

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = write_demo_scene(out / "large.glb", "large", 0)
    engine = Engine(EngineConfig())
    base_path = out / "base.npz"
    t = time.perf_counter()
    gen = _timed({"scene": str(scene), "start": [-4.2, -4.2, 0.0], "target": "cup_1", "action": "pick-place",
                  "place": "shelf_2", "seed": 0}, engine, base_path)
    base = MotionClip.load(base_path)
    report = {"base_frames": base.n_frames, "base_s": round(base.duration_s, 2), "base_generate_s": round(time.perf_counter() - t, 2),
              "runs": []}
    first = base.n_frames // 2 - 30
    keys = _keys(base, first)
    report["load_average_before"] = list(__import__("os").getloadavg())
    if args.http:
        import httpx

        with Server(args.threads, out / "server.log") as server:
            scene_id = httpx.post(f"{server.url}/scenes", content=scene.read_bytes(),
                                  headers={"Content-Type": "model/gltf-binary"}, timeout=120).json()["id"]
            wire = _wire_clip(base)

            def timed(seed: int) -> dict:
                return _timed_http(server.url, {"scene": scene_id, "base_clip": wire, "range": [first, first + 59],
                                                "anchors": keys, "seed": seed})

            report["warmup"] = {k: v for k, v in timed(99).items() if k != "summary"}
            results = [timed(seed) for seed in range(args.runs)]
    else:
        results = [_timed({"scene": str(scene), "base_clip": str(base_path), "range": [first, first + 59], "anchors": keys,
                           "seed": seed}, engine, out / f"regen{seed}.npz") for seed in range(args.runs)]
    for seed, r in enumerate(results):
        s = r["summary"]
        report["runs"].append({
            "seed": seed, "first_frames_s": round(r["first_frames_s"], 3), "first_range_frames_s": round(r["first_range_frames_s"], 3),
            "range_done_s": round(r["range_done_s"], 3), "total_s": round(r["total_s"], 3),
            "regenerate_s": round(s["timings_ms"]["regenerate_ms"] / 1000, 3),
            "range_realtime_factor": round(2.0 / r["range_done_s"], 3),
            "realtime_factor": s["realtime_factor"], "timings_ms": s["timings_ms"], "anchors": s["anchors"], "seams": s["seams"],
            "failures": s["failures"],
        })
    report["mode"] = "http" if args.http else "in-process"
    report["range"] = [first, first + 59]
    report["threads"] = (args.threads or "default") if args.http else __import__("torch").get_num_threads()
    report["load_average"] = list(__import__("os").getloadavg())
    text = json.dumps(report, indent=None if args.json else 1)
    (out / "report.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
