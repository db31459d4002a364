"""An exported BVH opens in a real viewer: Blender's own BVH importer reproduces our Z-up joints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hosig.body import load_body_model
from hosig.body.skeleton import JOINT_INDEX
from hosig.motion.data.smplx_motion import body_joints

pytestmark = pytest.mark.blender


def test_blender_imports_exported_bvh_at_the_same_joint_positions(tmp_path: Path) -> None:
    bpy = pytest.importorskip("bpy")
    from hosig.cli.main import main
    from test_data_retarget import synthetic_motion

    body = load_body_model()
    poses, trans = synthetic_motion(10, seed=7)
    clip = tmp_path / "clip.npz"
    np.savez(clip, poses=poses, trans=trans, mocap_frame_rate=np.array(30.0))
    out = tmp_path / "clip.bvh"
    assert main(["data", "export-bvh", str(clip), str(out)]) == 0
    joints = body_joints(body, poses, trans)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=str(out), global_scale=0.01, axis_forward="-Z", axis_up="Y") == {"FINISHED"}
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert len(arm.data.bones) == 55
    first = int(arm.animation_data.action.frame_range[0])
    for f in (0, 5, 9):
        bpy.context.scene.frame_set(first + f)
        for name in ("pelvis", "left_wrist", "right_foot", "head", "right_index3"):
            got = np.array(arm.matrix_world @ arm.pose.bones[name].head)
            np.testing.assert_allclose(got, joints[f, JOINT_INDEX[name]], atol=2e-3)
