"""Edit and regenerate (issue #20): the pipeline side of `hosig.motion.regenerate`.

`regenerate_events(request, ...)` is what `run` yields for a request with a ``base_clip``: the
base clip's frames before the range at once (they never change, so the add-on keys them while the
range is sampled), then the regenerated range and the frames after it, then ``done`` with each
anchor's outcome, the seams and, for ``variations`` > 1, every take ranked best first by its
gross-failure score (`score_take`, on the regenerated frames and their seams; the best take is
the one streamed and written). One take streams window by window (`RangeBuilder`): each window's
range frames as soon as the window is final (``timings_ms.first_range_frames_ms``); several takes
stream the best one's range once all are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hosig.errors import CancelledError, UsageError
from hosig.pipeline.events import Done, Frames, Progress
from hosig.pipeline.request import BaseFrames, GenerateRequest

CHUNK_FRAMES = 90  # frames per `frames` event of the unchanged parts
FAILURE_WEIGHT = 100.0  # score: each gross failure ...
NOT_MET_WEIGHT = 10.0  # ... each anchor not met, then the fastest joint in the range (m/s / 8)


@dataclass
class Take:
    """One regenerated take and its score (lower is better)."""

    seed: int
    result: Any  # motion.regenerate.RegenerateResult
    score: float
    failures: list[str]
    regenerate_ms: float

    def to_json(self, rank: int) -> dict[str, Any]:
        return {"rank": rank, "seed": self.seed, "score": round(self.score, 4), "failures": self.failures,
                "anchors_met": self.result.all_met, "regenerate_ms": round(self.regenerate_ms, 1),
                "max_joint_speed_m_s": round(self.result.seams["max_joint_speed_m_s"], 3)}


def load_base(request: GenerateRequest, body: Any, allow_paths: bool) -> Any:
    """The request's base clip as a `MotionClip` (a path only where paths are allowed: the CLI)."""
    from hosig.clip import MotionClip
    from hosig.motion.synth import world_joints

    base = request.base_clip
    if isinstance(base, str):
        if not allow_paths:
            raise UsageError("base_clip: the server reads no files a client names; send the clip's frames")
        return MotionClip.load(Path(base))
    assert isinstance(base, BaseFrames)
    poses = np.asarray(base.poses, dtype=np.float64)
    trans = np.asarray(base.trans, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 165 or trans.shape != (len(poses), 3):
        raise UsageError(f"base_clip: poses must be (T,165) and trans (T,3), got {poses.shape} and {trans.shape}")
    obj = None
    if base.object_transforms is not None:
        obj = np.asarray(base.object_transforms, dtype=np.float64)
        if obj.shape != (len(poses), 16):
            raise UsageError(f"base_clip.object_transforms: expected ({len(poses)}, 16), got {obj.shape}")
        obj = obj.reshape(-1, 4, 4)
    pelvis = trans + np.asarray(body.rest_joints_y[0], dtype=np.float64)
    joints = world_joints(body, poses.astype(np.float32), pelvis.astype(np.float32))
    return MotionClip(poses=poses, trans=trans, joints=joints, object_name=base.object_name, object_transforms=obj,
                      grasp_frame=base.grasp_frame, release_frame=base.release_frame, body_identity=body.identity)


def score_take(result: Any, scene: Any, body: Any, first: int, last: int) -> tuple[float, list[str]]:
    """(score, gross failures) of a take: the stress evaluation's detectors (penetration, feet off
    the floor, pops, hand and object when the grasp lies there) on the regenerated frames and
    their seams (the rest is the base clip's, the same for every take), plus its anchors not met."""
    from hosig.eval.gross import judge_clip

    clip = _window(result.clip, first, last)
    target = clip.object_name if clip.object_name in scene.objects and clip.grasp_frame >= 0 else None
    action = "pick-place" if clip.release_frame >= 0 else "pick"
    verdict = judge_clip(clip, scene, body, target, action=action) if target else judge_clip(clip, scene, body, None)
    not_met = sum(not o.met for o in result.outcomes)
    score = FAILURE_WEIGHT * len(verdict.failures) + NOT_MET_WEIGHT * not_met + result.seams["max_joint_speed_m_s"] / 8.0
    return float(score), list(verdict.failures)


SCORE_MARGIN = 8  # frames of the base clip judged on each side of the range (its seams)


def _window(clip: Any, first: int, last: int) -> Any:
    """The clip's frames [first - margin, last + margin] as a clip (grasp/release moved, or -1 outside)."""
    from hosig.clip import MotionClip

    a, b = max(0, first - SCORE_MARGIN), min(clip.n_frames, last + 1 + SCORE_MARGIN)

    def moved(f: int) -> int:
        return f - a if a <= f < b else -1

    obj = None if clip.object_transforms is None else clip.object_transforms[a:b]
    return MotionClip(poses=clip.poses[a:b], trans=clip.trans[a:b], joints=clip.joints[a:b], betas=clip.betas,
                      gender=clip.gender, object_name=clip.object_name, object_transforms=obj,
                      grasp_frame=moved(clip.grasp_frame), release_frame=moved(clip.release_frame),
                      body_identity=clip.body_identity, fps=clip.fps)


def _frames(clip: Any, a: int, b: int) -> Iterator[Frames]:
    """`frames` events for clip frames [a, b) in chunks."""
    for s in range(a, b, CHUNK_FRAMES):
        e = min(b, s + CHUNK_FRAMES)
        obj = None if clip.object_transforms is None else clip.object_transforms[s:e]
        yield Frames.from_arrays(s, clip.poses[s:e], clip.trans[s:e], clip.joints[s:e], clip.object_name, obj)


def regenerate_events(request: GenerateRequest, engine: Any, cancelled: Callable[[], bool], clip_path: Path | None,
                      allow_paths: bool) -> Iterator[Any]:
    """The events of one edit-and-regenerate request (after `accepted`)."""
    from hosig.motion.edits import parse_anchors
    from hosig.motion.regenerate import RangeBuilder, RegenerateSpec, check_range, regenerate

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    scene = engine.scenes.get(request.scene, allow_paths=allow_paths)
    body = engine.body(request.smplx_dir)
    base = load_base(request, body, allow_paths)
    first, last = request.range if request.range is not None else (0, base.n_frames - 1)
    check_range(int(first), int(last), base.n_frames)
    anchors = parse_anchors([a.model_dump(exclude_none=True) for a in request.anchors or []])
    model = engine.motion()
    exclude = (base.object_name,) if base.object_name and base.object_name in scene.objects else ()
    scene_sdf = scene.sdf(exclude=exclude)
    timings["load_ms"] = _ms(t0)
    yield from _frames(base, 0, first)  # unchanged: the add-on keys them while the range is sampled
    if first > 0:
        timings["first_frames_ms"] = _ms(t0)
    yield Progress(stage="regenerate", fraction=0.0)

    def spec(i: int) -> RegenerateSpec:
        return RegenerateSpec(base, int(first), int(last), anchors, seed=request.seed + i, floor_z=float(scene.floor_z),
                              steps=engine.sampler_steps())

    if request.variations == 1:  # one take: streamed window by window
        builder = RangeBuilder(model, body, spec(0), scene_sdf=scene_sdf, cancel=cancelled)
        takes = [(yield from _stream_take(builder, request.seed, scene, body, t0, timings))]
    else:  # the best of several is known only at the end
        takes = []
        for i in range(request.variations):
            if cancelled():
                raise CancelledError("job cancelled")
            t = time.perf_counter()
            result = regenerate(model, body, spec(i), scene_sdf=scene_sdf, cancel=cancelled)
            ms = _ms(t)
            score, failures = score_take(result, scene, body, int(first), int(last))
            takes.append(Take(request.seed + i, result, score, failures, ms))
            yield Progress(stage="regenerate", fraction=(i + 1) / request.variations)
        takes.sort(key=lambda tk: tk.score)
        best = takes[0].result.clip
        yield from _frames(best, first, best.n_frames)
        timings["first_range_frames_ms"] = _ms(t0)
    timings.setdefault("first_frames_ms", timings["first_range_frames_ms"])
    timings["regenerate_ms"] = round(sum(tk.regenerate_ms for tk in takes), 2)
    written = _write(takes, clip_path)
    timings["total_ms"] = _ms(t0)
    yield Done(summary=_summary(request, takes, scene, body, int(first), int(last), timings, written))


def _stream_take(builder: Any, seed: int, scene: Any, body: Any, t0: float,
                 timings: dict[str, float]) -> Generator[Any, None, Take]:
    """Stream one take (`motion.regenerate.RangeBuilder`): each window's final range frames as soon as
    they are ready, then the frames after the range; returns the scored `Take`. Sets
    ``first_range_frames_ms`` (since ``t0``) and the builder's per-window timings in ``timings``."""
    first, last = builder.spec.first, builder.spec.last
    t = time.perf_counter()
    for a, b in builder.spans():
        if a <= last:
            timings.setdefault("first_range_frames_ms", _ms(t0))
        yield from _frames(builder.clip, a, b)
        if a <= last:
            yield Progress(stage="regenerate", fraction=round((b - first) / (last + 1 - first), 4))
    ms = _ms(t)
    timings.update({f"regenerate_{k}": v for k, v in builder.timings_ms.items()})
    result = builder.result()
    score, failures = score_take(result, scene, body, first, last)
    return Take(seed, result, score, failures, ms)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 2)


