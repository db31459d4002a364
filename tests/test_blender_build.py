"""`hosig blender build` makes a zip that installs into a fresh Blender user directory and
registers/unregisters cleanly (twice), through Blender's own extension machinery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

INSTALL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import addon_utils, bpy
    zip_path = sys.argv[1]
    out = {}
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.hosig"
    out["enabled"] = module in bpy.context.preferences.addons
    out["installed_at"] = bpy.utils.user_resource("EXTENSIONS")
    cycles = []
    for _ in range(2):
        addon_utils.disable(module, default_set=True)
        after_disable = (hasattr(bpy.types.Scene, "hosig"), hasattr(bpy.types, "HOSIG_PT_shots"),
                         hasattr(bpy.ops.hosig, "generate") and "HOSIG_OT_generate" in dir(bpy.types))
        addon_utils.enable(module, default_set=True)
        after_enable = (hasattr(bpy.types.Scene, "hosig"), hasattr(bpy.types, "HOSIG_PT_shots"),
                        "HOSIG_OT_generate" in dir(bpy.types))
        cycles.append([after_disable, after_enable])
    out["cycles"] = cycles
    out["prefs"] = bpy.context.preferences.addons[module].preferences.server_url
    bpy.context.scene.hosig.shots.add().name = "probe"
    out["shots"] = [s.name for s in bpy.context.scene.hosig.shots]
    print("RESULT " + json.dumps(out))
    """
)


def test_build_zip_installs_enables_and_reregisters(tmp_path) -> None:
    from hosig.cli.main import main

    out = tmp_path / "dist"
    assert main(["blender", "build", "--out", str(out), "--json"]) == 0
    zips = list(out.glob("hosig-*.zip"))
    assert len(zips) == 1
    names = zipfile.ZipFile(zips[0]).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "hosig_blender/client.py" in names
    assert not any(n.startswith(("server/", "tests/", "docs/")) or "__pycache__" in n for n in names)
    # the add-on must not depend on the engine, torch or threads
    for name in names:
        if name.endswith(".py"):
            text = zipfile.ZipFile(zips[0]).read(name).decode()
            assert "import torch" not in text and "from hosig." not in text and "import hosig\n" not in text
            assert "import threading" not in text

    user = tmp_path / "user"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user))
    script = tmp_path / "install.py"
    script.write_text(INSTALL_SCRIPT)
    proc = subprocess.run([sys.executable, "-c", "import runpy,sys; sys.argv=[sys.argv[1], sys.argv[2]]; import bpy; runpy.run_path(sys.argv[0])",
                           str(script), str(zips[0])], capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["enabled"]
    assert result["installed_at"].startswith(str(user))
    assert (user / "extensions" / "user_default" / "hosig" / "blender_manifest.toml").is_file() or any(user.rglob("blender_manifest.toml"))
    for after_disable, after_enable in result["cycles"]:
        assert after_disable == [False, False, False]
        assert after_enable == [True, True, True]
    assert result["prefs"].startswith("http://127.0.0.1:8765")
    assert result["shots"] == ["probe"]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_fallback_zip_matches_blenders_build(tmp_path) -> None:
    from hosig.cli.blender_cmd import build_extension

    official = build_extension(tmp_path / "a")
    fallback = build_extension(tmp_path / "b", force_fallback=True)
    assert fallback["files"] == official["files"]
    assert fallback["command"].startswith("built-in")
    with zipfile.ZipFile(official["zip"]) as a, zipfile.ZipFile(fallback["zip"]) as b:
        for name in official["files"]:
            assert a.read(name) == b.read(name)
