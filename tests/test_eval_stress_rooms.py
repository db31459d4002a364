"""The stress-room generator: determinism, variety, and that scenes load with the promised invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hosig.eval.stress_rooms import OBJECTS, StressCase, draw_case, write_case
from hosig.pipeline.request import parse_request
from hosig.scene import load_scene
from hosig.scene.config import SceneConfig
from hosig.scene.scene import is_closed, pickable_rule

RUN_SEED = 1
N_CASES = 40


@pytest.fixture(scope="module")
def drawn() -> list[tuple[dict, StressCase]]:
    """(objects, case) for indices 0..N_CASES-1 of RUN_SEED (about 0.1 s each)."""
    return [draw_case(RUN_SEED, i) for i in range(N_CASES)]


def _smallest(cases: list[StressCase], pred) -> StressCase | None:
    pool = [c for c in cases if pred(c)]
    return min(pool, key=lambda c: c.size_m[0] * c.size_m[1]) if pool else None


def test_same_seed_and_index_give_identical_geometry_and_case() -> None:
    a_objs, a_case = draw_case(7, 3)
    b_objs, b_case = draw_case(7, 3)
    assert a_case == b_case
    assert list(a_objs) == list(b_objs)
    for name in a_objs:
        assert np.array_equal(a_objs[name].vertices, b_objs[name].vertices), name
        assert np.array_equal(a_objs[name].faces, b_objs[name].faces), name
    _, other = draw_case(7, 4)
    assert other != a_case


def test_written_glb_is_byte_identical(tmp_path) -> None:
    p1, c1 = write_case(7, 3, tmp_path / "a")
    p2, c2 = write_case(7, 3, tmp_path / "b")
    assert p1.name == "case_003.glb" and c1 == c2
    assert p1.read_bytes() == p2.read_bytes()


def test_forty_cases_cover_every_floor_kind_level_target_kind_and_action(drawn) -> None:
    cases = [c for _, c in drawn]
    assert {c.floor for c in cases} == {"plane", "thin_slab", "thick_slab"}
    assert any(c.floor_z > 0.1 for c in cases) and any(c.floor_z < -0.1 for c in cases)
    assert sum(c.floor_z == 0.0 for c in cases) > len(cases) / 2
    assert {c.target_kind for c in cases} == {"solid", "hollow", "thin"}
    assert {c.action for c in cases} == {"reach", "pick", "pick-place"}
    assert len({c.room for c in cases}) >= 5
    assert len({c.support for c in cases}) >= 5
    assert any(c.walk_m > 8.0 for c in cases)


def test_every_case_is_a_valid_request_with_a_pickable_target_resting_on_its_support(drawn) -> None:
    cfg = SceneConfig()
    for objs, case in drawn:
        req = parse_request(case.request("scene.glb"), where=f"case {case.index}")
        assert req.hand == "auto" and req.seed == case.seed
        assert (case.place is None) == (case.action != "pick-place")
        if isinstance(case.place, str):
            assert case.place in objs and case.place != case.support_name
        assert -math.pi <= case.start[2] < math.pi
        target = objs[case.target]
        lo, hi = target.bounds
        assert pickable_rule(hi - lo, cfg), case.target
        assert lo[2] == pytest.approx(case.support_z, abs=1e-6)
        assert case.support_name in objs
        assert case.expect in ("ok", "unreachable")
        assert "floor" in objs and any(n.startswith("wall_") for n in objs)
        small = [n for n in objs if n.split("_")[0] in OBJECTS]
        assert 4 <= len(small) <= 9  # the target and 3-8 distractors
        for name in small:
            assert is_closed(objs[name].vertices, objs[name].faces), name


def _check_loaded(case: StressCase, tmp_path) -> None:
    path, again = write_case(RUN_SEED, case.index, tmp_path)
    assert again == case
    scene = load_scene(path)
    assert scene.floor_z == pytest.approx(case.floor_z, abs=0.01)
    assert case.target in scene.pickable()
    x, y, _ = case.start
    probes = np.array([[x, y, case.floor_z + dz] for dz in (0.5, 1.0, 1.5)])
    assert np.all(scene.sdf().query_np(probes) >= 0.3), case
    target = scene.object(case.target)
    assert target.bounds[0][2] == pytest.approx(case.support_z, abs=0.005)
    support = scene.object(case.support_name)
    if case.support in ("table", "counter", "desk", "coffee_table"):
        assert support.bounds[1][2] == pytest.approx(case.support_z, abs=0.005)
    else:  # shelf board, chair seat or floor: the top lies within the support's height range
        assert support.bounds[0][2] - 1e-6 <= case.support_z <= support.bounds[1][2] + 1e-6


def test_loaded_scenes_keep_floor_target_start_and_support(drawn, tmp_path) -> None:
    cases = [c for _, c in drawn]
    picks = [_smallest(cases, lambda c, k=k: c.floor == k) for k in ("plane", "thin_slab", "thick_slab")]
    picks += [_smallest(cases, lambda c: c.floor_z > 0.1), _smallest(cases, lambda c: c.floor_z < -0.1)]
    chosen = {c.index: c for c in picks if c is not None}
    assert len(chosen) >= 3
    for case in chosen.values():
        _check_loaded(case, tmp_path)


def _first_mug(drawn) -> tuple[dict, StressCase, str]:
    with_mug = [(o, c) for o, c in drawn if any(n.startswith("mug_") for n in o)]
    objs, case = min(with_mug, key=lambda oc: oc[1].size_m[0] * oc[1].size_m[1])
    return objs, case, next(n for n in objs if n.startswith("mug_"))


def test_a_mug_is_hollow_with_an_open_top(drawn, tmp_path) -> None:
    objs, case, name = _first_mug(drawn)
    mug = objs[name]
    assert is_closed(mug.vertices, mug.faces) and mug.volume > 0
    lo, hi = mug.bounds
    # the body is a solid of revolution about a vertical axis through the body's centre; a handle
    # (if any) only widens the box on one side, so the axis is where the rim ring's inner circle is
    rim = mug.vertices[np.abs(mug.vertices[:, 2] - hi[2]) < 1e-9]
    axis = rim[:, :2].mean(axis=0)
    mid = np.array([[axis[0], axis[1], (lo[2] + hi[2]) / 2]])
    assert not mug.contains(mid)[0]  # the cavity is not material
    radii = np.linalg.norm(rim[:, :2] - axis, axis=1)
    wall = np.array([[axis[0] + (radii.min() + radii.max()) / 2, axis[1], (lo[2] + hi[2]) / 2]])
    assert mug.contains(wall)[0]  # the wall is
    assert mug.contains([[axis[0], axis[1], lo[2] + 0.003]])[0]  # and so is the bottom
    path, _ = write_case(RUN_SEED, case.index, tmp_path)
    scene = load_scene(path)
    assert scene.sdf().query_np(mid)[0] > 0.0  # the scene's SDF sees the cavity as free space
