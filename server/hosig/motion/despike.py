"""A safety net of each window: no joint moves faster than a person can.

A window's frames can hold a one- or two-frame flick (the root spinning 100-165 degrees, an arm
solved out of furniture, a correction meeting a key): 10-28 m/s at the fingertips where captured
motion peaks at 1.5-5.9 m/s. `despike` finds the frames where a measured joint moves faster than
`SPIKE_M_S` (the pop detector's own measure, `hosig.eval.metrics.joint_speeds`) and replaces the
local rotations of the joints that carry it by an eased interpolation between the calm frames on
either side: the poses before and after the flick are kept and the flick itself is gone. Context
frames and keyed frames (a grasp pose, a position target, an animator's key) are never changed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.easing import smoothstep
from hosig.eval.metrics import joint_speeds as speeds_between_frames

SPIKE_M_S = 6.0  # faster than the fastest joint of captured everyday motion (5.9 m/s): a flick
MARGIN_FRAMES = 4  # calm frames kept between a flick and the interpolation's end points
MAX_PASSES = 3  # a wider flick shows again after one repair: repaired at most this often


@dataclass(frozen=True)
class Span:
    """Frames (a, b) exclusive of both ends: rotations strictly between are interpolated."""

    a: int
    b: int


def joint_speeds(joints: np.ndarray) -> np.ndarray:
    """(T,J,3) positions -> (T,) the fastest joint's speed (m/s) arriving at each frame (0 at frame 0)."""
    out = np.zeros(len(joints))
    if len(joints) > 1:
        out[1:] = speeds_between_frames(joints).max(-1)
    return out


def spike_spans(speed: np.ndarray, first: int, keyed: np.ndarray, limit: float = SPIKE_M_S,
                margin: int = MARGIN_FRAMES) -> list[Span]:
    """Spans to interpolate: each run of fast frames (>= ``first``), widened by ``margin`` calm frames
    each side, its end points inside ``[first - 1, T - 1]`` and no ``keyed`` (T,) frame strictly inside.

    A flick arriving at frame f is the motion from f-1 to f, so frame f-1 is inside the span too."""
    t = len(speed)
    fast = np.flatnonzero(speed[max(first, 1):] > limit) + max(first, 1)
    spans: list[Span] = []
    for f in fast:
        a, b = max(first - 1, f - 1 - margin), min(t - 1, f + margin)
        if spans and a <= spans[-1].b:
            a = spans[-1].a
            spans.pop()
        spans.append(Span(a, b))
    return [s for s in (_clear_of_keys(s, keyed) for s in spans) if s is not None]


def _clear_of_keys(span: Span, keyed: np.ndarray) -> Span | None:
    """Shrink ``span`` so no keyed frame lies strictly inside (a key may be an end point)."""
    inside = np.flatnonzero(keyed[span.a + 1:span.b]) + span.a + 1
    if len(inside) == 0:
        return span
    left, right = Span(span.a, int(inside[0])), Span(int(inside[-1]), span.b)
    best = max((left, right), key=lambda s: s.b - s.a)
    return best if best.b - best.a >= 2 else None


def interpolate_span(rot: np.ndarray, span: Span, joints: list[int]) -> None:
    """In place: (T,55,3,3) local rotations of ``joints`` strictly inside ``span`` eased from frame a's
    to frame b's (geodesic, smoothstep in time)."""
    ra = Rotation.from_matrix(rot[span.a, joints].astype(np.float64))
    rb = Rotation.from_matrix(rot[span.b, joints].astype(np.float64))
    delta = (ra.inv() * rb).as_rotvec()  # (J,3)
    n = span.b - span.a
    for k in range(span.a + 1, span.b):
        u = smoothstep((k - span.a) / n)
        rot[k, joints] = (ra * Rotation.from_rotvec(delta * u)).as_matrix().astype(rot.dtype)


def despike(rot: np.ndarray, pelvis: np.ndarray, fk, first: int, keyed: np.ndarray, joints: list[int],
            measured: list[int], limit: float = SPIKE_M_S) -> tuple[np.ndarray, int]:
    """(T,55,3,3) local rotations (root included) and (T,3) pelvis -> (rotations, frames changed).

    ``fk(rot, pelvis) -> (T,55,3)`` joint positions; frames before ``first`` are fixed (context);
    ``keyed`` (T,) bool frames never changed; the speeds of ``measured`` joints find the flicks and the
    rotations of ``joints`` (which carry them) are interpolated; a flick elsewhere is left to its own stage."""
    rot = rot.copy()
    changed = np.zeros(len(rot), bool)
    for _ in range(MAX_PASSES):
        spans = spike_spans(joint_speeds(fk(rot, pelvis)[:, measured]), first, keyed, limit)
        if not spans:
            break
        for span in spans:
            interpolate_span(rot, span, joints)
            changed[span.a + 1:span.b] = True
    return rot, int(changed.sum())
