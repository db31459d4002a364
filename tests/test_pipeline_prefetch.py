"""Scene distances prefetched along a planned path (issue #21): the tiles the walk sweeps through
are built before the motion asks, in walking order, and give the same distances as lazy tiles."""

from __future__ import annotations

import numpy as np
import pytest

from hosig.navigation import StartPose, plan_to_object
from hosig.pipeline.prefetch import path_points, prefetch_path_sdf
from hosig.pipeline.scenes import SceneStore
from hosig.scene.demo import write_demo_scene
from hosig.scene.sdf import TILE


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefetch")
    path = write_demo_scene(d / "kitchen.glb", "kitchen", 0)
    return lambda: SceneStore(d / "cache", 4, 10**10, 10**10).get(str(path))


def test_prefetch_builds_the_tiles_around_the_path_in_walking_order(kitchen) -> None:
    scene = kitchen()
    nav = plan_to_object(scene, StartPose(-1.5, -1.5, 0.0), "cup")
    points = path_points(nav, float(scene.floor_z))
    assert np.allclose(points[0, :2], nav.waypoints[0], atol=1e-6) and np.allclose(points[-1, :2], nav.waypoints[-1], atol=1e-6)
    sdf = scene.sdf(exclude=("cup",))
    tiles = sdf.tiles_near(points, (0.7, 0.7, 1.0))
    assert len(np.unique(tiles, axis=0)) == len(tiles)
    own = np.floor((points - sdf.origin) / (TILE * sdf.voxel)).astype(int)
    keys = {tuple(t) for t in tiles}
    assert all(tuple(t) in keys for t in own)  # the pelvis's own tiles are among them
    order = [tuple(t) for t in tiles]
    assert order.index(tuple(own[0])) < order.index(tuple(own[-1]))  # the first steps' tiles come first

    missing = int(sum(sdf._slot[tuple(t)] < 0 for t in tiles))  # (other tests may have built some)
    built = prefetch_path_sdf(scene, "cup", [nav])
    assert built == missing and all(sdf._slot[tuple(t)] >= 0 for t in tiles)
    assert prefetch_path_sdf(scene, "cup", [nav]) == 0  # all there already
    assert prefetch_path_sdf(scene, "cup", [nav], stop=lambda: True) == 0


def test_prefetched_tiles_equal_lazy_ones(kitchen) -> None:
    from hosig.scene.sdf import build_sdf

    scene = kitchen()
    nav = plan_to_object(scene, StartPose(-1.5, -1.5, 0.0), "cup")
    prefetch_path_sdf(scene, "cup", [nav])
    c = scene.config
    v = scene.sdf_voxel()
    lazy = build_sdf(scene.occupancy(("cup",), voxel=v), c.sdf_clamp, c.sdf_band, max(c.sdf_far_voxel, 2 * v))  # no tiles yet
    points = path_points(nav, float(scene.floor_z))
    pts = points + np.random.default_rng(0).uniform(-0.6, 0.6, size=points.shape)
    sdf = scene.sdf(exclude=("cup",))
    computed = sdf.tiles_computed
    np.testing.assert_array_equal(sdf.query_np(pts), lazy.query_np(pts))
    assert sdf.tiles_computed == computed  # every tile the queries needed was prefetched


def test_a_new_targets_field_shares_the_tiles_the_target_cannot_change(kitchen) -> None:
    """Tiles away from both targets are copied from the previous target's field; every distance,
    near the targets too, equals a field built from scratch."""
    from hosig.scene.sdf import build_sdf

    scene = kitchen()
    c = scene.config
    v = scene.sdf_voxel()
    far = max(c.sdf_far_voxel, 2 * v)
    donor = build_sdf(scene.occupancy(("cup",), voxel=v), c.sdf_clamp, c.sdf_band, far)
    donor.prefetch()  # every tile of the cup-excluded field
    fresh = build_sdf(scene.occupancy(("mug",), voxel=v), c.sdf_clamp, c.sdf_band, far)
    shared = build_sdf(scene.occupancy(("mug",), voxel=v), c.sdf_clamp, c.sdf_band, far)
    assert 0 < shared.share_from(donor) < shared._slot.size  # most tiles, not those near the cup or the mug
    lo, hi = scene.bounds
    rng = np.random.default_rng(1)
    pts = rng.uniform(lo, hi, size=(4000, 3))
    near = np.concatenate([rng.uniform(scene.object(n).bounds[0] - 0.2, scene.object(n).bounds[1] + 0.2, size=(500, 3))
                           for n in ("cup", "mug")])
    pts = np.concatenate([pts, near])
    np.testing.assert_array_equal(shared.query_np(pts), fresh.query_np(pts))
    assert shared.tiles_shared > 0 and shared.tiles_computed > shared.tiles_shared  # some copied, some built
