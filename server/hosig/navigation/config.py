"""Every tunable of the navigation stage in one dataclass (so caches can key on it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NavConfig:
    """Navigation settings; all lengths in metres, times in seconds, angles in radians.

    Frozen so that it is hashable: floor maps are cached per (scene hash, `map_key()`).
    """

    # --- floor map ---------------------------------------------------------------------------
    cell: float = 0.05  # 2D cell size of the floor map (<= 5 cm)
    band_low: float = 0.05  # geometry lower than floor+band_low does not block (rugs, thresholds)
    band_high: float = 1.9  # ... nor geometry above floor+band_high (head height)
    # --- body and costs ----------------------------------------------------------------------
    body_radius: float = 0.25  # hard limit: the pelvis path keeps this far from any geometry
    comfort_margin: float = 0.10  # soft cost acts within body_radius + comfort_margin of geometry
    proximity_weight: float = 1.0  # extra cost per metre walked at the hard limit (1 = double)
    search: str = "mcp"  # "mcp" (scikit-image, Cython Dijkstra) or "astar" (heapq A*)
    # --- start snapping ----------------------------------------------------------------------
    snap_radius: float = 0.5  # a blocked/outside start moves to the nearest free cell this close
    # --- stand point -------------------------------------------------------------------------
    reach_min: float = 0.30  # horizontal pelvis -> object distance range (comfortable reach)
    reach_max: float = 0.60
    reach_preferred: float = 0.42
    reach_height_max: float = 2.0  # highest reachable point above the floor (arm raised)
    shoulder_height: float = 1.35  # for the free-line test from the body to the object
    comfort_weight: float = 4.0  # stand-point comfort cost, in metres of path per unit discomfort
    stand_candidates_checked: int = 48  # best candidates whose free line to the object is tested
    # --- smoothing -----------------------------------------------------------------------------
    corner_radius: float = 0.6  # preferred corner-rounding radius (shrinks where space is tight)
    min_corner_radius: float = 0.05  # below this a corner stays sharp (turn on the spot)
    spacing: float = 0.2  # waypoint spacing of the final path (<= 0.25 m)
    # --- timing ------------------------------------------------------------------------------
    speed: float = 1.2  # natural walking speed
    min_speed: float = 0.35  # lower bound on tight turns
    accel: float = 0.8  # from rest at the start
    decel: float = 0.8  # into the stand point
    lateral_accel: float = 0.6  # v^2 * curvature limit on turns (slows tight turns)
    turn_rate: float = 2.0  # rad/s for turning on the spot
    turn_in_place_above: float = 1.75  # a start heading this far (rad) off the path turns first
    short_walk: float = 0.5  # walks shorter than this are side-steps facing the target
    fps: int = 30
    end_turn_distance: float = 0.8  # distance over which the heading turns into the final facing
    start_turn_distance: float = 0.5  # ... and out of the given start heading

    def map_key(self) -> tuple:
        """The fields a floor map depends on (cache key part)."""
        return (self.cell, self.band_low, self.band_high)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def hard_clearance(self) -> float:
        """Clearance a grid cell needs to be walkable: the body radius plus half a cell diagonal,
        so that every point of an 8-connected move between two walkable cells keeps the radius."""
        return self.body_radius + self.cell * 0.7072
