"""Grasp candidates from the object's own geometry: where the palm goes and how the hand is turned.

A candidate fixes the palm contact point ``point`` on the surface and the hand frame in world:
``approach`` (the palm normal, pointing into the object), ``fwd`` (the direction the straight
fingers point) and ``thumb`` (index side of the palm), with the handedness relation of
`hosig.grasp.hand` (right: approach = thumb x fwd; left: approach = fwd x thumb).

Two families, chosen by shape:
- side grasps (bottles, cups, upright books): horizontal approach from 12 azimuths at one or two
  heights, thumb up, fingers wrapping horizontally; the span across thumb and fingers is the
  object's extent along ``fwd``, measured by casting rays through the object;
- top grasps (boxes, lying objects, mugs by the rim plane): approach from above, fingers over the
  far edge, thumb on the near edge; span measured the same way;
- rim grasps (open vessels wider than a hand: bowls): palm down on the rim, fingers into the vessel,
  the grip spanning the wall;
- edge grasps (closed slabs lying flat and wider than a hand: books, boards): palm down near an
  edge, fingers out over it and down its side face, the grip spanning the slab's thickness.
A candidate survives if its span fits a hand (<= max_width), the palm faces the surface, and the
open hand plus forearm at that pose keep ``approach_clearance`` from the rest of the scene (scene
SDF, target excluded). Survivors are ranked by how natural the forearm direction is from the stand
point (fingers pointing away from the body) and the best ``max_candidates`` are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from hosig.errors import InfeasibleError, UnreachableError
from hosig.grasp.config import GraspConfig

UP = np.array([0.0, 0.0, 1.0])


@dataclass
class Candidate:
    kind: str  # "side" | "top" | "rim" | "edge"
    point: np.ndarray  # (3,) palm contact point on the surface
    normal: np.ndarray  # (3,) surface normal there (outward)
    approach: np.ndarray  # (3,) palm normal target, into the object
    fwd: np.ndarray  # (3,) straight-finger direction target
    thumb: np.ndarray  # (3,) index/thumb side direction target
    span: float  # object extent across the grip (m)
    score: float


def hand_fwd(side: str, approach: np.ndarray, thumb: np.ndarray) -> np.ndarray:
    """Finger direction completing the hand frame for ``side`` (see module docstring)."""
    f = np.cross(approach, thumb) if side == "right" else np.cross(thumb, approach)
    return f / (np.linalg.norm(f) + 1e-12)


def hand_thumb(side: str, approach: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    t = np.cross(fwd, approach) if side == "right" else np.cross(approach, fwd)
    return t / (np.linalg.norm(t) + 1e-12)


def _extent_along(mesh: trimesh.Trimesh, through: np.ndarray, direction: np.ndarray, reach: float) -> float:
    """Length of the object's chord along ``direction`` through ``through`` (0 if missed)."""
    origin = through - direction * reach
    locs, _, _ = mesh.ray.intersects_location(origin[None], direction[None], multiple_hits=True)
    if len(locs) < 2:
        # Fall back to the support width (robust to rays grazing a vertex).
        proj = mesh.vertices @ direction
        return float(proj.max() - proj.min())
    t = (locs - origin) @ direction
    return float(t.max() - t.min())


