"""Navigation: where to stand to reach an object, and a timed, smooth, collision-free walk there.

See docs/ARCHITECTURE.md "hosig.navigation". Blender world frame (metres, Z up, heading about +Z).
"""

from hosig.navigation.config import NavConfig
from hosig.navigation.floormap import FloorMap, build_floor_map, floor_map_for
from hosig.navigation.planner import NavPlan, StartPose, plan_to_object, plan_to_point

__all__ = [
    "FloorMap",
    "NavConfig",
    "NavPlan",
    "StartPose",
    "build_floor_map",
    "floor_map_for",
    "plan_to_object",
    "plan_to_point",
]
