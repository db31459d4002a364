"""Random furnished rooms and random requests for a stress evaluation, deterministic per (run seed, index).

`draw_case(run_seed, index)` builds one scene -- {name: Z-up trimesh} in Blender world metres --
and one `StressCase` (start, target, action, place); `write_case` writes the scene as a .glb with
one node per object (like `hosig.scene.demo.write_demo_scene`). The same (run seed, index) always
gives identical geometry and case: every random draw comes from
``np.random.default_rng([run_seed, index])`` in a fixed order.

How a case is built (all in a local frame with the floor top at z = 0, x/y >= 0):
1. a layout: the free floor as a union of axis-aligned rectangles (`Layout.rects`) of one family
   (`room`, `hall`, `two_rooms`, `l_corridor`, `u_corridor`, `closet`); corridors are 0.7-2 m wide;
2. a 2D raster of the layout (`_Plan`, 5 cm cells, 10 cm in halls): walls are the 10 cm ring
   around the free floor (so partitions between neighbouring rectangles close by themselves),
   minus door holes in the outer walls (with a lintel at 2.1 m);
3. furniture (closed boxes, like the demo rooms) placed inside the free floor without overlapping
   each other; a placement is refused when it leaves no connected lane of >= 0.7 m width
   (`LANE_HALF`), so start and target stay connected;
4. the target and 3-8 distractors resting exactly on a surface (table, counter, desk, coffee
   table, shelf board, chair seat, floor), >= 5 cm apart; the target must be within reach
   (`REACH_XY`) of free floor connected to the start;
5. a start >= 0.4 m from every footprint (`START_CLEAR`), chosen by the walking distance to the
   target (about a third of the walks are longer than 8 m where the layout allows);
6. an action and, for pick-place, a place (a free table-like object's name or a point on a free
   part of a surface);
7. a final quarter-turn rotation and shift of the whole scene, and the floor height offset
   (everything -- walls, furniture, objects, start, place -- moves with the floor).

A small minority of targets (`P_HIGH_TARGET`) sits on a board above the product's reach height
(2.0 m above the floor); their case says ``expect == "unreachable"``. All others say ``"ok"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from scipy import ndimage

from hosig.scene.config import SceneConfig
from hosig.scene.demo import Room, box, cylinder, merge
from hosig.scene.gltf import zup_to_yup
from hosig.scene.scene import pickable_rule

Rect = tuple[float, float, float, float]  # (x0, y0, x1, y1), metres, x0 < x1 and y0 < y1

# --- draw proportions ------------------------------------------------------------------------
FAMILIES: tuple[tuple[str, float], ...] = (
    ("room", 0.26),
    ("hall", 0.16),
    ("two_rooms", 0.14),
    ("l_corridor", 0.16),
    ("u_corridor", 0.16),
    ("closet", 0.12),
)
FLOORS: tuple[tuple[str, float], ...] = (("plane", 0.34), ("thin_slab", 0.33), ("thick_slab", 0.33))
ACTIONS: tuple[tuple[str, float], ...] = (("reach", 0.20), ("pick", 0.45), ("pick-place", 0.35))
TARGET_KINDS: tuple[tuple[str, float], ...] = (("solid", 1 / 3), ("hollow", 1 / 3), ("thin", 1 / 3))
P_FLOOR_RAISED = 0.15  # floor top at +0.2 .. +1.0 m
P_FLOOR_LOWERED = 0.15  # floor top at -1.5 .. -0.2 m
FLOOR_SUPPORT_WEIGHT = 0.5  # the floor (always present) is drawn as a target support half as often as a furniture kind
P_HIGH_TARGET = 0.03  # target on a board above reach (expect "unreachable")
P_FAR_START = 0.5  # where walks > FAR_WALK_M exist, this share of starts is drawn among them
FAR_WALK_M = 8.0

# --- geometry rules ----------------------------------------------------------------------------
WALL_T = 0.10
DOOR_H = 2.1
OBJ_GAP = 0.05  # small objects keep this far from each other (footprint to footprint)
FLOOR_OBJ_GAP = 0.10  # objects on the floor keep this far from furniture footprints (none under tables)
LANE_HALF = 0.31  # lane cells are this far from walls and (one-cell grown) footprints: furniture leaves >= 0.7 m lanes
STAND_CLEAR = 0.30  # free floor a body can stand on (navigation: body radius 0.25 + grid and sampling margins)
START_CLEAR = 0.40  # the start keeps this far from every wall, furniture and object footprint
REACH_XY = 0.55  # the target's footprint is at most this far (horizontally) from standable floor
REACH_Z = 2.0  # the product's highest reachable point above the floor (NavConfig.reach_height_max)
REGULAR_TOP_BOARD = 1.9  # highest shelf board of ordinary shelves
BLOCK_H = 0.05  # objects lower than this do not block walking (NavConfig.band_low)
MIN_POCKET_CELLS = 40  # separate lane pieces smaller than this (cells) are ignored by the lane test


@dataclass(frozen=True)
class StressCase:
    """One stress request and what was drawn for it (world frame: Blender, metres, Z up).

    Invariants: `target` names a pickable object of `target_kind` resting on `support_name`
    (its lowest point at `support_z`); `start` is >= 0.4 m from every footprint on the floor at
    `floor_z` and connected to a stand point of the target (>= 0.3 m from every footprint, on an
    open side of the support) through free floor whose gaps beside furniture are >= 0.7 m;
    `place` is None unless `action == "pick-place"`; `walk_m` is the raster walking distance
    from the start to the nearest stand cell of the target; `expect` is "unreachable" only for
    targets above the reach height.
    """

    index: int
    seed: int
    room: str
    floor: str
    floor_z: float
    size_m: tuple[float, float]
    start: tuple[float, float, float]
    target: str
    target_kind: str
    support: str
    action: str
    place: str | tuple[float, float, float] | None
    support_name: str = ""
    support_z: float = 0.0
    expect: str = "ok"
    walk_m: float = 0.0

    def request(self, scene_path: str) -> dict:
        """A `hosig.pipeline.request.GenerateRequest` dict for this case (hand "auto")."""
        req: dict = {
            "scene": str(scene_path),
            "start": [float(v) for v in self.start],
            "target": self.target,
            "action": self.action,
            "seed": int(self.seed),
            "hand": "auto",
        }
        if self.place is not None:
            req["place"] = self.place if isinstance(self.place, str) else [float(v) for v in self.place]
        return req

    def to_json(self) -> dict:
        """Plain JSON-able dict (tuples as lists)."""
        d = asdict(self)
        d["size_m"] = list(self.size_m)
        d["start"] = list(self.start)
        if isinstance(self.place, tuple):
            d["place"] = list(self.place)
        return d


# ============================================================================================
# Small helpers
# ============================================================================================


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    """One name of a (name, weight) table, drawn with one uniform number."""
    weights = np.array([w for _, w in table], dtype=np.float64)
    u = float(rng.random()) * float(weights.sum())
    i = int(np.searchsorted(np.cumsum(weights), u, side="right"))
    return table[min(i, len(table) - 1)][0]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _snap(v: float, step: float) -> float:
    """`v` rounded to a multiple of `step` (layout coordinates lie on the raster lattice)."""
    return round(round(v / step) * step, 6)


def _rect_gap(a: Rect, b: Rect) -> float:
    """Distance between two rectangles (0 when they touch or overlap)."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return math.hypot(dx, dy)


def _grow(r: Rect, d: float) -> Rect:
    return (r[0] - d, r[1] - d, r[2] + d, r[3] + d)


def _quarter(q: int) -> np.ndarray:
    """(2,2) exact rotation by q quarter turns counter-clockwise."""
    c, s = ((1, 0), (0, 1), (-1, 0), (0, -1))[q % 4]
    return np.array([[c, -s], [s, c]], dtype=np.float64)


def _turn_rect(r: Rect, q: int, cx: float, cy: float) -> Rect:
    """Rectangle of a canonical (centred at the origin) rect turned by q quarter turns, moved to (cx, cy)."""
    pts = np.array([[r[0], r[1]], [r[2], r[3]]]) @ _quarter(q).T
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0] + cx), float(lo[1] + cy), float(hi[0] + cx), float(hi[1] + cy))


