"""Benchmark of issue #20: regenerate a 2 s range of a long clip around an animator's keys.

    HOSIG_CACHE_DIR=$(mktemp -d) .venv/bin/python tools/bench_regenerate.py --out /tmp/bench_regen [--threads 1] [--json]

Generates a long pick-place in the 10 m x 10 m demo hall (default model, final quality), then
regenerates 2 s in its middle with the right hand moved 15 cm up, the pelvis 10 cm sideways and the
left foot 10 cm sideways, three times on the warm engine (seeds 0-2). Reports per run: the
first `frames` event (the unchanged frames before the range), the first regenerated frames, the
total, the real-time factor of the range, each key's achieved error and the seams.
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
    out: dict = {"first_frames_s": None, "first_range_frames_s": None}
    first = (request.get("range") or [0])[0]
    for event in run(request, engine=engine, clip_path=clip_path):
        now = time.perf_counter() - t0
        if isinstance(event, Frames):
            out["first_frames_s"] = out["first_frames_s"] or now
            if out["first_range_frames_s"] is None and event.start + event.count > first:
                out["first_range_frames_s"] = now
        elif isinstance(event, Error):
            raise SystemExit(f"{event.code}: {event.message}")
        elif isinstance(event, Done):
            out["summary"] = event.summary
    out["total_s"] = time.perf_counter() - t0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/bench_regen")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
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
    for seed in range(args.runs):
        req = {"scene": str(scene), "base_clip": str(base_path), "range": [first, first + 59], "anchors": keys, "seed": seed}
        r = _timed(req, engine, out / f"regen{seed}.npz")
        s = r["summary"]
        report["runs"].append({
            "seed": seed, "first_frames_s": round(r["first_frames_s"], 3), "first_range_frames_s": round(r["first_range_frames_s"], 3),
            "total_s": round(r["total_s"], 3), "regenerate_s": round(s["timings_ms"]["regenerate_ms"] / 1000, 3),
            "realtime_factor": s["realtime_factor"], "anchors": s["anchors"], "seams": s["seams"], "failures": s["failures"],
        })
    report["range"] = [first, first + 59]
    report["threads"] = __import__("torch").get_num_threads()
    report["load_average"] = list(__import__("os").getloadavg())
    text = json.dumps(report, indent=None if args.json else 1)
    (out / "report.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
