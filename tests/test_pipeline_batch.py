"""Shot lists: validation, one clip per shot, failures isolated, unchanged shots skipped; and the
`hosig generate` / `hosig batch` commands (exit codes, --json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_support import tiny_engine, tiny_motion_checkpoint

from hosig.cli.main import main
from hosig.errors import UsageError
from hosig.pipeline.batch import load_shot_list, run_batch
from hosig.scene.demo import write_demo_scene

NEAR_CUP = [1.3, -0.9, 0.0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    ckpt = tiny_motion_checkpoint(d / "ckpt")
    rooms = d / "rooms"
    rooms.mkdir()
    write_demo_scene(rooms / "kitchen.glb", "kitchen", 0)
    write_demo_scene(rooms / "enclosed.glb", "enclosed", 0)
    return d, ckpt


def write_list(path: Path, shots: list[dict]) -> Path:
    lines = []
    for shot in shots:
        lines.append("[[shot]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in shot.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize(
    "shots, words",
    [
        ([{"scene": "a.glb", "start": [0, 0], "target": "cup"}], ["name"]),
        ([{"name": "x", "scene": "a.glb", "start": [0, 0], "target": "cup"}] * 2, ["duplicate", "'x'"]),
        ([{"name": "x", "scene": "a.glb", "start": "0,zero", "target": "cup"}], ["'x'", "start"]),
        ([{"name": "x", "scene": "a.glb", "start": [0, 0], "target": "cup", "speed": 2}], ["'x'", "speed"]),
        ([{"name": "../evil", "scene": "a.glb", "start": [0, 0], "target": "cup"}], ["name"]),
        ([{"name": "x", "start": [0, 0], "target": "cup"}], ["'x'", "scene"]),
    ],
)
def test_shot_list_errors_name_the_shot_and_field(tmp_path, shots, words) -> None:
    with pytest.raises(UsageError) as info:
        load_shot_list(write_list(tmp_path / "s.toml", shots))
    for word in words:
        assert word in str(info.value)


def test_shot_list_resolves_scene_relative_to_the_file(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    shots = load_shot_list(write_list(tmp_path / "sub" / "s.toml", [{"name": "a", "scene": "../k.glb", "start": "1,2,0.5", "target": "cup"}]))
    assert shots[0].request.scene == str((tmp_path / "k.glb").resolve())
    assert shots[0].request.start == [1.0, 2.0, 0.5]


def test_batch_isolates_failures_and_skips_unchanged_shots(world) -> None:
    d, ckpt = world
    engine = tiny_engine(ckpt)
    good = {"name": "cup_reach", "scene": "rooms/kitchen.glb", "start": NEAR_CUP, "target": "cup", "action": "reach", "seed": 2}
    shots = [
        {"name": "sealed", "scene": "rooms/enclosed.glb", "start": [-2.0, -1.5], "target": "bottle"},
        good,
        {"name": "ghost", "scene": "rooms/kitchen.glb", "start": NEAR_CUP, "target": "ghost"},
    ]
    shotlist = write_list(d / "shots.toml", shots)
    out = d / "out"
    report = run_batch(shotlist, out, engine=engine).to_json()
    status = {s["name"]: s for s in report["shots"]}
    assert status["cup_reach"]["status"] == "ok" and (out / "cup_reach.npz").is_file()
    assert status["sealed"]["status"] == "failed" and status["sealed"]["error_code"] == "unreachable"
    assert status["ghost"]["status"] == "failed" and status["ghost"]["error_code"] == "unknown_object"
    assert report["ok"] == 1 and report["failed"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shots"]["cup_reach"]["status"] == "ok"

    again = run_batch(shotlist, out, engine=engine).to_json()
    assert {s["name"]: s["status"] for s in again["shots"]} == {"sealed": "failed", "cup_reach": "skipped", "ghost": "failed"}

    shots[1] = dict(good, seed=3)  # an edited shot is generated again
    write_list(shotlist, shots)
    third = run_batch(shotlist, out, engine=engine).to_json()
    assert {s["name"]: s["status"] for s in third["shots"]}["cup_reach"] == "ok"


def test_generate_command_json_and_exit_codes(world, capsys) -> None:
    d, ckpt = world
    kitchen, sealed = str(d / "rooms" / "kitchen.glb"), str(d / "rooms" / "enclosed.glb")
    flags = ["--model", str(ckpt), "--quality", "preview"]
    out = d / "cli_clip.npz"
    code = main(["generate", kitchen, "--start", "1.3,-0.9,0", "--target", "cup", "--action", "reach", "--out", str(out), "--json", *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)  # exactly one JSON object on stdout
    assert summary["frames"] > 0 and summary["clip"] == str(out) and out.is_file()
    assert main(["generate", sealed, "--start=-2,-1.5", "--target", "bottle", "--json", *flags]) == 3
    assert "unreachable" in capsys.readouterr().err
    assert main(["generate", kitchen, "--start", "1,nan", "--target", "cup", *flags]) == 2
    assert main(["generate", kitchen, "--start", "1,1", "--target", "cup", "--action", "pick-place", *flags]) == 2
    assert main(["generate", kitchen, "--start", "1,1", "--target", "unicorn", *flags]) == 1
    assert "unicorn" in capsys.readouterr().err


def test_batch_command_reports_failures_with_exit_code(world, capsys) -> None:
    d, ckpt = world
    shotlist = write_list(d / "cli_shots.toml", [{"name": "sealed", "scene": "rooms/enclosed.glb", "start": [-2.0, -1.5], "target": "bottle"}])
    code = main(["batch", str(shotlist), "--out", str(d / "cli_out"), "--json", "--model", str(ckpt), "--quality", "preview"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["failed"] == 1 and report["shots"][0]["error_code"] == "unreachable"


KILLED_MID_WRITE = """
import os, sys
import numpy as np
from hosig.clip import MotionClip
import hosig.clip

path = sys.argv[1]
clip = MotionClip(poses=np.ones((4, 165)), trans=np.ones((4, 3)), joints=np.ones((4, 55, 3)))
clip.save(path)  # a whole clip at the final name


def dying_savez(fh, **arrays):
    fh.write(b"PK\\x03\\x04 half a zip")
    fh.flush()
    os._exit(9)  # killed mid-write


hosig.clip.np.savez = dying_savez
MotionClip(poses=np.zeros((8, 165)), trans=np.zeros((8, 3)), joints=np.zeros((8, 55, 3))).save(path)
"""


def test_a_clip_write_killed_midway_leaves_the_previous_clip_whole(tmp_path) -> None:
    import subprocess
    import sys

    from hosig.clip import MotionClip

    path = tmp_path / "shot.npz"
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert MotionClip.load(path).n_frames == 4  # the old clip, never a partial one at the final name
    assert [p.name for p in tmp_path.iterdir() if p.name != "shot.npz"] == [p.name for p in tmp_path.glob(".shot.npz.*.tmp")]


def test_batch_ray_without_ray_names_the_cluster_extra(tmp_path, monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as without the extra
    code = main(["batch", str(tmp_path / "shots.toml"), "--out", str(tmp_path / "out"), "--ray"])
    assert code == 2
    assert "pip install '.[cluster]'" in capsys.readouterr().err


def test_the_local_batch_never_imports_ray() -> None:
    import subprocess
    import sys

    probe = "import sys, hosig.cli.main, hosig.pipeline.batch; sys.exit(3 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=120).returncode == 0
