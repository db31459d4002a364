"""Grid search on the floor map: 8-connected least-cost paths to one of several goal cells.

Cost of a move = its length x the mean of the two cells' costs, where a cell costs 1 far from
geometry, up to 1 + `proximity_weight` at the body-radius limit (the soft, "keep off the
furniture" component), and is impassable below the hard clearance (the hard component). Every
cell costs >= 1, so octile distance is an admissible A* heuristic.

Two interchangeable back ends: scikit-image's `MCP_Geometric` (Cython Dijkstra with early exit)
and a heapq A* on flat indices. `bench_search` measures both; the default is the faster one.
Each goal may carry an extra non-negative "exit" cost (stand-point comfort); the search returns
the goal minimising path cost + exit cost.
"""

from __future__ import annotations

import heapq
import math
import threading
from dataclasses import dataclass

import numpy as np

from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap

_SQRT2 = math.sqrt(2.0)


@dataclass
class SearchResult:
    cells: np.ndarray  # (K, 2) int [iy, ix] from the start cell to the chosen goal cell
    goal_index: int  # index into the goals given
    cost: float  # path cost (metres x cost factor), without the exit cost
    expanded: int  # nodes settled (a measure of work)


def cost_grid(fmap: FloorMap, config: NavConfig) -> np.ndarray:
    """(ny, nx) per-cell cost factor, inf where a body cannot stand (cached on the map)."""
    key = ("cost", config.body_radius, config.comfort_margin, config.proximity_weight)
    cache = fmap._cache  # the map's small per-setting cache
    if key not in cache:
        clr = fmap.clearance
        margin = max(config.comfort_margin, 1e-6)
        soft = np.clip((config.body_radius + margin - clr) / margin, 0.0, 1.0) ** 2
        cost = 1.0 + config.proximity_weight * soft
        cost[clr < config.hard_clearance] = np.inf
        cache[key] = (cost, 0)
    return cache[key][0]


def search(
    costs: np.ndarray,
    cell: float,
    start: tuple[int, int],
    goals: np.ndarray,
    exit_costs: np.ndarray | None = None,
    method: str = "mcp",
) -> SearchResult | None:
    """Least (path + exit) cost route on a cost grid (ny, nx) from `start` [iy, ix] to one of
    `goals` (G, 2); None when no goal can be reached."""
    goals = np.asarray(goals, dtype=np.int64).reshape(-1, 2)
    exit_costs = np.zeros(len(goals)) if exit_costs is None else np.asarray(exit_costs, dtype=np.float64)
    if len(goals) == 0 or not np.isfinite(costs[int(start[0]), int(start[1])]):
        return None
    if method == "mcp":
        return _search_mcp(costs, cell, start, goals, exit_costs)
    if method == "astar":
        return _search_astar(costs, cell, start, goals, exit_costs)
    raise ValueError(f"navigation config: search must be 'mcp' or 'astar', got {method!r}")


_LOCAL = threading.local()


def _mcp_for(costs: np.ndarray, cell: float):
    """A `MCP_Geometric` over this cost grid, reused per thread (its set-up is ~10 % of a plan;
    `find_costs` may be called again on the same object, but not from two threads at once)."""
    from skimage.graph import MCP_Geometric

    cached = getattr(_LOCAL, "mcp", None)
    if cached is not None and cached[0] is costs and cached[1] == cell:
        return cached[2]
    mcp = MCP_Geometric(costs, fully_connected=True, sampling=(cell, cell))
    _LOCAL.mcp = (costs, cell, mcp)
    return mcp


def _search_mcp(costs: np.ndarray, cell: float, start, goals: np.ndarray, exit_costs: np.ndarray) -> SearchResult | None:
    mcp = _mcp_for(costs, cell)
    ends = [tuple(int(v) for v in g) for g in goals]
    cum, _ = mcp.find_costs([tuple(int(v) for v in start)], ends=ends, find_all_ends=True)
    path_cost = cum[goals[:, 0], goals[:, 1]]
    total = path_cost + exit_costs
    if not np.isfinite(total).any():
        return None
    best = int(np.argmin(total))
    cells = np.asarray(mcp.traceback(ends[best]), dtype=np.int64)
    return SearchResult(cells, best, float(path_cost[best]), int(np.isfinite(cum).sum()))


def _search_astar(costs: np.ndarray, cell: float, start, goals: np.ndarray, exit_costs: np.ndarray) -> SearchResult | None:
    """A* over flat indices; heuristic = octile distance to the goals' bounding box (admissible)."""
    ny, nx = costs.shape
    flat_cost = costs.ravel()
    s = int(start[0]) * nx + int(start[1])
    if not np.isfinite(flat_cost[s]):
        return None
    goal_flat = goals[:, 0] * nx + goals[:, 1]
    exit_of = {int(g): float(e) for g, e in zip(goal_flat, exit_costs) if np.isfinite(flat_cost[g])}
    if not exit_of:
        return None
    gy0, gx0 = goals.min(axis=0)
    gy1, gx1 = goals.max(axis=0)
    g_cost = np.full(ny * nx, np.inf)
    parent = np.full(ny * nx, -1, dtype=np.int64)
    closed = np.zeros(ny * nx, dtype=bool)
    offsets = [(-1, -1, _SQRT2), (-1, 0, 1.0), (-1, 1, _SQRT2), (0, -1, 1.0), (0, 1, 1.0), (1, -1, _SQRT2), (1, 0, 1.0), (1, 1, _SQRT2)]

    def h(y: int, x: int) -> float:
        dy = gy0 - y if y < gy0 else (y - gy1 if y > gy1 else 0)
        dx = gx0 - x if x < gx0 else (x - gx1 if x > gx1 else 0)
        return cell * (max(dx, dy) + (_SQRT2 - 1.0) * min(dx, dy))

    g_cost[s] = 0.0
    heap = [(h(s // nx, s % nx), 0.0, s)]
    best_total, best_goal, expanded = math.inf, -1, 0
    while heap:
        f, g, u = heapq.heappop(heap)
        if f >= best_total:
            break
        if closed[u]:
            continue
        closed[u] = True
        expanded += 1
        if u in exit_of and g + exit_of[u] < best_total:
            best_total, best_goal = g + exit_of[u], u
        y, x = divmod(u, nx)
        cu = flat_cost[u]
        for dy, dx, length in offsets:
            yy, xx = y + dy, x + dx
            if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                continue
            v = yy * nx + xx
            cv = flat_cost[v]
            if closed[v] or cv == math.inf:
                continue
            ng = g + cell * length * 0.5 * (cu + cv)
            if ng < g_cost[v]:
                g_cost[v] = ng
                parent[v] = u
                heapq.heappush(heap, (ng + h(yy, xx), ng, v))
    if best_goal < 0:
        return None
    chain = [best_goal]
    while chain[-1] != s:
        chain.append(int(parent[chain[-1]]))
    chain.reverse()
    cells = np.stack(np.divmod(np.asarray(chain, dtype=np.int64), nx), axis=1)
    goal_index = int(np.nonzero(goal_flat == best_goal)[0][0])
    return SearchResult(cells, goal_index, float(g_cost[best_goal]), expanded)
