"""Pipeline events: the wire protocol (docs/ARCHITECTURE.md "Wire protocol") as pydantic models.

WHY one module: the server streams exactly these objects as NDJSON, the CLI renders them as a
progress bar and the add-on parses them; defining them once keeps the protocol from drifting.
Each event serialises to one JSON object with a ``type`` field. Arrays travel as nested lists
(frames rounded to 1e-6, which is below float32 precision for metres and radians).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

_DECIMALS = 6


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    def to_wire(self) -> dict[str, Any]:
        """Plain JSON-able dict exactly as sent on the wire."""
        return self.model_dump(mode="json")

    def to_line(self) -> bytes:
        """One NDJSON line (UTF-8, newline-terminated)."""
        return self.model_dump_json().encode("utf-8") + b"\n"


class Accepted(_Event):
    type: Literal["accepted"] = "accepted"
    job_id: str


class Plan(_Event):
    """A navigation leg: ``approach`` (start -> stand) or, for pick-place, ``carry`` (stand -> place)."""

    type: Literal["plan"] = "plan"
    leg: Literal["approach", "carry"] = "approach"
    target: str | None = None
    start: list[float]
    stand: list[float]
    waypoints: list[list[float]]
    times: list[float]
    headings: list[float] = Field(default_factory=list)
    length_m: float
    duration_s: float
    clearance_min_m: float | None = None
    plan_ms: float | None = None
    snapped_start: bool = False
    notes: list[str] = Field(default_factory=list)
    target_point: list[float] | None = None


class Grasp(_Event):
    type: Literal["grasp"] = "grasp"
    hand: str
    stand: list[float]
    wrist: list[float]
    contact_distance_m: float | None = None
    object_penetration_m: float | None = None
    scene_penetration_m: float | None = None
    grasp_ms: float | None = None
    pose: list[float] = Field(default_factory=list, description="(165,) SMPL-X axis-angle, Z-up orient")
    trans: list[float] = Field(default_factory=list, description="(3,) smplx translation for that orient")


class Progress(_Event):
    type: Literal["progress"] = "progress"
    stage: str
    fraction: float = Field(ge=0.0, le=1.0)


class Frames(_Event):
    """A chunk of consecutive finished frames [start, start + count)."""

    type: Literal["frames"] = "frames"
    start: int
    count: int
    poses: list[list[float]]  # (count, 165)
    trans: list[list[float]]  # (count, 3)
    joints: list[list[list[float]]]  # (count, 55, 3)
    object_name: str | None = None
    object_transforms: list[list[float]] | None = None  # (count, 16) row-major 4x4

    @classmethod
    def from_arrays(
        cls,
        start: int,
        poses: np.ndarray,
        trans: np.ndarray,
        joints: np.ndarray,
        object_name: str | None = None,
        object_transforms: np.ndarray | None = None,
    ) -> "Frames":
        """Build from numpy arrays without per-float validation (chunks hold ~50k numbers)."""
        count = int(poses.shape[0])
        obj = None
        if object_transforms is not None:
            obj = _round(np.asarray(object_transforms).reshape(count, 16))
        return cls.model_construct(
            type="frames",
            start=int(start),
            count=count,
            poses=_round(poses),
            trans=_round(trans),
            joints=_round(joints),
            object_name=object_name,
            object_transforms=obj,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Back to numpy (clients, tests): poses (n,165), trans (n,3), joints (n,55,3), object (n,4,4)."""
        out = {
            "poses": np.asarray(self.poses, dtype=np.float64).reshape(self.count, 165),
            "trans": np.asarray(self.trans, dtype=np.float64).reshape(self.count, 3),
            "joints": np.asarray(self.joints, dtype=np.float64).reshape(self.count, 55, 3),
        }
        if self.object_transforms is not None:
            out["object_transforms"] = np.asarray(self.object_transforms, dtype=np.float64).reshape(self.count, 4, 4)
        return out


class Done(_Event):
    type: Literal["done"] = "done"
    summary: dict[str, Any]


class Error(_Event):
    type: Literal["error"] = "error"
    code: str
    message: str


Event = Annotated[Union[Accepted, Plan, Grasp, Progress, Frames, Done, Error], Field(discriminator="type")]
_EVENT_ADAPTER: TypeAdapter = TypeAdapter(Event)


def parse_event(data: dict[str, Any] | str | bytes) -> Event:
    """Parse one wire event (dict or NDJSON line) back into its model; raises pydantic.ValidationError."""
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    return _EVENT_ADAPTER.validate_python(data)


def _round(array: np.ndarray) -> list:
    """Finite, rounded nested lists (NaN never leaves the engine; it would be invalid JSON)."""
    arr = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("non-finite value in frame data")
    return np.round(arr, _DECIMALS).tolist()
