"""From a staircase of grid cells to a smooth walking line that still keeps the body clear.

Steps: keep only the corners of the cell chain; shortcut by line of sight (a shortcut may not come
closer to geometry than the stretch it replaces did, up to the comfort distance -- so the soft cost's
choice survives); round each corner with the largest arc (<= `corner_radius`) that stays clear;
fit a smoothing parametric spline (scipy `splprep`) and keep it only where it stays clear; resample.
Clearance checks use a conservative bound from the clearance grid (fast, vectorised) while
shortcutting, and the exact geometry distance (KD-tree) on the final line.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import interpolate

from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap


def grid_clearance(fmap: FloorMap, xy: np.ndarray) -> np.ndarray:
    """Lower bound (N,) of the distance from points (N, 2) to geometry, from the 4 nearest cell
    centres: distance is 1-Lipschitz, so d(p) >= clearance(c) - |p - c| for each centre c."""
    xy = np.atleast_2d(xy)
    ny, nx = fmap.shape
    f = (xy - fmap.origin) / fmap.cell - 0.5
    base = np.floor(f).astype(np.int64)
    best = np.full(len(xy), -np.inf)
    for dy in (0, 1):
        for dx in (0, 1):
            ix = base[:, 0] + dx
            iy = base[:, 1] + dy
            ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            c = np.where(ok, fmap.clearance[np.clip(iy, 0, ny - 1), np.clip(ix, 0, nx - 1)], 0.0)
            centre = fmap.origin + (np.stack([ix, iy], axis=1) + 0.5) * fmap.cell
            best = np.maximum(best, c - np.linalg.norm(xy - centre, axis=1))
    return np.maximum(best, 0.0)


def corner_indices(cells: np.ndarray) -> np.ndarray:
    """Indices of the cells where the chain changes direction (plus both ends)."""
    if len(cells) <= 2:
        return np.arange(len(cells))
    d = np.diff(cells, axis=0)
    turn = np.any(d[1:] != d[:-1], axis=1)
    return np.concatenate([[0], np.nonzero(turn)[0] + 1, [len(cells) - 1]])


def _segment_points(a: np.ndarray, b: np.ndarray, step: float) -> np.ndarray:
    n = max(2, int(math.ceil(np.linalg.norm(b - a) / step)) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return a + t * (b - a)


def shortcut(points: np.ndarray, keep: np.ndarray, fmap: FloorMap, config: NavConfig) -> np.ndarray:
    """Greedy line-of-sight shortcutting of a polyline (K, 2).

    `keep` (K,) is the clearance the original line has at each vertex; a shortcut from i to j
    must keep min(body_radius + comfort_margin, min(keep[i..j])) - cell/2, and never less than
    the body radius."""
    if len(points) <= 2:
        return points
    step = fmap.cell * 0.5
    comfort = config.body_radius + config.comfort_margin
    out = [points[0]]
    i = 0
    n = len(points)
    while i < n - 1:
        # test every j > i in one vectorised query, take the farthest clear one
        segs, owner = [], []
        for j in range(i + 1, n):
            p = _segment_points(points[i], points[j], step)
            segs.append(p)
            owner.append(np.full(len(p), j))
        pts = np.concatenate(segs)
        own = np.concatenate(owner)
        d = grid_clearance(fmap, pts)
        seg_min = np.full(n, np.inf)
        np.minimum.at(seg_min, own, d)
        running_keep = np.minimum.accumulate(keep[i:])  # min keep over i..j
        need = np.maximum(np.minimum(comfort, running_keep) - fmap.cell * 0.5, config.body_radius)
        ok = seg_min[i:] >= need  # ok[k] is for j = i + k (k = 0 is trivially inf)
        ok[1] = True  # the original edge is always allowed
        j = i + int(np.nonzero(ok)[0].max())
        out.append(points[j])
        i = j
    return np.asarray(out)


def _arc(p_prev: np.ndarray, corner: np.ndarray, p_next: np.ndarray, radius: float, step: float) -> np.ndarray | None:
    """Points of the circular fillet of radius `radius` at `corner`, or None if it does not fit."""
    u = corner - p_prev
    v = p_next - corner
    lu, lv = np.linalg.norm(u), np.linalg.norm(v)
    if lu < 1e-9 or lv < 1e-9:
        return None
    u, v = u / lu, v / lv
    cos_t = float(np.clip(np.dot(u, v), -1.0, 1.0))
    theta = math.acos(cos_t)  # turning angle
    if theta < 1e-3:
        return np.asarray([corner])
    tlen = radius * math.tan(theta / 2.0)
    if theta > math.pi - 1e-3:
        return None
    a = corner - u * tlen
    b = corner + v * tlen
    cross = u[0] * v[1] - u[1] * v[0]
    normal = np.array([-u[1], u[0]]) * (1.0 if cross > 0 else -1.0)
    centre = a + normal * radius
    a0 = math.atan2(a[1] - centre[1], a[0] - centre[0])
    a1 = math.atan2(b[1] - centre[1], b[0] - centre[0])
    da = (a1 - a0 + math.pi) % (2 * math.pi) - math.pi
    n = max(2, int(math.ceil(abs(da) * radius / step)) + 1)
    ang = a0 + np.linspace(0.0, da, n)
    return centre + radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def round_corners(points: np.ndarray, fmap: FloorMap, config: NavConfig, step: float = 0.02) -> np.ndarray:
    """Dense line (M, 2) with each interior corner of the polyline replaced by a clear arc."""
    if len(points) <= 2:
        return np.concatenate([_segment_points(points[0], points[-1], step)]) if len(points) == 2 else points
    comfort = config.body_radius + config.comfort_margin
    seg_len = np.linalg.norm(np.diff(points, axis=0), axis=1)
    last = len(seg_len) - 1
    segs = [_segment_points(points[j], points[j + 1], step) for j in range(len(seg_len))]
    d_all = grid_clearance(fmap, np.concatenate(segs))
    seg_min = np.array([m.min() for m in np.split(d_all, np.cumsum([len(p) for p in segs])[:-1])])
    # a corner may use half of each neighbouring segment, or 90 % of a segment that ends the path
    pieces: list[np.ndarray] = []
    cursor = points[0]
    for k in range(1, len(points) - 1):
        prev_, corner, next_ = points[k - 1], points[k], points[k + 1]
        u = corner - prev_
        v = next_ - corner
        cos_t = float(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-12), -1, 1))
        theta = math.acos(cos_t)
        max_t = min(seg_len[k - 1] * (0.9 if k - 1 == 0 else 0.5), seg_len[k] * (0.9 if k == last else 0.5))
        arc = None
        if theta > 1e-3 and theta < math.pi - 1e-3:
            r = min(config.corner_radius, max_t / math.tan(theta / 2.0))
            seg_clear = min(seg_min[k - 1], seg_min[k])
            want = max(min(comfort, seg_clear) - fmap.cell * 0.5, config.body_radius)
            radii = []
            while r >= config.min_corner_radius and len(radii) < 8:
                radii.append(r)
                r *= 0.6
            arcs = [a for a in (_arc(prev_, corner, next_, rr, step) for rr in radii) if a is not None]
            if arcs:
                d = grid_clearance(fmap, np.concatenate(arcs))
                mins = [m.min() for m in np.split(d, np.cumsum([len(a) for a in arcs])[:-1])]
                good = [a for a, m in zip(arcs, mins) if m >= want]
                ok = [a for a, m in zip(arcs, mins) if m >= config.body_radius]
                arc = good[0] if good else (ok[0] if ok else None)
        if arc is None:
            arc = np.asarray([corner])
        pieces.append(_segment_points(cursor, arc[0], step)[:-1])
        pieces.append(arc[:-1])
        cursor = arc[-1]
    pieces.append(_segment_points(cursor, points[-1], step))
    dense = np.concatenate([p for p in pieces if len(p)])
    keep = np.concatenate([[True], np.linalg.norm(np.diff(dense, axis=0), axis=1) > 1e-6])
    return dense[keep]


def spline_smooth(dense: np.ndarray, fmap: FloorMap, config: NavConfig, step: float = 0.02) -> np.ndarray:
    """C2 smoothing spline through the rounded line; returned only if it keeps the body radius
    everywhere (exact geometry distance) and does not move the ends; else the input."""
    if len(dense) < 6:
        return dense
    s = arc_length(dense)
    total = s[-1]
    if total < 0.2:
        return dense
    # thin to ~5 cm knots; heavy end weights pin the start and the stand point
    idx = np.unique(np.concatenate([np.searchsorted(s, np.arange(0.0, total, 0.05)), [len(dense) - 1]]))
    knots = dense[idx]
    if len(knots) < 6:
        return dense
    w = np.ones(len(knots))
    w[[0, -1]] = 100.0
    sigma = 0.01
    try:
        tck, _ = interpolate.splprep([knots[:, 0], knots[:, 1]], u=s[idx] / total, w=w / sigma, s=len(knots), k=3)
    except Exception:  # noqa: BLE001 - degenerate input: keep the rounded line
        return dense
    n = max(8, int(math.ceil(total / step)) + 1)
    uu = np.linspace(0.0, 1.0, n)
    out = np.stack(interpolate.splev(uu, tck), axis=1)
    out[0], out[-1] = dense[0], dense[-1]
    from scipy.spatial import cKDTree

    if cKDTree(dense).query(out)[0].max() > 0.05:  # the spline must follow the rounded line
        return dense
    if fmap.distance(out, upper=config.body_radius).min() < config.body_radius:
        return dense
    return out


def arc_length(line: np.ndarray) -> np.ndarray:
    """Cumulative length (M,) along a polyline (M, 2)."""
    if len(line) == 0:
        return np.zeros(0)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])


def curvature(line: np.ndarray) -> np.ndarray:
    """Unsigned discrete curvature (M,) 1/m of a dense polyline (turning angle / mean step)."""
    m = len(line)
    kappa = np.zeros(m)
    if m < 3:
        return kappa
    d = np.diff(line, axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs((np.diff(ang) + math.pi) % (2 * math.pi) - math.pi)
    lens = np.linalg.norm(d, axis=1)
    ds = 0.5 * (lens[1:] + lens[:-1])
    kappa[1:-1] = turn / np.maximum(ds, 1e-6)
    return kappa


def resample(line: np.ndarray, spacing: float) -> np.ndarray:
    """Points (N, 2) evenly spaced along the line, spacing <= `spacing`, both ends kept."""
    s = arc_length(line)
    total = s[-1] if len(s) else 0.0
    if total < 1e-6:
        return np.asarray([line[0], line[-1]])
    n = max(1, int(math.ceil(total / spacing - 1e-9)))
    targets = np.linspace(0.0, total, n + 1)
    x = np.interp(targets, s, line[:, 0])
    y = np.interp(targets, s, line[:, 1])
    return np.stack([x, y], axis=1)
