"""The navigation stage end to end: start pose + target -> stand point + timed smooth path.

`plan_to_object` / `plan_to_point` glue the parts together: the cached floor map of the scene
(`floormap`), the stand-point candidates around the target (`standpoint`), one multi-goal least-
cost search that picks the stand point by path cost + comfort (`search`), smoothing (`smoothing`)
and timing (`timing`). Reachability is decided before any search (connected components of the
walkable cells), so impossible requests fail in milliseconds with a reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from hosig.errors import UnreachableError, UsageError
from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap, floor_map_for, sample_triangles
from hosig.navigation.search import cost_grid, search
from hosig.navigation.smoothing import arc_length, corner_indices, round_corners, shortcut, spline_smooth
from hosig.navigation.standpoint import Candidates, TargetGeometry, find_candidates, free_line, nearest_walkable_m, target_geometry
from hosig.navigation.timing import headings_along, sample_by_time, turn_then_walk, wrap

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class StartPose:
    """Where the walk starts: world XY (metres) and an optional heading (radians about +Z)."""

    x: float
    y: float
    heading: float | None = None

    def __post_init__(self) -> None:
        vals = [self.x, self.y] + ([] if self.heading is None else [self.heading])
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(float(v)) for v in vals):
            raise UsageError(f"start: x, y (and heading) must be finite numbers, got {vals}")
        self.x, self.y = float(self.x), float(self.y)
        self.heading = None if self.heading is None else float(self.heading)

    @classmethod
    def from_list(cls, values: Any) -> "StartPose":
        """[x, y] or [x, y, heading] (heading may be None)."""
        try:
            vals = list(values)
        except TypeError:
            raise UsageError(f"start: expected [x, y] or [x, y, heading], got {values!r}") from None
        if len(vals) not in (2, 3):
            raise UsageError(f"start: expected [x, y] or [x, y, heading], got {len(vals)} values")
        return cls(vals[0], vals[1], vals[2] if len(vals) == 3 else None)


@dataclass
class NavPlan:
    """A planned walk. Headings along the path are continuous (unwrapped); `stand[2]` is wrapped."""

    start: np.ndarray  # (3,) x, y, heading actually used (after snapping)
    stand: np.ndarray  # (3,) x, y, heading facing the target point
    waypoints: np.ndarray  # (N, 2) from start to stand, spacing <= config.spacing
    times: np.ndarray  # (N,) seconds, whole 30 fps frames, strictly increasing
    headings: np.ndarray  # (N,) radians
    length_m: float
    duration_s: float
    clearance_min_m: float  # smallest distance from the path to scene geometry (exact, band)
    plan_ms: float
    snapped_start: bool
    notes: list[str]
    target: str | None
    target_point: np.ndarray  # (3,) surface point the hand goes to
    requested_start: np.ndarray = field(default_factory=lambda: np.zeros(3))  # as given (heading NaN if none)
    reach_m: float = 0.0  # horizontal pelvis -> target point distance at the stand point
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        r = lambda v: [round(float(x), 5) for x in v]  # noqa: E731
        return {
            "start": r(self.start),
            "stand": r(self.stand),
            "waypoints": [r(p) for p in self.waypoints],
            "times": r(self.times),
            "headings": r(self.headings),
            "length_m": round(float(self.length_m), 4),
            "duration_s": round(float(self.duration_s), 4),
            "clearance_min_m": round(float(self.clearance_min_m), 4),
            "plan_ms": round(float(self.plan_ms), 2),
            "snapped_start": bool(self.snapped_start),
            "notes": list(self.notes),
            "target": self.target,
            "target_point": r(self.target_point),
            "reach_m": round(float(self.reach_m), 4),
            "frames": int(round(float(self.duration_s) * 30)) + 1,
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
        }


# ---------------------------------------------------------------------------------------------
# target geometry cache (per scene content, target and settings)

_TARGETS: "OrderedDict[tuple, TargetGeometry]" = OrderedDict()
_TARGETS_LOCK = threading.Lock()


def _object_target(scene: Any, name: str, config: NavConfig) -> TargetGeometry:
    obj = scene.object(name)  # UnknownObjectError listing the names
    key = (getattr(scene, "content_hash", id(scene)), "object", name, config)
    with _TARGETS_LOCK:
        if key in _TARGETS:
            _TARGETS.move_to_end(key)
            return _TARGETS[key]
    tri = np.asarray(obj.vertices, dtype=np.float64)[np.asarray(obj.faces)]
    if len(tri) == 0:
        raise UnreachableError(f"object {name!r} has no surface to reach")
    pts = np.concatenate([np.asarray(obj.vertices, dtype=np.float64)] + list(sample_triangles(tri, 0.01)))
    if len(pts) > 40_000:
        pts = pts[np.linspace(0, len(pts) - 1, 40_000).astype(np.int64)]
    rest = scene.mesh(exclude=(name,))
    tg = target_geometry(name, pts, np.asarray(rest.vertices), np.asarray(rest.faces), float(scene.floor_z), config)
    _remember(key, tg)
    return tg


def _point_target(scene: Any, point: np.ndarray, config: NavConfig) -> TargetGeometry:
    key = (getattr(scene, "content_hash", id(scene)), "point", tuple(np.round(point, 6)), config)
    with _TARGETS_LOCK:
        if key in _TARGETS:
            return _TARGETS[key]
    full = scene.mesh()
    tg = target_geometry(None, point[None, :], np.asarray(full.vertices), np.asarray(full.faces), float(scene.floor_z), config, los_lift=0.05)
    _remember(key, tg)
    return tg


def _remember(key: tuple, tg: TargetGeometry) -> None:
    with _TARGETS_LOCK:
        _TARGETS[key] = tg
        while len(_TARGETS) > 64:
            _TARGETS.popitem(last=False)


# ---------------------------------------------------------------------------------------------
# public API


def plan_to_object(scene: Any, start: StartPose, target: str, config: NavConfig = NavConfig()) -> NavPlan:
    """Plan where to stand to reach object `target` and the walk there from `start`."""
    t0 = time.perf_counter()
    _check_config(config)
    tg = _object_target(scene, target, config)
    fmap = floor_map_for(scene, config)
    return _plan(fmap, tg, _as_start(start), config, t0, f"object {target!r}")


def plan_to_point(scene: Any, start: StartPose, point_xyz: Any, config: NavConfig = NavConfig()) -> NavPlan:
    """Plan where to stand to reach a 3D point (e.g. where an object is to be placed)."""
    t0 = time.perf_counter()
    _check_config(config)
    p = np.asarray(point_xyz, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise UsageError(f"point: expected three finite numbers [x, y, z], got {point_xyz!r}")
    tg = _point_target(scene, p, config)
    fmap = floor_map_for(scene, config)
    return _plan(fmap, tg, _as_start(start), config, t0, f"point {np.round(p, 3).tolist()}")


def _as_start(start: Any) -> StartPose:
    if isinstance(start, StartPose):
        return start
    return StartPose.from_list(start)


def _check_config(config: NavConfig) -> None:
    if config.body_radius <= 0 or config.body_radius > 1.0:
        raise UsageError(f"body radius must be in (0, 1] m, got {config.body_radius}")
    if not (0 < config.spacing <= 0.25):
        raise UsageError(f"waypoint spacing must be in (0, 0.25] m, got {config.spacing}")
    if config.reach_min >= config.reach_max:
        raise UsageError(f"reach_min ({config.reach_min}) must be below reach_max ({config.reach_max})")


def snap_start(fmap: FloorMap, walkable: np.ndarray, xy: np.ndarray, config: NavConfig) -> tuple[np.ndarray, tuple[int, int], str | None]:
    """The start cell: the start's own cell if walkable, else the nearest walkable cell centre
    within `snap_radius` (with a note saying why); UsageError when there is none."""
    iy, ix = (int(v) for v in fmap.to_cell(xy))
    ny, nx = fmap.shape
    if 0 <= iy < ny and 0 <= ix < nx and walkable[iy, ix]:
        return xy, (iy, ix), None
    r = int(math.ceil(config.snap_radius / fmap.cell)) + 1
    y0, y1, x0, x1 = max(iy - r, 0), min(iy + r + 1, ny), max(ix - r, 0), min(ix + r + 1, nx)
    inside = bool(fmap.inside(xy))
    dist = float(fmap.distance(xy[None])[0]) if inside else 0.0
    if inside and dist >= config.body_radius and y1 > y0 and x1 > x0:
        # The body fits here, only the grid margin refuses the cell (e.g. the previous leg's stand
        # point, which slides close to furniture): start here and join the nearest walkable cell
        # whose straight connection keeps the body radius.
        ly, lx = np.nonzero(walkable[y0:y1, x0:x1])
        if len(ly):
            cells = np.stack([ly + y0, lx + x0], axis=1)
            centres = fmap.to_world(cells)
            d = np.linalg.norm(centres - xy, axis=1)
            for k in np.argsort(d)[:8]:
                if d[k] > 0.25:
                    break
                seg = xy + np.linspace(0.0, 1.0, 12)[:, None] * (centres[k] - xy)
                if fmap.distance(seg, upper=config.body_radius).min() >= config.body_radius:
                    return xy, (int(cells[k, 0]), int(cells[k, 1])), None
    if inside:
        why = "inside an obstacle" if dist < 1e-6 else f"only {dist:.2f} m from an obstacle (body radius {config.body_radius:.2f} m)"
    else:
        lo, hi = fmap.bounds_xy
        why = f"outside the scene bounds x {lo[0]:.2f}..{hi[0]:.2f}, y {lo[1]:.2f}..{hi[1]:.2f}"
    if y1 > y0 and x1 > x0:
        ly, lx = np.nonzero(walkable[y0:y1, x0:x1])
        if len(ly):
            cells = np.stack([ly + y0, lx + x0], axis=1)
            d = np.linalg.norm(fmap.to_world(cells) - xy, axis=1)
            k = int(np.argmin(d))
            if d[k] <= config.snap_radius + 1e-9:
                new = fmap.to_world(cells[k])
                note = f"start ({xy[0]:.2f}, {xy[1]:.2f}) was {why}; moved {d[k]:.2f} m to free floor at ({new[0]:.2f}, {new[1]:.2f})"
                return new, (int(cells[k, 0]), int(cells[k, 1])), note
    raise UsageError(f"start ({xy[0]:.2f}, {xy[1]:.2f}) is {why}, with no free floor within {config.snap_radius:.2f} m")


def _unreachable_reason(fmap: FloorMap, start_cell: tuple[int, int], cand_cells: np.ndarray, label: str, config: NavConfig) -> str:
    """Why no candidate is in the start's component: a too-narrow opening, or fully enclosed."""
    thin = fmap.clearance >= fmap.cell * 0.75  # any gap at all between geometry
    labels, _ = ndimage.label(thin, structure=_EIGHT)
    s = labels[start_cell]
    if s and np.any(labels[cand_cells[:, 0], cand_cells[:, 1]] == s):
        return (
            f"{label} is unreachable: the only way there passes an opening narrower than the body "
            f"(needs {2 * config.body_radius:.2f} m free width for body radius {config.body_radius:.2f} m)"
        )
    return f"{label} is unreachable: it is enclosed, no opening connects the start to it"


