"""Bad scene input: one clear InputError line naming the file; nothing on disk is modified."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from hosig.errors import InputError, UnknownObjectError
from hosig.scene import SceneConfig, encode_payload, load_scene
from hosig.scene import cache as scene_cache
from hosig.scene.demo import write_demo_scene


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSIG_CACHE_DIR", str(tmp_path / "cache"))
    scene_cache.clear_memory()
    yield
    scene_cache.clear_memory()


def _quad(z=0.0, s=1.0):
    v = np.array([[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]], dtype=float)
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def _raises(source, *words, config=SceneConfig()):
    with pytest.raises(InputError) as err:
        scene = load_scene(source, config)
        scene.floor_z  # noqa: B018 - "no floor" is found when the floor is first needed
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.glb", "nope.glb", "not found")


def test_unsupported_extension(tmp_path):
    p = tmp_path / "room.fbx"
    p.write_bytes(b"whatever")
    _raises(p, "room.fbx", "unsupported")


def test_empty_and_corrupt_glb(tmp_path):
    empty = tmp_path / "empty.glb"
    empty.write_bytes(b"")
    _raises(empty, "empty.glb", "empty")
    junk = tmp_path / "junk.glb"
    junk.write_bytes(os.urandom(256))
    _raises(junk, "junk.glb")
    good = write_demo_scene(tmp_path / "good.glb")
    truncated = tmp_path / "truncated.glb"
    truncated.write_bytes(good.read_bytes()[:400])
    _raises(truncated, "truncated.glb", "corrupt")


def test_glb_without_meshes(tmp_path):
    header = json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"name": "empty"}]}).encode()
    header += b" " * (-len(header) % 4)
    data = b"glTF" + (2).to_bytes(4, "little") + (12 + 8 + len(header)).to_bytes(4, "little")
    data += len(header).to_bytes(4, "little") + b"JSON" + header
    p = tmp_path / "nomesh.glb"
    p.write_bytes(data)
    _raises(p, "nomesh.glb", "no triangle meshes")


def test_nan_and_inf_vertices(tmp_path):
    v, f = _quad()
    v[2, 1] = np.nan
    _raises(encode_payload({"ground": (v, f)}), "ground", "NaN")
    mesh = trimesh.Trimesh(*_quad(), process=False)
    mesh.vertices[1, 0] = np.inf
    p = tmp_path / "inf.ply"
    p.write_bytes(mesh.export(file_type="ply"))
    _raises(p, "inf.ply", "NaN/inf")


def test_no_floor(tmp_path):
    wall = trimesh.creation.box(extents=[0.1, 3.0, 0.1])  # only 0.3 m2 upward
    p = tmp_path / "tiny.obj"
    p.write_text(trimesh.exchange.obj.export_obj(wall))
    _raises(p, "tiny.obj", "no floor")
    v = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=float)  # a vertical quad
    _raises(encode_payload({"wall": (v, np.array([[0, 1, 2], [0, 2, 3]]))}), "no floor")


def test_absurd_size_and_triangle_count():
    v, f = _quad(s=150.0)
    _raises(encode_payload({"ground": (v, f)}), "extent", "300.0 m", "200")
    _raises(encode_payload({"ground": _quad()}), "triangles", "limit", config=SceneConfig(max_triangles=1))
    # The limit is configurable.
    load_scene(encode_payload({"ground": (v, f)}), SceneConfig(max_extent_m=500.0))


def test_bad_payloads():
    _raises({"format": "other/1", "objects": []}, "unsupported format")
    _raises({"format": "hosig-mesh/1", "objects": []}, "non-empty")
    _raises(b"{not json", "JSON")
    good = encode_payload({"ground": _quad()})
    bad = json.loads(json.dumps(good))
    bad["objects"][0]["vertices"] = "@@@"
    _raises(bad, "ground", "base64")
    bad["objects"][0]["vertices"] = base64.b64encode(b"12345").decode()
    _raises(bad, "ground", "multiple")
    bad = json.loads(json.dumps(good))
    bad["objects"][0]["faces"] = base64.b64encode(np.array([0, 1, 9], dtype="<i4").tobytes()).decode()
    _raises(bad, "ground", "face indices")
    dup = json.loads(json.dumps(good))
    dup["objects"].append(dup["objects"][0])
    _raises(dup, "duplicate")


def test_unknown_object_is_input_error_listing_names():
    scene = load_scene(encode_payload({"ground": _quad(), "crate": _quad(0.5, 0.1)}))
    with pytest.raises(UnknownObjectError) as err:
        scene.object("bottle")
    assert isinstance(err.value, InputError)
    assert "crate" in str(err.value) and "ground" in str(err.value)
    assert err.value.known == ["crate", "ground"]


def test_nothing_on_disk_modified(tmp_path):
    good = write_demo_scene(tmp_path / "scene.glb")
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"glTF" + os.urandom(100))
    before = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in (good, junk)}
    listing = sorted(os.listdir(tmp_path))
    scene = load_scene(good, SceneConfig(disk_cache=False))
    scene.sdf()
    with pytest.raises(InputError):
        load_scene(junk)
    after = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in (good, junk)}
    assert before == after
    assert sorted(os.listdir(tmp_path)) == listing


def test_cli_one_line_error_and_exit_code(tmp_path):
    """Through a real process: exit 1, nothing on stdout, one stderr line naming the file."""
    code = (
        "import sys, importlib; m = importlib.import_module('hosig.cli.main'); "
        "m.SUBCOMMAND_MODULES[:] = ['hosig.cli.scene_cmd']; sys.exit(m.main(sys.argv[1:]))"
    )
    missing = tmp_path / "missing.glb"
    r = subprocess.run([sys.executable, "-c", code, "scene", "inspect", str(missing), "--json"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.glb" in lines[0] and "Traceback" not in r.stderr


def test_cli_demo_and_inspect_json(tmp_path, capsys, monkeypatch):
    import importlib

    cli = importlib.import_module("hosig.cli.main")
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ["hosig.cli.scene_cmd"])
    out = tmp_path / "demo.glb"
    assert cli.main(["scene", "demo", "--out", str(out), "--kind", "office", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "desk" in report["objects"] and out.is_file()
    assert cli.main(["scene", "inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(report["floor_z"]) < 1e-3 and "laptop" in report["pickable"]
    assert {o["name"] for o in report["objects"]} >= {"desk", "laptop", "floor"}
    assert report["load_ms"] >= 0 and report["triangles"] > 0
    assert cli.main(["scene", "demo", "--out", str(tmp_path / "x.obj")]) == 2
    assert "must end in .glb" in capsys.readouterr().err
