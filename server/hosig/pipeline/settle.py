"""A released object comes to rest on the highest scene surface under its footprint.

WHY: the hand lets go a few centimetres above (or, pressing down, inside) the place surface; an
object left floating or sunk is what an animator notices first. From the release frame the object
keeps the pose the hand left it in and only moves straight down (a short drop under gravity) or up
(eased, when it sank) until its lowest point lies on the surface. Never through it: the end height is
the surface's, and the drop is monotonic.

Convention (as `hosig.pipeline.objects`): an object transform ``M (4,4)`` maps the object's vertices
as loaded (Z-up world) to where they are, ``v = M @ [v0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import ConvexHull, Delaunay, QhullError

from hosig.clip import FPS
from hosig.easing import smoothstep

GRAVITY_M_S2 = 9.81
RAISE_FRAMES = 4  # a sunk object is eased up onto its surface over this many frames
FOOTPRINT_GRID = 9  # rays per side of the footprint's bounding box (kept: those inside its outline)
MIDDLE_INSET = 0.25  # the middle of a footprint: its box less a quarter from each side (as `hosig.eval.gross`)
RAY_START_M = 0.01  # rays start this far above the object's top: a shelf board above it is no support
# A surface higher than this fraction of the object's height above its bottom is something the object
# is tangled in (a board it pokes through), not what it rests on: a sunk object is raised at most so far.
MAX_RAISE_FRACTION = 0.5


def moved_vertices(vertices: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """(N,3) rest vertices moved by a (4,4) object transform -> (N,3) world vertices."""
    v = np.asarray(vertices, dtype=np.float64)
    m = np.asarray(transform, dtype=np.float64)
    return v @ m[:3, :3].T + m[:3, 3]


def footprint_points(vertices: np.ndarray, grid: int = FOOTPRINT_GRID) -> np.ndarray:
    """(K,2) points of a regular grid inside the outline (2-D convex hull) of (N,3) vertices seen from above.

    Invariant: K >= 1 (a degenerate outline gives its centre)."""
    xy = np.asarray(vertices, dtype=np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    try:
        inside = Delaunay(xy).find_simplex(pts) >= 0
    except (QhullError, ValueError):  # flat or too few points: the whole box
        inside = np.ones(len(pts), dtype=bool)
    pts = pts[inside]
    return pts if len(pts) else ((lo + hi) / 2)[None]


def middle_of(points: np.ndarray, vertices: np.ndarray, inset: float = MIDDLE_INSET) -> np.ndarray:
    """(K,2) footprint points -> those over the middle of the outline's box (``inset`` of its size
    cut from each side), or its centre when none are.

    Invariant: an object rests on what is under its middle (its weight); one whose middle hangs
    past a table's edge falls (the stress judge measures the support the same way)."""
    xy = np.asarray(vertices, dtype=np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    a, b = lo + inset * (hi - lo), hi - inset * (hi - lo)
    keep = np.all((points >= a - 1e-9) & (points <= b + 1e-9), axis=1)
    return points[keep] if keep.any() else ((lo + hi) / 2)[None]


def support_height(scene_mesh, vertices: np.ndarray) -> float | None:
    """Height of the highest scene surface under an object's (N,3) world vertices; None when nothing is under it.

    Rays go straight down from just above the object's top through the footprint points under its
    middle (`middle_of`); every hit on an upward-facing surface counts, and the highest one not above
    the object's bottom + `MAX_RAISE_FRACTION` of its height is the support (so a sunk object finds
    the top it sank into, a floating one the top below it).
    ``scene_mesh`` must exclude the object itself and the body."""
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) == 0 or len(getattr(scene_mesh, "faces", ())) == 0:
        return None
    bottom, top = float(v[:, 2].min()), float(v[:, 2].max())
    xy = middle_of(footprint_points(v), v)
    origins = np.column_stack([xy, np.full(len(xy), top + RAY_START_M)])
    down = np.tile([0.0, 0.0, -1.0], (len(xy), 1))
    hits, _, tri = scene_mesh.ray.intersects_location(origins, down, multiple_hits=True)
    hits = hits[np.asarray(scene_mesh.face_normals)[tri, 2] > 0.0] if len(hits) else hits  # tops, not undersides
    if len(hits) == 0:
        return None
    z = hits[:, 2]
    z = z[z <= bottom + MAX_RAISE_FRACTION * (top - bottom) + 1e-9]
    return float(z.max()) if len(z) else None


def settle_gap(scene_mesh, vertices: np.ndarray, transform: np.ndarray) -> float:
    """Vertical move (m) that rests the object, put down at ``transform``, on the surface under it:
    + up when it sank in, - down when it floats, 0 when nothing is under it."""
    moved = moved_vertices(vertices, transform)
    support = support_height(scene_mesh, moved)
    return 0.0 if support is None else support - float(moved[:, 2].min())


def settle_offsets(gap: float, n: int, fps: float = FPS) -> np.ndarray:
    """(n,) height offsets for the n frames from the release on, reaching ``gap`` (m) and staying there.

    Down (gap < 0): free fall from rest, ``-g t^2 / 2`` with t = (k+1)/fps, clamped at the surface
    (5 cm take 3 frames at 30 fps, 25 cm take 7). Up (gap > 0): eased over `RAISE_FRAMES`.
    Invariant: monotonic from 0 towards ``gap``, never past it."""
    t = (np.arange(n, dtype=np.float64) + 1.0) / float(fps)
    if gap < 0.0:
        return -np.minimum(0.5 * GRAVITY_M_S2 * t * t, -gap)
    return gap * smoothstep((np.arange(n) + 1.0) / RAISE_FRAMES)


def settled_transforms(put_down: np.ndarray, gap: float, n: int, fps: float = FPS) -> np.ndarray:
    """(n,4,4) transforms for the n frames from the release: ``put_down`` (4,4) moved straight up/down by
    `settle_offsets` (rotation unchanged)."""
    out = np.tile(np.asarray(put_down, dtype=np.float64), (n, 1, 1))
    out[:, 2, 3] += settle_offsets(gap, n, fps)
    return out


def hull_vertices(vertices: np.ndarray) -> np.ndarray:
    """(N,3) -> (H,3) the vertices of their 3-D convex hull (all of them when it is degenerate).

    Invariant: under any rigid transform the lowest point and the outline seen from above are the hull's."""
    v = np.asarray(vertices, dtype=np.float64)
    try:
        return v[ConvexHull(v).vertices]
    except (QhullError, ValueError):
        return v


def make_settler(scene_mesh, object_vertices: np.ndarray) -> Callable[[np.ndarray], float]:
    """A put-down transform (4,4) -> settle gap (m) callable for one object (rest (N,3) vertices) in a scene
    mesh (without the object and the body)."""
    verts = hull_vertices(object_vertices)

    def settle(transform: np.ndarray) -> float:
        return settle_gap(scene_mesh, verts, transform)

    return settle