def _turn_mesh(mesh: trimesh.Trimesh, q: int, cx: float, cy: float, z: float = 0.0) -> trimesh.Trimesh:
    """Copy of `mesh` turned by q quarter turns about +Z through the origin, then moved by (cx, cy, z)."""
    v = np.array(mesh.vertices, dtype=np.float64)
    v[:, :2] = v[:, :2] @ _quarter(q).T
    v += np.array([cx, cy, z])
    return trimesh.Trimesh(v, mesh.faces.copy(), process=False)


def _yaw_mesh(mesh: trimesh.Trimesh, yaw: float) -> trimesh.Trimesh:
    """Copy of `mesh` rotated by `yaw` radians about +Z through the origin."""
    c, s = math.cos(yaw), math.sin(yaw)
    v = np.array(mesh.vertices, dtype=np.float64)
    v[:, :2] = v[:, :2] @ np.array([[c, -s], [s, c]]).T
    return trimesh.Trimesh(v, mesh.faces.copy(), process=False)


# ============================================================================================
# Layouts: the free floor as a union of rectangles
# ============================================================================================


@dataclass
class Layout:
    """Free floor of one family in the local frame (floor top z = 0).

    rects: rectangles whose union is the walkable floor (corners on the `cell` lattice);
    holes: door gaps cut into the outer wall ring (each lies in the ring, outside the floor);
    lintels: rectangles (door holes and interior doorways) that get a wall piece from DOOR_H up.
    """

    family: str
    rects: list[Rect]
    cell: float
    wall_h: float
    holes: list[Rect]
    lintels: list[Rect]

    @property
    def bounds(self) -> Rect:
        a = np.array(self.rects)
        return (float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max()))


def _add_room(rects: list[Rect], new: Rect, parent: Rect) -> bool:
    """Append `new` (which must touch `parent`) unless it comes within 0.2 m of another rect."""
    for r in rects:
        if r is not parent and _rect_gap(r, new) < 2 * WALL_T - 1e-9:
            return False
    rects.append(new)
    return True


def _layout_box(rng: np.random.Generator, lo: float, hi: float, cell: float) -> list[Rect]:
    """One rectangle with both sides in [lo, hi]."""
    w, d = _snap(_u(rng, lo, hi), cell), _snap(_u(rng, lo, hi), cell)
    return [(0.0, 0.0, w, d)]


def _layout_two_rooms(rng: np.random.Generator, cell: float) -> tuple[list[Rect], list[Rect]]:
    """Two rooms side by side along x, a 10 cm partition with a 0.9-1.2 m doorway; (rects, lintels)."""
    w, d = _snap(_u(rng, 7.0, 18.0), cell), _snap(_u(rng, 3.0, 8.0), cell)
    xp = _snap(_u(rng, 0.35, 0.65) * w, cell)
    dw = _snap(_u(rng, 0.9, 1.2), cell)
    yd = _snap(_u(rng, 0.2, d - 0.2 - dw), cell)
    door = (xp, yd, xp + WALL_T, yd + dw)
    return [(0.0, 0.0, xp, d), (xp + WALL_T, 0.0, w, d), door], [door]


def _corridor_width(rng: np.random.Generator, cell: float) -> float:
    """0.7-2 m, biased to narrow (half of them below 1.2 m)."""
    w = _u(rng, 0.7, 1.2) if rng.random() < 0.5 else _u(rng, 1.2, 2.0)
    return max(0.7, _snap(w, cell))


def _end_room(rng: np.random.Generator, rects: list[Rect], leg: Rect, end: str, cell: float) -> None:
    """Maybe widen the `end` ('x0', 'x1', 'y0', 'y1') of a corridor leg into a 2.5-4.5 m room."""
    a, b = _snap(_u(rng, 2.5, 4.5), cell), _snap(_u(rng, 2.5, 4.5), cell)
    x0, y0, x1, y1 = leg
    mx, my = _snap((x0 + x1) / 2 - a / 2, cell), _snap((y0 + y1) / 2 - b / 2, cell)
    room = {
        "x1": (x1, my, x1 + a, my + b),
        "x0": (x0 - a, my, x0, my + b),
        "y1": (mx, y1, mx + a, y1 + b),
        "y0": (mx, y0 - b, mx + a, y0),
    }[end]
    _add_room(rects, room, leg)


def _layout_l(rng: np.random.Generator, cell: float) -> list[Rect]:
    """East leg then north leg (total 8-30 m), optional rooms at either end."""
    w = _corridor_width(rng, cell)
    l1, l2 = _snap(_u(rng, 4.0, 16.0), cell), _snap(_u(rng, 4.0, 14.0), cell)
    leg1, leg2 = (0.0, 0.0, l1, w), (l1 - w, 0.0, l1, l2)
    rects = [leg1, leg2]
    if rng.random() < 0.5:
        _end_room(rng, rects, leg2, "y1", cell)
    if rng.random() < 0.3:
        _end_room(rng, rects, leg1, "x0", cell)
    return rects


def _layout_u(rng: np.random.Generator, cell: float) -> list[Rect]:
    """East leg, north connector, west leg back (legs >= 0.2 m apart), optional rooms at the ends."""
    w = _corridor_width(rng, cell)
    l1 = _snap(_u(rng, 4.0, 12.0), cell)
    gap = _snap(_u(rng, 0.2, 4.0), cell)
    g = 2 * w + gap
    l3 = max(_snap(_u(rng, 3.0, l1 + 2.0), cell), w + 1.0)
    leg1, leg2, leg3 = (0.0, 0.0, l1, w), (l1 - w, 0.0, l1, g), (round(l1 - l3, 6), g - w, l1, g)
    rects = [leg1, leg2, leg3]
    if rng.random() < 0.5:
        _end_room(rng, rects, leg3, "x0", cell)
    if rng.random() < 0.3:
        _end_room(rng, rects, leg1, "x0", cell)
    return rects


def draw_layout(rng: np.random.Generator, family: str) -> Layout:
    """A layout of `family` (one of FAMILIES, see the module docstring)."""
    cell = 0.1 if family == "hall" else 0.05
    lintels: list[Rect] = []
    if family == "room":
        rects = _layout_box(rng, 3.0, 12.0, cell)
    elif family == "hall":
        rects = _layout_box(rng, 12.0, 25.0, cell)
    elif family == "closet":
        rects = _layout_box(rng, 1.8, 3.0, cell)
    elif family == "two_rooms":
        rects, lintels = _layout_two_rooms(rng, cell)
    elif family == "l_corridor":
        rects = _layout_l(rng, cell)
    else:
        rects = _layout_u(rng, cell)
    wall_h = round(_u(rng, 2.4, 3.0), 2)
    return Layout(family, rects, cell, wall_h, [], lintels)


# ============================================================================================
# The raster plan: free floor, walls, footprints, lanes
# ============================================================================================


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [a, b) index runs of True in a 1D bool array."""
    d = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def mask_rects(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Disjoint cell rectangles (iy0, ix0, iy1, ix1), half-open, exactly covering a (ny, nx) bool mask.

    Equal runs of consecutive rows merge, so a rectangle ring gives 4 pieces and a filled
    rectangle one."""
    out: list[tuple[int, int, int, int]] = []
    open_: dict[tuple[int, int], int] = {}
    for iy in range(mask.shape[0] + 1):
        runs = set(_runs(mask[iy])) if iy < mask.shape[0] else set()
        for key in sorted(open_):
            if key not in runs:
                out.append((open_.pop(key), key[0], iy, key[1]))
        for key in sorted(runs):
            open_.setdefault(key, iy)
    return sorted(out)


