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
    # This holds inside the exact near-field band (sdf_band, 16 cm); beyond it the 8 cm far field
    # is used (a few cm off, never below the band).
    err = np.abs(got - true)
    c, h = (BOX_LO + BOX_HI) / 2, (BOX_HI - BOX_LO) / 2
    face_region = np.sum(np.abs(pts - c) > h, axis=1) == 1
    near = outside & (true < sdf.band - 0.02)
    assert near.sum() > 500
    assert np.max(err[near & face_region]) <= 0.0105
    assert np.max(err[near]) <= 0.0175
    assert np.mean(err[near]) <= 0.006
    far = true > sdf.band + 0.02
    assert np.all(got[far] >= sdf.band - 0.011) and np.max(err[far]) <= 0.06
    # Inside depth is as good near the surface; deeper than the band it is only bounded.
    near_in = (true < 0) & (true > -(sdf.band - 0.04))
    assert near_in.sum() > 300
    assert np.max(np.abs(got[near_in] - true[near_in])) <= 0.0125
    deep = true < -(sdf.band + 0.01)
    assert np.all(got[deep] <= -(sdf.band - 0.02))


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
    near = (true > 0.02) & (true < 0.14)
    assert np.max(np.abs(got[near] - true[near])) <= 0.0175
    assert np.mean(np.abs(got[near] - true[near])) <= 0.006
    near_in = (true < -0.02) & (true > -(sdf.band - 0.04))
    assert np.max(np.abs(got[near_in] - true[near_in])) <= 0.0175
    # Deeper than the band the value is only bounded (the body should never get there).
    assert sdf.query_np(np.array([[0.1, 0.2, 0.5]]))[0] <= -(sdf.band - 0.02)


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
    d = scene.sdf().query_np(np.array([[0.0, 0.0, 0.5], [0.3, 0.0, 0.5], [0.2, 0.0, 0.5], [0.45, 0.0, 0.5]]))
    # Shells read about half a voxel closer than the true surface (the shell has no inside half);
    # at the centre (30 cm, far field) the distance's peak is rounded off by interpolation.
    assert d[0] == pytest.approx(0.3, abs=0.045) and d[1] < 0.011
    assert d[2] == pytest.approx(0.1, abs=0.025) and d[3] == pytest.approx(0.15, abs=0.025)


def test_grids_coarsen_for_huge_scenes():
    cfg = SceneConfig(disk_cache=False, sdf_max_voxels=200_000)
    scene = _scene({"floor": _floor()}, cfg)
    sdf = scene.sdf()
    assert sdf.voxel > cfg.sdf_voxel
    assert np.prod(sdf.shape) <= 200_000 * 1.2
    assert scene.occupancy().voxel == cfg.voxel
    # A big open ground plane gets a coarser occupancy instead of an enormous grid.
    small = SceneConfig(disk_cache=False, max_grid_voxels=2_000_000)
    v = np.array([[-20, -20, 0], [20, -20, 0], [20, 20, 0], [-20, 20, 0]], dtype=float)
    big = load_scene(encode_payload({"ground": (v, np.array([[0, 1, 2], [0, 2, 3]]))}), small)
    occ = big.occupancy()
    assert occ.voxel >= 0.08 and occ.grid.size <= small.max_grid_voxels
    # the plane's shell is the voxel layer under its walking surface, the layer above it is free
    assert occ.query(np.array([[10.0, -15.0, -0.01]]))[0]
    assert not occ.query(np.array([[10.0, -15.0, 0.01]]))[0]


