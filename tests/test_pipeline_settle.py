"""A released object comes to rest on the highest surface under its footprint (`hosig.pipeline.settle`)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from hosig.eval.gross import OBJECT_FLOAT_M, OBJECT_SINK_M, placement_gap
from hosig.pipeline.settle import make_settler, moved_vertices, settle_offsets, settled_transforms

TABLE_TOP = 0.75


def _scene() -> trimesh.Trimesh:
    """A floor slab (top z = 0) and a 1 x 1 m table (top at 0.75 m, its +x edge at x = 0.5)."""
    floor = trimesh.creation.box(extents=[4.0, 4.0, 0.02])
    floor.apply_translation([0, 0, -0.01])
    table = trimesh.creation.box(extents=[1.0, 1.0, 0.05])
    table.apply_translation([0, 0, TABLE_TOP - 0.025])
    return trimesh.util.concatenate([floor, table])


def _cup() -> trimesh.Trimesh:
    """An open-top thin-walled mug (r 4 cm, 10 cm tall) standing at the origin, bottom at z = 0."""
    outer = trimesh.creation.cylinder(radius=0.04, height=0.10, sections=24)
    outer.apply_translation([0, 0, 0.05])
    return outer


def _put_down(x: float, y: float, bottom: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = [x, y, bottom]
    return m


def _rest(scene: trimesh.Trimesh, cup: trimesh.Trimesh, put: np.ndarray, frames: int = 20) -> np.ndarray:
    """(frames,4,4) settled transforms of the cup released at ``put``."""
    gap = make_settler(scene, cup.vertices)(put)
    return settled_transforms(put, gap, frames)


def test_released_above_the_table_falls_onto_it() -> None:
    scene, cup = _scene(), _cup()
    out = _rest(scene, cup, _put_down(0.1, 0.2, TABLE_TOP + 0.05))
    bottoms = np.array([moved_vertices(cup.vertices, m)[:, 2].min() for m in out])
    assert bottoms[-1] == pytest.approx(TABLE_TOP, abs=0.002)
    assert np.all(np.diff(bottoms) <= 1e-12)  # only ever down ...
    assert bottoms.min() >= TABLE_TOP - 1e-9  # ... and never through the top
    assert bottoms[0] > TABLE_TOP + 0.04  # a fall, not a teleport: the first frame barely moves
    assert np.flatnonzero(np.abs(bottoms - TABLE_TOP) < 1e-6)[0] <= 4  # 5 cm take ~0.1 s
    found = placement_gap(moved_vertices(cup.vertices, out[-1]), TABLE_TOP)
    assert found.failures == []


def test_sunk_into_the_table_is_raised_onto_it() -> None:
    scene, cup = _scene(), _cup()
    out = _rest(scene, cup, _put_down(-0.2, 0.0, TABLE_TOP - 0.01))
    bottoms = np.array([moved_vertices(cup.vertices, m)[:, 2].min() for m in out])
    assert bottoms[-1] == pytest.approx(TABLE_TOP, abs=0.002)
    assert np.all(np.diff(bottoms) >= -1e-12)


def test_over_the_table_edge_rests_on_the_table_not_the_floor() -> None:
    scene, cup = _scene(), _cup()
    put = _put_down(0.5 + 0.01, 0.0, TABLE_TOP + 0.08)  # the cup's centre 1 cm past the edge: a third rests on it
    bottom = moved_vertices(cup.vertices, _rest(scene, cup, put)[-1])[:, 2].min()
    assert bottom == pytest.approx(TABLE_TOP, abs=0.002)


def test_released_over_the_floor_falls_to_the_floor() -> None:
    scene, cup = _scene(), _cup()
    bottom = moved_vertices(cup.vertices, _rest(scene, cup, _put_down(1.2, 0.0, 0.27), 40)[-1])[:, 2].min()
    assert bottom == pytest.approx(0.0, abs=0.002)


def test_a_tilted_object_rests_on_its_lowest_point() -> None:
    scene, cup = _scene(), _cup()
    put = trimesh.transformations.rotation_matrix(0.4, [1, 0, 0])
    put[:3, 3] = [0.0, 0.0, TABLE_TOP + 0.1]
    bottom = moved_vertices(cup.vertices, _rest(scene, cup, put)[-1])[:, 2].min()
    assert bottom == pytest.approx(TABLE_TOP, abs=0.002)


def test_nothing_under_it_leaves_it_where_it_was_put() -> None:
    cup = _cup()
    put = _put_down(10.0, 10.0, 1.0)
    out = _rest(_scene(), cup, put)
    np.testing.assert_allclose(out, np.tile(put, (len(out), 1, 1)))


def test_offsets_fall_under_gravity_and_stop_at_the_gap() -> None:
    drop = settle_offsets(-0.05, 6, fps=30.0)
    np.testing.assert_allclose(drop[:2], -0.5 * 9.81 * (np.array([1.0, 2.0]) / 30.0) ** 2)
    assert drop[-1] == pytest.approx(-0.05)
    rise = settle_offsets(0.01, 6)
    assert rise[0] > 0 and rise[-1] == pytest.approx(0.01) and np.all(np.diff(rise) >= 0)
    assert OBJECT_FLOAT_M > 0.002 and OBJECT_SINK_M > 0.002  # the settle's 2 mm is well inside the judge's bounds


def test_a_cup_whose_middle_hangs_past_the_edge_falls_to_the_floor() -> None:
    """Only its rim over the table (centre 3 cm past the edge): it rests on what is under its middle,
    the floor, and the stress judge agrees it is not floating."""
    scene, cup = _scene(), _cup()
    put = _put_down(0.5 + 0.03, 0.0, TABLE_TOP + 0.02)
    out = _rest(scene, cup, put, 40)
    placed = moved_vertices(cup.vertices, out[-1])
    assert placed[:, 2].min() == pytest.approx(0.0, abs=0.002)
    from hosig.eval.gross import _footprint_support

    assert placement_gap(placed, _footprint_support(scene, placed, 0.0)).failures == []


def test_an_underside_holds_nothing_up() -> None:
    """A cup let go deep in a 9 cm table top, its bottom at the top's underside (a crude motion
    put it there): it never comes to rest on the underside, only on a top — the table's or the floor."""
    floor = trimesh.creation.box(extents=[4.0, 4.0, 0.02])
    floor.apply_translation([0, 0, -0.01])
    table = trimesh.creation.box(extents=[1.0, 1.0, 0.09])
    table.apply_translation([0, 0, 0.75 - 0.045])
    scene, cup = trimesh.util.concatenate([floor, table]), _cup()
    bottom = moved_vertices(cup.vertices, _rest(scene, cup, _put_down(0.1, 0.0, 0.66), 40)[-1])[:, 2].min()
    assert bottom == pytest.approx(0.0, abs=0.002) or bottom == pytest.approx(0.75, abs=0.002), bottom