class _Plan:
    """2D rasters of a layout: `region` (free floor), `wall` (10 cm ring minus door holes),
    `furn` (furniture footprints). Arrays are (ny, nx) indexed [iy, ix]; cell (iy, ix) covers
    x in origin_x + [ix, ix+1) * cell, y likewise."""

    def __init__(self, layout: Layout, margin: float = 0.5) -> None:
        c = layout.cell
        x0, y0, x1, y1 = layout.bounds
        self.cell = c
        self.ox, self.oy = _snap(x0 - margin, c), _snap(y0 - margin, c)
        self.nx = int(round((x1 + margin - self.ox) / c))
        self.ny = int(round((y1 + margin - self.oy) / c))
        self.region = np.zeros((self.ny, self.nx), dtype=bool)
        for r in layout.rects:
            self.region[self.slices(r)] = True
        k = int(round(WALL_T / c))
        ring = ndimage.binary_dilation(self.region, structure=np.ones((2 * k + 1, 2 * k + 1), bool)) & ~self.region
        self.wall = ring
        self.furn = np.zeros_like(self.region)

    # -- coordinates ----------------------------------------------------------------------------
    def slices(self, r: Rect) -> tuple[slice, slice]:
        """(y slice, x slice) of every cell the rectangle touches (conservative)."""
        c = self.cell
        ix0 = max(int(math.floor((r[0] - self.ox) / c + 1e-6)), 0)
        ix1 = min(int(math.ceil((r[2] - self.ox) / c - 1e-6)), self.nx)
        iy0 = max(int(math.floor((r[1] - self.oy) / c + 1e-6)), 0)
        iy1 = min(int(math.ceil((r[3] - self.oy) / c - 1e-6)), self.ny)
        return slice(iy0, max(iy1, iy0)), slice(ix0, max(ix1, ix0))

    def centres(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """(N,2) world xy of cell centres."""
        return np.stack([self.ox + (ix + 0.5) * self.cell, self.oy + (iy + 0.5) * self.cell], axis=1)

    def rect_of(self, iy0: int, ix0: int, iy1: int, ix1: int) -> Rect:
        c = self.cell
        return (round(self.ox + ix0 * c, 6), round(self.oy + iy0 * c, 6), round(self.ox + ix1 * c, 6), round(self.oy + iy1 * c, 6))

    # -- tests ----------------------------------------------------------------------------------
    def on_floor(self, r: Rect) -> bool:
        """Every cell the rectangle touches is free floor."""
        sl = self.slices(r)
        sub = self.region[sl]
        return sub.size > 0 and bool(sub.all()) and self._exact(r, sl)

    def _exact(self, r: Rect, sl: tuple[slice, slice]) -> bool:
        """The slices cover the whole rectangle (it is not clipped by the raster's edge)."""
        c = self.cell
        return (
            self.ox + sl[1].start * c <= r[0] + 1e-6
            and self.ox + sl[1].stop * c >= r[2] - 1e-6
            and self.oy + sl[0].start * c <= r[1] + 1e-6
            and self.oy + sl[0].stop * c >= r[3] - 1e-6
        )

    def clear_of_furniture(self, r: Rect, gap: float) -> bool:
        return not bool(self.furn[self.slices(_grow(r, gap))].any())

    def blocked(self, extra: np.ndarray | None = None) -> np.ndarray:
        b = ~self.region | self.furn
        return b if extra is None else b | extra

    def clearance(self, blocked: np.ndarray) -> np.ndarray:
        """(ny, nx) lower bound of the distance (m) from each cell centre to the nearest blocked
        cell (centre distance minus half a cell diagonal, so it holds diagonally too)."""
        return ndimage.distance_transform_edt(~blocked) * self.cell - self.cell / math.sqrt(2)

    def lanes_connected(self, obstacles: np.ndarray) -> bool:
        """With the `obstacles` (footprint mask) grown by one cell, the cells >= LANE_HALF from
        every wall and obstacle form one connected lane (tiny pieces ignored). The growth makes a
        gap between furniture and a wall pass only from 0.7 m (0.75 m between two pieces) even
        though walls lie on the cell lattice and footprints do not."""
        grown = ndimage.binary_dilation(obstacles, structure=np.ones((3, 3), bool))
        lane = self.clearance(self.blocked(grown)) >= LANE_HALF - 1e-9
        labels, n = ndimage.label(lane, structure=np.ones((3, 3), bool))
        if n <= 1:
            return n == 1
        sizes = np.bincount(labels.ravel())[1:]
        return int((sizes >= MIN_POCKET_CELLS).sum()) == 1

    def mark(self, r: Rect, extra: np.ndarray | None = None) -> np.ndarray:
        """A copy of `extra` (or an empty mask) with the rectangle's cells set."""
        m = np.zeros_like(self.region) if extra is None else extra.copy()
        m[self.slices(r)] = True
        return m

    # -- walls -------------------------------------------------------------------------------
    def outer_sides(self, layout: Layout) -> list[tuple[Rect, str]]:
        """(rect, side) pairs whose side lies on the layout's bounding box (doors there lead nowhere)."""
        bx0, by0, bx1, by1 = layout.bounds
        out = []
        for r in layout.rects:
            for side, on in (("y0", r[1] == by0), ("y1", r[3] == by1), ("x0", r[0] == bx0), ("x1", r[2] == bx1)):
                if on:
                    out.append((r, side))
        return out

    def cut_door(self, layout: Layout, rng: np.random.Generator) -> None:
        """Cut one 0.9-1.2 m door hole into an outer wall (if a side is long enough); lintel above."""
        sides = self.outer_sides(layout)
        if not sides:
            return
        r, side = sides[int(rng.integers(len(sides)))]
        c = self.cell
        dw = _snap(_u(rng, 0.9, 1.2), c)
        along = (r[0], r[2]) if side in ("y0", "y1") else (r[1], r[3])
        if along[1] - along[0] < dw + 0.6:
            return
        a = _snap(_u(rng, along[0] + 0.3, along[1] - 0.3 - dw), c)
        hole = {
            "y0": (a, r[1] - WALL_T, a + dw, r[1]),
            "y1": (a, r[3], a + dw, r[3] + WALL_T),
            "x0": (r[0] - WALL_T, a, r[0], a + dw),
            "x1": (r[2], a, r[2] + WALL_T, a + dw),
        }[side]
        sl = self.slices(hole)
        if not self.wall[sl].all():
            return
        self.wall[sl] = False
        layout.holes.append(hole)
        layout.lintels.append(hole)


# ============================================================================================
# Furniture
# ============================================================================================


@dataclass(frozen=True)
class Surface:
    """A horizontal top objects may rest on: `owner` object, its `kind`, top height `z` (local
    frame), the rectangle object footprints must lie in, the free height above it, and the
    axis directions (unit (dx, dy)) it may be reached from: None = every side; a shelf, counter or
    desk only from its front, a chair not over its backrest."""

    owner: str
    kind: str
    z: float
    rect: Rect
    headroom: float = math.inf
    access: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class Item:
    """A small object placed in the scene: footprint rect (axis-aligned box of the yawed mesh), z range."""

    name: str
    kind: str
    rect: Rect
    z0: float
    z1: float
    surface: Surface


class _Build:
    """Mutable state of one case while it is drawn: meshes (unique names), surfaces, objects."""

    def __init__(self, rng: np.random.Generator, layout: Layout) -> None:
        self.rng = rng
        self.layout = layout
        self.plan = _Plan(layout)
        self.room = Room(rng)
        self.counts: dict[str, int] = {}
        self.surfaces: list[Surface] = []
        self.items: list[Item] = []

    def name(self, prefix: str) -> str:
        """Next unique name `prefix_k` (k from 1)."""
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}_{self.counts[prefix]}"

    # -- placement tests ---------------------------------------------------------------------
    def fits(self, foot: Rect, gap: float = 0.05) -> bool:
        """Footprint on free floor, `gap` from other furniture, lanes still connected."""
        p = self.plan
        if not p.on_floor(foot) or not p.clear_of_furniture(foot, gap):
            return False
        return p.lanes_connected(p.furn | p.mark(foot, self.floor_blockers()))

    def commit(self, name: str, mesh: trimesh.Trimesh, foot: Rect) -> None:
        self.room.add(name, mesh)
        self.plan.furn[self.plan.slices(foot)] = True

    def floor_blockers(self, min_h: float = BLOCK_H) -> np.ndarray:
        """Mask of the footprints of floor objects at least `min_h` tall (default: those that block walking)."""
        m = np.zeros_like(self.plan.region)
        for it in self.items:
            if it.surface.kind == "floor" and it.z1 - it.z0 >= min_h:
                m[self.plan.slices(it.rect)] = True
        return m

    # -- slots -------------------------------------------------------------------------------
    def wall_slot(self, length: float, depth: float) -> tuple[float, float, int, Rect] | None:
        """A footprint `length` along a wall and `depth` into the room, back flush to a wall:
        (centre x, centre y, quarter turns of the canonical back-at-+y frame, footprint)."""
        p = self.plan
        rects = self.layout.rects
        r = rects[int(self.rng.integers(len(rects)))]
        side = ("y1", "x0", "y0", "x1")[int(self.rng.integers(4))]
        q = {"y1": 0, "x0": 1, "y0": 2, "x1": 3}[side]
        lo, hi = (r[0], r[2]) if side in ("y0", "y1") else (r[1], r[3])
        if hi - lo < length or (r[3] - r[1] if side in ("y0", "y1") else r[2] - r[0]) < depth:
            return None
        a = _u(self.rng, lo, hi - length)
        foot, back = {
            "y1": ((a, r[3] - depth, a + length, r[3]), (a, r[3], a + length, r[3] + 0.01)),
            "y0": ((a, r[1], a + length, r[1] + depth), (a, r[1] - 0.01, a + length, r[1])),
            "x0": ((r[0], a, r[0] + depth, a + length), (r[0] - 0.01, a, r[0], a + length)),
            "x1": ((r[2] - depth, a, r[2], a + length), (r[2], a, r[2] + 0.01, a + length)),
        }[side]
        if not p.wall[p.slices(back)].all():  # the back must be against a wall, not a doorway
            return None
        return (foot[0] + foot[2]) / 2, (foot[1] + foot[3]) / 2, q, foot

    def free_slot(self, w: float, d: float, margin: float) -> tuple[float, float, Rect] | None:
        """A free-standing footprint w x d (either way round) `margin` inside one floor rectangle."""
        rects = self.layout.rects
        areas = np.array([(r[2] - r[0]) * (r[3] - r[1]) for r in rects])
        r = rects[int(self.rng.choice(len(rects), p=areas / areas.sum()))]
        if self.rng.random() < 0.5:
            w, d = d, w
        if r[2] - r[0] < w + 2 * margin or r[3] - r[1] < d + 2 * margin:
            return None
        cx = _u(self.rng, r[0] + margin + w / 2, r[2] - margin - w / 2)
        cy = _u(self.rng, r[1] + margin + d / 2, r[3] - margin - d / 2)
        return cx, cy, (cx - w / 2, cy - d / 2, cx + w / 2, cy + d / 2)


