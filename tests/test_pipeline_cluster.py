"""`hosig batch --ray`: on a local Ray (started once for this module) the shots' clips equal the
local batch's, unchanged shots are skipped under the same keys either way, and a worker process
that dies in a shot is replaced and the shot completes with nothing partial on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (the cluster extra: pip install '.[cluster]')")

from pipeline_support import tiny_engine, tiny_motion_checkpoint  # noqa: E402

from hosig.cli.main import main  # noqa: E402
from hosig.pipeline.batch import run_batch  # noqa: E402
from hosig.pipeline.cluster import EXIT_ONCE_ENV, ClusterOptions, run_batch_ray  # noqa: E402
from hosig.scene.demo import write_demo_scene  # noqa: E402

NEAR_CUP = [1.3, -0.9, 0.0]
SEEDS = (0, 1, 2, 3)
CRASH_SHOT = "crash_me"


def reach(name: str, seed: int) -> str:
    """The cheapest shot the batch tests use: reach the kitchen cup from next to it."""
    return f'[[shot]]\nname = "{name}"\nscene = "kitchen.glb"\nstart = {NEAR_CUP}\ntarget = "cup"\naction = "reach"\nseed = {seed}\n'


def clips_equal(a: Path, b: Path) -> bool:
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A kitchen, the tiny checkpoint, the 4-shot list and its local batch (1 torch thread), and a
    local Ray of 2 CPUs whose workers exit once in the shot named CRASH_SHOT."""
    import torch

    d = tmp_path_factory.mktemp("cluster")
    ckpt = tiny_motion_checkpoint(d / "ckpt")
    write_demo_scene(d / "kitchen.glb", "kitchen", 0)
    shots = d / "shots.toml"
    shots.write_text("\n".join(reach(f"r{seed}", seed) for seed in SEEDS))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers below run with 1 thread each; CPU results depend on it
    try:
        local = run_batch(shots, d / "local", engine=tiny_engine(ckpt)).to_json()
    finally:
        torch.set_num_threads(before)
    assert local["ok"] == len(SEEDS), local
    marker = d / "worker-exited"
    os.environ[EXIT_ONCE_ENV] = f"{CRASH_SHOT}:{marker}"  # inherited by the worker processes Ray starts
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield d, ckpt, marker
    finally:
        ray.shutdown()
        os.environ.pop(EXIT_ONCE_ENV, None)


def test_ray_batch_equals_local_batch_and_skips_under_the_same_keys(world) -> None:
    d, ckpt, _ = world
    out = d / "ray"
    seen: list[str] = []
    report = run_batch_ray(d / "shots.toml", out, engine=tiny_engine(ckpt), options=ClusterOptions(threads=1),
                           on_shot=lambda i, n, shot, result: seen.append(shot.name)).to_json()
    assert [s["status"] for s in report["shots"]] == ["ok"] * len(SEEDS), report
    assert [s["name"] for s in report["shots"]] == [f"r{seed}" for seed in SEEDS]  # the list's order
    assert sorted(seen) == sorted(f"r{seed}" for seed in SEEDS)
    for seed in SEEDS:
        assert clips_equal(d / "local" / f"r{seed}.npz", out / f"r{seed}.npz"), f"r{seed} differs from the local batch"
    local_manifest = json.loads((d / "local" / "manifest.json").read_text())
    assert json.loads((out / "manifest.json").read_text()) == local_manifest
    assert sorted(p.name for p in out.iterdir()) == sorted([f"r{seed}.npz" for seed in SEEDS] + ["manifest.json"])

    # Either runner skips what the other made: one key, one manifest.
    again = run_batch_ray(d / "shots.toml", d / "local", engine=tiny_engine(ckpt), options=ClusterOptions(threads=1)).to_json()
    assert again["skipped"] == len(SEEDS), again
    assert run_batch(d / "shots.toml", out, engine=tiny_engine(ckpt)).to_json()["skipped"] == len(SEEDS)


def test_a_worker_killed_mid_shot_is_replaced_and_the_shot_completes(world, capsys) -> None:
    d, ckpt, marker = world
    shots = d / "crash.toml"
    shots.write_text(reach(CRASH_SHOT, SEEDS[0]))
    out = d / "crash_out"
    code = main(["batch", str(shots), "--out", str(out), "--ray", "--threads", "1", "--json",
                 "--model", str(ckpt), "--quality", "preview"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # exactly one JSON object on stdout, Ray's messages or not
    assert marker.is_file(), "the worker never reached the shot's exit hook"
    assert code == 0 and report["shots"][0]["status"] == "ok", captured.err
    assert sorted(p.name for p in out.iterdir()) == [f"{CRASH_SHOT}.npz", "manifest.json"]  # no temp files left
    assert clips_equal(out / f"{CRASH_SHOT}.npz", d / "local" / "r0.npz")  # same shot fields and seed as r0
