"""`hosig navigate` on demo scenes: JSON report, --out file, exit codes for bad input."""

from __future__ import annotations

import json

import pytest

from hosig.cli.main import main
from hosig.scene.demo import write_demo_scene


@pytest.fixture(scope="module")
def demo_paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("nav_demo")
    return {
        "kitchen": write_demo_scene(d / "kitchen.glb", "kitchen", 0),
        "enclosed": write_demo_scene(d / "enclosed.glb", "enclosed", 0),
    }


def test_navigate_json_and_out_file(demo_paths, tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["navigate", str(demo_paths["kitchen"]), "--start=-2,-1.5,0.5", "--target", "book", "--json", "--out", str(out)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == report
    for key in ("start", "stand", "waypoints", "times", "length_m", "duration_s", "clearance_min_m", "plan_ms"):
        assert key in report
    assert report["start"][:2] == [-2.0, -1.5]
    assert len(report["waypoints"]) == len(report["times"]) >= 2
    assert report["clearance_min_m"] >= 0.25
    assert 1.4 < report["target_point"][2] < 2.0  # the book on the high board


def test_navigate_errors_have_exit_codes(demo_paths, capsys):
    assert main(["navigate", str(demo_paths["kitchen"]), "--start", "-2,-1.5", "--target", "teapot"]) == 1
    err = capsys.readouterr().err
    assert "unknown object 'teapot'" in err and "book" in err
    assert main(["navigate", str(demo_paths["enclosed"]), "--start=-2,-1.5", "--target", "bottle"]) == 3
    assert "unreachable" in capsys.readouterr().err
    assert main(["navigate", str(demo_paths["kitchen"]), "--start", "1,nan", "--target", "book"]) == 2
    assert main(["navigate", str(demo_paths["kitchen"]), "--start=-2,-1.5", "--target", "book", "--body-radius", "5"]) == 2
    assert main(["navigate", str(demo_paths["kitchen"]), "--start=-2,-1.5", "--point", "0,0,3.0"]) == 3
    assert "higher than the reachable" in capsys.readouterr().err


def test_navigate_reads_an_add_on_payload(tmp_path, capsys):
    from navigation_scenes import table_room

    from hosig.scene import encode_payload

    scene = table_room()
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(encode_payload({n: (o.vertices, o.faces) for n, o in scene.objects.items()})))
    assert main(["navigate", str(path), "--start", "0.8,2", "--target", "cube", "--json", "--body-radius", "0.2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "cube" and report["clearance_min_m"] >= 0.2
    assert report["stand"][0] > 4.0  # past the table, by the cube