def _write(takes: list[Take], clip_path: Path | None) -> list[str]:
    """The best take to ``clip_path``, the others beside it as ``<stem>.take<rank>.npz``."""
    if clip_path is None:
        return []
    out = [str(takes[0].result.clip.save(clip_path))]
    for rank, take in enumerate(takes[1:], start=2):
        out.append(str(take.result.clip.save(clip_path.with_name(f"{clip_path.stem}.take{rank}.npz"))))
    return out


def _summary(request: GenerateRequest, takes: list[Take], scene: Any, body: Any, first: int, last: int,
             timings: dict[str, float], written: list[str]) -> dict[str, Any]:
    best = takes[0]
    clip = best.result.clip
    range_s = (last - first + 1) / float(clip.fps)
    return {
        "mode": "regenerate",
        "frames": clip.n_frames,
        "duration_s": round(clip.duration_s, 4),
        "fps": clip.fps,
        "range": [first, last],
        "seed": best.seed,
        "scene": scene.content_hash,
        "anchors": [o.to_json() for o in best.result.outcomes],
        "anchors_met": best.result.all_met,
        "seams": {k: round(float(v), 4) for k, v in best.result.seams.items()},
        "score": round(best.score, 4),
        "failures": best.failures,
        "takes": [tk.to_json(rank) for rank, tk in enumerate(takes, start=1)],
        "timings_ms": dict(timings),
        "realtime_factor": round(range_s * len(takes) / max(timings["regenerate_ms"] / 1000.0, 1e-9), 3),
        "grasp_frame": clip.grasp_frame,
        "release_frame": clip.release_frame,
        "object_name": clip.object_name,
        "body_identity": body.identity,
        "notes": list(best.result.notes),
        "clip": written[0] if written else None,
        "clips": written,
    }
