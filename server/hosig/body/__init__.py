"""The body model: SMPL-X skeleton facts, the embedded mannequin builder and the model loader.

`load_body_model()` returns a `BodyModel` (a real SMPL-X file when the user points at one, else the
embedded mannequin); everything it exposes is in Blender's Z-up world frame.
"""

from hosig.body.model import BodyModel, BodyOutput, RestMesh, load_body_model

__all__ = ["BodyModel", "BodyOutput", "RestMesh", "load_body_model"]
