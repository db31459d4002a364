"""Navigation end to end on scenes built here: paths, stand points, bad input, true clearance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from navigation_scenes import (
    empty_room,
    path_clearance,
    sealed_room,
    shelf_room,
    table_room,
    two_rooms,
    u_corridor,
)

from hosig.errors import UnknownObjectError, UnreachableError, UsageError
from hosig.navigation import NavConfig, StartPose, plan_to_object, plan_to_point

R = NavConfig().body_radius


@pytest.fixture(scope="module")
def scenes():
    return {
        "empty": empty_room(),
        "table": table_room(),
        "door": two_rooms(0.9),
        "narrow": two_rooms(0.4),
        "u": u_corridor(),
        "sealed": sealed_room(),
        "shelf": shelf_room(),
    }


def check_plan_shape(plan) -> None:
    """Invariants every plan keeps: spacing, frame-snapped increasing times, ends, headings."""
    w, t, h = plan.waypoints, plan.times, plan.headings
    assert w.shape[1] == 2 and len(w) == len(t) == len(h) >= 2
    assert np.linalg.norm(np.diff(w, axis=0), axis=1).max() <= 0.25 + 1e-9
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    frames = t * 30
    assert np.allclose(frames, np.round(frames), atol=1e-9)
    assert np.allclose(w[0], plan.start[:2]) and np.allclose(w[-1], plan.stand[:2])
    assert plan.duration_s == pytest.approx(t[-1])
    assert abs(math.remainder(h[-1] - plan.stand[2], 2 * math.pi)) < 1e-9
    # facing the target point at the end
    face = math.atan2(plan.target_point[1] - plan.stand[1], plan.target_point[0] - plan.stand[0])
    assert abs(math.remainder(face - plan.stand[2], 2 * math.pi)) < 1e-6
    # the stand point is within comfortable reach (horizontal pelvis -> surface point)
    reach = np.linalg.norm(plan.target_point[:2] - plan.stand[:2])
    assert 0.3 - 1e-6 <= reach <= 0.6 + 1e-6
    # headings turn smoothly (no jumps between neighbouring waypoints beyond a sharp corner's)
    assert np.abs(np.diff(h)).max() < 1.6


def test_straight_line_in_an_empty_room(scenes):
    plan = plan_to_object(scenes["empty"], StartPose(1.0, 2.0, 0.0), "cube")
    check_plan_shape(plan)
    assert np.abs(plan.waypoints[:, 1] - 2.0).max() < 0.05  # straight along y = 2
    assert plan.length_m == pytest.approx(plan.stand[0] - 1.0, abs=0.05)
    assert np.abs(plan.headings).max() < 0.1  # facing +X the whole way
    # natural speed: ~1.2 m/s cruising, plus acceleration from rest and deceleration into the stand
    cruise = plan.length_m / 1.2
    assert cruise + 0.5 < plan.duration_s < cruise + 2.5
    speeds = np.linalg.norm(np.diff(plan.waypoints, axis=0), axis=1) / np.diff(plan.times)
    assert speeds.max() <= 1.2 * 1.15 + 1e-9  # frame rounding only
    assert speeds[0] < 0.8 and speeds[-1] < 0.8  # slow at both ends
    assert not plan.snapped_start and plan.notes == []
    assert plan.target == "cube" and plan.target_point[2] < 0.25
    assert plan.clearance_min_m >= R


def test_around_a_table(scenes):
    scene = scenes["table"]
    plan = plan_to_object(scene, StartPose(0.8, 2.0), "cube")
    check_plan_shape(plan)
    straight = np.linalg.norm(plan.stand[:2] - np.array([0.8, 2.0]))
    assert plan.length_m > straight + 0.1  # had to go around the table
    assert path_clearance(scene, plan.waypoints) >= R
    assert plan.clearance_min_m >= R


def test_through_a_door_gap(scenes):
    scene = scenes["door"]
    plan = plan_to_object(scene, StartPose(1.0, 1.0), "cube")
    check_plan_shape(plan)
    x = plan.waypoints[:, 0]
    k = int(np.argmax(x > 4.05))
    y_cross = np.interp(4.05, x[k - 1 : k + 1], plan.waypoints[k - 1 : k + 1, 1])
    assert 1.55 + R <= y_cross + 1e-6 and y_cross <= 2.45 - R + 1e-6  # through the 0.9 m door
    assert path_clearance(scene, plan.waypoints) >= R


def test_u_shaped_corridor(scenes):
    scene = scenes["u"]
    plan = plan_to_object(scene, StartPose(0.6, 0.6), "cube")
    check_plan_shape(plan)
    assert plan.waypoints[:, 0].max() > 4.8  # went round the divider's end
    assert 8.0 < plan.length_m < 12.0
    assert path_clearance(scene, plan.waypoints) >= R
    # slower in the U-turn than on the straight
    sp = np.linalg.norm(np.diff(plan.waypoints, axis=0), axis=1) / np.diff(plan.times)
    mid_x = 0.5 * (plan.waypoints[1:, 0] + plan.waypoints[:-1, 0])
    assert sp[mid_x > 4.7].min() < sp[(mid_x > 2) & (mid_x < 4)].max() - 0.1


def test_door_narrower_than_body_is_unreachable(scenes):
    with pytest.raises(UnreachableError, match="narrower than the body"):
        plan_to_object(scenes["narrow"], StartPose(1.0, 1.0), "cube")
    # a thinner body fits through the 0.4 m door
    plan = plan_to_object(scenes["narrow"], StartPose(1.0, 1.0), "cube", NavConfig(body_radius=0.12))
    assert path_clearance(scenes["narrow"], plan.waypoints) >= 0.12


def test_sealed_room_is_unreachable(scenes):
    with pytest.raises(UnreachableError, match="enclosed") as err:
        plan_to_object(scenes["sealed"], StartPose(1.0, 1.0), "cube_inside")
    assert err.value.exit_code == 3
    plan = plan_to_object(scenes["sealed"], StartPose(1.0, 1.0), "cube_outside")
    check_plan_shape(plan)


def test_start_inside_a_table_is_snapped(scenes):
    scene = scenes["table"]
    plan = plan_to_object(scene, StartPose(3.3, 2.0), "cube")  # 0.1 m inside the table's east edge
    assert plan.snapped_start
    assert plan.notes and "inside an obstacle" in plan.notes[0]
    moved = np.linalg.norm(plan.start[:2] - np.array([3.3, 2.0]))
    assert 0.1 < moved <= 0.5
    check_plan_shape(plan)
    assert path_clearance(scene, plan.waypoints) >= R
    with pytest.raises(UsageError, match="inside an obstacle"):
        plan_to_object(scene, StartPose(3.0, 2.0), "cube")  # table centre: nothing free within 0.5 m
    with pytest.raises(UsageError, match="outside the scene"):
        plan_to_object(scene, StartPose(20.0, 2.0), "cube")


def test_object_on_the_floor(scenes):
    plan = plan_to_object(scenes["sealed"], StartPose(2.0, 1.0), "cube_outside")
    check_plan_shape(plan)
    assert plan.target_point[2] <= 0.21  # a point on the 0.2 m cube


def test_object_on_high_and_low_shelf_and_table_against_wall(scenes):
    scene = scenes["shelf"]
    book = plan_to_object(scene, StartPose(2.5, 1.0), "book")
    check_plan_shape(book)
    assert 1.6 <= book.target_point[2] <= 1.83
    assert book.stand[1] < 3.6 - R  # in front of the shelf, facing it (north)
    assert abs(math.remainder(book.stand[2] - math.pi / 2, 2 * math.pi)) < 0.6
    low = plan_to_object(scene, StartPose(2.5, 1.0), "box_low")
    check_plan_shape(low)
    assert 0.3 <= low.target_point[2] <= 0.46
    cup = plan_to_object(scene, StartPose(0.5, 0.5), "cup")  # at the back of a table against a wall
    check_plan_shape(cup)
    assert cup.stand[0] < 4.2 - R + 1e-6
    for plan in (book, low, cup):
        assert path_clearance(scene, plan.waypoints) >= R


def test_object_out_of_reach_says_how_high(scenes):
    with pytest.raises(UnreachableError, match=r"2\.25-2\.45 m above the floor"):
        plan_to_object(scenes["shelf"], StartPose(2.5, 1.0), "vase")


def test_unknown_target_lists_names(scenes):
    with pytest.raises(UnknownObjectError, match="cube") as err:
        plan_to_object(scenes["empty"], StartPose(1.0, 1.0), "teapot")
    assert "floor" in err.value.known


def test_plan_to_point_reaches_a_place_location(scenes):
    scene = scenes["shelf"]
    plan = plan_to_point(scene, StartPose(2.5, 1.0), [1.5, 3.8, 0.92])  # on the middle shelf board
    check_plan_shape(plan)
    assert np.allclose(plan.target_point, [1.5, 3.8, 0.92])
    assert plan.target is None
    with pytest.raises(UnreachableError, match="above the floor"):
        plan_to_point(scene, StartPose(2.5, 1.0), [1.5, 3.8, 2.6])


def test_start_heading_blends_into_path(scenes):
    plan = plan_to_object(scenes["empty"], StartPose(1.0, 2.0, math.pi / 2), "cube")
    assert plan.headings[0] == pytest.approx(math.pi / 2)
    assert abs(plan.headings[len(plan.headings) // 2]) < 0.1  # walking +X mid-way
    no_heading = plan_to_object(scenes["empty"], StartPose(1.0, 2.0), "cube")
    assert abs(no_heading.start[2]) < 0.05  # missing heading = along the first segment


def test_to_json_round_trip(scenes):
    import json

    plan = plan_to_object(scenes["table"], StartPose(0.8, 2.0), "cube")
    data = json.loads(json.dumps(plan.to_json()))
    for key in ("start", "stand", "waypoints", "times", "length_m", "duration_s", "clearance_min_m", "plan_ms", "target_point", "notes", "snapped_start"):
        assert key in data
    assert len(data["waypoints"]) == len(data["times"])


def test_object_behind_glass_has_no_free_line():
    from navigation_scenes import box, cube, make_scene, room

    # a 0.1 m cube on a plinth inside a closed 0.3 m glass case: close enough to stand by, but
    # no straight line from the body reaches it
    parts = room(0, 0, 5, 4, {"cube": cube(3.0, 2.0, 0.75, s=0.1), "plinth": box([2.85, 1.85, 0.0], [3.15, 2.15, 0.75])})
    glass = [box([2.85, 1.85, 0.75], [3.15, 1.86, 1.0]), box([2.85, 2.14, 0.75], [3.15, 2.15, 1.0])]
    glass += [box([2.85, 1.86, 0.75], [2.86, 2.14, 1.0]), box([3.14, 1.86, 0.75], [3.15, 2.14, 1.0])]
    glass.append(box([2.85, 1.85, 1.0], [3.15, 2.15, 1.01]))
    import trimesh

    parts["vitrine"] = trimesh.util.concatenate(glass)
    scene = make_scene(parts, "vitrine")
    with pytest.raises(UnreachableError, match="no free line"):
        plan_to_object(scene, StartPose(1.0, 1.0), "cube")


def test_next_leg_starts_exactly_at_the_previous_stand_point(scenes):
    scene = scenes["shelf"]
    first = plan_to_object(scene, StartPose(0.5, 0.5), "cup")  # stand point slid close to the table
    second = plan_to_point(scene, StartPose(*first.stand), [1.5, 3.8, 0.92])
    assert not second.snapped_start
    assert np.allclose(second.waypoints[0], first.stand[:2])
    assert second.headings[0] == pytest.approx(first.stand[2])
    assert path_clearance(scene, second.waypoints) >= R


def test_object_too_far_from_free_floor_says_how_far():
    from navigation_scenes import cube, make_scene, room, table

    parts = room(0, 0, 5, 4, {"big_table": table(2.5, 2.0, w=2.0, d=1.6), "cube": cube(2.5, 2.0, 0.75, s=0.1)})
    with pytest.raises(UnreachableError, match=r"out of reach: no free floor .* nearest walkable floor is 1\.[01]\d m away"):
        plan_to_object(make_scene(parts, "big-table"), StartPose(0.5, 0.5), "cube")


def test_start_facing_away_turns_on_the_spot_first(scenes):
    plan = plan_to_object(scenes["empty"], StartPose(1.0, 2.0, math.pi), "cube")  # facing away
    check_plan_shape(plan)
    still = np.all(np.isclose(plan.waypoints, plan.waypoints[0]), axis=1)
    n = int(np.argmin(still))  # first waypoint that has moved
    assert n >= 3
    assert plan.headings[0] == pytest.approx(math.pi)
    assert abs(math.remainder(plan.headings[n - 1], 2 * math.pi)) < 0.05  # turned to face +X
    assert plan.times[n - 1] >= math.pi / NavConfig().turn_rate - 1 / 30


def test_raised_floor_gives_the_same_plan(scenes):
    from navigation_scenes import make_scene

    base = scenes["table"]
    parts = {}
    for name, obj in base.objects.items():
        parts[name] = obj.mesh.copy()
        parts[name].apply_translation([0.0, 0.0, 1.0])  # the whole room one storey up
    raised = make_scene(parts, "table-room-raised")
    assert raised.floor_z == pytest.approx(base.floor_z + 1.0)
    a = plan_to_object(base, StartPose(0.8, 2.0), "cube")
    b = plan_to_object(raised, StartPose(0.8, 2.0), "cube")
    assert np.allclose(a.stand, b.stand, atol=1e-6)
    assert b.target_point[2] == pytest.approx(a.target_point[2] + 1.0, abs=1e-6)
    assert b.length_m == pytest.approx(a.length_m, abs=1e-6)


def test_object_above_the_shoulder_on_a_deep_board_is_reached_over_its_edge():
    """A cup 25 cm back on a 40 cm deep board at 1.7 m: every line from the shoulder cuts the
    board's front, but a hand rising over the body and going in level reaches it."""
    from navigation_scenes import box, cube, make_scene, room

    board = box([0.0, 1.6, 1.68], [5.0, 2.0, 1.7])  # wall to wall: no way round its edge
    parts = room(0, 0, 5, 4, {"cup": cube(3.0, 1.85, 1.75, s=0.1), "board": board,
                              "back": box([0.0, 2.0, 0.0], [5.0, 2.02, 1.9])})
    plan = plan_to_object(make_scene(parts, "cup"), StartPose(1.0, 1.0), "cup")
    assert plan.stand[1] < 1.6  # in front of the board, not under it


@pytest.mark.parametrize("top", [1.37, 1.56])
def test_phone_lying_on_a_shelf_top_gets_a_stand_point(top):
    """An 8 mm phone flat on a shelf's top board: the free line to it must not run inside the board
    it lies on (it did at chest height and above, and every stand point was 'blocked')."""
    from navigation_scenes import box, make_scene, room

    shelf = box([1.5, 1.71, 0.0], [2.14, 2.0, top])
    phone = box([1.75, 1.8, top], [1.9, 1.97, top + 0.008])
    parts = room(0, -1, 4, 2.0, {"phone": phone, "shelf": shelf})
    plan = plan_to_object(make_scene(parts, "phone"), StartPose(1.0, -0.5), "phone")
    check_plan_shape(plan)
    assert plan.stand[1] < 1.71 - R + 1e-6  # in front of the shelf
