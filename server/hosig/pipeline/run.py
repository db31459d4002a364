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
from collections.abc import Callable, Generator, Iterator
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
GRASP_NICE = 10  # CPU priority of the grasp thread beside the walk (Linux nice; the walk's windows come first)
PREFETCH_NICE = 5  # of the scene-distance prefetch (ahead of the motion's own use, behind the motion)


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


BODY_HEIGHTS_M = (0.1, 0.35, 0.6, 0.9, 1.3)  # shins, knees, thighs, hips, chest over the floor


def floor_clearance(scene_sdf: Any, floor_z: float) -> Callable[[np.ndarray], float]:
    """xy (2,) -> free space (m) around a body standing there: the least scene distance over
    `BODY_HEIGHTS_M` above the floor (``scene_sdf`` with ``query_np`` (N,3) -> (N,))."""

    def clearance(xy: np.ndarray) -> float:
        points = np.array([[xy[0], xy[1], floor_z + h] for h in BODY_HEIGHTS_M])
        return float(np.min(scene_sdf.query_np(points)))

    return clearance


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
        self._grasp_sent = False
        self._produced = 0  # frames streamed so far
        self.frames_before_grasp = 0  # frames streamed before the grasp event
        self.walk_prefix_ok = True  # the walk's anchors were the real task's (see walkfirst)
        self.repair_report: Any = None  # pipeline.repair.RepairReport once the clip was judged

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
        if getattr(self.engine.config, "prefetch_sdf", True):
            self._start_sdf_prefetch(scene, [approach] + ([carry] if carry is not None else []))

        yield Progress(stage="grasp", fraction=0.0)
        body = self.engine.body(req.smplx_dir)
        future = self._start_grasp(scene, approach, body)
        walk_first = bool(getattr(self.engine.config, "grasp_beside_walk", True))
        if not walk_first:  # grasp first: the grasp event (or its error) before any motion
            future.result(self.cancelled)
            yield from self._grasp_ready(future)
        _check(self.cancelled)
        yield Progress(stage="motion", fraction=0.0)
        yield from self._motion(scene, body, approach, carry, place_point, future, walk_first)

    # -- grasp ----------------------------------------------------------------------------------

    def _start_grasp(self, scene: Any, approach: Any, body: Any) -> Any:
        """The grasp optimisation (or cache hit) at the approach's stand point, in a background
        thread: a `walkfirst.Deferred` of the GraspResult."""
        from hosig.motion.walkfirst import Deferred

        req = self.request
        stand = tuple(float(v) for v in approach.stand)

        def optimise() -> Any:
            t = time.perf_counter()
            grasp, cached = self.engine.grasp(scene, req.target, stand, body, req.hand)
            self.grasp_cached = cached
            self.timings["grasp_ms"] = round((time.perf_counter() - t) * 1000.0, 2)
            return grasp

        # beside the walk the grasp is needed later than the first windows: it yields the cores to them
        nice = GRASP_NICE if getattr(self.engine.config, "grasp_beside_walk", True) else 0
        return Deferred(optimise, name="hosig-grasp", nice=nice)

    def _start_sdf_prefetch(self, scene: Any, legs: list) -> Any:
        """The target-excluded scene distances along the planned legs, built in a background
        thread while the grasp is optimised (`pipeline.prefetch`); a `walkfirst.Deferred`."""
        from hosig.motion.walkfirst import Deferred
        from hosig.pipeline.prefetch import prefetch_path_sdf

        def build() -> int:
            t = time.perf_counter()
            tiles = prefetch_path_sdf(scene, self.request.target, legs, stop=self.cancelled)
            self.timings["sdf_prefetch_ms"] = round((time.perf_counter() - t) * 1000.0, 2)
            self.timings["sdf_prefetch_tiles"] = float(tiles)
            return tiles

        return Deferred(build, name="hosig-sdf-prefetch", nice=PREFETCH_NICE)

    def _grasp_ready(self, future: Any) -> Iterator[Any]:
        """The ``grasp`` event once ``future`` has finished (once; nothing before); its error if it failed."""
        if self._grasp_sent or not future.done():
            return
        grasp = future.result()
        self._grasp_sent = True
        self.frames_before_grasp = self._produced
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

    # -- motion ---------------------------------------------------------------------------------

    def _motion(self, scene: Any, body: Any, approach: Any, carry: Any, place_point: Any, future: Any,
                walk_first: bool) -> Iterator[Any]:
        """Motion windows streamed as ``frames`` events. ``walk_first``: the windows before the
        arrival are sampled while ``future`` (the grasp) is still optimised (`walkfirst`); the
        ``grasp`` event goes out as soon as it is ready, between two ``frames`` events."""
        from hosig.motion.synth import synthesize
        from hosig.motion.task import build_task
        from hosig.motion.walkfirst import LaterAnchors, Resolved, prefix_matches, walk_task

        req = self.request
        t = time.perf_counter()
        model = self.engine.motion()
        bounds = np.asarray(scene.object(req.target).bounds, dtype=np.float64)
        object_base = np.array([(bounds[0, 0] + bounds[1, 0]) / 2, (bounds[0, 1] + bounds[1, 1]) / 2, bounds[0, 2]])
        legs = [approach] + ([carry] if carry is not None else [])
        scene_sdf = scene.sdf(exclude=(req.target,))  # the hand may touch the target; not the rest
        chunks: queue.Queue = queue.Queue()

        def real_task() -> Any:
            return build_task(req.action, legs, grasp=future.result(self.cancelled), place_point=place_point, body=body,
                              object_base=object_base, clearance=floor_clearance(scene_sdf, float(scene.floor_z)))

        later = None
        if walk_first:
            task = walk = walk_task(build_task, approach, req.hand, body)
            arrive = int(walk.reach_from)

            def resolve() -> Resolved:
                final = real_task()
                if not prefix_matches(walk.anchors, final.anchors, arrive):
                    self.walk_prefix_ok = False
                    log.warning("walk-first: the walk's anchors differ from the task's before frame %d", arrive)
                chunks.put(("task", final))
                return Resolved(final.anchors, final.touch_spans, int(final.grasp_frame), int(final.release_frame))

            later = LaterAnchors(arrive, resolve)
        else:
            task = real_task()
            chunks.put(("task", task))
        steps = self.engine.sampler_steps()
        self.timings["task_ms"] = round((time.perf_counter() - t) * 1000.0, 2)

        def on_window(chunk: Any) -> None:
            chunks.put(("chunk", chunk))

        def work(task: Any = task) -> None:
            try:
                clip = synthesize(
                    model, task.anchors, body, scene_sdf=scene_sdf, seed=req.seed, on_window=on_window, cancel=self.cancelled,
                    floor_z=float(scene.floor_z), touch_spans=task.touch_spans, grasp_frame=int(task.grasp_frame),
                    release_frame=int(task.release_frame), path=task.path, steps=steps, later=later,
                )
                chunks.put(("done", clip))
            except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
                chunks.put(("error", err))

        worker = threading.Thread(target=work, name="hosig-motion", daemon=True)
        worker.start()
        stream = _Stream(carried=req.action != "reach", n_frames=int(task.n_frames))
        final_clip = None
        try:
            while True:
                yield from self._grasp_ready(future)
                try:
                    kind, payload = chunks.get(timeout=_POLL_S)
                except queue.Empty:
                    if self.cancelled():
                        raise CancelledError("job cancelled") from None
                    if future.failed():
                        future.result()  # the grasp's own error, at once
                    continue
                if kind == "error":
                    raise payload
                if kind == "done":
                    final_clip = payload
                    break
                if kind == "task":
                    task = payload
                    stream.use_task(task, future.result(), self._settler(scene, req.target))
                    continue
                yield from self._stream_chunk(stream, payload, req.target)
                _check(self.cancelled)
        finally:
            if final_clip is None:
                self._closed.set()
            worker.join(timeout=5.0)
        yield from self._grasp_ready(future)
        self._lap("motion_ms", t)
        clip = stream.clip(final_clip, task, req.target, body)
        clip = yield from self._repair(clip, scene, body, model, scene_sdf, future.result(), steps)
        written = None
        if self.clip_path is not None:
            written = str(clip.save(self.clip_path))
        self.timings["total_ms"] = round((time.perf_counter() - self.t0) * 1000.0, 2)
        yield Done(summary=self._summary(clip, scene, future.result(), approach, carry, place_point, written, body))

    def _repair(self, clip: Any, scene: Any, body: Any, model: Any, scene_sdf: Any, grasp: Any,
                steps: int | None) -> Generator[Any, None, Any]:
        """The finished clip judged and, where it fails, its frames around the failure redrawn
        (`pipeline.repair`); each replaced range goes out again as ``frames`` events (they replace
        the frames sent before). Returns the clip to save; the report goes in the summary."""
        from hosig.eval.gross import judge_clip
        from hosig.pipeline.repair import range_redrawer, repair_clip

        req = self.request
        rounds = self.engine.repair_rounds(req.repair)
        if rounds <= 0 or clip.n_frames < 2:
            return clip
        t = time.perf_counter()
        yield Progress(stage="repair", fraction=0.0)
        hand = str(grasp.hand) if grasp is not None else None

        def judge(candidate: Any) -> Any:
            return judge_clip(candidate, scene, body, req.target, hand=hand, action=req.action)

        redraw = range_redrawer(model, body, scene_sdf, float(scene.floor_z), steps, hand, cancel=self.cancelled)
        clip, report = repair_clip(clip, judge, redraw, req.seed, rounds=rounds, cancel=self.cancelled)
        _check(self.cancelled)
        self.repair_report = report
        carried = clip.object_transforms is not None
        for first, last in report.kept_ranges:
            sl = slice(first, last + 1)
            obj = clip.object_transforms[sl] if carried else None
            yield Frames.from_arrays(first, clip.poses[sl], clip.trans[sl], clip.joints[sl], req.target if carried else None, obj)
        yield Progress(stage="repair", fraction=1.0)
        self._lap("repair_ms", t)
        return clip

    def _stream_chunk(self, stream: "_Stream", chunk: Any, target: str) -> Iterator[Any]:
        """One motion window's final frames: a ``frames`` event (object transforms while carried)
        and a ``progress`` event."""
        start, poses, trans, joints = _chunk_arrays(chunk)
        if start != self._produced:
            raise RuntimeError(f"motion chunk starts at frame {start}, expected {self._produced}")
        obj = stream.add(start, poses, trans, joints)
        if self._produced == 0:
            self.timings["first_frames_ms"] = round((time.perf_counter() - self.t0) * 1000.0, 2)
        self._produced += len(poses)
        yield Frames.from_arrays(start, poses, trans, joints, target if stream.carried else None, obj)
        # never backwards: until the grasp is known the length is the walk task's (a guess)
        stream.fraction = max(stream.fraction, min(1.0, self._produced / max(stream.n_frames, 1)))
        yield Progress(stage="motion", fraction=stream.fraction)

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
            "frames_before_grasp": self.frames_before_grasp,
            "walk_first": bool(getattr(self.engine.config, "grasp_beside_walk", True)),
            "walk_prefix_exact": self.walk_prefix_ok,
            "realtime_factor": round(clip.duration_s / max(self.timings.get("total_ms", 0.0) / 1000.0, 1e-9), 3),
            "metrics": clip_metrics(clip, scene, grasp, approach, carry, place_point, body),
            "grasp_frame": clip.grasp_frame,
            "release_frame": clip.release_frame,
            "body_identity": clip.body_identity,
            "motion_model": self.engine.motion_identity(),
            "quality": self.engine.config.quality,
            "object_name": clip.object_name,
            "clip": written,
            "repair": self.repair_report.to_json() if self.repair_report is not None else None,
        }


