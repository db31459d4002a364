"""Evaluation cases files: a JSON list of requests with the expected outcome.

Each case is validated on its own so one bad case is reported (with its index and field) while the
others still run. Scene paths are relative to ``--scenes`` or, failing that, to the cases file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hosig.errors import InputError

ACTIONS = ("reach", "pick", "pick-place")


@dataclass(frozen=True)
class EvalCase:
    """One request to evaluate and what should come of it."""

    index: int
    scene: Path
    start: tuple[float, ...]
    target: str
    expect: Literal["ok", "unreachable"] = "ok"
    action: str = "pick"
    place: str | tuple[float, float, float] | None = None
    seed: int = 0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"case {self.index}: {self.scene.stem}/{self.target}"


@dataclass(frozen=True)
class CaseProblem:
    """A case that could not be parsed: index, field and what is wrong."""

    index: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"case {self.index}: field {self.field!r}: {self.message}"


@dataclass
class CaseFile:
    cases: list[EvalCase] = field(default_factory=list)
    problems: list[CaseProblem] = field(default_factory=list)


def _finite_numbers(value: Any, lengths: tuple[int, ...]) -> tuple[float, ...] | None:
    if not isinstance(value, list) or len(value) not in lengths:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return tuple(float(v) for v in value)


def parse_case(index: int, raw: Any, base: Path) -> EvalCase:
    """Validate one case; raises `CaseProblemError` naming the field."""
    if not isinstance(raw, dict):
        raise CaseProblemError(CaseProblem(index, "(case)", f"expected an object, got {type(raw).__name__}"))
    known = {"scene", "start", "target", "expect", "action", "place", "seed", "name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CaseProblemError(CaseProblem(index, unknown[0], f"unknown field (known: {', '.join(sorted(known))})"))
    for required in ("scene", "start", "target"):
        if required not in raw:
            raise CaseProblemError(CaseProblem(index, required, "missing"))
    if not isinstance(raw["scene"], str) or not raw["scene"]:
        raise CaseProblemError(CaseProblem(index, "scene", "expected a scene file name"))
    scene = (base / raw["scene"]).resolve()
    if not scene.is_file():
        raise CaseProblemError(CaseProblem(index, "scene", f"scene file not found: {scene}"))
    start = _finite_numbers(raw["start"], (2, 3))
    if start is None:
        raise CaseProblemError(CaseProblem(index, "start", f"expected [x, y] or [x, y, heading] finite numbers, got {raw['start']!r}"))
    if not isinstance(raw["target"], str) or not raw["target"]:
        raise CaseProblemError(CaseProblem(index, "target", "expected an object name"))
    expect = raw.get("expect", "ok")
    if expect not in ("ok", "unreachable"):
        raise CaseProblemError(CaseProblem(index, "expect", f"expected 'ok' or 'unreachable', got {expect!r}"))
    action = raw.get("action", "pick")
    if action not in ACTIONS:
        raise CaseProblemError(CaseProblem(index, "action", f"expected one of {', '.join(ACTIONS)}, got {action!r}"))
    place = raw.get("place")
    if place is not None and not isinstance(place, str):
        point = _finite_numbers(place, (3,))
        if point is None:
            raise CaseProblemError(CaseProblem(index, "place", "expected an object name or [x, y, z]"))
        place = point
    if action == "pick-place" and place is None:
        raise CaseProblemError(CaseProblem(index, "place", "required for action 'pick-place'"))
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise CaseProblemError(CaseProblem(index, "seed", f"expected an integer, got {seed!r}"))
    return EvalCase(index, scene, start, raw["target"], expect, action, place, seed, str(raw.get("name", "")))


class CaseProblemError(InputError):
    """One case is unusable; carries the structured problem."""

    def __init__(self, problem: CaseProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def load_cases(path: str | Path, scenes_dir: str | Path | None = None) -> CaseFile:
    """Read a cases file. The file itself must be a JSON list; each bad case becomes a problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cases file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"cases file {path} is not valid JSON: {err}") from None
    if not isinstance(raw, list):
        raise InputError(f"cases file {path} must hold a JSON list of cases, got {type(raw).__name__}")
    if not raw:
        raise InputError(f"cases file {path} holds no cases")
    base = Path(scenes_dir) if scenes_dir else path.parent
    out = CaseFile()
    for index, item in enumerate(raw):
        try:
            out.cases.append(parse_case(index, item, base))
        except CaseProblemError as err:
            out.problems.append(err.problem)
    return out
