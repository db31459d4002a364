"""The generation request: one pydantic model shared by the CLI, the batch runner and the server.

WHY pydantic here (the engine otherwise uses dataclasses): the very same model validates the
server's JSON body (422 naming the field), the shot list rows and the CLI arguments, so the three
entry points cannot drift apart. Unknown fields are rejected and NaN/inf coordinates refused.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hosig.errors import UsageError

Action = Literal["reach", "pick", "pick-place"]
Hand = Literal["right", "left", "auto"]

# A finite float (NaN / inf rejected by allow_inf_nan=False in the model config as well).
Coord = Annotated[float, Field(allow_inf_nan=False)]
# Place target: an object name, or a world point [x, y, z] (Blender Z-up metres).
PlaceTarget = Union[Annotated[str, Field(min_length=1, max_length=256)], Annotated[list[Coord], Field(min_length=3, max_length=3)]]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)
MAX_VARIATIONS = 8
MAX_REPAIR_ROUNDS = 8


class AnchorKey(BaseModel):
    """An animator's key (issue #20): a joint's world position and/or local rotation at a clip frame.

    Joint names are SMPL-X's (checked by the engine: `hosig.motion.edits.parse_anchors`)."""

    model_config = _STRICT

    frame: int
    joint: str = Field(min_length=1, max_length=64)
    position: list[Coord] | None = Field(default=None, min_length=3, max_length=3, description="[x, y, z] world, Z-up metres")
    rotation: list[Coord] | None = Field(default=None, min_length=4, max_length=4,
                                         description="[w, x, y, z] the joint's local rotation as in the clip's poses (pelvis: global orient)")


class BaseFrames(BaseModel):
    """A clip sent inline (the server reads no client-named files): what regeneration needs."""

    model_config = _STRICT

    poses: list[list[Coord]] = Field(min_length=2, description="(T,165) SMPL-X axis-angle, global orient Z-up")
    trans: list[list[Coord]] = Field(min_length=2, description="(T,3) smplx translation")
    object_name: str | None = None
    object_transforms: list[list[Coord]] | None = Field(default=None, description="(T,16) row-major 4x4 per frame")
    grasp_frame: int = -1
    release_frame: int = -1


class GenerateRequest(BaseModel):
    """What to generate: a person in `scene` starting at `start` walks to `target` and acts on it."""

    model_config = _STRICT

    scene: str = Field(min_length=1, max_length=4096, description="scene id from POST /scenes, or a file path (CLI)")
    start: list[Coord] | None = Field(default=None, min_length=2, max_length=3, description="[x, y] or [x, y, heading] (m, m, rad; Z-up)")
    target: str | None = Field(default=None, min_length=1, max_length=256, description="name of the object to reach / pick")
    action: Action = "pick"
    place: PlaceTarget | None = Field(default=None, description="pick-place only: object name (its top surface) or [x, y, z]")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    smplx_dir: str | None = Field(default=None, max_length=4096, description="real SMPL-X model folder (default: mannequin)")
    hand: Hand = "right"
    repair: int | None = Field(default=None, ge=0, le=MAX_REPAIR_ROUNDS,
                               description="redraws of the frames around a gross failure found in the finished clip "
                                           "(0: none; default: the server's, 3 at final quality, 0 at preview)")
    # issue #20: regenerate a range of an existing clip around an animator's keys
    base_clip: str | BaseFrames | None = Field(default=None, description="clip file path (CLI only) or the clip's frames")
    range: list[int] | None = Field(default=None, min_length=2, max_length=2, description="[first, last] frames to regenerate (inclusive)")
    anchors: list[AnchorKey] | None = Field(default=None, max_length=10000)
    variations: int = Field(default=1, ge=1, le=MAX_VARIATIONS, description="takes with seeds seed, seed+1, ...; ranked best first")

    @field_validator("start")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and not all(math.isfinite(v) for v in value):  # belt and braces: allow_inf_nan already refuses
            raise ValueError("start must hold finite numbers")
        return value

    @model_validator(mode="after")
    def _regenerate_or_generate(self) -> "GenerateRequest":
        if self.base_clip is None:
            if self.start is None or self.target is None:
                raise ValueError("start and target are required (unless base_clip is given)")
            if self.range is not None or self.anchors:
                raise ValueError("range and anchors need a base_clip")
        return self

    @model_validator(mode="after")
    def _place_matches_action(self) -> "GenerateRequest":
        if self.base_clip is not None:
            return self
        if self.action == "pick-place" and self.place is None:
            raise ValueError("place is required when action is 'pick-place' (object name or [x, y, z])")
        if self.action != "pick-place" and self.place is not None:
            raise ValueError(f"place is only used with action 'pick-place', not {self.action!r}")
        return self

    @property
    def heading(self) -> float | None:
        """Start heading in radians, or None (face along the first path segment)."""
        return self.start[2] if self.start is not None and len(self.start) == 3 else None

    @property
    def regenerates(self) -> bool:
        """True for an edit-and-regenerate request (a base clip given)."""
        return self.base_clip is not None


class PlanRequest(BaseModel):
    """Navigation preview only (the add-on's viewport path)."""

    model_config = _STRICT

    scene: str = Field(min_length=1, max_length=4096)
    start: list[Coord] = Field(min_length=2, max_length=3)
    target: str = Field(min_length=1, max_length=256)


def parse_request(data: dict, where: str = "request") -> GenerateRequest:
    """Validate a plain dict (shot list row, CLI arguments) into a request; UsageError names the field."""
    try:
        return GenerateRequest.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{where}: {describe_validation_error(err)}") from None


def describe_validation_error(err: ValidationError) -> str:
    """One line per problem, each naming the field path (e.g. ``start.1: Input should be a finite number``)."""
    parts = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item.get("loc", ())) or "(request)"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)
