"""The navigation building blocks on their own: floor map, search back ends, smoothing, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh
from navigation_scenes import box, table, table_room

from hosig.navigation import NavConfig, build_floor_map, floor_map_for
from hosig.navigation.search import cost_grid, search
from hosig.navigation.smoothing import arc_length, curvature, round_corners
from hosig.navigation.timing import headings_along, sample_by_time, speed_profile

CFG = NavConfig()


def _fmap(parts, bounds=((0.0, 0.0), (4.0, 3.0))):
    mesh = trimesh.util.concatenate(parts)
    return build_floor_map(mesh.vertices, mesh.faces, 0.0, np.asarray(bounds), CFG)


def test_floor_map_blocks_band_geometry_only():
    rug = box([0.5, 0.5, 0.0], [1.5, 1.5, 0.03])  # under the band: walkable
    lamp = box([3.0, 2.0, 2.0], [3.4, 2.4, 2.2])  # above head height: walkable
    tab = table(2.0, 1.5, w=1.0, d=0.6)  # the top blocks the floor under it, not just the legs
    fm = _fmap([rug, lamp, tab])
    assert fm.cell <= 0.05
    under_table = fm.to_cell(np.array([2.0, 1.5]))
    assert fm.blocked[tuple(under_table)]
    assert not fm.blocked[tuple(fm.to_cell(np.array([1.0, 1.0])))]  # rug
    assert not fm.blocked[tuple(fm.to_cell(np.array([3.2, 2.2])))]  # lamp overhead
    # clearance is the distance to the nearest band geometry, slightly conservative
    d = fm.distance(np.array([[2.0, 0.6], [0.5, 1.5]]))
    assert d[0] == pytest.approx(0.6, abs=0.02) and d[0] <= 0.6
    assert d[1] == pytest.approx(0.5, abs=0.02) and d[1] <= 0.5  # to the bounds edge (x = 0)
    assert np.all(fm.clearance[fm.blocked] == 0)


def test_floor_map_cached_per_scene_and_settings():
    scene = table_room()
    a = floor_map_for(scene, CFG)
    assert floor_map_for(scene, CFG) is a
    b = floor_map_for(scene, NavConfig(cell=0.04))
    assert b is not a and b.cell == 0.04


def test_search_backends_agree_and_heuristic_is_admissible():
    fm = _fmap([table(2.0, 1.5, w=1.0, d=1.4), box([0.8, 0.0, 0.0], [0.9, 2.0, 2.0])])
    costs = cost_grid(fm, CFG)
    start = tuple(fm.to_cell(np.array([0.4, 0.4])))
    goals = np.array([fm.to_cell(np.array([3.5, 1.5])), fm.to_cell(np.array([3.5, 2.6]))])
    exit_costs = np.array([0.0, 0.3])
    a = search(costs, fm.cell, start, goals, exit_costs, method="astar")
    m = search(costs, fm.cell, start, goals, exit_costs, method="mcp")
    assert a is not None and m is not None
    assert a.cost + exit_costs[a.goal_index] == pytest.approx(m.cost + exit_costs[m.goal_index], rel=1e-9)
    assert np.all(np.isfinite(costs[a.cells[:, 0], a.cells[:, 1]]))
    assert np.abs(np.diff(a.cells, axis=0)).max() == 1  # 8-connected steps
    # blocked goal -> None, quickly
    wall = _fmap([box([1.9, 0.0, 0.0], [2.0, 3.0, 2.5])])
    c2 = cost_grid(wall, CFG)
    assert search(c2, wall.cell, start, goals, None, method="astar") is None
    assert search(c2, wall.cell, start, goals, None, method="mcp") is None


def test_round_corners_keeps_clearance_and_limits_curvature():
    fm = _fmap([box([1.5, 0.0, 0.0], [4.0, 1.8, 2.5])])  # an L-shaped free region
    poly = np.array([[0.6, 0.5], [0.8, 2.4], [3.5, 2.4]])
    dense = round_corners(poly, fm, CFG)
    assert np.allclose(dense[0], poly[0]) and np.allclose(dense[-1], poly[-1])
    assert fm.distance(dense).min() >= CFG.body_radius
    kappa = curvature(dense)
    assert kappa.max() < 1.0 / 0.3  # a rounded corner, not a kink
    assert arc_length(dense)[-1] < arc_length(poly)[-1]


def test_speed_profile_accelerates_slows_on_turns_and_stops():
    straight = np.stack([np.linspace(0, 6, 301), np.zeros(301)], axis=1)
    v = speed_profile(straight, CFG)
    assert v[0] == 0 and v[-1] == 0
    assert v.max() == pytest.approx(CFG.speed)
    assert v[5] < 0.6  # 10 cm from rest
    ang = np.linspace(0, math.pi, 80)
    turn = np.concatenate([straight[:150], np.stack([3 + 0.3 * np.sin(ang), 0.3 - 0.3 * np.cos(ang)], axis=1)])
    vt = speed_profile(turn, CFG)
    assert vt[170:220].max() < 0.9 * CFG.speed  # slower in a 0.3 m radius turn


def test_waypoints_on_frames_and_headings_into_final_facing():
    line = np.stack([np.linspace(0, 3, 151), np.zeros(151)], axis=1)
    way, times = sample_by_time(line, CFG)
    assert np.allclose(times * 30, np.round(times * 30))
    assert np.all(np.diff(times) > 0)
    assert np.linalg.norm(np.diff(way, axis=0), axis=1).max() <= CFG.spacing + 1e-9
    h = headings_along(way, final_heading=math.pi / 2, start_heading=-math.pi / 2, config=CFG)
    assert h[0] == pytest.approx(-math.pi / 2)
    assert h[-1] == pytest.approx(math.pi / 2)
    mid = len(h) // 2
    assert abs(h[mid]) < 0.05
    assert np.abs(np.diff(h)).max() < 0.6


def test_off_the_floor_is_not_walkable():
    # an L-shaped floor (no walls): the missing quarter of the bounds is not floor
    floor = [box([0.0, 0.0, -0.1], [4.0, 1.5, 0.0]), box([0.0, 1.5, -0.1], [2.0, 3.0, 0.0])]
    fm = _fmap(floor)
    assert fm.blocked[tuple(fm.to_cell(np.array([3.0, 2.5])))]  # beyond the floor's edge
    assert not fm.blocked[tuple(fm.to_cell(np.array([1.0, 2.5])))]
    d = fm.distance(np.array([[3.0, 1.0]]))[0]  # 0.5 m from the floor's inner corner edge at y = 1.5
    assert d == pytest.approx(0.5, abs=0.07) and d <= 0.5  # conservative by up to a cell


def test_inside_of_a_tall_closed_object_is_blocked():
    from navigation_scenes import make_scene, room

    scene = make_scene(room(0, 0, 4, 3, {"wardrobe": box([1.0, 1.0, 0.0], [2.2, 2.0, 2.2])}), "wardrobe")
    fm = floor_map_for(scene, CFG)
    inside = fm.to_cell(np.array([1.6, 1.5]))  # 0.5 m from its sides, its top above head height
    assert fm.blocked[tuple(inside)] and fm.clearance[tuple(inside)] == 0
    assert not fm.blocked[tuple(fm.to_cell(np.array([3.0, 1.5])))]
    (y0, x0), (y1, x1) = fm.to_cell(np.array([1.05, 1.05])), fm.to_cell(np.array([2.15, 1.95]))
    assert fm.blocked[y0 : y1 + 1, x0 : x1 + 1].all()  # the whole footprint
