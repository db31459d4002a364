"""Scene loading: demo glb, obj/ply, payload round trip, caching, floor, pickable, mesh merge."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from hosig.errors import UnknownObjectError
from hosig.scene import SceneConfig, encode_payload, load_scene
from hosig.scene import cache as scene_cache
from hosig.scene.demo import KINDS, build_demo_scene, demo_objects, write_demo_scene


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSIG_CACHE_DIR", str(tmp_path / "cache"))
    scene_cache.clear_memory()
    yield
    scene_cache.clear_memory()


@pytest.fixture(scope="module")
def kitchen_path(tmp_path_factory):
    return write_demo_scene(tmp_path_factory.mktemp("demo") / "kitchen.glb", "kitchen", seed=0)


def test_demo_kitchen_names_floor_and_pickable(kitchen_path):
    scene = load_scene(kitchen_path)
    names = set(scene.names())
    for want in ("floor", "table", "bottle", "mug", "cup", "counter", "shelf", "book", "box", "box_floor", "chair_1"):
        assert want in names
    assert any(n.startswith("wall_") for n in names)
    assert abs(scene.floor_z) < 0.005
    assert set(scene.pickable()) == {"bottle", "mug", "cup", "book", "box", "box_floor", "bottle_floor"}
    # Objects stand where the builder put them, Z-up: bottle on the table top, book on the high board.
    table, bottle, book = scene.object("table"), scene.object("bottle"), scene.object("book")
    assert abs(bottle.bounds[0, 2] - table.bounds[1, 2]) < 1e-4
    np.testing.assert_allclose(bottle.size, [0.07, 0.07, 0.25], atol=2e-3)
    assert book.bounds[0, 2] > 1.2
    assert scene.object("box").bounds[0, 2] < 0.6
    lo, hi = scene.bounds
    assert hi[0] - lo[0] > 5.9 and hi[1] - lo[1] > 4.9 and hi[2] == pytest.approx(2.5, abs=1e-4)


def test_demo_glb_matches_builder_zup(kitchen_path):
    """The glb (Y-up) converted back lands exactly where the Z-up builder placed each object."""
    scene = load_scene(kitchen_path)
    for name, mesh in demo_objects("kitchen", 0).items():
        np.testing.assert_allclose(scene.object(name).bounds, mesh.bounds, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_builds_with_unique_names_and_floor(kind):
    a = build_demo_scene(kind, seed=3)
    b = build_demo_scene(kind, seed=3)
    assert sorted(a.graph.nodes_geometry) == sorted(b.graph.nodes_geometry)
    objs = demo_objects(kind, seed=3)
    assert "floor" in objs and all(m.is_watertight for m in objs.values())
    payload = encode_payload({n: (m.vertices, m.faces) for n, m in objs.items()})
    scene = load_scene(payload)
    assert abs(scene.floor_z) < 1e-3
    assert scene.pickable()


def test_demo_seed_changes_layout_not_names():
    a, b = demo_objects("kitchen", 0), demo_objects("kitchen", 1)
    assert a.keys() == b.keys()
    assert not np.allclose(a["table"].bounds, b["table"].bounds)
    np.testing.assert_array_equal(demo_objects("kitchen", 1)["table"].vertices, b["table"].vertices)


def test_cache_returns_same_object(kitchen_path):
    s1 = load_scene(kitchen_path)
    s2 = load_scene(str(kitchen_path))
    assert s1 is s2
    assert s1.occupancy() is s2.occupancy()
    # Different settings are a different cache entry.
    s3 = load_scene(kitchen_path, SceneConfig(voxel=0.04))
    assert s3 is not s1


def test_disk_cache_reused_across_processes(kitchen_path, tmp_path):
    cfg = SceneConfig(cache_dir=str(tmp_path / "grids"))
    s1 = load_scene(kitchen_path, cfg)
    d1 = s1.sdf(exclude=["bottle"]).query_np(np.array([[0.0, 0.0, 0.5], [1.0, 1.0, 1.0]]))
    files = list((tmp_path / "grids" / "scene").glob("*.npz"))
    assert len(files) == 1 and "-occ-" in files[0].name
    scene_cache.clear_memory()
    s2 = load_scene(kitchen_path, cfg)
    assert s2 is not s1
    occ2 = s2.occupancy(exclude=["bottle"])
    np.testing.assert_array_equal(s1.occupancy(exclude=["bottle"]).grid, occ2.grid)
    assert occ2.object_slices == s1.occupancy(exclude=["bottle"]).object_slices
    d2 = s2.sdf(exclude=["bottle"]).query_np(np.array([[0.0, 0.0, 0.5], [1.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(d1, d2)
    # A damaged cache file is rebuilt, not fatal.
    files[0].write_bytes(b"garbage")
    scene_cache.clear_memory()
    assert load_scene(kitchen_path, cfg).occupancy(exclude=["bottle"]).grid.sum() == occ2.grid.sum()


def test_unknown_object_lists_names(kitchen_path):
    scene = load_scene(kitchen_path)
    with pytest.raises(UnknownObjectError) as err:
        scene.object("teapot")
    assert "teapot" in str(err.value) and "bottle" in str(err.value) and str(kitchen_path) in str(err.value)
    with pytest.raises(UnknownObjectError):
        scene.sdf(exclude=["teapot"])


def test_mesh_merge_and_exclude(kitchen_path):
    scene = load_scene(kitchen_path)
    full = scene.mesh()
    without = scene.mesh(exclude=["bottle"])
    assert len(full.faces) == scene.triangle_count
    assert len(full.faces) - len(without.faces) == len(scene.object("bottle").faces)


def test_sample_surface_on_object(kitchen_path):
    bottle = load_scene(kitchen_path).object("bottle")
    pts, nrm = bottle.sample_surface(500, seed=1)
    pts2, _ = bottle.sample_surface(500, seed=1)
    np.testing.assert_array_equal(pts, pts2)
    assert pts.shape == (500, 3) and nrm.shape == (500, 3)
    assert np.all(pts >= bottle.bounds[0] - 1e-9) and np.all(pts <= bottle.bounds[1] + 1e-9)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)


def _two_boxes() -> trimesh.Scene:
    floor = trimesh.creation.box(extents=[4, 4, 0.1], transform=trimesh.transformations.translation_matrix([0, 0, -0.05]))
    crate = trimesh.creation.box(extents=[0.2, 0.2, 0.2], transform=trimesh.transformations.translation_matrix([1, 0.5, 0.1]))
    scene = trimesh.Scene()
    scene.add_geometry(floor, node_name="ground", geom_name="ground")
    scene.add_geometry(crate, node_name="crate", geom_name="crate")
    return scene


def test_obj_loads_named_objects_zup(tmp_path):
    path = tmp_path / "room.obj"
    path.write_text(trimesh.exchange.obj.export_obj(_two_boxes(), include_normals=False))
    scene = load_scene(path)
    assert set(scene.names()) == {"ground", "crate"}
    assert abs(scene.floor_z) < 1e-6
    np.testing.assert_allclose(scene.object("crate").bounds, [[0.9, 0.4, 0.0], [1.1, 0.6, 0.2]], atol=1e-6)
    # The same file read as Y-up: (x, y, z) -> (x, -z, y).
    scene_y = load_scene(path, SceneConfig(up_axis="y"))
    np.testing.assert_allclose(scene_y.object("crate").bounds, [[0.9, -0.2, 0.4], [1.1, 0.0, 0.6]], atol=1e-6)


def test_ply_loads_as_one_object(tmp_path):
    path = tmp_path / "plane.ply"
    plane = trimesh.Trimesh([[0, 0, 0.3], [2, 0, 0.3], [2, 2, 0.3], [0, 2, 0.3]], [[0, 1, 2], [0, 2, 3]])
    path.write_bytes(plane.export(file_type="ply"))
    scene = load_scene(path)
    assert scene.names() == ["plane"]
    assert scene.floor_z == pytest.approx(0.3)


def test_payload_round_trip_bytes_and_dict():
    objs = {n: (m.vertices, m.faces) for n, m in demo_objects("office", 0).items()}
    payload = encode_payload(objs)
    s_dict = load_scene(payload)
    import json

    s_bytes = load_scene(json.dumps(payload).encode())
    assert set(s_dict.names()) == set(objs) == set(s_bytes.names())
    for name, (v, f) in objs.items():
        np.testing.assert_allclose(s_dict.object(name).vertices, v, atol=1e-6)
        np.testing.assert_array_equal(s_dict.object(name).faces, f)
    assert load_scene(payload) is s_dict


def test_single_open_plane_scene():
    """A scene that is one open quad (either winding) still has a floor, occupancy and SDF."""
    for faces in ([[0, 1, 2], [0, 2, 3]], [[0, 2, 1], [0, 3, 2]]):
        v = np.array([[-1, -1, 0.25], [1, -1, 0.25], [1, 1, 0.25], [-1, 1, 0.25]], dtype=float)
        scene = load_scene(encode_payload({"ground": (v, np.array(faces))}))
        assert scene.floor_z == pytest.approx(0.25)
        assert not scene.object("ground").watertight
        occ = scene.occupancy()
        # its shell is the one voxel layer (2 cm) under the walking surface
        assert occ.query(np.array([[0.0, 0.0, 0.24]]))[0]
        assert not occ.query(np.array([[0.0, 0.0, 0.26]]))[0]
        d = scene.sdf().query_np(np.array([[0.0, 0.0, 0.25], [0.0, 0.0, 0.55], [0.0, 0.0, -0.05]]))
        assert abs(d[0]) < 0.005
        assert d[1] == pytest.approx(0.3, abs=0.005) and d[2] == pytest.approx(0.28, abs=0.015)


def _free_region_at(scene, z: float, seed_xy) -> np.ndarray:
    """Connected free cells of the occupancy slice at height z containing seed_xy (2D bool)."""
    from scipy import ndimage

    occ = scene.occupancy()
    k = int((z - occ.origin[2]) / occ.voxel)
    free = ~occ.grid[:, :, k]
    labels, _ = ndimage.label(free)
    i, j = ((np.asarray(seed_xy) - occ.origin[:2]) / occ.voxel).astype(int)
    return labels == labels[i, j]


def test_kitchen_door_gap_connects_inside_and_outside(kitchen_path):
    scene = load_scene(kitchen_path)
    region = _free_region_at(scene, 1.0, scene.object("table").center[:2] + [0, 0.9])
    assert region[0, 0]  # the grid corner (outside the walls) is reachable through the door


def test_enclosed_bottle_is_sealed_off():
    objs = demo_objects("enclosed", 0)
    scene = load_scene(encode_payload({n: (m.vertices, m.faces) for n, m in objs.items()}))
    inside = _free_region_at(scene, 1.2, scene.object("bottle").center[:2] + [0.25, 0.25])
    outside = _free_region_at(scene, 1.2, scene.object("table").center[:2] + [0, 0.6])
    assert not (inside & outside).any()
    assert outside[0, 0]  # the room itself is open through its door


def _slab(name_lo_hi):
    return {n: (trimesh.creation.box(extents=np.subtract(hi, lo), transform=trimesh.transformations.translation_matrix(np.add(lo, hi) / 2)).vertices,
                trimesh.creation.box(extents=np.subtract(hi, lo)).faces) for n, (lo, hi) in name_lo_hi.items()}


def test_floor_is_lowest_large_level_not_biggest_top_or_stray_bits():
    parts = _slab({
        "floor": ([-3, -3, 0.9], [3, 3, 1.0]),  # floor top at z = 1.0
        "big_table": ([-2, -2, 1.0], [2, 2, 1.8]),  # 16 m2 top at 1.8: less than the floor
        "stray": ([0, 0, 0.2], [0.3, 0.3, 0.25]),  # small junk below the floor
    })
    scene = load_scene(encode_payload(parts))
    assert scene.floor_z == pytest.approx(1.0, abs=1e-6)
    # A floor split into tiles at slightly different heights (within a bin) still counts whole.
    tiles = _slab({f"tile_{i}": ([i, 0, -0.1], [i + 1, 2, 0.001 * i]) for i in range(4)})
    assert load_scene(encode_payload(tiles)).floor_z == pytest.approx(0.0015, abs=0.002)


def test_empty_object_kept_but_ignored_for_bounds():
    v, f = np.array([[-1, -1, 0.1], [1, -1, 0.1], [1, 1, 0.1], [-1, 1, 0.1]], float), np.array([[0, 1, 2], [0, 2, 3]])
    scene = load_scene(encode_payload({"ground": (v, f), "empty": (np.zeros((0, 3)), np.zeros((0, 3), int))}))
    assert "empty" in scene.names() and "empty" not in scene.pickable()
    np.testing.assert_allclose(scene.bounds, [[-1, -1, 0.1], [1, 1, 0.1]])
