"""Keying speed (DESIGN §4: 10 s of 55 bones into Blender ≤ 0.5 s) and the per-tick cost while
streaming. Run: ``python -m hosig_blender.bench`` (bpy module); prints one JSON line."""

from __future__ import annotations

import json
import sys
import time

import bpy
import numpy as np

from . import rig
from .keyframes import ActionWriter
from .posemath import bone_quaternions, make_continuous, pelvis_locations
from .protocol import BodyData

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
           20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
           21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]


def synthetic_body(n_vertices: int = 10475) -> BodyData:
    """A random SMPL-X-shaped skeleton and a point-cloud-sized mesh (timings only)."""
    rng = np.random.default_rng(0)
    rest = np.zeros((55, 3))
    for i in range(1, 55):
        rest[i] = rest[PARENTS[i]] + rng.normal(scale=0.08, size=3)
    verts = rng.normal(scale=0.3, size=(n_vertices, 3)).astype(np.float32)
    faces = rng.integers(0, n_vertices, size=(2 * n_vertices, 3)).astype(np.int32)
    widx = rng.integers(0, 55, size=(n_vertices, 4)).astype(np.int32)
    wval = np.full((n_vertices, 4), 0.25, dtype=np.float32)
    return BodyData("bench", [f"j{i}" for i in range(55)], np.array(PARENTS), rest, verts, faces, widx, wval)


def key_clip(arm, body: BodyData, rest_rot, poses, trans, chunk: int) -> tuple[ActionWriter, list[float]]:
    writer = ActionWriter("bench", arm)
    writer.assign(arm)
    paths = [f'pose.bones["{n}"].rotation_quaternion' for n in body.joint_names]
    last, ticks = None, []
    for s in range(0, len(poses), chunk):
        t0 = time.perf_counter()
        e = min(len(poses), s + chunk)
        frames = 1.0 + np.arange(s, e)
        q = make_continuous(bone_quaternions(poses[s:e], rest_rot), last)
        last = q[-1]
        for j, p in enumerate(paths):
            writer.set_group(p, body.joint_names[j], frames, q[:, j], flush=False)
        writer.set_group(f'pose.bones["{body.joint_names[0]}"].location', body.joint_names[0], frames,
                         pelvis_locations(trans[s:e], body.rest_joints, rest_rot[0]), flush=False)
        if chunk < len(poses):  # streaming: the same per-tick budget as ShotRun.step
            writer.flush(budget_s=max(0.001, 0.004 - (time.perf_counter() - t0)))
            ticks.append((time.perf_counter() - t0) * 1000)
            while writer.pending:  # later ticks without new frames
                t1 = time.perf_counter()
                writer.flush(budget_s=0.004)
                ticks.append((time.perf_counter() - t1) * 1000)
    writer.finalize()
    return writer, ticks


def main() -> int:
    body = synthetic_body()
    coll = bpy.context.scene.collection
    t0 = time.perf_counter()
    arm = rig.build_armature("Bench", body, coll)
    build_s = time.perf_counter() - t0
    rest_rot = rig.rest_rotations(arm, body.joint_names)
    rng = np.random.default_rng(1)
    n = 300  # 10 s at 30 fps
    poses = rng.normal(scale=0.3, size=(n, 165))
    trans = rng.normal(size=(n, 3))
    t0 = time.perf_counter()
    writer, _ = key_clip(arm, body, rest_rot, poses, trans, chunk=n)
    once_s = time.perf_counter() - t0
    keys = writer.key_count()
    writer.discard()
    _, ticks = key_clip(arm, body, rest_rot, poses, trans, chunk=15)
    t0 = time.perf_counter()
    w2, _ = key_clip(arm, body, rest_rot, poses, trans, chunk=n)
    reduced = w2.finalize(0.0044, 0.002)
    reduce_s = time.perf_counter() - t0 - once_s
    report = {"rig_build_s": round(build_s, 3), "key_10s_55_bones_s": round(once_s, 3), "keys": keys,
              "stream_chunk15_tick_ms": {"mean": round(float(np.mean(ticks)), 2), "max": round(float(np.max(ticks)), 2),
                                         "ticks": len(ticks)},
              "reduce_s_approx": round(max(reduce_s, 0.0), 3), "keys_after_reduce": reduced,
              "blender": bpy.app.version_string}
    sys.stdout.write("HOSIG_BENCH " + json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