def _front(q: int) -> tuple[int, int]:
    """Outward front direction of wall furniture turned by q quarter turns (canonical front: -y)."""
    d = _quarter(q) @ np.array([0.0, -1.0])
    return int(round(d[0])), int(round(d[1]))


def _table_mesh(w: float, d: float, h: float, top_t: float = 0.04, leg: float = 0.05) -> trimesh.Trimesh:
    """Canonical table centred at the origin: top w (x) by d (y) at height h, four legs."""
    parts = [box([-w / 2, -d / 2, h - top_t], [w / 2, d / 2, h])]
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = sx * (w / 2 - leg), sy * (d / 2 - leg)
            parts.append(box([lx - leg / 2, ly - leg / 2, 0], [lx + leg / 2, ly + leg / 2, h - top_t]))
    return merge(parts)


def _shelf_mesh(length: float, depth: float, boards: list[float], t: float = 0.02) -> tuple[trimesh.Trimesh, list[tuple[Rect, float, float]]]:
    """Canonical open shelf (back at +y, front at -y, centred): two sides and a back up to the top
    board, boards with tops at `boards` (the last one is the top). Returns the mesh and per board
    (canonical rect, top z, headroom)."""
    top = boards[-1]
    L, D = length, depth
    parts = [
        box([-L / 2, -D / 2, 0], [-L / 2 + t, D / 2, top]),
        box([L / 2 - t, -D / 2, 0], [L / 2, D / 2, top]),
        box([-L / 2 + t, D / 2 - t, 0], [L / 2 - t, D / 2, top]),
    ]
    tops = []
    for i, z in enumerate(boards):
        parts.append(box([-L / 2 + t, -D / 2, z - t], [L / 2 - t, D / 2 - t, z]))
        head = boards[i + 1] - t - z if i + 1 < len(boards) else math.inf
        tops.append(((-L / 2 + t + 0.01, -D / 2 + 0.01, L / 2 - t - 0.01, D / 2 - t - 0.01), z, head))
    return merge(parts), tops


def _board_heights(rng: np.random.Generator, high: bool) -> list[float]:
    """Board tops from 5-12 cm up, 30-45 cm apart, the top one <= 1.9 m (or, `high`, 2.05-2.2 m)."""
    z = _u(rng, 0.05, 0.12)
    limit = 1.70 if high else REGULAR_TOP_BOARD
    boards = [round(z, 3)]
    while True:
        z += _u(rng, 0.30, 0.45)
        if z > limit:
            break
        boards.append(round(z, 3))
    if high:
        boards.append(round(_u(rng, 2.05, 2.2), 3))
    return boards


def _chair_surface(name: str, cx: float, cy: float, facing: float) -> Surface:
    """Seat rectangle of a demo chair (0.45 m square at 0.45 m), without the backrest strip."""
    s = 0.45 / 2 - 0.02
    bx, by = -math.cos(facing), -math.sin(facing)
    x0, y0, x1, y1 = cx - s, cy - s, cx + s, cy + s
    if abs(bx) > abs(by):
        x0, x1 = (x0, x1 - 0.05) if bx > 0 else (x0 + 0.05, x1)
    else:
        y0, y1 = (y0, y1 - 0.05) if by > 0 else (y0 + 0.05, y1)
    back = (int(round(bx)), int(round(by)))
    access = tuple(d for d in ((1, 0), (-1, 0), (0, 1), (0, -1)) if d != back)
    return Surface(name, "chair", 0.45, (x0, y0, x1, y1), math.inf, access)


def _add_chair(b: _Build, cx: float, cy: float, facing: float) -> bool:
    foot = (cx - 0.225, cy - 0.225, cx + 0.225, cy + 0.225)
    if not b.fits(foot):
        return False
    name = b.name("chair")
    b.room.chair(name, cx, cy, facing)
    b.plan.furn[b.plan.slices(foot)] = True
    b.surfaces.append(_chair_surface(name, cx, cy, facing))
    return True


def _chairs_around(b: _Build, foot: Rect, p_side: float) -> None:
    """Chairs 5-15 cm off each side of a table footprint (each side with probability p_side)."""
    x0, y0, x1, y1 = foot
    for side in ("y0", "y1", "x0", "x1"):
        if b.rng.random() >= p_side:
            continue
        g = _u(b.rng, 0.05, 0.15) + 0.225
        if side in ("y0", "y1"):
            cx = _u(b.rng, x0 + 0.2, x1 - 0.2) if x1 - x0 > 0.4 else (x0 + x1) / 2
            cy, facing = (y0 - g, math.pi / 2) if side == "y0" else (y1 + g, -math.pi / 2)
        else:
            cy = _u(b.rng, y0 + 0.2, y1 - 0.2) if y1 - y0 > 0.4 else (y0 + y1) / 2
            cx, facing = (x0 - g, 0.0) if side == "x0" else (x1 + g, math.pi)
        _add_chair(b, cx, cy, facing)


