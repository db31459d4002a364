"""`run(request) -> Iterator[Event]`: the one pipeline behind `hosig generate`, `hosig batch`, the
server and the tests.

Stages: scene -> navigation (approach leg; carry leg for pick-place) -> grasp -> motion (streamed
window by window). Every `HosigError` becomes an ``error`` event carrying its ``.code``; anything
unexpected becomes an ``internal`` error (traceback logged to stderr), so a caller never sees an
exception from a job. Cancellation (``cancel()`` returning True, or the consumer closing the
generator) is checked between stages and inside the motion stage after every window.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hosig.errors import CancelledError, HosigError, UnreachableError, UsageError
from hosig.pipeline.engine import Engine, default_engine
from hosig.pipeline.events import Accepted, Done, Error, Frames, Grasp, Plan, Progress
from hosig.pipeline.objects import CarryTracker, object_top_centre, place_candidates
from hosig.pipeline.settle import make_settler
from hosig.pipeline.request import GenerateRequest, parse_request

log = logging.getLogger("hosig.pipeline")

CancelFn = Callable[[], bool]
_POLL_S = 0.05  # how often the event loop wakes to check cancellation while the motion thread works


@dataclass
class RunResult:
    """What a finished run produced (collected by `generate` for the CLI and batch)."""

    events: list[Any] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    error: Error | None = None


def _check(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise CancelledError("job cancelled")


def run(
    request: GenerateRequest | dict,
    cancel: CancelFn | None = None,
    engine: Engine | None = None,
    *,
    job_id: str | None = None,
    clip_path: str | Path | None = None,
    allow_scene_paths: bool = True,
) -> Iterator[Any]:
    """Yield the events of one generation; see the module docstring and ARCHITECTURE.md."""
    job_id = job_id or uuid.uuid4().hex[:16]
    yield Accepted(job_id=job_id)
    try:
        if not isinstance(request, GenerateRequest):
            request = parse_request(dict(request))
        job = _Job(request, cancel, engine or default_engine(), clip_path, allow_scene_paths)
        yield from (job.regenerate_events() if request.regenerates else job.events())
    except HosigError as err:
        yield Error(code=err.code, message=str(err))
    except Exception as err:  # noqa: BLE001 - a job must end in an event, never an exception
        log.exception("internal error in job %s", job_id)
        yield Error(code="internal", message=f"{type(err).__name__}: {err}")


def generate(request: GenerateRequest | dict, **kwargs: Any) -> RunResult:
    """Run to completion and collect the events (no streaming); for batch and scripts."""
    result = RunResult()
    for event in run(request, **kwargs):
        result.events.append(event)
        if isinstance(event, Done):
            result.summary = event.summary
        elif isinstance(event, Error):
            result.error = event
    return result


def plan_only(scene_ref: str, start: list[float], target: str, engine: Engine | None = None, allow_scene_paths: bool = True) -> Plan:
    """Navigation preview (POST /plan): the approach leg only."""
    engine = engine or default_engine()
    scene = engine.scenes.get(scene_ref, allow_paths=allow_scene_paths)
    from hosig.navigation import NavConfig, StartPose, plan_to_object

    heading = start[2] if len(start) == 3 else None
    nav = plan_to_object(scene, StartPose(float(start[0]), float(start[1]), heading), target, engine.config.nav or NavConfig())
    return _plan_event(nav, "approach")


def _plan_event(nav: Any, leg: str) -> Plan:
    def opt(name: str) -> Any:
        value = getattr(nav, name, None)
        return np.asarray(value).tolist() if isinstance(value, np.ndarray) else value

    return Plan(
        leg=leg,
        target=opt("target") if isinstance(getattr(nav, "target", None), str) else None,
        start=np.asarray(nav.start, dtype=float).tolist(),
        stand=np.asarray(nav.stand, dtype=float).tolist(),
        waypoints=np.asarray(nav.waypoints, dtype=float).tolist(),
        times=np.asarray(nav.times, dtype=float).tolist(),
        headings=np.asarray(getattr(nav, "headings", []), dtype=float).tolist(),
        length_m=float(nav.length_m),
        duration_s=float(nav.duration_s),
        clearance_min_m=_maybe_float(getattr(nav, "clearance_min_m", None)),
        plan_ms=_maybe_float(getattr(nav, "plan_ms", None)),
        snapped_start=bool(getattr(nav, "snapped_start", False)),
        notes=[str(n) for n in getattr(nav, "notes", [])],
        target_point=opt("target_point"),
    )


def _grasp_pose(grasp: Any) -> np.ndarray:
    """(165,) grasp pose in the frames' convention (smplx, hand poses relative to the hands mean)."""
    full = np.zeros(165)
    full[0:3] = np.asarray(grasp.global_orient, dtype=float).reshape(3)
    full[3:66] = np.asarray(grasp.body_pose, dtype=float).reshape(63)
    full[75:120] = np.asarray(grasp.left_hand_pose, dtype=float).reshape(45)
    full[120:165] = np.asarray(grasp.right_hand_pose, dtype=float).reshape(45)
    return full


