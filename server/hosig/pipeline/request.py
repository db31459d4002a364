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


class GenerateRequest(BaseModel):
    """What to generate: a person in `scene` starting at `start` walks to `target` and acts on it."""

    model_config = _STRICT

    scene: str = Field(min_length=1, max_length=4096, description="scene id from POST /scenes, or a file path (CLI)")
    start: list[Coord] = Field(min_length=2, max_length=3, description="[x, y] or [x, y, heading] (m, m, rad; Z-up)")
    target: str = Field(min_length=1, max_length=256, description="name of the object to reach / pick")
    action: Action = "pick"
    place: PlaceTarget | None = Field(default=None, description="pick-place only: object name (its top surface) or [x, y, z]")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    smplx_dir: str | None = Field(default=None, max_length=4096, description="real SMPL-X model folder (default: mannequin)")
    hand: Hand = "right"

    @field_validator("start")
    @classmethod
    def _finite(cls, value: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in value):  # belt and braces: allow_inf_nan already refuses
            raise ValueError("start must hold finite numbers")
        return value

    @model_validator(mode="after")
    def _place_matches_action(self) -> "GenerateRequest":
        if self.action == "pick-place" and self.place is None:
            raise ValueError("place is required when action is 'pick-place' (object name or [x, y, z])")
        if self.action != "pick-place" and self.place is not None:
            raise ValueError(f"place is only used with action 'pick-place', not {self.action!r}")
        return self

    @property
    def heading(self) -> float | None:
        """Start heading in radians, or None (face along the first path segment)."""
        return self.start[2] if len(self.start) == 3 else None


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
