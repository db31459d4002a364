"""Occupancy and SDF on shapes with known distances: sign, magnitude, gradient, outside the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from hosig.scene import SceneConfig, encode_payload, load_scene
from hosig.scene import cache as scene_cache

CFG = SceneConfig(disk_cache=False)


@pytest.fixture(autouse=True)
def _fresh():
    scene_cache.clear_memory()
    yield
    scene_cache.clear_memory()


def _scene(meshes: dict[str, trimesh.Trimesh], cfg: SceneConfig = CFG):
    return load_scene(encode_payload({n: (m.vertices, m.faces) for n, m in meshes.items()}), cfg)


def _floor():
    return trimesh.creation.box(extents=[3, 3, 0.1], transform=trimesh.transformations.translation_matrix([0, 0, -0.05]))


BOX_LO = np.array([0.213, -0.347, 0.3])
BOX_HI = np.array([0.713, 0.153, 0.7])


def _box_scene():
    box = trimesh.creation.box(
        extents=BOX_HI - BOX_LO, transform=trimesh.transformations.translation_matrix((BOX_LO + BOX_HI) / 2)
    )
    return _scene({"floor": _floor(), "crate": box})


def _box_sdf(p: np.ndarray) -> np.ndarray:
    c, h = (BOX_LO + BOX_HI) / 2, (BOX_HI - BOX_LO) / 2
    q = np.abs(p - c) - h
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def test_box_sdf_sign_and_distance():
    scene = _box_scene()
    sdf = scene.sdf(exclude=["floor"])
    assert sdf.voxel == pytest.approx(0.02)
    rng = np.random.default_rng(0)
    pts = rng.uniform(BOX_LO - 0.25, BOX_HI + 0.25, size=(4000, 3))
    true = _box_sdf(pts)
    got = sdf.query_np(pts)
    inside, outside = true < -0.02, true > 0.02
    assert np.all(got[inside] < 0) and np.all(got[outside] > 0)
    # Outside: true Euclidean distance to 1 cm where one face is nearest (surface quantised to
    # voxel/2 per axis); near edges/corners two or three axes add up (<= sqrt(3)/2 voxel).
    err = np.abs(got - true)
    c, h = (BOX_LO + BOX_HI) / 2, (BOX_HI - BOX_LO) / 2
    face_region = np.sum(np.abs(pts - c) > h, axis=1) == 1
    assert np.max(err[outside & face_region]) <= 0.0105
    assert np.max(err[outside]) <= 0.0175
    assert np.mean(err[outside]) <= 0.006
    # Inside depth is as good near the surface.
    near_in = (true < 0) & (true > -0.15)
    assert np.max(np.abs(got[near_in] - true[near_in])) <= 0.0125


def test_sphere_sdf():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    sphere.apply_translation([0.1, 0.2, 0.5])
    sdf = _scene({"floor": _floor(), "ball": sphere}).sdf(exclude=["floor"])
    rng = np.random.default_rng(1)
    pts = rng.uniform([-0.4, -0.3, 0.0], [0.6, 0.7, 1.0], size=(3000, 3))
    true = np.linalg.norm(pts - [0.1, 0.2, 0.5], axis=1) - 0.3
    got = sdf.query_np(pts)
    sel = np.abs(true) > 0.02
    assert np.all(np.sign(got[sel]) == np.sign(true[sel]))
    far = true > 0.02
    assert np.max(np.abs(got[far] - true[far])) <= 0.0175
    assert np.mean(np.abs(got[far] - true[far])) <= 0.006
    # At the centre the distance has a cone-shaped peak that trilinear interpolation rounds off.
    assert sdf.query_np(np.array([[0.1, 0.2, 0.5]]))[0] == pytest.approx(-0.3, abs=0.03)


def test_sdf_gradient_points_outward():
    sdf = _box_scene().sdf(exclude=["floor"])
    # Points just outside each face (away from edges): gradient = that face's normal.
    c = (BOX_LO + BOX_HI) / 2
    normals = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)
    h = (BOX_HI - BOX_LO) / 2
    pts = c + normals * (h + 0.05)
    p = torch.tensor(pts, dtype=torch.float64, requires_grad=True)
    d = sdf.query(p)
    assert d.shape == (6,)
    d.sum().backward()
    g = p.grad.numpy()
    cos = np.sum(g * normals, axis=1) / np.linalg.norm(g, axis=1)
    assert np.all(cos > 0.95)
    # Batched shapes are kept and float32 works too.
    q = torch.zeros(2, 5, 3, dtype=torch.float32)
    assert sdf.query(q).shape == (2, 5)


def test_sdf_outside_grid_finite_and_growing():
    sdf = _box_scene().sdf()
    far = np.array([[50.0, 0.0, 0.5], [60.0, 0.0, 0.5], [0.0, 0.0, -30.0], [np.float64(1e6), 1e6, 1e6]])
    d = sdf.query_np(far)
    assert np.all(np.isfinite(d))
    assert d[1] > d[0] > 40
    p = torch.tensor([[50.0, 0.0, 0.5]], requires_grad=True)
    sdf.query(p).sum().backward()
    assert p.grad[0, 0] > 0.9


def test_occupancy_fills_closed_and_excludes():
    scene = _box_scene()
    occ = scene.occupancy()
    assert occ.voxel == pytest.approx(0.02)
    c = (BOX_LO + BOX_HI) / 2
    assert occ.query(np.array([c]))[0]  # filled, not just a shell
    assert not occ.query(np.array([c + [0, 0, 0.4]]))[0]
    occ_ex = scene.occupancy(exclude=["crate"])
    assert not occ_ex.query(np.array([c]))[0]
    assert occ_ex.query(np.array([[0.0, 0.0, -0.05]]))[0]
    # The filled volume matches the box volume to within a voxel layer.
    vol = occ.grid.sum() * occ.voxel**3 - occ_ex.grid.sum() * occ.voxel**3
    assert vol == pytest.approx(np.prod(BOX_HI - BOX_LO), rel=0.1)


def test_open_box_is_a_shell():
    """A box without its top is open: walls occupied, the interior stays free."""
    box = trimesh.creation.box(extents=[0.6, 0.6, 0.6], transform=trimesh.transformations.translation_matrix([0, 0, 0.5]))
    keep = box.face_normals[:, 2] < 0.5
    open_box = trimesh.Trimesh(box.vertices, box.faces[keep], process=False)
    scene = _scene({"floor": _floor(), "bin": open_box})
    assert not scene.object("bin").watertight
    occ = scene.occupancy()
    assert not occ.query(np.array([[0.0, 0.0, 0.5]]))[0]
    assert occ.query(np.array([[0.3, 0.0, 0.5]]))[0]
    d = scene.sdf().query_np(np.array([[0.0, 0.0, 0.5], [0.3, 0.0, 0.5]]))
    # Shells read about half a voxel closer than the true surface (the shell has no inside half).
    assert d[0] == pytest.approx(0.3, abs=0.025) and d[1] < 0.011


def test_sdf_coarsens_for_huge_grids():
    cfg = SceneConfig(disk_cache=False, sdf_max_voxels=200_000)
    sdf = _scene({"floor": _floor()}, cfg).sdf()
    assert sdf.voxel > cfg.sdf_voxel
    assert np.prod(sdf.shape) <= 200_000 * 1.2