def _first_hit(mesh: trimesh.Trimesh, origin: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    locs, _, tri = mesh.ray.intersects_location(origin[None], direction[None], multiple_hits=True)
    if len(locs) == 0:
        return None
    t = (locs - origin) @ direction
    k = int(np.argmin(t))
    n = mesh.face_normals[tri[k]]
    return locs[k], n


# Half the width of an open palm across its thumb-little finger axis (m).
PALM_HALF_WIDTH = 0.045


class NoFreeApproachError(InfeasibleError):
    """Every reachable grasp pose of one hand is blocked by the scene (the hand may still fit)."""


def side_grip_heights(bottom: float, height: float, clearance: float, raise_short: bool = False) -> list[float]:
    """Heights (world z) at which a side grip (thumb up) holds an object whose bottom is at
    ``bottom``: across its body; with ``raise_short``, a short object's grip high enough that the
    lower edge of the palm keeps ``clearance`` from the surface it stands on (a mug on a counter
    held round its upper body, the little finger just over the counter)."""
    fracs = (0.42, 0.62) if height > 0.10 else (0.5,)
    clear = bottom + PALM_HALF_WIDTH + clearance + 0.005
    if not raise_short:
        return [bottom + f * height for f in fracs]
    raised = [max(bottom + f * height, clear) if clear < bottom + height else bottom + f * height for f in fracs]
    heights: list[float] = []
    for h in raised:
        if all(abs(h - k) > 0.01 for k in heights):
            heights.append(h)
    return heights


RIM_DEPTH = 0.02  # an object whose surface under its top centre lies deeper than this is open-topped


def open_top(mesh: trimesh.Trimesh, centre: np.ndarray, top: float) -> bool:
    """Is the object a vessel open at the top (mug, glass, bowl): looking straight down through its
    centre, is the first surface deeper than `RIM_DEPTH` below its top?"""
    hit = _first_hit(mesh, np.array([centre[0], centre[1], top + 0.5]), -UP)
    return hit is not None and hit[0][2] < top - RIM_DEPTH


def top_contact(mesh: trimesh.Trimesh, centre: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Where a palm coming from above rests: the surface straight down through the object's centre,
    or, on an open-top object, the plane of its rim. None when nothing up-facing is under the palm."""
    if open_top(mesh, centre, top):
        return np.array([centre[0], centre[1], top]), UP.copy()
    hit = _first_hit(mesh, np.array([centre[0], centre[1], top + 0.5]), -UP)
    if hit is None:
        return None
    return hit if hit[1] @ UP > 0.7 else None


FINGER_REACH_M = 0.09  # palm contact point to the finger tips of the open hand (`hand_probe_points`)
PLATE_MAX_THICKNESS_M = 0.06  # a lying object no thicker than this is held by an edge (a book, a tray)
EDGE_INSET_M = 0.03  # an edge grip's palm contact lies this far in from the edge


def is_plate(mesh: trimesh.Trimesh, size: np.ndarray, centre: np.ndarray, top: float) -> bool:
    """Is the object a closed slab lying flat (a book, a board): thin (`PLATE_MAX_THICKNESS_M`) and
    not open at the top? Such an object wider than a hand is still held by one edge (`edge_candidates`)."""
    return float(size[2]) <= PLATE_MAX_THICKNESS_M and not open_top(mesh, centre, top)


def edge_candidates(mesh: trimesh.Trimesh, centre: np.ndarray, top: float, thickness: float, side: str,
                    reach: float, azimuths: int = 8) -> list[Candidate]:
    """Grips on the edges of a plate: the palm down on its top `EDGE_INSET_M` in from the edge, the
    fingers pointing out over the edge and curling down its side face; the span is the plate's
    thickness (the grip closes across the edge, as a rim grip closes across a wall)."""
    out: list[Candidate] = []
    probe_z = top - min(0.01, thickness / 2)
    for k in range(azimuths):
        psi = 2 * np.pi * k / azimuths
        fwd = np.array([np.cos(psi), np.sin(psi), 0.0])
        hit = _first_hit(mesh, np.array([centre[0], centre[1], probe_z]) + fwd * reach, -fwd)
        if hit is None:
            continue
        inset = np.array([hit[0][0], hit[0][1], centre[2]]) - fwd * EDGE_INSET_M
        contact = top_contact(mesh, inset, top)
        if contact is None:
            continue
        thumb = hand_thumb(side, -UP, fwd)
        out.append(Candidate("edge", contact[0], contact[1], -UP, fwd, thumb, thickness + 0.01, 0.0))
    return out


def near_end_top_contact(mesh: trimesh.Trimesh, centre: np.ndarray, top: float, fwd: np.ndarray,
                         length: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A palm from above on the near end of an object ``length`` long along the fingers ``fwd`` (3,):
    moved back from the centre so the finger tips stop at the far end instead of passing it (a phone
    lying against a shelf's back panel). None when the object is too short to need it."""
    half = 0.5 * length
    shift = min(FINGER_REACH_M - half, half - 0.015)
    if shift < 0.01:
        return None
    return top_contact(mesh, np.asarray(centre, dtype=np.float64) - fwd * shift, top)


def rim_candidates(mesh: trimesh.Trimesh, centre: np.ndarray, top: float, radius: float, side: str,
                   azimuths: int = 8) -> list[Candidate]:
    """Grips on the rim of an open vessel: the palm on the rim facing down, fingers pointing into
    the vessel, the span the wall's thickness (measured across the rim)."""
    out: list[Candidate] = []
    for k in range(azimuths):
        psi = 2 * np.pi * k / azimuths
        radial = np.array([np.cos(psi), np.sin(psi), 0.0])
        probe = np.array([centre[0], centre[1], top - 0.005])
        hit = _first_hit(mesh, probe + radial * (radius + 0.05), -radial)
        if hit is None:
            continue
        outer = hit[0]
        inner = _first_hit(mesh, outer - radial * 0.002, -radial)
        wall = float(np.linalg.norm(inner[0] - outer)) if inner is not None else 0.01
        point = np.array([outer[0], outer[1], top]) - radial * wall / 2
        fwd = -radial
        thumb = hand_thumb(side, -UP, fwd)
        out.append(Candidate("rim", point, UP.copy(), -UP, fwd, thumb, wall + 0.01, 0.0))
    return out


def hand_probe_points(point: np.ndarray, approach: np.ndarray, fwd: np.ndarray, thumb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of an open hand and forearm at a candidate (palm/arm points, finger points)."""
    back = -approach
    palm = [point + back * 0.015, point + back * 0.045, point + back * 0.03 - fwd * 0.07]
    palm += [point + back * 0.02 + thumb * s for s in (-0.045, 0.045)]  # palm edges (hand width)
    arm = [point + back * 0.035 - fwd * d for d in (0.13, 0.21, 0.29)]
    fingers = [point + back * 0.012 + fwd * d + thumb * s for d in (0.05, FINGER_REACH_M) for s in (-0.03, 0.0, 0.03)]
    return np.array(palm + arm), np.array(fingers)


def generate_candidates(
    scene: object, target: str, stand: tuple[float, float, float], side: str, config: GraspConfig, sdf: object | None = None
) -> list[Candidate]:
    """Feasible, ranked grasp candidates for ``side``; raises when none exist (with the reason).

    Side grips raised clear of the support (`side_grip_heights`) are the fallback for an object
    every ordinary grip of which is blocked: where an ordinary one is free it is kept (a raised
    grip of a cup by a wall led the carry into the counter); palms from above on the object's near
    end (`near_end_top_contact`) are the last resort."""
    fallbacks = ((False, False), (True, False), (True, True))  # (raise_short, near_ends), first free wins
    for raise_short, near_ends in fallbacks[:-1]:
        try:
            return _ranked_candidates(scene, target, stand, side, config, sdf, raise_short, near_ends)
        except NoFreeApproachError:
            pass
    return _ranked_candidates(scene, target, stand, side, config, sdf, *fallbacks[-1])


def _ranked_candidates(scene: object, target: str, stand: tuple[float, float, float], side: str, config: GraspConfig,
                       sdf: object | None, raise_short: bool, near_ends: bool = False) -> list[Candidate]:
    """`generate_candidates` with side grips at `side_grip_heights` (``raise_short`` as given) and,
    with ``near_ends``, palms from above on the object's ends as well (`near_end_top_contact`)."""
    obj = scene.object(target)  # type: ignore[attr-defined]
    mesh: trimesh.Trimesh = obj.mesh
    lo, hi = obj.bounds
    size = hi - lo
    centre = (lo + hi) / 2
    floor = float(scene.floor_z)  # type: ignore[attr-defined]
    reach = float(np.linalg.norm(size)) + 0.5
    stand_xy = np.asarray(stand[:2], dtype=np.float64)
    if sdf is None:
        sdf = scene.sdf(exclude=(target,))  # type: ignore[attr-defined]

    raw: list[Candidate] = []
    # -- side grasps --------------------------------------------------------------------------
    for h in side_grip_heights(lo[2], size[2], config.approach_clearance, raise_short):
        for k in range(config.side_azimuths):
            psi = 2 * np.pi * k / config.side_azimuths
            a = np.array([np.cos(psi), np.sin(psi), 0.0])
            hit = _first_hit(mesh, np.array([centre[0], centre[1], h]) - a * reach, a)
            if hit is None:
                continue
            p, n = hit
            if float(n @ -a) < 0.5:
                continue
            t = UP.copy()
            f = hand_fwd(side, a, t)
            span = _extent_along(mesh, np.array([centre[0], centre[1], h]), f, reach)
            raw.append(Candidate("side", p, n, a, f, t, span, 0.0))
    # -- top grasps ---------------------------------------------------------------------------
    # Tall objects (bottles) are taken from the side only; a palm on a bottle cap looks wrong.
    tall = size[2] > 1.5 * max(size[0], size[1])
    hit = None if tall else top_contact(mesh, centre, hi[2])
    if hit is not None:
        p, n = hit
        a = -UP
        for k in range(8):
            psi = 2 * np.pi * k / 8
            f = np.array([np.cos(psi), np.sin(psi), 0.0])
            t = hand_thumb(side, a, f)
            span = _extent_along(mesh, np.array([centre[0], centre[1], hi[2] - min(0.02, size[2] / 2)]), f, reach)
            raw.append(Candidate("top", p, n, a, f, t, span, 0.0))
            if near_ends:
                near = near_end_top_contact(mesh, centre, hi[2], f, span)
                if near is not None:
                    raw.append(Candidate("top", near[0], near[1], a, f, t, span, 0.0))

    # -- rim grasps --------------------------------------------------------------------------
    # An open vessel wider than a hand (a bowl) is held by its rim: palm down on the rim, fingers
    # over it into the bowl, the grip spanning the wall.
    if max(size[0], size[1]) > config.max_width and open_top(mesh, centre, hi[2]):
        raw += rim_candidates(mesh, centre, hi[2], max(size[0], size[1]) / 2, side)
    if not raw:
        raise InfeasibleError(f"object {target!r}: no surface the palm can face (size {_fmt_size(size)})")
    fits = [c for c in raw if c.span <= config.max_width]
    if not fits and is_plate(mesh, size, centre, hi[2]):  # a book lying flat: by an edge
        raw += edge_candidates(mesh, centre, hi[2], float(size[2]), side, reach)
        fits = [c for c in raw if c.span <= config.max_width]
    if not fits:
        smallest = min(c.span for c in raw)
        raise InfeasibleError(
            f"object {target!r} is too big for a hand: size {_fmt_size(size)}, narrowest grip "
            f"{smallest:.2f} m > max {config.max_width:.2f} m"
        )
    # -- reach -------------------------------------------------------------------------------
    height = float(fits[0].point[2] - floor)
    dists = [float(np.linalg.norm(c.point[:2] - stand_xy)) for c in fits]
    reachable = [
        c for c, d in zip(fits, dists)
        if d <= config.max_reach_distance and c.point[2] - floor <= config.max_reach_height
    ]
    if not reachable:
        raise UnreachableError(
            f"object {target!r} is out of reach from the stand point ({stand[0]:.2f}, {stand[1]:.2f}): "
            f"grasp height {height:.2f} m above the floor (max {config.max_reach_height:.2f}), "
            f"horizontal distance {min(dists):.2f} m (max {config.max_reach_distance:.2f})"
        )
    # -- free approach -----------------------------------------------------------------------
    free: list[Candidate] = []
    for c in reachable:
        body_pts, finger_pts = hand_probe_points(c.point, c.approach, c.fwd, c.thumb)
        d_body = sdf.query_np(body_pts)
        d_fing = sdf.query_np(finger_pts)
        # A hand coming from above over something thin or low (a phone, a rim) lies close to the
        # surface under it: only the fingers' clearance is asked of its open hand there.
        body_clearance = config.approach_clearance if c.kind == "side" else config.finger_clearance
        if d_body.min() < body_clearance or d_fing.min() < config.finger_clearance:
            continue
        if (body_pts[:, 2] < floor + 0.02).any():
            continue
        free.append(c)
    if not free:
        raise NoFreeApproachError(
            f"object {target!r}: no free approach direction for the {side} hand "
            f"({len(reachable)} reachable grasp poses all blocked by the scene)"
        )
    # -- rank --------------------------------------------------------------------------------
    for c in free:
        to_obj = c.point[:2] - stand_xy
        to_obj = to_obj / (np.linalg.norm(to_obj) + 1e-9)
        fwd_xy = c.fwd[:2]
        natural = float(fwd_xy @ to_obj)  # forearm pointing from the body to the object
        if c.kind != "side":
            natural = 0.6 * natural + 0.2  # top and rim grasps fine but not preferred for tall objects
        # Palm facing across the body (medial) suits the hand's side.
        lateral = np.array([-to_obj[1], to_obj[0]])  # left of the line of sight
        facing = float(c.approach[:2] @ lateral) * (1.0 if side == "right" else -1.0)
        c.score = natural + 0.3 * facing - 0.5 * max(0.0, c.span - 0.08)
    free.sort(key=lambda c: -c.score)
    good = [c for c in free if c.score > -0.4] or free[:2]
    return good[: config.max_candidates]


def _fmt_size(size: np.ndarray) -> str:
    return " x ".join(f"{s:.2f}" for s in size) + " m"