def add_table(b: _Build, coffee: bool = False) -> bool:
    """A free-standing table (0.7-0.8 m; coffee table 0.35-0.45 m) with chairs around it."""
    if coffee:
        w, d, h, kind = _u(b.rng, 0.8, 1.2), _u(b.rng, 0.5, 0.7), _u(b.rng, 0.35, 0.45), "coffee_table"
    else:
        w, d, h, kind = _u(b.rng, 0.6, 1.8), _u(b.rng, 0.6, 1.0), _u(b.rng, 0.70, 0.80), "table"
    slot = b.free_slot(w, d, margin=0.4 if coffee else 0.75)
    if slot is None or not b.fits(slot[2]):
        return False
    cx, cy, foot = slot
    name = b.name(kind)
    top_t = 0.03 if coffee else 0.04
    b.commit(name, _turn_mesh(_table_mesh(foot[2] - foot[0], foot[3] - foot[1], h, top_t), 0, cx, cy), foot)
    b.surfaces.append(Surface(name, kind, h, _grow(foot, -0.02)))
    if not coffee:
        _chairs_around(b, foot, 0.6)
    return True


def _against_wall(b: _Build, kind: str, L: float, D: float, h: float, mesh: trimesh.Trimesh,
                  front_depth: float) -> tuple[float, float, int] | None:
    """Put a worktop ``mesh`` (L x D, top at ``h``, built centred at the origin with its front at
    -y) against a free stretch of wall; its front ``front_depth`` m carry objects. (cx, cy, quarter
    turn) or None when no wall has room."""
    slot = b.wall_slot(L, D)
    if slot is None or not b.fits(slot[3]):
        return None
    cx, cy, q, foot = slot
    name = b.name(kind)
    b.commit(name, _turn_mesh(mesh, q, cx, cy), foot)
    rect = _turn_rect((-L / 2 + 0.03, -D / 2 + 0.02, L / 2 - 0.03, -D / 2 + front_depth), q, cx, cy)
    b.surfaces.append(Surface(name, kind, h, rect, math.inf, (_front(q),)))
    return cx, cy, q


def add_desk(b: _Build) -> bool:
    """A desk (0.72-0.76 m, legs) against a wall, objects on its front 35 cm, a chair in front."""
    L, D, h = _u(b.rng, 1.0, 1.6), _u(b.rng, 0.6, 0.75), _u(b.rng, 0.72, 0.76)
    placed = _against_wall(b, "desk", L, D, h, _table_mesh(L, D, h), 0.37)
    if placed is None:
        return False
    cx, cy, q = placed
    if b.rng.random() < 0.7:
        front = _quarter(q) @ np.array([0.0, -1.0])
        g = D / 2 + _u(b.rng, 0.1, 0.25) + 0.225
        _add_chair(b, cx + front[0] * g, cy + front[1] * g, math.atan2(-front[1], -front[0]))
    return True


def add_counter(b: _Build) -> bool:
    """A kitchen counter block (0.85-0.95 m) against a wall; objects within 30 cm of its front."""
    L, D, h = _u(b.rng, 1.2, 3.0), _u(b.rng, 0.55, 0.65), _u(b.rng, 0.85, 0.95)
    return _against_wall(b, "counter", L, D, h, box([-L / 2, -D / 2, 0], [L / 2, D / 2, h]), 0.34) is not None


def add_shelf(b: _Build, high: bool = False) -> str | None:
    """An open shelf against a wall; boards up to 1.9 m (`high`: a top board at 2.05-2.2 m). Its name or None."""
    L, D = _u(b.rng, 0.6, 1.2), _u(b.rng, 0.28, 0.40)
    boards = _board_heights(b.rng, high)
    slot = b.wall_slot(L, D)
    if slot is None or not b.fits(slot[3]):
        return None
    cx, cy, q, foot = slot
    name = b.name("shelf")
    mesh, tops = _shelf_mesh(L, D, boards)
    b.commit(name, _turn_mesh(mesh, q, cx, cy), foot)
    for rect, z, head in tops:
        b.surfaces.append(Surface(name, "shelf", z, _turn_rect(rect, q, cx, cy), head, (_front(q),)))
    return name


def add_clutter(b: _Build) -> bool:
    """A carton (not pickable: 0.4-0.6 m across) or a bin (0.36-0.44 m wide) on the floor."""
    if b.rng.random() < 0.5:
        w, d, h, prefix = _u(b.rng, 0.4, 0.6), _u(b.rng, 0.4, 0.6), _u(b.rng, 0.3, 0.5), "carton"
    else:
        r, h, prefix = _u(b.rng, 0.18, 0.22), _u(b.rng, 0.4, 0.6), "bin"
        w = d = 2 * r
    slot = b.free_slot(w, d, margin=0.0) if b.rng.random() < 0.5 else None
    if slot is None:
        ws = b.wall_slot(w, d)
        slot = None if ws is None else (ws[0], ws[1], ws[3])
    if slot is None or not b.fits(slot[2]):
        return False
    cx, cy, foot = slot
    name = b.name(prefix)
    fw = foot[2] - foot[0]
    mesh = box([foot[0], foot[1], 0], [foot[2], foot[3], h]) if prefix == "carton" else cylinder(cx, cy, 0.0, fw / 2, h)
    b.commit(name, mesh, foot)
    return True


def add_pillars(b: _Build) -> None:
    """Square pillars (0.3-0.5 m, full height) on a 4-7 m grid in a hall, where they fit."""
    s, step = _u(b.rng, 0.3, 0.5), _u(b.rng, 4.0, 7.0)
    x0, y0, x1, y1 = b.layout.bounds
    for x in np.arange(x0 + step, x1 - 1.0, step):
        for y in np.arange(y0 + step, y1 - 1.0, step):
            foot = (float(x) - s / 2, float(y) - s / 2, float(x) + s / 2, float(y) + s / 2)
            if b.fits(foot, gap=0.5):
                b.commit(b.name("pillar"), box([foot[0], foot[1], 0], [foot[2], foot[3], b.layout.wall_h]), foot)


# counts (lo, hi) of each furniture kind per family, tried in this order
_FURNISH: dict[str, dict[str, tuple[int, int]]] = {
    "room": {"table": (1, 2), "counter": (0, 2), "desk": (0, 2), "coffee_table": (0, 1), "shelf": (1, 3), "clutter": (0, 3)},
    "hall": {"table": (2, 6), "counter": (1, 3), "desk": (1, 4), "coffee_table": (0, 2), "shelf": (2, 5), "clutter": (1, 6)},
    "two_rooms": {"table": (1, 3), "counter": (0, 2), "desk": (0, 2), "coffee_table": (0, 2), "shelf": (1, 3), "clutter": (0, 3)},
    "l_corridor": {"table": (0, 1), "counter": (0, 2), "desk": (0, 1), "coffee_table": (0, 1), "shelf": (1, 3), "clutter": (0, 3)},
    "u_corridor": {"table": (0, 1), "counter": (0, 2), "desk": (0, 1), "coffee_table": (0, 1), "shelf": (1, 3), "clutter": (0, 3)},
    "closet": {"table": (0, 0), "counter": (0, 1), "desk": (0, 1), "coffee_table": (0, 1), "shelf": (1, 2), "clutter": (0, 1)},
}
_ADDERS: dict[str, Callable[[_Build], object]] = {
    "table": add_table,
    "counter": add_counter,
    "desk": add_desk,
    "coffee_table": lambda b: add_table(b, coffee=True),
    "shelf": add_shelf,
    "clutter": add_clutter,
}


def furnish(b: _Build, high_target: bool) -> str | None:
    """Place the family's furniture (each piece up to 12 tries). Returns the high shelf's name, if one was asked for and fits."""
    high = None
    if high_target:
        for _ in range(12):
            high = add_shelf(b, high=True)
            if high:
                break
    if b.layout.family == "hall" and b.rng.random() < 0.6:
        add_pillars(b)
    for kind, (lo, hi) in _FURNISH[b.layout.family].items():
        for _ in range(int(b.rng.integers(lo, hi + 1))):
            for _ in range(12):
                if _ADDERS[kind](b):
                    break
    return high


# ============================================================================================
# Small objects
# ============================================================================================


def _revolve(profile: list[tuple[float, float]], sections: int = 32) -> trimesh.Trimesh:
    """Closed solid of revolution about +Z from an (r, z) profile starting and ending on the axis."""
    return trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)