class _Stream:
    """The streamed frames of one job and the carried object's tracker (known once the task is)."""

    def __init__(self, carried: bool, n_frames: int) -> None:
        self.carried = carried  # pick and pick-place carry the target (frames before the grasp: at rest)
        self.n_frames = n_frames  # the walk task's until the real task is known
        self.fraction = 0.0  # motion progress reported so far
        self.tracker: CarryTracker | None = None
        self.parts: dict[str, list[np.ndarray]] = {"poses": [], "trans": [], "joints": [], "obj": []}

    def use_task(self, task: Any, grasp: Any, settle: Callable[[np.ndarray], float]) -> None:
        """The real task is known: its length and, for a carry, the object tracker."""
        from hosig.body.skeleton import JOINT_INDEX, PARENTS

        self.n_frames = int(task.n_frames)
        attach_a, attach_b = (int(v) for v in task.attached)
        self.carried = attach_b > attach_a
        if self.carried:
            self.tracker = CarryTracker(
                parents=np.asarray(PARENTS), wrist=JOINT_INDEX[f"{task.hand}_wrist"],
                object_in_wrist=np.asarray(grasp.object_in_wrist, dtype=np.float64),
                grasp_frame=attach_a, release_frame=attach_b if attach_b < self.n_frames else None, settle=settle,
            )

    def add(self, start: int, poses: np.ndarray, trans: np.ndarray, joints: np.ndarray) -> np.ndarray | None:
        """Keep a chunk; (n,4,4) object transforms while carried (at rest before the task is known:
        those frames lie before the arrival, so before the grasp), else None."""
        obj = None
        if self.tracker is not None:
            obj = self.tracker.chunk(start, poses, joints)
        elif self.carried:
            obj = np.broadcast_to(np.eye(4), (len(poses), 4, 4)).copy()
        for key, arr in (("poses", poses), ("trans", trans), ("joints", joints), ("obj", obj)):
            if arr is not None:
                self.parts[key].append(arr)
        return obj

    def clip(self, final_clip: Any, task: Any, target: str, body: Any) -> Any:
        """The streamed frames as a MotionClip (what was sent is what is saved)."""
        from hosig.clip import MotionClip

        parts = self.parts
        poses = np.concatenate(parts["poses"]) if parts["poses"] else np.zeros((0, 165))
        trans = np.concatenate(parts["trans"]) if parts["trans"] else np.zeros((0, 3))
        joints = np.concatenate(parts["joints"]) if parts["joints"] else np.zeros((0, 55, 3))
        obj = np.concatenate(parts["obj"]) if parts["obj"] and self.carried else None
        grasp_frame = int(task.grasp_frame)
        release_frame = int(task.release_frame)
        contacts = getattr(final_clip, "contacts", None)
        return MotionClip(
            poses=poses, trans=trans, joints=joints,
            betas=getattr(final_clip, "betas", np.zeros(10)), gender=getattr(final_clip, "gender", "neutral"),
            object_name=target if self.carried else None, object_transforms=obj,
            grasp_frame=grasp_frame if grasp_frame < len(poses) else -1,
            release_frame=release_frame if release_frame >= 0 else -1,
            path=np.asarray(task.path, dtype=np.float64), body_identity=body.identity,
            contacts=contacts if contacts is not None and len(contacts) == len(poses) else None,
        )


def _chunk_arrays(chunk: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(start, poses (n,165), trans (n,3), joints (n,55,3)) from a motion window."""
    start = int(chunk.start)
    poses = np.asarray(chunk.poses, dtype=np.float64).reshape(-1, 165)
    trans = np.asarray(chunk.trans, dtype=np.float64).reshape(-1, 3)
    joints = np.asarray(chunk.joints, dtype=np.float64).reshape(-1, 55, 3)
    return start, poses, trans, joints
