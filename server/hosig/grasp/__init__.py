"""Scene-aware whole-body grasp poses with fingers, by optimisation on the body model (issue #5).

`generate_grasp(scene, target, stand, body, hand, config) -> GraspResult`; see generator.py.
"""

from hosig.grasp.config import GraspConfig
from hosig.grasp.generator import GraspResult, generate_grasp

__all__ = ["GraspConfig", "GraspResult", "generate_grasp"]