def test_two_levels_agree_and_tiles_are_lazy():
    """Tiles are computed only where queried; far from geometry the far field takes over
    continuously (no step at the band edge) and the dense grid matches point queries."""
    sdf = _box_scene().sdf(exclude=["floor"])
    assert sdf.tiles_computed == 0
    c = (BOX_LO + BOX_HI) / 2
    # March away from the +x face through the band edge (16 cm) out to 1 m.
    xs = np.linspace(BOX_HI[0] + 0.01, BOX_HI[0] + 1.0, 200)
    pts = np.stack([xs, np.full_like(xs, c[1]), np.full_like(xs, c[2])], axis=1)
    d = sdf.query_np(pts)
    assert 0 < sdf.tiles_computed < np.prod(np.ceil(np.array(sdf.shape) / 32))
    true = xs - BOX_HI[0]
    assert np.max(np.abs(d - true)) < 0.05
    assert np.all(np.diff(d) > -1e-4)  # monotone away from the surface
    assert np.max(np.abs(np.diff(d))) < 0.03  # no jump where the far field takes over
    dense = sdf.dense()
    idx = np.array([[5, 7, 9], [40, 41, 30], [dense.shape[0] - 1, 3, 4]])
    np.testing.assert_array_equal(dense[tuple(idx.T)], sdf.values_at(idx))


def test_crop_matches_tiled_queries_and_is_differentiable():
    sdf = _box_scene().sdf()
    lo, hi = BOX_LO - 0.3, BOX_HI + 0.3
    crop = sdf.crop(lo, hi)
    rng = np.random.default_rng(3)
    pts = rng.uniform(lo + 0.02, hi - 0.02, size=(2000, 3))
    np.testing.assert_allclose(crop.query_np(pts), sdf.query_np(pts), atol=1e-5)
    far = np.array([[5.0, 0.0, 0.5]])
    assert crop.query_np(far)[0] > 3.5 and np.isfinite(crop.query_np(far)[0])
    p = torch.tensor([[BOX_HI[0] + 0.05, 0.0, 0.5]], dtype=torch.float32, requires_grad=True)
    crop.query(p).sum().backward()
    assert p.grad[0, 0] > 0.9


def test_probe_blended_grid_equals_seven_probes():
    """The motion correction's one-query blend must read what its seven probes read."""
    from hosig.motion.refine import STENCIL_M, probed_distance

    sdf = _box_scene().sdf()
    lo, hi = BOX_LO - 0.3, BOX_HI + 0.3
    crop = sdf.crop(lo, hi)
    assert abs(crop.voxel - STENCIL_M) < 1e-9
    blended = crop.probe_blended()
    rng = np.random.default_rng(5)
    pts = torch.tensor(rng.uniform(lo + 0.05, hi - 0.05, size=(3000, 3)), dtype=torch.float64, requires_grad=True)
    want = probed_distance(crop, pts)
    got = blended.query(pts)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-5)
    g_want, = torch.autograd.grad(want.sum(), pts)
    g_got, = torch.autograd.grad(blended.query(pts).sum(), pts)
    np.testing.assert_allclose(g_got.numpy(), g_want.numpy(), atol=1e-3)
    # inside the box the blend still points out of it
    assert float(blended.query_np(np.array([(BOX_LO + BOX_HI) / 2]))[0]) < 0


def _floor_of_kind(kind: str, top: float) -> trimesh.Trimesh:
    """A 4 x 4 m floor whose walking surface is at z = top: an open plane, a 2 cm or a 20 cm slab."""
    if kind == "plane":
        v = np.array([[-2, -2, top], [2, -2, top], [2, 2, top], [-2, 2, top]], dtype=float)
        return trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False)
    thick = {"thin_slab": 0.02, "thick_slab": 0.2}[kind]
    return trimesh.creation.box(extents=[4, 4, thick], transform=trimesh.transformations.translation_matrix([0, 0, top - thick / 2]))


@pytest.mark.parametrize("kind", ["plane", "thin_slab", "thick_slab"])
@pytest.mark.parametrize("top", [0.0, 0.5, -1.0, 0.013])
def test_floor_surface_reads_its_true_height(kind: str, top: float) -> None:
    """Whatever the floor is made of and wherever it is, a point h above it reads h (a foot 2 cm up
    is 2 cm out of the floor, never inside it)."""
    scene = _scene({"floor": _floor_of_kind(kind, top)})
    assert scene.floor_z == pytest.approx(top, abs=1e-6)
    heights = np.array([0.0, 0.01, 0.02, 0.04, 0.08, 0.15])
    points = np.stack([np.full(6, 0.37), np.full(6, -0.61), top + heights], axis=1)
    np.testing.assert_allclose(scene.sdf().query_np(points), heights, atol=0.005)