def _vessel(r_top: float, r_bottom: float, h: float, wall: float, bottom: float) -> trimesh.Trimesh:
    """Open-top thin-walled vessel, one closed surface: outer wall, rim ring, inner wall, inner
    bottom disc, outer bottom disc (the cavity above `bottom` is outside the solid)."""
    return _revolve([(0.0, 0.0), (r_bottom, 0.0), (r_top, h), (r_top - wall, h), (r_bottom - wall, bottom), (0.0, bottom)])


def _mug(rng: np.random.Generator) -> trimesh.Trimesh:
    r, h, wall = _u(rng, 0.04, 0.05), _u(rng, 0.09, 0.11), _u(rng, 0.005, 0.008)
    body = _vessel(r, r, h, wall, _u(rng, 0.006, 0.01))
    if rng.random() < 0.3:
        return body
    handle = box([r - 0.004, -0.006, 0.25 * h], [r + 0.025, 0.006, 0.8 * h])
    return merge([body, handle])


def _cup(rng: np.random.Generator) -> trimesh.Trimesh:
    r = _u(rng, 0.035, 0.045)
    return _vessel(r, 0.8 * r, _u(rng, 0.07, 0.09), _u(rng, 0.005, 0.007), 0.006)


def _glass(rng: np.random.Generator) -> trimesh.Trimesh:
    r = _u(rng, 0.03, 0.04)
    return _vessel(r, r * _u(rng, 0.85, 1.0), _u(rng, 0.12, 0.15), _u(rng, 0.005, 0.006), _u(rng, 0.006, 0.012))


def _bowl(rng: np.random.Generator) -> trimesh.Trimesh:
    r = _u(rng, 0.07, 0.10)
    return _vessel(r, 0.6 * r, _u(rng, 0.05, 0.08), _u(rng, 0.005, 0.008), 0.007)


def _bottle(rng: np.random.Generator) -> trimesh.Trimesh:
    r, h, rn = _u(rng, 0.03, 0.04), _u(rng, 0.20, 0.30), _u(rng, 0.012, 0.016)
    return _revolve([(0.0, 0.0), (r, 0.0), (r, 0.68 * h), (rn, 0.86 * h), (rn, h), (0.0, h)])


def _can(rng: np.random.Generator) -> trimesh.Trimesh:
    return cylinder(0.0, 0.0, 0.0, _u(rng, 0.031, 0.034), _u(rng, 0.11, 0.16))


def _small_box(rng: np.random.Generator) -> trimesh.Trimesh:
    w, d, h = (_u(rng, 0.08, 0.20) for _ in range(3))
    return box([-w / 2, -d / 2, 0], [w / 2, d / 2, h])


def _book(rng: np.random.Generator) -> trimesh.Trimesh:
    w, t, h = _u(rng, 0.13, 0.17), _u(rng, 0.02, 0.05), _u(rng, 0.19, 0.25)
    if rng.random() < 0.5:  # standing
        return box([-w / 2, -t / 2, 0], [w / 2, t / 2, h])
    return box([-w / 2, -h / 2, 0], [w / 2, h / 2, t])  # lying


def _phone(rng: np.random.Generator) -> trimesh.Trimesh:
    w, d, h = 0.07 * _u(rng, 0.95, 1.05), 0.15 * _u(rng, 0.95, 1.05), 0.008
    return box([-w / 2, -d / 2, 0], [w / 2, d / 2, h])


def _remote(rng: np.random.Generator) -> trimesh.Trimesh:
    w, d, h = 0.04 * _u(rng, 0.9, 1.1), 0.18 * _u(rng, 0.9, 1.1), 0.02
    return box([-w / 2, -d / 2, 0], [w / 2, d / 2, h])


# name prefix -> (target kind, builder of a mesh standing on z = 0 centred on the Z axis)
OBJECTS: dict[str, tuple[str, Callable[[np.random.Generator], trimesh.Trimesh]]] = {
    "bottle": ("solid", _bottle),
    "can": ("solid", _can),
    "box": ("solid", _small_box),
    "mug": ("hollow", _mug),
    "cup": ("hollow", _cup),
    "glass": ("hollow", _glass),
    "bowl": ("hollow", _bowl),
    "book": ("thin", _book),
    "phone": ("thin", _phone),
    "remote": ("thin", _remote),
}


def _draw_object(rng: np.random.Generator, kind: str | None = None) -> tuple[str, str, trimesh.Trimesh]:
    """(prefix, kind, mesh at the origin with a random yaw); kind None = any."""
    prefixes = [p for p, (k, _) in OBJECTS.items() if kind is None or k == kind]
    prefix = prefixes[int(rng.integers(len(prefixes)))]
    k, build = OBJECTS[prefix]
    mesh = _yaw_mesh(build(rng), _u(rng, 0.0, math.pi))
    if not pickable_rule(mesh.bounds[1] - mesh.bounds[0], SceneConfig()):
        raise AssertionError(f"{prefix} of size {mesh.bounds[1] - mesh.bounds[0]} is not pickable")
    return prefix, k, mesh


def _spot(b: _Build, surface: Surface, hx: float, hy: float) -> tuple[float, float] | None:
    """Random centre for a footprint of half extents (hx, hy) inside the surface rectangle, or None."""
    x0, y0, x1, y1 = surface.rect
    if x1 - x0 < 2 * hx or y1 - y0 < 2 * hy:
        return None
    return _u(b.rng, x0 + hx, x1 - hx), _u(b.rng, y0 + hy, y1 - hy)


def _floor_spot(b: _Build, hx: float, hy: float) -> tuple[float, float] | None:
    rects = b.layout.rects
    areas = np.array([(r[2] - r[0]) * (r[3] - r[1]) for r in rects])
    r = rects[int(b.rng.choice(len(rects), p=areas / areas.sum()))]
    return _spot(b, Surface("floor", "floor", 0.0, _grow(r, -0.05)), hx, hy)


def _object_fits(b: _Build, surface: Surface, foot: Rect, z0: float, z1: float, skip: str | None = None) -> bool:
    """OBJ_GAP from other objects that overlap it in height; on the floor also off furniture and lanes kept."""
    if z1 - z0 > surface.headroom - 0.02:
        return False
    for it in b.items:
        if it.name != skip and it.z0 < z1 and z0 < it.z1 and _rect_gap(it.rect, foot) < OBJ_GAP:
            return False
    if surface.kind != "floor":
        return True
    p = b.plan
    if not p.on_floor(foot) or not p.clear_of_furniture(foot, FLOOR_OBJ_GAP):
        return False
    if z1 - z0 < BLOCK_H:
        return True
    return p.lanes_connected(p.furn | p.mark(foot, b.floor_blockers()))


def place_object(b: _Build, surface: Surface, kind: str | None = None, tries: int = 8) -> Item | None:
    """Draw an object (of `kind`) and rest it on `surface` (bottom exactly at its top); None if no spot fits."""
    prefix, k, mesh = _draw_object(b.rng, kind)
    lo, hi = mesh.bounds
    hx, hy, h = (hi[0] - lo[0]) / 2, (hi[1] - lo[1]) / 2, hi[2] - lo[2]
    for _ in range(tries):
        spot = _floor_spot(b, hx, hy) if surface.kind == "floor" else _spot(b, surface, hx, hy)
        if spot is None:
            return None
        foot = (spot[0] - hx, spot[1] - hy, spot[0] + hx, spot[1] + hy)
        if not _object_fits(b, surface, foot, surface.z, surface.z + h):
            continue
        cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
        name = b.name(prefix)
        b.room.add(name, _turn_mesh(mesh, 0, spot[0] - cx, spot[1] - cy, surface.z - lo[2]))
        item = Item(name, k, foot, surface.z, surface.z + h, surface)
        b.items.append(item)
        return item
    return None


def remove_item(b: _Build, item: Item) -> None:
    b.items.remove(item)
    del b.room.items[item.name]


# ============================================================================================
# Walking: stand cells, walking distances, the start
# ============================================================================================


