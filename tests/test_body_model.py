"""The embedded mannequin and the body-model loader (issue #3, body part)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import trimesh

from hosig import frames
from hosig.body import load_body_model
from hosig.body import skeleton as skel
from hosig.body.mannequin import SMPLX_VERTEX_IDS, SMPLX_NUM_VERTICES
from hosig.body.model import MANNEQUIN_PATH
from hosig.errors import InputError


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.fixture(scope="module")
def npz():
    with np.load(MANNEQUIN_PATH, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _labels(npz) -> np.ndarray:
    """Per-vertex dominant joint."""
    return npz["weights"].argmax(axis=1)


def test_skeleton_matches_smplx():
    import smplx.joint_names

    assert skel.JOINT_NAMES == smplx.joint_names.JOINT_NAMES[:55]
    assert skel.PARENTS[0] == -1 and all(0 <= p < j for j, p in enumerate(skel.PARENTS) if j > 0)
    mirror = skel.MIRROR_INDEX
    assert np.array_equal(mirror[mirror], np.arange(55))
    assert skel.JOINT_NAMES[mirror[skel.JOINT_INDEX["left_thumb3"]]] == "right_thumb3"
    assert skel.JOINT_NAMES[mirror[skel.JOINT_INDEX["left_eye_smplhf"]]] == "right_eye_smplhf"
    assert mirror[skel.JOINT_INDEX["spine2"]] == skel.JOINT_INDEX["spine2"]
    assert len(skel.LEFT_HAND) == len(skel.RIGHT_HAND) == 15
    assert all(skel.JOINT_NAMES[j].startswith("left_") for j in skel.LEFT_HAND)


def test_mannequin_loads_through_smplx_and_regressor_matches(body, npz):
    assert body.source == "mannequin" and body.identity.startswith("mannequin-v")
    assert body.num_vertices == SMPLX_NUM_VERTICES == npz["v_template"].shape[0]
    # smplx's rest pose (model frame): hand poses cancel the hands mean (flat_hand_mean=False)
    out = body.smplx(
        left_hand_pose=-torch.as_tensor(body.hands_mean["left"])[None],
        right_hand_pose=-torch.as_tensor(body.hands_mean["right"])[None],
        return_verts=True,
    )
    np.testing.assert_allclose(out.vertices[0].numpy(), npz["v_template"], atol=1e-5)
    regressed = npz["J_regressor"] @ npz["v_template"]
    np.testing.assert_allclose(out.joints[0, :55].numpy(), regressed, atol=1e-5)
    assert (npz["J_regressor"] >= 0).all()
    assert ((npz["J_regressor"] > 0).sum(axis=1) <= 64).all()  # sparse rows
    np.testing.assert_allclose(npz["J_regressor"].sum(axis=1), 1.0, atol=1e-9)
    # the regressed joints lie inside the body and in SMPL-X order: left is +X, up is +Y
    J = regressed
    assert J[skel.JOINT_INDEX["left_wrist"], 0] > 0.5 > -0.5 > J[skel.JOINT_INDEX["right_wrist"], 0]
    assert J[skel.JOINT_INDEX["head"], 1] > J[skel.JOINT_INDEX["pelvis"], 1] > J[skel.JOINT_INDEX["left_ankle"], 1]


def test_mesh_is_closed_human_sized(body, npz):
    mesh = trimesh.Trimesh(npz["v_template"], npz["f"], process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0.04  # outward normals; an adult has ~0.06-0.08 m^3
    assert 1.70 <= body.standing_height <= 1.80
    arm_span = np.ptp(npz["v_template"][:, 0])
    assert 1.55 <= arm_span <= 1.90  # T-pose, arms horizontal: span ~ height
    assert MANNEQUIN_PATH.stat().st_size <= 10 * 1024 * 1024


def test_fixed_vertex_ids_are_anatomical(npz):
    v = npz["v_template"]
    labels = _labels(npz)
    for side, prefix in (("left", "l"), ("right", "r")):
        for finger in skel.FINGERS:
            vid = SMPLX_VERTEX_IDS[prefix + finger]
            j3 = skel.JOINT_INDEX[f"{side}_{finger}3"]
            j2 = skel.JOINT_INDEX[f"{side}_{finger}2"]
            own = np.nonzero(np.isin(labels, [j3]))[0]
            J = npz["J_regressor"] @ v
            direction = J[j3] - J[j2]
            direction /= np.linalg.norm(direction)
            assert labels[vid] == j3, f"{prefix}{finger} tip not on the distal phalanx"
            assert v[vid] @ direction >= (v[own] @ direction).max() - 1e-9, f"{prefix}{finger} is not the tip"
    floor = v[:, 1].min()
    for S in ("L", "R"):
        big, small, heel = (v[SMPLX_VERTEX_IDS[S + n]] for n in ("BigToe", "SmallToe", "Heel"))
        for p in (big, small, heel):
            assert p[1] < floor + 0.015  # on the sole
        assert big[2] > heel[2] + 0.18 and small[2] > heel[2] + 0.12  # toes in front of the heel
        assert abs(big[0]) < abs(small[0])  # big toe is medial
        assert np.sign(big[0]) == (1 if S == "L" else -1)
    nose = v[SMPLX_VERTEX_IDS["nose"]]
    assert abs(nose[0]) < 0.02 and nose[2] >= v[v[:, 1] > nose[1] - 0.1][:, 2].max() - 1e-9
    assert v[SMPLX_VERTEX_IDS["leye"], 0] > 0 > v[SMPLX_VERTEX_IDS["reye"], 0]
    assert v[SMPLX_VERTEX_IDS["lear"], 0] > 0.06 and v[SMPLX_VERTEX_IDS["rear"], 0] < -0.06


def test_bending_right_index_moves_only_right_index(body, npz):
    zero = body.zero_pose(1)
    base = body(**zero).vertices[0]
    pose = dict(zero)
    rh = torch.zeros(1, 45)
    rh[0, 0:3] = torch.tensor([0.0, 0.0, 0.9])  # right_index1 flexion
    pose["right_hand_pose"] = rh
    bent = body(**pose).vertices[0]
    moved = ((bent - base).norm(dim=-1) > 1e-6).numpy()
    assert moved.sum() > 40
    # every moved vertex lies on the right index finger: nearer its bones than any other bone
    from hosig.body.mannequin import bone_distances
    from hosig.body.proportions import rest_skeleton

    dist, _ = bone_distances(npz["v_template"][moved], rest_skeleton())
    nearest = dist.argmin(axis=1)
    assert set(nearest) <= set(skel.finger_chain("right", "index"))
    # and the fingertip really moved (several millimetres)
    assert (bent - base)[SMPLX_VERTEX_IDS["rindex"]].norm() > 0.01


def test_knee_bend_moves_leg_not_arms(body, npz):
    pose = body.zero_pose(1)
    base = body(**pose).vertices[0]
    bp = torch.zeros(1, 63)
    knee = skel.JOINT_INDEX["left_knee"]
    bp[0, 3 * (knee - 1) : 3 * knee] = torch.tensor([1.2, 0.0, 0.0])
    pose = dict(pose, body_pose=bp)
    moved = ((body(**pose).vertices[0] - base).norm(dim=-1) > 1e-6).numpy()
    v = npz["v_template"]
    J = npz["J_regressor"] @ v
    assert moved.any()
    assert (v[moved, 1] < J[skel.JOINT_INDEX["left_hip"], 1]).all()  # nothing above the hip
    assert (v[moved, 1] < J[knee, 1] + 0.15).mean() > 0.99  # essentially only around/below the knee
    assert (v[moved, 0] > -0.02).all()  # left leg only


def test_shape_height_and_girth(body):
    def run(betas):
        b = torch.zeros(1, body.num_betas)
        b[0, : len(betas)] = torch.tensor(betas, dtype=torch.float32)
        return body.smplx(betas=b, return_verts=True).vertices[0].numpy()

    v0, tall, thick = run([0.0]), run([1.0]), run([0.0, 1.0])
    h = lambda v: np.ptp(v[:, 1])  # noqa: E731
    assert h(tall) > h(v0) + 0.04
    assert abs(h(thick) - h(v0)) < 0.005
    waist = lambda v: np.ptp(v[(np.abs(v[:, 1] - (-0.2)) < 0.02) & (np.abs(v[:, 0]) < 0.25)][:, 2])  # noqa: E731
    assert waist(thick) > waist(v0) * 1.05
    # girth keeps the skeleton (within a few mm); rest_joints_for agrees with smplx's regression
    girth_joints = body.rest_joints_for(np.array([0.0, 1.0]))
    assert np.linalg.norm(girth_joints - body.rest_joints_y, axis=1).max() < 0.01
    tall_joints = body.rest_joints_for(np.array([1.0]))
    b = torch.zeros(1, body.num_betas)
    b[0, 0] = 1.0
    flat = {k: -torch.as_tensor(body.hands_mean[k])[None] for k in ("left", "right")}
    out = body.smplx(betas=b, left_hand_pose=flat["left"], right_hand_pose=flat["right"])
    np.testing.assert_allclose(out.joints[0, :55].numpy(), tall_joints, atol=1e-5)


def test_forward_zup_standing_facing_heading(body):
    for heading in (0.0, 1.0, -2.5):
        go = torch.tensor(body.standing_orient(heading), dtype=torch.float32)[None]
        tr = torch.tensor(body.standing_transl(heading, 1.0, -2.0), dtype=torch.float32)[None]
        out = body(global_orient=go, transl=tr)
        v, J = out.vertices[0].numpy(), out.joints[0].numpy()
        assert abs(v[:, 2].min()) < 2e-3 and abs(v[:, 2].max() - body.standing_height) < 2e-3
        np.testing.assert_allclose(J[0, :2], [1.0, -2.0], atol=1e-5)
        nose = v[SMPLX_VERTEX_IDS["nose"]]
        face = np.arctan2(nose[1] - J[0, 1], nose[0] - J[0, 0])
        assert abs(frames.wrap_angle(face - heading)) < 0.05
        left = J[skel.JOINT_INDEX["left_hip"]] - J[skel.JOINT_INDEX["right_hip"]]
        assert abs(frames.wrap_angle(np.arctan2(left[1], left[0]) - (heading + np.pi / 2))) < 0.05


def test_transl_conversion_matches_yup_body(body):
    """A Y-up parameter set converted with hosig.frames lands exactly on the rotated Y-up output."""
    rng = np.random.default_rng(0)
    orient_y = rng.normal(size=3) * 0.4
    transl_y = rng.normal(size=3) * 0.3
    bp = torch.tensor(rng.normal(size=(1, 63)) * 0.2, dtype=torch.float32)
    out_y = body.smplx(
        global_orient=torch.tensor(orient_y, dtype=torch.float32)[None], transl=torch.tensor(transl_y, dtype=torch.float32)[None], body_pose=bp
    )
    orient_z = frames.orient_yup_to_zup(orient_y)
    transl_z = frames.transl_yup_to_zup(transl_y, body.rest_joints_y[0])
    out_z = body(global_orient=orient_z[None], transl=transl_z[None], body_pose=bp)
    expected = frames.points_yup_to_zup(out_y.joints[0, :55].detach().numpy())
    np.testing.assert_allclose(out_z.joints[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(frames.transl_zup_to_yup(transl_z, body.rest_joints_y[0]), transl_y, atol=1e-12)


def test_fk_matches_forward_and_is_differentiable(body):
    g = torch.Generator().manual_seed(1)
    pose = (torch.randn(4, 165, generator=g) * 0.3).requires_grad_(True)
    transl = torch.randn(4, 3, generator=g)
    out = body(
        global_orient=pose[:, :3], transl=transl, body_pose=pose[:, 3:66], jaw_pose=pose[:, 66:69],
        leye_pose=pose[:, 69:72], reye_pose=pose[:, 72:75], left_hand_pose=pose[:, 75:120],
        right_hand_pose=pose[:, 120:165],
    )  # fmt: skip
    joints = body.fk(body.full_pose_rotmats(pose), out.joints[:, 0])
    assert (joints - out.joints).abs().max().item() < 1e-5
    joints[:, skel.JOINT_INDEX["right_index3"]].sum().backward()
    assert pose.grad is not None and pose.grad[:, 120:123].abs().sum() > 0


def test_rest_mesh_for_blender(body):
    rest = body.rest_mesh_zup()
    assert rest.vertices.shape == (SMPLX_NUM_VERTICES, 3) and rest.weights_index.shape == (SMPLX_NUM_VERTICES, 4)
    np.testing.assert_allclose(rest.weights_value.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(rest.rest_joints, frames.points_yup_to_zup(body.rest_joints_y), atol=1e-5)
    assert np.ptp(rest.vertices[:, 2]) == pytest.approx(body.standing_height, abs=1e-4)  # Z is up


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        load_body_model(tmp_path / "nowhere")
    with pytest.raises(InputError, match=str(tmp_path)):
        load_body_model(tmp_path)  # a folder without SMPLX_NEUTRAL.*
    bad = tmp_path / "SMPLX_NEUTRAL.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="SMPLX_NEUTRAL.npz"):
        load_body_model(bad)
    partial = tmp_path / "partial" / "SMPLX_NEUTRAL.npz"
    partial.parent.mkdir()
    np.savez(partial, v_template=np.zeros((10, 3)))
    with pytest.raises(InputError, match="missing keys .*J_regressor"):
        load_body_model(partial.parent)


def test_real_format_file_via_dir_and_env(tmp_path, monkeypatch, npz):
    folder = tmp_path / "models"
    folder.mkdir()
    arrays = dict(npz)
    arrays.pop("mannequin_version")  # a "real" file: plain SMPL-X keys only
    np.savez(folder / "SMPLX_NEUTRAL.npz", **arrays)
    body = load_body_model(folder)
    assert body.identity.startswith("sha256:") and len(body.identity) == 7 + 64
    assert body.source == str((folder / "SMPLX_NEUTRAL.npz").resolve())
    monkeypatch.setenv("HOSIG_SMPLX_DIR", str(folder))
    assert load_body_model() is body  # cached per file
    shutil.copy(folder / "SMPLX_NEUTRAL.npz", tmp_path / "SMPLX_NEUTRAL.npz")
    assert load_body_model(tmp_path / "SMPLX_NEUTRAL.npz").identity == body.identity
