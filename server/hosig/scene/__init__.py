"""Scene ingestion: named Z-up meshes from glTF/OBJ/PLY/add-on payloads, plus floor, occupancy, SDF.

`load_scene(source)` returns a cached `Scene`; see docs/ARCHITECTURE.md "hosig.scene".
"""

from hosig.scene.config import SceneConfig
from hosig.scene.loaders import load_scene
from hosig.scene.occupancy import Occupancy
from hosig.scene.payload import decode_payload, encode_payload
from hosig.scene.scene import Scene, SceneObject, pickable_rule
from hosig.scene.sdf import GridSDF, SceneSDF

__all__ = [
    "GridSDF",
    "Occupancy",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "SceneSDF",
    "decode_payload",
    "encode_payload",
    "load_scene",
    "pickable_rule",
]