class _Walk:
    """Standable floor of the finished furniture + floor objects: `clear` (m to the nearest
    footprint edge, per cell) and `main` (the largest connected set of cells >= STAND_CLEAR)."""

    def __init__(self, b: _Build) -> None:
        p = b.plan
        self.plan = p
        self.clear = p.clearance(p.blocked(b.floor_blockers()))
        stand = self.clear >= STAND_CLEAR
        labels, n = ndimage.label(stand, structure=np.ones((3, 3), bool))
        if n == 0:
            self.main = stand
        else:
            sizes = np.bincount(labels.ravel())[1:]
            self.main = labels == int(np.argmax(sizes)) + 1

    def near(self, r: Rect, surface: Surface | None = None, reach: float = REACH_XY) -> np.ndarray:
        """(K,2) [iy, ix] of main cells whose centre is within `reach` of the footprint `r` and,
        if `surface` limits its access sides, in front of an open side of `r` and within the
        surface's width along that side (so the straight reach passes no side panel or backrest)."""
        p = self.plan
        ys, xs = p.slices(_grow(r, reach + p.cell))
        iy, ix = np.nonzero(self.main[ys, xs])
        iy, ix = iy + ys.start, ix + xs.start
        xy = p.centres(iy, ix)
        x, y = xy[:, 0], xy[:, 1]
        dx = np.maximum(np.maximum(r[0] - x, x - r[2]), 0.0)
        dy = np.maximum(np.maximum(r[1] - y, y - r[3]), 0.0)
        ok = np.hypot(dx, dy) <= reach
        if surface is not None and surface.access is not None:
            sx0, sy0, sx1, sy1 = surface.rect
            in_x, in_y = (x >= sx0) & (x <= sx1), (y >= sy0) & (y <= sy1)
            side = np.zeros_like(ok)
            for ax, ay in surface.access:
                if ax:
                    side |= ((x >= r[2]) if ax > 0 else (x <= r[0])) & in_y
                else:
                    side |= ((y >= r[3]) if ay > 0 else (y <= r[1])) & in_x
            ok &= side
        return np.stack([iy[ok], ix[ok]], axis=1)

    def distances(self, sources: np.ndarray) -> np.ndarray:
        """(ny, nx) walking distance (m, 8-connected over main cells) from the source cells; inf elsewhere."""
        from skimage.graph import MCP_Geometric

        costs = np.where(self.main, 1.0, np.inf)
        mcp = MCP_Geometric(costs, fully_connected=True)
        cum, _ = mcp.find_costs([tuple(int(v) for v in s) for s in sources])
        cum = np.asarray(cum, dtype=np.float64) * self.plan.cell
        cum[~self.main] = np.inf
        return cum


def draw_start(b: _Build, walk: _Walk, stand: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x, y, heading, walk metres) of a start >= START_CLEAR from every footprint, walking
    distance >= 1 m from the target's stand cells (>= FAR_WALK_M with P_FAR_START where possible)."""
    dist = walk.distances(stand)
    p = walk.plan
    clear = p.clearance(p.blocked(b.floor_blockers(min_h=0.0)))  # flat objects too: no start on a phone
    ok = (clear >= START_CLEAR) & np.isfinite(dist)
    far = ok & (dist > FAR_WALK_M)
    near = ok & (dist >= 1.0) & (dist <= FAR_WALK_M)
    if far.any() and (b.rng.random() < P_FAR_START or not near.any()):
        pool = far
    elif near.any():
        pool = near
    else:
        pool = ok & (dist >= 0.3)
    iy, ix = np.nonzero(pool)
    if len(iy) == 0:
        return None
    i = int(b.rng.integers(len(iy)))
    x, y = walk.plan.centres(iy[i : i + 1], ix[i : i + 1])[0]
    return float(x), float(y), _u(b.rng, -math.pi, math.pi), float(dist[iy[i], ix[i]])


# ============================================================================================
# Target, distractors, place
# ============================================================================================


_PLACE_KINDS = ("table", "counter", "desk", "coffee_table")


def _target_surfaces(b: _Build, high_shelf: str | None) -> list[Surface]:
    """Candidate supports of the target: high boards of `high_shelf` only, or every reachable surface + the floor."""
    if high_shelf is not None:
        return [s for s in b.surfaces if s.owner == high_shelf and s.z > REACH_Z]
    return [s for s in b.surfaces if s.z <= REGULAR_TOP_BOARD] + [Surface("floor", "floor", 0.0, b.layout.bounds)]


def _reachable(b: _Build, item: Item) -> bool:
    """The item has standable floor of the main area within reach, on an open side."""
    return len(_Walk(b).near(item.rect, item.surface)) > 0


def place_target(b: _Build, high_shelf: str | None) -> Item | None:
    """The target: a kind from TARGET_KINDS on a support kind drawn among those present (each
    furniture kind weight 1, the floor FLOOR_SUPPORT_WEIGHT), within reach of the main standable floor."""
    kind = _pick(b.rng, TARGET_KINDS)
    cands = _target_surfaces(b, high_shelf)
    kinds = tuple((k, FLOOR_SUPPORT_WEIGHT if k == "floor" else 1.0) for k in sorted({s.kind for s in cands}))
    for _ in range(30):
        support = _pick(b.rng, kinds)
        pool = [s for s in cands if s.kind == support]
        surface = pool[int(b.rng.integers(len(pool)))]
        item = place_object(b, surface, kind)
        if item is None:
            continue
        if _reachable(b, item):
            return item
        remove_item(b, item)
    return None


def place_distractors(b: _Build, target: Item) -> None:
    """3-8 more objects on random surfaces (or the floor); a floor object that cuts the target off is removed."""
    want = int(b.rng.integers(3, 9))
    surfaces = b.surfaces + [Surface("floor", "floor", 0.0, b.layout.bounds)]
    placed = 0
    for _ in range(4 * want):
        if placed >= want:
            break
        item = place_object(b, surfaces[int(b.rng.integers(len(surfaces)))], None, tries=4)
        if item is None:
            continue
        if item.surface.kind == "floor" and item.z1 - item.z0 >= BLOCK_H and not _reachable(b, target):
            remove_item(b, item)
            continue
        placed += 1


def _free_spot(b: _Build, walk: _Walk, target: Item, s: Surface) -> tuple[float, float] | None:
    """A centre on surface `s` where the target would fit (headroom, OBJ_GAP, >= 0.3 m from where it
    is now) within reach of the main standable floor; None after a few tries."""
    hx, hy = (target.rect[2] - target.rect[0]) / 2, (target.rect[3] - target.rect[1]) / 2
    h = target.z1 - target.z0
    for _ in range(6):
        spot = _floor_spot(b, hx, hy) if s.kind == "floor" else _spot(b, s, hx, hy)
        if spot is None:
            return None
        foot = (spot[0] - hx, spot[1] - hy, spot[0] + hx, spot[1] + hy)
        if _rect_gap(foot, target.rect) < 0.3 or not _object_fits(b, s, foot, s.z, s.z + h, skip=target.name):
            continue
        if len(walk.near(foot, s, REACH_XY - 0.05)) > 0:
            return spot
    return None


def _place_by_name(b: _Build, walk: _Walk, target: Item) -> str | None:
    """Name of another table/counter/desk/coffee table whose top has a free reachable spot for the target."""
    pool = [s for s in b.surfaces if s.kind in _PLACE_KINDS and s.owner != target.surface.owner]
    for i in b.rng.permutation(len(pool)) if pool else []:
        if _free_spot(b, walk, target, pool[int(i)]) is not None:
            return pool[int(i)].owner
    return None


def _place_point(b: _Build, walk: _Walk, target: Item, floor: bool = False) -> tuple[float, float, float] | None:
    """A point 0-1 cm above a free reachable spot of a surface at most 1.6 m high (or of the floor)."""
    pool = [Surface("floor", "floor", 0.0, b.layout.bounds)] if floor else [s for s in b.surfaces if s.z <= 1.6]
    for i in b.rng.permutation(len(pool)) if pool else []:
        s = pool[int(i)]
        spot = _free_spot(b, walk, target, s)
        if spot is not None:
            return (spot[0], spot[1], s.z + _u(b.rng, 0.0, 0.01))
    return None