def _maybe_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _plan_place(scene: Any, place: str | list[float], target: str, stand: np.ndarray, config: Any) -> tuple[Any, np.ndarray]:
    """Carry leg and the (3,) world point where the carried object's bottom centre goes.

    A point is used as given; an object name tries spots on its top surface, centre first, and
    keeps the first one a person can walk up to (see `place_candidates`).
    """
    from hosig.navigation import StartPose, plan_to_point

    start = StartPose(float(stand[0]), float(stand[1]), float(stand[2]))
    if not isinstance(place, str):
        point = np.asarray(place, dtype=np.float64)
        return plan_to_point(scene, start, point, config), point
    if place == target:
        raise UsageError(f"place: cannot place {target!r} on itself; name another object or give [x, y, z]")
    spots = place_candidates(scene.object(place).mesh)
    if len(spots) == 0:
        spots = object_top_centre(scene.object(place).bounds)[None]
    first_error: UnreachableError | None = None
    for point in spots:
        try:
            return plan_to_point(scene, start, point, config), point
        except UnreachableError as err:
            first_error = first_error or err
    raise UnreachableError(f"place {place!r}: none of {len(spots)} spots on its top surface can be reached ({first_error})")


class _Job:
    """One request's state while its stages run (kept out of `run` so each stage reads simply)."""

    def __init__(self, request: GenerateRequest, cancel: CancelFn | None, engine: Engine, clip_path: Any, allow_paths: bool) -> None:
        self.request = request
        self.engine = engine
        self.clip_path = Path(clip_path) if clip_path else None
        self.allow_paths = allow_paths
        self._closed = threading.Event()  # set when the consumer stops iterating
        self._user_cancel = cancel
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.grasp_cached = False

    def cancelled(self) -> bool:
        return self._closed.is_set() or bool(self._user_cancel and self._user_cancel())

    def _lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = round((now - since) * 1000.0, 2)
        return now

    def events(self) -> Iterator[Any]:
        try:
            yield from self._stages()
        finally:
            self._closed.set()  # stops the motion thread if the consumer went away

    def regenerate_events(self) -> Iterator[Any]:
        """A request with a base clip: regenerate its range around the anchors (issue #20)."""
        from hosig.pipeline.regenerate import regenerate_events

        try:
            yield from regenerate_events(self.request, self.engine, self.cancelled, self.clip_path, self.allow_paths)
        finally:
            self._closed.set()

    def _stages(self) -> Iterator[Any]:
        req = self.request
        t = time.perf_counter()
        scene = self.engine.scenes.get(req.scene, allow_paths=self.allow_paths)
        scene.object(req.target)  # unknown target -> UnknownObjectError listing the names, before any work
        if req.action == "pick-place" and isinstance(req.place, str):
            scene.object(req.place)
        t = self._lap("scene_ms", t)
        _check(self.cancelled)

        from hosig.navigation import NavConfig, StartPose, plan_to_object

        nav_cfg = self.engine.config.nav or NavConfig()
        start = StartPose(float(req.start[0]), float(req.start[1]), req.heading)
        approach = plan_to_object(scene, start, req.target, nav_cfg)
        yield _plan_event(approach, "approach")
        carry = place_point = None
        if req.action == "pick-place":
            carry, place_point = _plan_place(scene, req.place, req.target, np.asarray(approach.stand, dtype=float), nav_cfg)
            yield _plan_event(carry, "carry")
        t = self._lap("navigation_ms", t)
        _check(self.cancelled)

        yield Progress(stage="grasp", fraction=0.0)
        body = self.engine.body(req.smplx_dir)
        grasp, cached = self.engine.grasp(scene, req.target, tuple(float(v) for v in approach.stand), body, req.hand)
        self.grasp_cached = cached
        yield Grasp(
            hand=str(grasp.hand),
            stand=np.asarray(grasp.stand, dtype=float).tolist(),
            wrist=np.asarray(grasp.wrist, dtype=float).tolist(),
            contact_distance_m=_maybe_float(grasp.contact_distance_m),
            object_penetration_m=_maybe_float(getattr(grasp, "object_penetration_m", None)),
            scene_penetration_m=_maybe_float(getattr(grasp, "scene_penetration_m", None)),
            grasp_ms=_maybe_float(getattr(grasp, "grasp_ms", None)),
            pose=_grasp_pose(grasp).tolist(),
            trans=np.asarray(grasp.transl, dtype=float).reshape(-1).tolist(),
        )
        t = self._lap("grasp_ms", t)
        _check(self.cancelled)

        yield Progress(stage="motion", fraction=0.0)
        yield from self._motion(scene, body, approach, carry, place_point, grasp)

    # -- motion ---------------------------------------------------------------------------------

    def _motion(self, scene: Any, body: Any, approach: Any, carry: Any, place_point: Any, grasp: Any) -> Iterator[Any]:
        from hosig.body.skeleton import JOINT_INDEX, PARENTS
        from hosig.clip import MotionClip
        from hosig.motion.synth import synthesize
        from hosig.motion.task import build_task

        req = self.request
        t = time.perf_counter()
        model = self.engine.motion()
        bounds = np.asarray(scene.object(req.target).bounds, dtype=np.float64)
        object_base = np.array([(bounds[0, 0] + bounds[1, 0]) / 2, (bounds[0, 1] + bounds[1, 1]) / 2, bounds[0, 2]])
        legs = [approach] + ([carry] if carry is not None else [])
        task = build_task(req.action, legs, grasp=grasp, place_point=place_point, body=body, object_base=object_base)
        scene_sdf = scene.sdf(exclude=(req.target,))  # the hand may touch the target; not the rest
        n_frames = int(task.n_frames)
        grasp_frame = int(task.grasp_frame)
        release_frame = int(task.release_frame) if task.release_frame >= 0 else None
        attach_a, attach_b = (int(v) for v in task.attached)
        carried = attach_b > attach_a
        tracker = None
        if carried:
            tracker = CarryTracker(
                parents=np.asarray(PARENTS), wrist=JOINT_INDEX[f"{task.hand}_wrist"],
                object_in_wrist=np.asarray(grasp.object_in_wrist, dtype=np.float64),
                grasp_frame=attach_a, release_frame=attach_b if attach_b < n_frames else None,
                settle=self._settler(scene, req.target),
            )
        steps = self.engine.sampler_steps()
        self.timings["task_ms"] = round((time.perf_counter() - t) * 1000.0, 2)

        chunks: queue.Queue = queue.Queue()

        def on_window(chunk: Any) -> None:
            chunks.put(("chunk", chunk))

        def work() -> None:
            try:
                clip = synthesize(
                    model, task.anchors, body, scene_sdf=scene_sdf, seed=req.seed, on_window=on_window, cancel=self.cancelled,
                    floor_z=float(scene.floor_z), scene_skip=task.scene_skip, grasp_frame=grasp_frame,
                    release_frame=release_frame if release_frame is not None else -1, path=task.path,
                    steps=steps,
                )
                chunks.put(("done", clip))
            except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
                chunks.put(("error", err))

        worker = threading.Thread(target=work, name="hosig-motion", daemon=True)
        worker.start()
        parts: dict[str, list[np.ndarray]] = {"poses": [], "trans": [], "joints": [], "obj": []}
        produced = 0
        final_clip = None
        try:
            while True:
                try:
                    kind, payload = chunks.get(timeout=_POLL_S)
                except queue.Empty:
                    if self.cancelled():
                        raise CancelledError("job cancelled") from None
                    continue
                if kind == "error":
                    raise payload
                if kind == "done":
                    final_clip = payload
                    break
                start, poses, trans, joints = _chunk_arrays(payload)
                if start != produced:
                    raise RuntimeError(f"motion chunk starts at frame {start}, expected {produced}")
                obj = tracker.chunk(start, poses, joints) if tracker else None
                if produced == 0:
                    self.timings["first_frames_ms"] = round((time.perf_counter() - self.t0) * 1000.0, 2)
                produced += len(poses)
                for key, arr in (("poses", poses), ("trans", trans), ("joints", joints), ("obj", obj)):
                    if arr is not None:
                        parts[key].append(arr)
                yield Frames.from_arrays(start, poses, trans, joints, req.target if carried else None, obj)
                yield Progress(stage="motion", fraction=min(1.0, produced / max(n_frames, 1)))
                _check(self.cancelled)
        finally:
            if final_clip is None:
                self._closed.set()
            worker.join(timeout=5.0)
        self._lap("motion_ms", t)

        poses = np.concatenate(parts["poses"]) if parts["poses"] else np.zeros((0, 165))
        trans = np.concatenate(parts["trans"]) if parts["trans"] else np.zeros((0, 3))
        joints = np.concatenate(parts["joints"]) if parts["joints"] else np.zeros((0, 55, 3))
        obj = np.concatenate(parts["obj"]) if parts["obj"] else None
        path = np.asarray(task.path, dtype=np.float64)
        clip = MotionClip(
            poses=poses, trans=trans, joints=joints,
            betas=getattr(final_clip, "betas", np.zeros(10)), gender=getattr(final_clip, "gender", "neutral"),
            object_name=req.target if carried else None, object_transforms=obj,
            grasp_frame=grasp_frame if grasp_frame < len(poses) else -1,
            release_frame=release_frame if release_frame is not None else -1,
            path=path, body_identity=body.identity,
            contacts=getattr(final_clip, "contacts", None) if getattr(final_clip, "contacts", None) is not None
            and len(final_clip.contacts) == len(poses) else None,
        )
        written = None
        if self.clip_path is not None:
            written = str(clip.save(self.clip_path))
        self.timings["total_ms"] = round((time.perf_counter() - self.t0) * 1000.0, 2)
        yield Done(summary=self._summary(clip, scene, grasp, approach, carry, place_point, written, body))

    @staticmethod
    def _settler(scene: Any, target: str) -> Callable[[np.ndarray], float]:
        """Put-down transform (4,4) -> vertical move (m) resting the object on the surface under it
        (the scene without the object; see `hosig.pipeline.settle`)."""
        return make_settler(scene.mesh(exclude=(target,)), np.asarray(scene.object(target).vertices, dtype=np.float64))

    def _summary(self, clip: Any, scene: Any, grasp: Any, approach: Any, carry: Any, place_point: Any, written: str | None,
                 body: Any = None) -> dict[str, Any]:
        from hosig.pipeline.metrics import clip_metrics

        req = self.request
        return {
            "frames": clip.n_frames,
            "duration_s": round(clip.duration_s, 4),
            "fps": clip.fps,
            "action": req.action,
            "target": req.target,
            "place": req.place,
            "seed": req.seed,
            "scene": scene.content_hash,
            "timings_ms": dict(self.timings),
            "grasp_cached": self.grasp_cached,
            "realtime_factor": round(clip.duration_s / max(self.timings.get("total_ms", 0.0) / 1000.0, 1e-9), 3),
            "metrics": clip_metrics(clip, scene, grasp, approach, carry, place_point, body),
            "grasp_frame": clip.grasp_frame,
            "release_frame": clip.release_frame,
            "body_identity": clip.body_identity,
            "motion_model": self.engine.motion_identity(),
            "quality": self.engine.config.quality,
            "object_name": clip.object_name,
            "clip": written,
        }


def _chunk_arrays(chunk: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(start, poses (n,165), trans (n,3), joints (n,55,3)) from a motion window."""
    start = int(chunk.start)
    poses = np.asarray(chunk.poses, dtype=np.float64).reshape(-1, 165)
    trans = np.asarray(chunk.trans, dtype=np.float64).reshape(-1, 3)
    joints = np.asarray(chunk.joints, dtype=np.float64).reshape(-1, 55, 3)
    return start, poses, trans, joints