def _plan(fmap: FloorMap, tg: TargetGeometry, start: StartPose, config: NavConfig, t0: float, label: str) -> NavPlan:
    timings: dict[str, float] = {}
    tick = t0

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[name] = (now - tick) * 1000.0
        tick = now

    lap("maps")
    costs = cost_grid(fmap, config)
    walkable = np.isfinite(costs)
    xy0 = np.array([start.x, start.y])
    start_xy, start_cell, note = snap_start(fmap, walkable, xy0, config)
    notes = [note] if note else []
    labels, _ = fmap.components(config.hard_clearance)
    comp = labels[start_cell]
    cands, _ = find_candidates(fmap, walkable, tg, config)
    lap("candidates")
    if len(cands.cells) == 0:
        near = nearest_walkable_m(fmap, walkable, tg)
        where = f"the nearest walkable floor is {near:.2f} m away horizontally" if near is not None else "there is no walkable floor within 3 m"
        raise UnreachableError(
            f"{label} is out of reach: no free floor from which it is {config.reach_min:.2f}-{config.reach_max:.2f} m "
            f"away horizontally ({where}; body radius {config.body_radius:.2f} m)"
        )
    same = labels[cands.cells[:, 0], cands.cells[:, 1]] == comp
    if not same.any():
        raise UnreachableError(_unreachable_reason(fmap, start_cell, cands.cells, label, config))
    cands = _subset(cands, same)
    los = free_line(cands, tg, fmap.floor_z, config)
    lap("free_line")
    if not los.any():
        raise UnreachableError(f"{label} is unreachable: every stand point near it is blocked (no free line from the body to it)")
    cands = _subset(cands, los)
    result = search(costs, fmap.cell, start_cell, cands.cells, cands.exit_cost, method=config.search)
    lap("search")
    if result is None:  # cannot happen when the components agree; kept as a clear failure
        raise UnreachableError(f"{label} is unreachable: no collision-free path from the start")
    k = result.goal_index
    stand_xy = cands.xy[k]
    target_point = cands.target_point[k]
    face = math.atan2(target_point[1] - stand_xy[1], target_point[0] - stand_xy[0])

    # --- geometry of the walk ------------------------------------------------------------
    cells = result.cells
    pts = fmap.to_world(cells)
    if tuple(int(v) for v in fmap.to_cell(start_xy)) == tuple(cells[0]):
        pts[0] = start_xy
    else:  # started just outside the walkable cells (see `snap_start`): join the first cell
        cells = np.concatenate([cells[:1], cells])
        pts = np.concatenate([start_xy[None], pts])
    if np.linalg.norm(pts[-1] - stand_xy) > 1e-9:  # the stand point slid off its cell centre
        cells = np.concatenate([cells, cells[-1:]])
        pts = np.concatenate([pts, stand_xy[None]])
    idx = corner_indices(cells)
    clr = fmap.clearance[cells[:, 0], cells[:, 1]]
    keep = np.array([clr[(idx[i - 1] if i else 0) : idx[i] + 1].min() for i in range(len(idx))])
    poly = shortcut(pts[idx], keep, fmap, config)
    dense = round_corners(poly, fmap, config)
    dense = spline_smooth(dense, fmap, config)
    lap("smoothing")
    length = float(arc_length(dense)[-1]) if len(dense) > 1 else 0.0
    h0 = start.heading
    if length >= 1e-3:
        way, times = sample_by_time(dense, config)
    else:  # already there
        way, times = np.asarray([start_xy]), np.zeros(1)
    if length < config.short_walk:
        # a short repositioning step is taken facing the target (a side-step), after turning
        # on the spot to face it; a missing start heading means already facing it
        h_start = face if h0 is None else h0
        walk_h = np.full(len(way), face)
        if abs(float(wrap(face - h_start))) > 1e-3 or len(way) < 2:
            way, times, heads = turn_then_walk(way, times, walk_h, h_start, config)
        else:
            heads = walk_h
    else:
        heads = headings_along(way, face, h0, config)
        if h0 is not None:
            walk_h = headings_along(way, face, None, config)
            if abs(float(wrap(walk_h[0] - h0))) > config.turn_in_place_above:
                way, times, heads = turn_then_walk(way, times, walk_h, h0, config)
    first_h = float(heads[0])
    # exact to 3 m (a path farther than that from everything reports 3 m or the bounds distance)
    clearance_min = float(fmap.distance(dense, upper=3.0).min()) if len(dense) else 0.0
    lap("timing")
    plan_ms = (time.perf_counter() - t0) * 1000.0
    return NavPlan(
        start=np.array([start_xy[0], start_xy[1], first_h if h0 is None else float(wrap(h0))]),
        stand=np.array([stand_xy[0], stand_xy[1], float(wrap(face))]),
        waypoints=way,
        times=times,
        headings=heads,
        length_m=length,
        duration_s=float(times[-1]),
        clearance_min_m=clearance_min,
        plan_ms=plan_ms,
        snapped_start=note is not None,
        notes=notes,
        target=tg.name,
        target_point=np.asarray(target_point, dtype=np.float64),
        requested_start=np.array([start.x, start.y, np.nan if start.heading is None else start.heading]),
        reach_m=float(cands.reach[k]),
        timings_ms=timings,
    )


def _subset(c: Candidates, mask: np.ndarray) -> Candidates:
    return Candidates(c.cells[mask], c.xy[mask], c.target_point[mask], c.reach[mask], c.exit_cost[mask])