def draw_place(b: _Build, walk: _Walk, target: Item) -> str | tuple[float, float, float] | None:
    """A free, reachable destination for the target: half the time a table-like object's name
    (another object than its support, with room for it), else a point on a free part of a
    surface; the other way when the first finds nothing, a floor point as a last resort."""
    by_name = b.rng.random() < 0.5
    for name_first in (by_name, not by_name):
        place = _place_by_name(b, walk, target) if name_first else _place_point(b, walk, target)
        if place is not None:
            return place
    return _place_point(b, walk, target, floor=True)


# ============================================================================================
# Floor, walls, final transform
# ============================================================================================


def floor_mesh(plan: _Plan, kind: str, thickness: float) -> trimesh.Trimesh:
    """The free floor's rectangles as an open up-facing plane (2 triangles each) or a slab under z = 0."""
    rects = [plan.rect_of(*r) for r in mask_rects(plan.region)]
    if kind != "plane":
        return merge([box([r[0], r[1], -thickness], [r[2], r[3], 0.0]) for r in rects])
    verts, faces = [], []
    for i, (x0, y0, x1, y1) in enumerate(rects):
        verts += [(x0, y0, 0.0), (x1, y0, 0.0), (x1, y1, 0.0), (x0, y1, 0.0)]
        faces += [(4 * i, 4 * i + 1, 4 * i + 2), (4 * i, 4 * i + 2, 4 * i + 3)]
    return trimesh.Trimesh(np.array(verts, dtype=np.float64), np.array(faces, dtype=np.int64), process=False)


def add_walls(b: _Build) -> None:
    """`wall_k` boxes covering the wall ring (floor to wall height) and the lintels over doorways."""
    p, lay = b.plan, b.layout
    for r in mask_rects(p.wall):
        x0, y0, x1, y1 = p.rect_of(*r)
        b.room.add(b.name("wall"), box([x0, y0, 0.0], [x1, y1, lay.wall_h]))
    for x0, y0, x1, y1 in lay.lintels:
        b.room.add(b.name("wall"), box([x0, y0, DOOR_H], [x1, y1, lay.wall_h]))


def _transform(objects: dict[str, trimesh.Trimesh], q: int, shift: np.ndarray) -> dict[str, trimesh.Trimesh]:
    """Every mesh turned by q quarter turns about +Z, then moved by shift (3,)."""
    return {n: _turn_mesh(m, q, *shift) for n, m in objects.items()}


def _wrap(a: float) -> float:
    """Angle in [-pi, pi)."""
    return (a + math.pi) % (2 * math.pi) - math.pi


def _draw_floor(rng: np.random.Generator) -> tuple[str, float, float]:
    """(floor kind, slab thickness, floor top height)."""
    kind = _pick(rng, FLOORS)
    thick = {"plane": 0.0, "thin_slab": 0.02, "thick_slab": round(_u(rng, 0.10, 0.30), 3)}[kind]
    u = float(rng.random())
    if u < P_FLOOR_RAISED:
        z = round(_u(rng, 0.2, 1.0), 2)
    elif u < P_FLOOR_RAISED + P_FLOOR_LOWERED:
        z = round(_u(rng, -1.5, -0.2), 2)
    else:
        z = 0.0
    return kind, thick, z


# ============================================================================================
# Public API
# ============================================================================================


def _furnished(rng: np.random.Generator, family: str) -> tuple[_Build, str | None]:
    """Layout, door, walls and furniture; also the high shelf when a high target was drawn."""
    layout = draw_layout(rng, family)
    b = _Build(rng, layout)
    if rng.random() < 0.5:
        b.plan.cut_door(layout, rng)
    high = furnish(b, rng.random() < P_HIGH_TARGET)
    return b, high


def draw_case(run_seed: int, index: int) -> tuple[dict[str, trimesh.Trimesh], StressCase]:
    """({name: Z-up trimesh in world metres}, case) for (run_seed, index); deterministic.

    Raises RuntimeError only if no target/start could be drawn in 20 fresh layouts (not seen)."""
    rng = np.random.default_rng([int(run_seed), int(index)])
    seed = int(rng.integers(0, 2**31 - 1))
    family = _pick(rng, FAMILIES)
    floor_kind, thick, floor_z = _draw_floor(rng)
    for _ in range(20):
        b, high = _furnished(rng, family)
        target = place_target(b, high)
        if target is None and high is not None:
            high = None
            target = place_target(b, None)
        if target is None:
            continue
        place_distractors(b, target)
        walk = _Walk(b)
        stand = walk.near(target.rect, target.surface)
        start = draw_start(b, walk, stand) if len(stand) else None
        if start is None:
            continue
        action = _pick(rng, ACTIONS)
        place = draw_place(b, walk, target) if action == "pick-place" else None
        if action == "pick-place" and place is None:
            action = "pick"
        return _finish(b, rng, seed, index, floor_kind, thick, floor_z, target, high, start, action, place)
    raise RuntimeError(f"stress case ({run_seed}, {index}): no layout with a reachable target in 20 draws")


def _finish(
    b: _Build,
    rng: np.random.Generator,
    seed: int,
    index: int,
    floor_kind: str,
    thick: float,
    floor_z: float,
    target: Item,
    high: str | None,
    start: tuple[float, float, float, float],
    action: str,
    place: str | tuple[float, float, float] | None,
) -> tuple[dict[str, trimesh.Trimesh], StressCase]:
    """Walls and floor, then the whole scene turned by a random quarter turn and shifted (floor to floor_z)."""
    add_walls(b)
    objects = {"floor": floor_mesh(b.plan, floor_kind, thick)}
    objects.update(b.room.items)
    q = int(rng.integers(4))
    shift = np.array([round(_u(rng, -8.0, 8.0), 2), round(_u(rng, -8.0, 8.0), 2), floor_z])
    objects = _transform(objects, q, shift)
    rot = _quarter(q)
    sx, sy = rot @ np.array(start[:2]) + shift[:2]
    if isinstance(place, tuple):
        px, py = rot @ np.array(place[:2]) + shift[:2]
        place = (round(float(px), 4), round(float(py), 4), round(float(place[2] + floor_z), 4))
    x0, y0, x1, y1 = b.layout.bounds
    size = (round(x1 - x0, 3), round(y1 - y0, 3))
    case = StressCase(
        index=int(index),
        seed=seed,
        room=b.layout.family,
        floor=floor_kind,
        floor_z=float(floor_z),
        size_m=size if q % 2 == 0 else (size[1], size[0]),
        start=(round(float(sx), 4), round(float(sy), 4), round(_wrap(start[2] + q * math.pi / 2), 4)),
        target=target.name,
        target_kind=target.kind,
        support=target.surface.kind,
        action=action,
        place=place,
        support_name=target.surface.owner,
        support_z=round(target.surface.z + floor_z, 6),
        expect="unreachable" if high is not None and target.surface.z > REACH_Z else "ok",
        walk_m=round(start[3], 2),
    )
    return objects, case


def scene_glb(objects: dict[str, trimesh.Trimesh]) -> bytes:
    """Binary glTF of the objects, one node per object (node name = object name), Y-up like glTF."""
    scene = trimesh.Scene()
    for name, mesh in objects.items():
        m = trimesh.Trimesh(zup_to_yup(mesh.vertices), np.asarray(mesh.faces).copy(), process=False)
        scene.add_geometry(m, node_name=name, geom_name=name)
    return scene.export(file_type="glb")


def write_case(run_seed: int, index: int, out_dir: Path) -> tuple[Path, StressCase]:
    """Draw the case and write its scene to out_dir/case_{index:03d}.glb; (path, case)."""
    objects, case = draw_case(run_seed, index)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"case_{int(index):03d}.glb"
    tmp = path.with_suffix(".glb.tmp")
    tmp.write_bytes(scene_glb(objects))
    tmp.replace(path)
    return path, case
