"""Walk first, grasp beside it: the motion stage starts on the walk while the grasp is optimised.

WHY (issue #21): a target not asked for before costs 1.5-2.5 s of grasp optimisation before any
frame could stream, yet only the last windows of a clip (from the arrival at the stand point on)
use the grasp's anchors. The walk's anchors (`build_task`: the start orientation, the turn on the
spot, the timed path and its headings) end where the reach begins, ``task.reach_from``, and
none of them depends on the grasp. So:

* `Deferred` runs the grasp in a background thread (torch releases the GIL);
* `walk_task` builds the task with a stand-in grasp: its anchors before the arrival frame are
  the real task's, exactly (`prefix_matches` checks that once the grasp is known);
* `synthesize(..., later=LaterAnchors(frame, resolve))` samples every window that ends before
  ``frame`` on those anchors and calls ``resolve()`` (which waits for the grasp and builds the real
  task) only when a window reaches the frames the grasp anchors.

Windows are sampled in the same order with the same seeds on the same anchors, so the clip equals
the one made grasp-first, frame for frame.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from hosig.errors import CancelledError
from hosig.frames import heading_to_orient
from hosig.motion.anchors import AnchorSet

_WAIT_S = 0.05  # how often a wait for the grasp checks for cancellation


class Deferred:
    """``fn()`` running in a daemon thread; `result` waits for it (re-raising its exception).

    ``nice`` > 0 lowers the thread's CPU priority (Linux: threads are scheduled as tasks), so
    work needed later (the grasp) yields the cores to work needed now (the walk's windows)."""

    def __init__(self, fn: Callable[[], Any], name: str = "hosig-deferred", nice: int = 0) -> None:
        self._nice = int(nice)
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        if self._nice > 0:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except (AttributeError, OSError):  # not Linux, or not allowed: same work, plain priority
                pass
        try:
            self._value = fn()
        except BaseException as err:  # noqa: BLE001 - handed to whoever waits
            self._error = err
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def failed(self) -> bool:
        return self._done.is_set() and self._error is not None

    def result(self, cancel: Callable[[], bool] | None = None) -> Any:
        """The value (blocking); CancelledError when ``cancel()`` turns true while waiting."""
        while not self._done.wait(_WAIT_S):
            if cancel is not None and cancel():
                raise CancelledError("job cancelled while waiting for the grasp")
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class Resolved:
    """What `synthesize` needs once the grasp is known: the real task's anchors and frames."""

    anchors: AnchorSet
    touch_spans: tuple[tuple[int, int], ...]
    grasp_frame: int
    release_frame: int


@dataclass
class LaterAnchors:
    """The grasp-dependent rest of a task: windows ending at or before ``frame`` (exclusive end)
    use the walk's anchors; the first window past it calls ``resolve()`` (blocking)."""

    frame: int
    resolve: Callable[[], Resolved]


def stand_in_grasp(stand: np.ndarray, hand: str) -> SimpleNamespace:
    """A grasp-shaped placeholder at the stand point ``stand`` (x, y, heading): only its fields'
    shapes matter, since every anchor it sets lies at or after the arrival frame."""
    heading = float(stand[2])
    joints = np.zeros((55, 3))
    joints[0] = [float(stand[0]), float(stand[1]), 0.9]
    return SimpleNamespace(
        hand=hand, global_orient=heading_to_orient(heading), joints=joints, body_pose=np.zeros(63),
        left_hand_pose=np.zeros(45), right_hand_pose=np.zeros(45), wrist=joints[0].copy(),
        object_in_wrist=np.eye(4),
    )


def walk_task(build_task: Callable[..., Any], approach: Any, hand: str | None, body: Any = None) -> Any:
    """The `Task` of a plain reach with a stand-in grasp. Its anchors before the arrival frame
    (``task.reach_from``, where the reach begins) are those of every action's real task on the
    same approach leg; its ``n_frames`` lies past that frame."""
    grasp = stand_in_grasp(np.asarray(approach.stand, dtype=np.float64), hand if hand in ("left", "right") else "right")
    return build_task("reach", [approach], grasp=grasp, body=body)


def _anchor_key(anchor: Any) -> tuple:
    return (anchor.frame, anchor.target, anchor.hard, float(anchor.weight), np.nan_to_num(anchor.value, nan=1e300).tobytes())


def prefix_matches(walk: AnchorSet, final: AnchorSet, frame: int) -> bool:
    """Whether both anchor sets agree on every anchor before ``frame`` (same order and values)."""
    a = [_anchor_key(x) for x in walk.anchors if x.frame < frame]
    b = [_anchor_key(x) for x in final.anchors if x.frame < frame]
    return a == b
