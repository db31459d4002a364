"""The mannequin builder (cheap parts, deterministic), rotations and the `hosig body` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from hosig.body import rotations as rot
from hosig.body.mannequin import (
    SMPLX_NUM_VERTICES,
    MannequinConfig,
    _split_to_count,
    build_surface,
    hands_mean,
)
from hosig.body.model import MANNEQUIN_PATH
from hosig.body.proportions import rest_skeleton
from hosig.body.shape_sdf import body_solids, grid_sdf
from hosig.cli.main import main


def test_committed_mannequin_matches_the_builder_skeleton():
    """The asset in the repo is what the code builds: same skeleton, same hands mean."""
    sk = rest_skeleton(MannequinConfig().height_m)
    with np.load(MANNEQUIN_PATH) as data:
        np.testing.assert_allclose(data["J_regressor"] @ data["v_template"], sk.joints, atol=1e-6)
        left, right = hands_mean(MannequinConfig())
        np.testing.assert_array_equal(data["hands_meanl"], left)
        np.testing.assert_array_equal(data["hands_meanr"], right)
    info = json.loads(MANNEQUIN_PATH.with_suffix(".json").read_text())
    assert info["vertices"] == SMPLX_NUM_VERTICES and info["config"]["height_m"] == 1.75


def test_skeleton_proportions_are_adult_and_symmetric():
    sk = rest_skeleton(1.75)
    J = {n: sk.joint(n) for n in ("pelvis", "left_knee", "left_ankle", "left_shoulder", "left_wrist", "head")}
    assert sk.crown[1] - sk.floor_y == pytest.approx(1.75)
    assert 0.85 < J["pelvis"][1] - sk.floor_y < 0.95  # hip height ~0.5 of stature
    assert 0.40 < J["left_knee"][1] - sk.floor_y < 0.60
    assert 0.5 < J["left_wrist"][0] - J["left_shoulder"][0] < 0.6  # arm length
    mirrored = sk.joints * [-1, 1, 1]
    from hosig.body.skeleton import MIRROR_INDEX

    np.testing.assert_allclose(mirrored[MIRROR_INDEX], sk.joints, atol=1e-12)
    assert rest_skeleton(1.75).joints.tobytes() == sk.joints.tobytes()  # deterministic


def test_sdf_grid_is_deterministic_and_signed():
    sk = rest_skeleton(1.75)
    solids = body_solids(sk)
    lo = np.array([-0.2, -0.5, -0.2])
    vol_a = grid_sdf(solids, lo, (20, 40, 20), 0.02)
    vol_b = grid_sdf(solids, lo, (20, 40, 20), 0.02)
    assert vol_a.tobytes() == vol_b.tobytes()
    # the pelvis joint is inside the body, a point in front of the belly is outside
    i = np.round((sk.joint("pelvis") - lo) / 0.02).astype(int)
    assert vol_a[tuple(i)] < 0 and vol_a[10, 20, 19] > 0


def test_split_to_count_keeps_surface_closed():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    solids = [body_solids(rest_skeleton())[0]]  # any SDF: new vertices are projected onto it
    v, f = _split_to_count(sphere.vertices, sphere.faces, len(sphere.vertices) + 37, solids)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert len(v) == len(sphere.vertices) + 37
    assert mesh.is_watertight and mesh.is_winding_consistent


@pytest.mark.slow
def test_coarse_build_is_closed_and_exact_count():
    """The whole surface pipeline at a coarse grid (fast): closed, genus 0, exactly 10475 vertices."""
    sk = rest_skeleton(1.75)
    v, f = build_surface(sk, MannequinConfig(voxel_m=0.006, hand_vertices=600, head_vertices=800))
    mesh = trimesh.Trimesh(v, f, process=False)
    assert len(v) == SMPLX_NUM_VERTICES
    assert mesh.is_watertight and mesh.euler_number == 2
    assert np.ptp(v[:, 1]) == pytest.approx(1.75, abs=0.01)


def test_rotation_conversions_round_trip():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(64, 3, generator=g)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(64, 1, generator=g) * 3.1  # angles < pi
    R = rot.axis_angle_to_matrix(aa)
    eye = torch.eye(3).expand(64, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(rot.matrix_to_axis_angle(R), aa, atol=1e-4)
    d6 = rot.matrix_to_6d(R)
    assert torch.allclose(d6[:, :3], R[:, :, 0]) and torch.allclose(d6[:, 3:], R[:, :, 1])
    assert torch.allclose(rot.rot6d_to_matrix(d6), R, atol=1e-5)
    assert torch.allclose(rot.rot6d_to_axis_angle(rot.axis_angle_to_6d(aa)), aa, atol=1e-4)
    assert torch.allclose(rot.quaternion_to_matrix(rot.matrix_to_quaternion(R)), R, atol=1e-5)
    # matches scipy's convention
    from scipy.spatial.transform import Rotation

    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(aa.numpy()).as_matrix(), atol=1e-5)
    # gradients are finite at zero rotation
    z = torch.zeros(2, 3, requires_grad=True)
    rot.axis_angle_to_matrix(z).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_cli_body_info_json(capsys):
    assert main(["body", "info", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON object, nothing else on stdout
    assert report["source"] == "mannequin" and report["vertices"] == SMPLX_NUM_VERTICES
    assert report["joints"] == 55 and len(report["joint_names"]) == 55
    assert 1.70 <= report["standing_height_m"] <= 1.80 and report["load_ms"] >= 0


def test_cli_body_info_bad_dir(tmp_path, capsys):
    assert main(["body", "info", "--json", "--smplx-dir", str(tmp_path / "missing")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "missing" in captured.err
