"""glTF Y-up -> Z-up agrees with Blender's own exporter/importer to the millimetre (bpy wheel)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hosig.scene import SceneConfig, load_scene
from hosig.scene.demo import write_demo_scene

pytest.importorskip("bpy")

BLENDER_SCRIPT = textwrap.dedent(
    """
    import json, sys, math
    import bpy
    out_glb, demo_glb, report = sys.argv[1:4]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.25, -2.5, 0.75))
    box = bpy.context.active_object
    box.name = "crate"
    box.rotation_euler = (0.0, 0.0, math.radians(30.0))
    box.scale = (0.4, 0.2, 0.3)
    # Two materials -> two glTF primitives in one mesh: still one object named "crate".
    for name in ("red", "blue"):
        box.data.materials.append(bpy.data.materials.new(name))
    for poly in box.data.polygons:
        poly.material_index = poly.index % 2
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(0.0, 0.0, 0.0))
    bpy.context.active_object.name = "ground"
    bpy.context.view_layer.update()
    world = {o.name: [list(o.matrix_world @ v.co) for v in o.data.vertices] for o in bpy.data.objects}
    bpy.ops.export_scene.gltf(filepath=out_glb, export_format="GLB", use_selection=False)
    # The other direction: Blender imports our demo scene; report object world boxes.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=demo_glb)
    boxes = {}
    for o in bpy.data.objects:
        if o.type == "MESH":
            pts = [o.matrix_world @ v.co for v in o.data.vertices]
            boxes[o.name] = [[min(p[i] for p in pts) for i in range(3)], [max(p[i] for p in pts) for i in range(3)]]
    json.dump({"world": world, "demo_boxes": boxes}, open(report, "w"))
    """
)


@pytest.mark.blender
def test_gltf_round_trip_with_blender(tmp_path):
    exported = tmp_path / "from_blender.glb"
    demo = write_demo_scene(tmp_path / "demo.glb", "kitchen", seed=2)
    report = tmp_path / "report.json"
    script = tmp_path / "make.py"
    script.write_text(BLENDER_SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script), str(exported), str(demo), str(report)], capture_output=True, text=True, timeout=240
    )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(report.read_text())

    # Blender -> glb -> hosig: every vertex at its Blender world position (1 mm).
    scene = load_scene(exported, SceneConfig(disk_cache=False))
    assert set(scene.names()) == {"crate", "ground"}
    assert len(scene.object("crate").faces) == 12 and scene.object("crate").watertight
    for name, verts in data["world"].items():
        want = np.array(verts)
        got = scene.object(name).vertices
        # Vertex order may differ (glTF splits by normals): compare as point sets.
        d = np.linalg.norm(got[:, None, :] - want[None, :, :], axis=2)
        assert d.min(axis=1).max() < 1e-3 and d.min(axis=0).max() < 1e-3, name
    assert abs(scene.floor_z) < 1e-3
    np.testing.assert_allclose(scene.object("crate").center, [1.25, -2.5, 0.75], atol=1e-3)

    # hosig demo glb -> Blender import: same names, same world boxes (standing up, Z-up).
    ours = load_scene(demo, SceneConfig(disk_cache=False))
    assert set(data["demo_boxes"]) == set(ours.names())
    for name, box in data["demo_boxes"].items():
        np.testing.assert_allclose(np.array(box), ours.object(name).bounds, atol=1e-3, err_msg=name)
