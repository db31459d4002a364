"""Pipeline speed: time to the first `frames` event (warm), end-to-end real-time factor, and the
throughput of a 10-shot batch. Numbers for the report; tests never assert timings.

"warm" = models loaded and the same shot asked again with another seed (scene, floor map and grasp
cached); "new target" = warm engine, but a target not asked for before (the grasp is optimised
inside the request), which is what a user editing a shot usually sees.

    python -m hosig.pipeline.bench [--model CKPT] [--device cpu|cuda] [--quality final|preview] [--http] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hosig.pipeline.engine import Engine, EngineConfig
from hosig.pipeline.events import Done, Error, Frames

# (scene kind, start [x,y,heading], target, action, place) — reachable in the demo rooms (seed 0)
SHOTS: list[tuple[str, list[float], str, str, Any]] = [
    ("kitchen", [-1.5, -1.5, 0.0], "cup", "pick", None),
    ("kitchen", [-1.5, -1.5, 0.0], "bottle", "reach", None),
    ("kitchen", [0.0, -1.5, 1.57], "mug", "pick", None),
    ("kitchen", [-1.5, -1.5, 0.0], "cup", "pick-place", "table"),
    ("office", [0.0, -1.0, 1.57], "mug", "pick", None),
    ("office", [0.0, -1.0, 0.0], "bottle", "reach", None),
    ("living_room", [0.0, -1.0, 1.57], "cup", "pick", None),
    ("living_room", [0.0, -1.0, 0.0], "remote", "pick", None),
    ("office", [0.0, -1.0, 1.57], "book", "reach", None),
    ("living_room", [0.0, -1.0, 1.57], "bottle", "pick", None),
]


def _scenes(folder: Path) -> dict[str, Path]:
    from hosig.scene.demo import write_demo_scene

    return {k: write_demo_scene(folder / f"{k}.glb", k, 0) for k in sorted({s[0] for s in SHOTS})}


def time_request(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    """One run: seconds to the first frames event, total seconds, clip seconds, summary timings."""
    from hosig.pipeline.run import run

    t0 = time.perf_counter()
    first = None
    summary: dict[str, Any] | None = None
    error = None
    for event in run(request, engine=engine):
        if isinstance(event, Frames) and first is None:
            first = time.perf_counter() - t0
        elif isinstance(event, Done):
            summary = event.summary
        elif isinstance(event, Error):
            error = f"{event.code}: {event.message}"
    total = time.perf_counter() - t0
    out: dict[str, Any] = {"first_frames_s": first, "total_s": total, "error": error}
    if summary:
        clip_s = summary["duration_s"]
        motion_s = summary["timings_ms"].get("motion_ms", 0.0) / 1000.0
        out.update(clip_s=clip_s, realtime_factor=clip_s / total, motion_realtime_factor=clip_s / motion_s if motion_s else None,
                   timings_ms=summary["timings_ms"], grasp_cached=summary.get("grasp_cached"))
    return out


def bench(model: str | None = None, device: str = "cpu", repeats: int = 3, batch: bool = True, quality: str = "final",
          grasp_first: bool = False, no_prefetch: bool = False) -> dict[str, Any]:
    """Warm the engine, then time `repeats` requests and (optionally) a 10-shot batch.
    ``grasp_first`` / ``no_prefetch``: the order before issue #21 (grasp, then motion; scene
    distances built lazily), for before/after numbers on one machine."""
    from hosig.pipeline.batch import run_batch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenes = _scenes(folder)
        engine = Engine(EngineConfig(cache_dir=folder / "cache", device=device, motion_checkpoint=model, quality=quality,
                                     grasp_beside_walk=not grasp_first, prefetch_sdf=not no_prefetch))
        t = time.perf_counter()
        engine.warm()
        warm_s = time.perf_counter() - t
        kind, start, target, action, place = SHOTS[0]
        request = {"scene": str(scenes[kind]), "start": start, "target": target, "action": action}
        cold = time_request(engine, request)  # first request: scene load, SDF, grasp (then cached)
        warm_runs = [time_request(engine, dict(request, seed=s + 1)) for s in range(repeats)]
        ok = [r for r in warm_runs if r["error"] is None]
        # Warm engine, but a target not asked for before: the grasp is optimised inside the request.
        fresh = []
        for kind, start, target, action, place in (SHOTS[2], SHOTS[1]):
            fresh.append(time_request(engine, {"scene": str(scenes[kind]), "start": start, "target": target, "action": action}))
        fresh_ok = [r for r in fresh if r["error"] is None]
        report: dict[str, Any] = {
            "device": device,
            "grasp_beside_walk": not grasp_first,
            "prefetch_sdf": not no_prefetch,
            "quality": quality,
            "model": engine.motion_identity(),
            "load_s": round(warm_s, 3),
            "cold_request": cold,
            "warm_requests": warm_runs,
            "first_frames_s_median": statistics.median(r["first_frames_s"] for r in ok) if ok else None,
            "realtime_factor_median": statistics.median(r["realtime_factor"] for r in ok) if ok else None,
            "motion_realtime_factor_median": statistics.median(r["motion_realtime_factor"] for r in ok if r.get("motion_realtime_factor")) if ok else None,
            "new_target_requests": fresh,
            "new_target_first_frames_s_median": statistics.median(r["first_frames_s"] for r in fresh_ok) if fresh_ok else None,
        }
        if batch:
            lines = []
            for i, (kind, start, target, action, place) in enumerate(SHOTS):
                lines += ["[[shot]]", f'name = "shot{i:02d}_{target}"', f'scene = "{scenes[kind].name}"', f"start = {json.dumps(start)}",
                          f'target = "{target}"', f'action = "{action}"', f"seed = {i}"]
                if place is not None:
                    lines.append(f"place = {json.dumps(place)}")
                lines.append("")
            shotlist = folder / "shots.toml"
            shotlist.write_text("\n".join(lines))
            t = time.perf_counter()
            result = run_batch(shotlist, folder / "out", engine=engine).to_json()
            batch_s = time.perf_counter() - t
            t = time.perf_counter()
            rerun = run_batch(shotlist, folder / "out", engine=engine).to_json()
            report["batch"] = {
                "shots": len(SHOTS), "ok": result["ok"], "failed": result["failed"], "elapsed_s": round(batch_s, 2),
                "shots_per_minute": round(60.0 * len(SHOTS) / batch_s, 2), "motion_s": result["motion_s"],
                "realtime_factor": result["realtime_factor"],
                "failures": [f"{s['name']}: {s['error_code']}: {s['error']}" for s in result["shots"] if s["status"] == "failed"],
                "rerun_skipped": rerun["skipped"], "rerun_s": round(time.perf_counter() - t, 3),
            }
        return report


def bench_http(model: str | None = None, device: str = "cpu", quality: str = "final", repeats: int = 3, think_s: float = 3.0) -> dict[str, Any]:
    """Over loopback against a real `hosig serve`: /plan (which prefetches the grasp), ``think_s``
    seconds of a user looking at the path preview, then /generate `repeats` times; seconds from
    sending the request to the first `frames` line, and in total."""
    import os
    import socket
    import subprocess

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "hosig.cli.main", "serve", "--port", str(port), "--device", device, "--quality", quality]
    if model:
        cmd += ["--model", model]
    with tempfile.TemporaryDirectory() as tmp:
        scenes = _scenes(Path(tmp))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        try:
            t = time.perf_counter()
            while True:
                try:
                    health = httpx.get(f"{base}/health", timeout=1).json()
                    if health.get("model_loaded"):
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.perf_counter() - t > 300:
                    raise RuntimeError("hosig serve did not come up")
                time.sleep(0.2)
            startup_s = time.perf_counter() - t
            kind, start, target, action, _ = SHOTS[0]
            scene_id = httpx.post(f"{base}/scenes", content=scenes[kind].read_bytes(), headers={"Content-Type": "model/gltf-binary"}, timeout=60).json()["id"]
            t = time.perf_counter()
            httpx.post(f"{base}/plan", json={"scene": scene_id, "start": start, "target": target}, timeout=60)
            plan_s = time.perf_counter() - t
            time.sleep(think_s)
            runs = []
            for i in range(repeats):
                body = {"scene": scene_id, "start": start, "target": target, "action": action, "seed": i}
                t = time.perf_counter()
                first = None
                summary: dict[str, Any] = {}
                with httpx.stream("POST", f"{base}/generate", json=body, timeout=600) as res:
                    for line in res.iter_lines():
                        event = json.loads(line)
                        if event["type"] == "frames" and first is None:
                            first = time.perf_counter() - t
                        elif event["type"] == "done":
                            summary = event["summary"]
                total = time.perf_counter() - t
                runs.append({"first_frames_s": first, "total_s": total, "clip_s": summary.get("duration_s"),
                             "grasp_cached": summary.get("grasp_cached"), "realtime_factor": (summary.get("duration_s") or 0) / total})
            return {"startup_s": round(startup_s, 2), "plan_s": round(plan_s, 3), "think_s": think_s, "runs": runs,
                    "first_frames_s_median": statistics.median(r["first_frames_s"] for r in runs if r["first_frames_s"] is not None)}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosig.pipeline.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quality", default="final", choices=("final", "preview"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--http", action="store_true", help="only the loopback measurement against `hosig serve`")
    parser.add_argument("--think", type=float, default=3.0, help="--http: seconds between /plan and /generate")
    parser.add_argument("--grasp-first", action="store_true", help="the old order: grasp, then motion (issue #21 baseline)")
    parser.add_argument("--no-prefetch", action="store_true", help="scene distances built lazily (issue #21 baseline)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if args.http:
        report = bench_http(args.model, args.device, args.quality, args.repeats, args.think)
    else:
        report = bench(args.model, args.device, args.repeats, not args.no_batch, args.quality, args.grasp_first, args.no_prefetch)
    if args.json:
        sys.stdout.write(json.dumps(report, default=str) + "\n")
    else:
        sys.stderr.write(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
