"""Regenerate a frame range of an existing clip around an animator's keys (issue #20).

The range [first, last] is inpainted by the same sampler that made the clip (`synth.synthesize`):

- ``CONTEXT_FRAMES`` frames on each side of the range are hard anchors taken from the base clip
  (pelvis position, root, all 21 body rotations, both hands): the sampler, the foot planter and
  `refine` keep them, and `synth.ease_into_hard` fades the new motion into them, so the seams
  continue the base clip's motion. Frames outside the range are then copied from the base clip
  bit for bit.
- Inside the range the pelvis path (xy) is hard, as a walk's is in `task._walk`: the base clip's,
  carried to each pelvis key and back over `KEY_CLEAR_FRAMES` (`eased_offsets`), so moving the
  hips never makes them race; the base clip's heading (every `GUIDE_EVERY` frames) and the carrying wrist
  while an object is held guide softly away from the animator's keys; the fingers are kept.
- The animator's keys (`edits.EditAnchor`): a pelvis position is a hard anchor (met exactly),
  other joint positions are weighted guidance targets met by a final `refine` pass (arm and leg
  IK, eased over the neighbouring frames, feet that were planted held, skin kept out of the
  scene); rotations are hard anchors on the joint's rotation channel.
- Keys the body or the scene cannot honour are left out and reported "not met" with a reason
  (`edits.check_feasible`); every other key is measured on the result.

The carried object follows the new hand: its transform in the range is the base one carried by
the change of the grasping wrist.

`RangeBuilder` is the streamed form (what the pipeline runs for one take): the range's frames
become final window by window, as soon as each window is sampled and refined (and the keys'
correction has run over the frames it reaches), with the same result, bit for bit, as `regenerate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from hosig.clip import MotionClip
from hosig.easing import smoothstep
from hosig.errors import UsageError
from hosig.motion.anchors import AnchorSet
from hosig.motion.edits import (
    MAX_JOINT_SPEED_M_S,
    AnchorOutcome,
    EditAnchor,
    Feasibility,
    axis_angle_to_matrix,
    chain_lengths,
    check_feasible,
    quat_to_axis_angle,
    rotation_angle_deg,
)
from hosig.motion.refine import REFINE_JOINTS, RefineConfig, SceneTerm, refine
from hosig.motion.representation import FOOT_CONTACT_JOINTS, CanonFrame, aa_to_matrix, matrix_to_aa, skeleton_fk
from hosig.motion.synth import MotionChunk, synthesize, synthesize_windows, world_joints
from hosig.motion.task import touch_spans_of, wrist_transforms

CONTEXT_FRAMES = 8  # fixed base frames on each side of the range, hard anchors (~0.27 s)
GUIDE_EVERY = 4  # frames between the base clip's soft pelvis/heading anchors inside the range
KEY_CLEAR_FRAMES = 15  # no base guidance this close to an animator's key on the same joint (or the pelvis)
KEY_WEIGHT = 5.0  # an animator's position key weighs this much more than a path anchor in guidance and refine
POSITION_TOLERANCE_M = 0.02
ROTATION_TOLERANCE_DEG = 5.0
LEFT_FOOT_JOINTS = (7, 10)
RIGHT_FOOT_JOINTS = (8, 11)


@dataclass
class RegenerateSpec:
    """What to regenerate: ``base`` frames [first, last] (inclusive) honouring ``anchors``."""

    base: MotionClip
    first: int
    last: int
    anchors: list[EditAnchor] = field(default_factory=list)
    seed: int = 0
    floor_z: float = 0.0
    steps: int | None = None  # sampler steps (None: the model's)
    context: int = CONTEXT_FRAMES


@dataclass
class RegenerateResult:
    """The new clip (same length as the base), each anchor's outcome, seam figures, timings."""

    clip: MotionClip
    outcomes: list[AnchorOutcome]
    seams: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def all_met(self) -> bool:
        return all(o.met for o in self.outcomes)


def check_range(first: int, last: int, n_frames: int) -> None:
    """UsageError unless 0 <= first <= last < n_frames."""
    if not 0 <= first <= last < n_frames:
        raise UsageError(f"range {first}:{last} must lie within the clip's frames 0:{n_frames - 1} with first <= last")


def _prepare(body, spec: RegenerateSpec, scene_sdf) -> tuple[int, int, list[EditAnchor], list[AnchorOutcome], str | None, object]:
    """What both `regenerate` and `RangeBuilder` start from: the sub-clip span ``[lo, hi)`` (the range
    and its context), the feasible anchors and the outcomes of those refused, the carrying hand and
    the sampler's anchor set. UsageError for a bad range."""
    base = spec.base
    check_range(spec.first, spec.last, base.n_frames)
    lo, hi = max(0, spec.first - spec.context), min(base.n_frames, spec.last + 1 + spec.context)
    if hi - lo < 2:
        raise UsageError("a regenerated range needs at least 2 frames with its context")
    feasible, outcomes = _sort_anchors(body, spec, scene_sdf)
    hand = carry_hand(base, body)
    return lo, hi, feasible, outcomes, hand, build_anchor_set(base, lo, hi, spec.first, spec.last, feasible, hand)


def regenerate(model, body, spec: RegenerateSpec, scene_sdf=None, cancel: Callable[[], bool] | None = None) -> RegenerateResult:
    """Regenerate ``spec.base`` on [first, last]; see the module docstring.

    ``scene_sdf``: the scene's `SceneSDF` without the carried object (None: no scene terms).
    Raises UsageError for a bad range, CancelledError when ``cancel()`` turns true."""
    base = spec.base
    lo, hi, feasible, outcomes, hand, anchors = _prepare(body, spec, scene_sdf)
    sub = SubClip.empty(hi - lo)
    synthesize(model, anchors, body, scene_sdf=scene_sdf, seed=spec.seed, on_window=sub.store, cancel=cancel,
               floor_z=spec.floor_z, touch_spans=_touch_spans(base, lo, hi), steps=spec.steps)
    poses, pelvis = key_refine(body, model, sub.poses, sub.pelvis, sub.contacts, feasible, lo, spec, scene_sdf)
    clip = splice(base, body, poses, pelvis, sub.contacts, lo, spec.first, spec.last, hand)
    return _finish(spec, body, clip, feasible, outcomes)


def _finish(spec: RegenerateSpec, body, clip: MotionClip, feasible: list[EditAnchor],
            outcomes: list[AnchorOutcome]) -> RegenerateResult:
    """The result of a finished regeneration: each anchor measured, the seams, the notes."""
    base = spec.base
    outcomes = outcomes + [measure(a, clip) for a in feasible]
    outcomes.sort(key=lambda o: o.anchor.index)
    notes = []
    if base.release_frame >= 0 and spec.first <= base.release_frame <= spec.last and base.object_transforms is not None:
        notes.append("the release lies in the range: the object is put down where the base clip put it")
    return RegenerateResult(clip, outcomes, seam_report(base, clip, spec.first, spec.last), notes)


@dataclass
class SubClip:
    """The sampled sub-clip [lo, hi) as `synthesize` streamed it (its `MotionChunk` frames: what is
    streamed is what is kept; the returned clip re-decodes each window's context frames, which differ
    by float rounding). Rows not yet streamed are zero."""

    poses: np.ndarray  # (n,165) float32
    pelvis: np.ndarray  # (n,3) float32, world pelvis (joint 0)
    contacts: np.ndarray  # (n,4) float32
    done: int = 0  # frames [0, done) streamed so far

    @classmethod
    def empty(cls, n: int) -> "SubClip":
        return cls(np.zeros((n, 165), np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 4), np.float32))

    def store(self, chunk: MotionChunk) -> None:
        """Keep one window's final frames (contiguous with the previous ones)."""
        a, b = chunk.start, chunk.start + chunk.count
        if a != self.done:
            raise RuntimeError(f"motion chunk starts at frame {a}, expected {self.done}")
        self.poses[a:b] = chunk.poses
        self.pelvis[a:b] = chunk.joints[:, 0]
        self.contacts[a:b] = chunk.contacts
        self.done = b


class RangeBuilder:
    """`regenerate`, streamed: the range's frames become final window by window.

    ``spans()`` yields base-clip frame spans ``(a, b)`` of ``clip`` (the base clip being rewritten)
    that are final, in order: the range's frames of each window as soon as that window is sampled
    and refined (frames the keys' correction reaches once it has run, right after the window that
    completes them), then the suffix ``(last + 1, T)`` (unchanged). The unchanged prefix
    ``(0, first)`` is final from the start and is not yielded. ``result()`` afterwards: the same
    `RegenerateResult`, bit for bit, as `regenerate` for the same spec."""

    def __init__(self, model, body, spec: RegenerateSpec, scene_sdf=None, cancel: Callable[[], bool] | None = None) -> None:
        self.lo, self.hi, self.feasible, self.outcomes, self.hand, self.anchors = _prepare(body, spec, scene_sdf)
        self.model, self.body, self.spec, self.scene_sdf, self.cancel = model, body, spec, scene_sdf, cancel
        placed = [a for a in self.feasible if a.position is not None and a.joint != 0]
        # sub-clip frames [ka, kb) wait for `key_refine` (none: every frame is final once sampled)
        self.key_span = key_span(placed, self.lo, spec, self.hi - self.lo)[:2] if placed else (0, 0)
        self.sub = SubClip.empty(self.hi - self.lo)
        self.clip = copy_clip(spec.base)
        self.timings_ms: dict[str, float] = {}
        self._result: RegenerateResult | None = None

    def spans(self) -> Iterator[tuple[int, int]]:
        """Final spans of ``clip`` (base frame numbers), in order; see the class docstring."""
        spec, sub = self.spec, self.sub
        ka, kb = self.key_span
        refined = ka == kb
        spliced = spec.first - self.lo  # sub-clip frames before this are in ``clip``
        end = spec.last + 1 - self.lo
        windows = synthesize_windows(self.model, self.anchors, self.body, scene_sdf=self.scene_sdf, seed=spec.seed,
                                     cancel=self.cancel, floor_z=spec.floor_z,
                                     touch_spans=_touch_spans(spec.base, self.lo, self.hi), steps=spec.steps)
        t = time.perf_counter()
        for k, chunk in enumerate(windows):
            sub.store(chunk)
            self.timings_ms[f"window{k}_ms"] = _ms(t)  # sampled, planted and refined
            if not refined and sub.done >= kb:
                t = time.perf_counter()
                sub.poses, sub.pelvis = _key_refined(self, sub)
                self.timings_ms["key_refine_ms"] = _ms(t)
                refined = True
            final = min(sub.done if refined else min(sub.done, ka), end)
            if final > spliced:
                splice_frames(self.clip, spec.base, self.body, sub.poses, sub.pelvis, sub.contacts, self.lo,
                              spec.first, spec.last, self.hand, span=(self.lo + spliced, self.lo + final))
                yield self.lo + spliced, self.lo + final
                spliced = final
            t = time.perf_counter()
        self.clip.validate("regenerated clip")
        self._result = _finish(spec, self.body, self.clip, self.feasible, self.outcomes)
        if spec.last + 1 < spec.base.n_frames:
            yield spec.last + 1, spec.base.n_frames

    def result(self) -> RegenerateResult:
        """The finished regeneration (after ``spans()`` is exhausted)."""
        if self._result is None:
            raise RuntimeError("RangeBuilder.result() before spans() finished")
        return self._result


def _key_refined(builder: RangeBuilder, sub: SubClip) -> tuple[np.ndarray, np.ndarray]:
    """``sub``'s poses (n,165) and pelvis (n,3) with the position keys met (`key_refine`), as float32."""
    poses, pelvis = key_refine(builder.body, builder.model, sub.poses, sub.pelvis, sub.contacts, builder.feasible,
                               builder.lo, builder.spec, builder.scene_sdf)
    return poses.astype(np.float32), pelvis.astype(np.float32)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 2)


def _sort_anchors(body, spec: RegenerateSpec, scene_sdf) -> tuple[list[EditAnchor], list[AnchorOutcome]]:
    """(anchors to honour, "not met" outcomes of the others with their reasons)."""
    base = spec.base
    rest = np.asarray(body.rest_joints_y, dtype=np.float64)
    ctx = Feasibility(
        first=spec.first, last=spec.last, n_frames=base.n_frames, joints=np.asarray(base.joints, dtype=np.float64),
        chain_m=chain_lengths(np.asarray(body.parents), rest), standing_pelvis_m=float(rest[0, 1] - body.floor_y),
        floor_z=float(spec.floor_z), sdf=getattr(scene_sdf, "query_np", None),
    )
    pelvis_keys = {a.frame: a.position for a in spec.anchors if a.joint == 0 and a.position is not None}

    def pelvis_at(f: int) -> np.ndarray:
        return pelvis_keys.get(f, ctx.joints[f, 0])

    feasible, rejected = [], []
    for a in spec.anchors:
        reason = check_feasible(a, ctx, pelvis_at)
        if reason is None:
            feasible.append(a)
        else:
            rejected.append(AnchorOutcome(a, False, reason))
    return feasible, rejected


def build_anchor_set(base: MotionClip, lo: int, hi: int, first: int, last: int, keys: list[EditAnchor],
                     hand: str | None) -> AnchorSet:
    """The sub-clip [lo, hi)'s anchors (frame 0 = base frame ``lo``): fixed context, soft base
    guidance away from the keys, the keys themselves."""
    anchors = AnchorSet(hi - lo)
    poses = finger_keys(np.asarray(base.poses, dtype=np.float64), keys)
    joints = np.asarray(base.joints, dtype=np.float64)
    for f in range(lo, hi):
        r = f - lo
        anchors.add(r, "left_hand_pose", poses[f, 75:120], hard=True)
        anchors.add(r, "right_hand_pose", poses[f, 120:165], hard=True)
        if f < first or f > last:
            anchors.add(r, "pelvis", joints[f, 0], hard=True)
            anchors.add(r, "root_orient", poses[f, 0:3], hard=True)
            anchors.add(r, "body_pose", poses[f, 3:66], hard=True)
    _base_guidance(anchors, base, lo, first, last, keys, hand)
    for a in keys:
        _add_key(anchors, a, lo)
    return anchors


FINGER_JOINTS = range(25, 55)  # 15 left then 15 right: their rotations travel as the hand poses


def finger_keys(poses: np.ndarray, keys: list[EditAnchor]) -> np.ndarray:
    """(T,165) poses with the finger rotation keys written in: the fingers go to the sampler as
    whole hand poses (hard on every frame, `synth.finger_track`), so a finger key is part of them."""
    fingers = [a for a in keys if a.rotation is not None and a.joint in FINGER_JOINTS]
    if not fingers:
        return poses
    out = poses.copy()
    for a in fingers:
        out[a.frame, 3 * a.joint:3 * a.joint + 3] = quat_to_axis_angle(a.rotation)
    return out


def _near_key(keys: list[EditAnchor], frame: int, joints: tuple[int, ...]) -> bool:
    return any(abs(a.frame - frame) <= KEY_CLEAR_FRAMES and (a.joint in joints or a.joint == 0) for a in keys)


def _base_guidance(anchors: AnchorSet, base: MotionClip, lo: int, first: int, last: int, keys: list[EditAnchor],
                   hand: str | None) -> None:
    """Soft anchors inside the range from the base clip: pelvis path and heading, the carrying wrist."""
    joints = np.asarray(base.joints, dtype=np.float64)
    root = axis_angle_to_matrix(np.asarray(base.poses, dtype=np.float64)[:, 0:3])
    pelvis_keys = [a for a in keys if a.joint == 0]
    moved = {a.frame: a.position[:2] - joints[a.frame, 0, :2] for a in pelvis_keys if a.position is not None}
    path = joints[first:last + 1, 0, :2] + eased_offsets(moved, first, last, KEY_CLEAR_FRAMES)
    for f in range(first, last + 1):
        guide = (f - first) % GUIDE_EVERY == 0 or f == last
        if f not in moved:
            x, y = path[f - first]
            anchors.add(f - lo, "pelvis", [x, y, np.nan], hard=True, weight=1.0 if guide else 0.0)
        if guide and not _near_key(pelvis_keys, f, (0,)):
            forward = root[f][:, 2]  # the body faces its root's +Z
            anchors.add(f - lo, "heading", [float(np.arctan2(forward[1], forward[0]))], weight=0.5)
    if hand is None:
        return
    wrist = 20 if hand == "left" else 21
    release = base.release_frame if base.release_frame >= 0 else base.n_frames
    for f in range(max(first, base.grasp_frame), min(last, release - 1) + 1, 2):
        if not _near_key(keys, f, (wrist,)):
            anchors.add(f - lo, f"{hand}_wrist", joints[f, wrist])


def eased_offsets(moved: dict[int, np.ndarray], first: int, last: int, radius: int) -> np.ndarray:
    """(last-first+1, 2) pelvis xy offsets from the base path: each pelvis key's offset at its
    frame, interpolated between keys closer than ``2*radius+1`` frames, faded out (smoothstep)
    over ``radius`` frames elsewhere. Bounded speed: 10 cm over 15 frames adds under 0.4 m/s."""
    out = np.zeros((last - first + 1, 2))
    if not moved:
        return out
    frames = np.array(sorted(moved))
    for f in range(first, last + 1):
        k = int(np.searchsorted(frames, f))
        prev = int(frames[k - 1]) if k > 0 else None
        nxt = int(frames[k]) if k < len(frames) else None
        if nxt == f:
            out[f - first] = moved[f]
        elif prev is not None and nxt is not None and nxt - prev <= 2 * radius + 1:
            u = (f - prev) / (nxt - prev)
            out[f - first] = (1 - u) * moved[prev] + u * moved[nxt]
        elif prev is not None and f - prev <= radius:
            out[f - first] = moved[prev] * smoothstep(1 - (f - prev) / (radius + 1))
        elif nxt is not None and nxt - f <= radius:
            out[f - first] = moved[nxt] * smoothstep(1 - (nxt - f) / (radius + 1))
    return out


def _add_key(anchors: AnchorSet, a: EditAnchor, lo: int) -> None:
    """One animator key as sampler anchors (pelvis position and rotations hard; other positions guided)."""
    r = a.frame - lo
    if a.position is not None:
        if a.joint == 0:
            anchors.add(r, "pelvis", a.position, hard=True)
        else:
            anchors.add(r, a.name, a.position, weight=KEY_WEIGHT)
    if a.rotation is not None and a.joint not in FINGER_JOINTS:  # fingers: `finger_keys`
        aa = quat_to_axis_angle(a.rotation)
        anchors.add(r, "root_orient" if a.joint == 0 else f"pose:{a.name}", aa, hard=True)


def _touch_spans(base: MotionClip, lo: int, hi: int) -> tuple[tuple[int, int], ...]:
    """The base clip's touch spans (`task.touch_spans_of`) inside the sub-clip [lo, hi), in its frames."""
    release = base.release_frame if base.object_transforms is not None else -1
    spans = touch_spans_of(base.grasp_frame, release, base.n_frames)
    return tuple((max(a, lo) - lo, min(b, hi) - lo) for a, b in spans if a < hi and b > lo)


def key_refine(body, model, sub_poses: np.ndarray, sub_pelvis: np.ndarray, sub_contacts: np.ndarray | None,
               keys: list[EditAnchor], lo: int, spec: RegenerateSpec, scene_sdf) -> tuple[np.ndarray, np.ndarray]:
    """Meet the position keys exactly: `refine` on the frames around them with the keys as targets.

    ``sub_poses`` (n,165), ``sub_pelvis`` (n,3) world pelvis and ``sub_contacts`` (n,4) are the
    sampled sub-clip (frame 0 = base frame ``lo``); only the span's frames are read (`key_span`).
    Returns poses (n,165) and world pelvis (n,3) of the whole sub-clip (float64). Only the span the keys'
    eased corrections reach is solved (`key_span`); its first frames (the leading context, or two
    frames) are fixed and its last frames, the trailing context and rotation-keyed joints locked;
    feet that were planted are held (except a foot keyed nearby) and, with a scene, the skin is
    kept out of the furniture."""
    poses = np.asarray(sub_poses, dtype=np.float64)
    pelvis = np.asarray(sub_pelvis, dtype=np.float64)
    placed = [a for a in keys if a.position is not None and a.joint != 0]
    if not placed:
        return poses, pelvis
    a, b, fixed = key_span(placed, lo, spec, len(poses))
    n = b - a
    floor = np.array([0.0, 0.0, spec.floor_z])
    targets = [(k.frame - lo - a, k.joint, k.position - floor, KEY_WEIGHT) for k in placed]
    rot = aa_to_matrix(torch.as_tensor(poses[a:b].reshape(n, 55, 3), dtype=torch.float32))
    pel = torch.as_tensor(pelvis[a:b] - floor, dtype=torch.float32)
    locked = torch.zeros(n, len(REFINE_JOINTS), dtype=torch.bool)
    locked[max(0, spec.last + 1 - lo - a):] = True
    if b < spec.last + 1 - lo:
        locked[-2:] = True  # the span ends inside the range: its last frames stay as sampled
    for k in keys:
        if k.rotation is not None and k.joint in REFINE_JOINTS and a <= k.frame - lo < b:
            locked[k.frame - lo - a, REFINE_JOINTS.index(k.joint)] = True
    raw = sub_contacts[a:b] if sub_contacts is not None else np.zeros((n, 4))
    contacts = torch.as_tensor(raw, dtype=torch.float32)
    scene = SceneTerm(scene_sdf, CanonFrame(0.0, 0.0, 0.0, float(spec.floor_z)), float(spec.floor_z)) if scene_sdf is not None else None
    rot2, pel2 = refine(body, rot, pel, contacts, targets, model.stats.foot_height.numpy(), fixed=fixed,
                        cfg=RefineConfig(), lock_feet=False, locked=locked, scene=scene,
                        held_feet=_held_feet(body, rot, pel, contacts, keys, lo + a))
    out, pel_out = poses.copy(), pelvis.copy()
    out[a:b, :66] = matrix_to_aa(rot2.numpy().astype(np.float64)).reshape(n, 55, 3)[:, :22].reshape(n, 66)
    pel_out[a:b] = pel2.numpy().astype(np.float64) + floor  # jaw, eyes and fingers are not refined: kept bit for bit
    return out, pel_out


SPAN_MARGIN = 3  # frames beyond a key's eased correction that `key_refine` also solves


def key_span(keys: list[EditAnchor], lo: int, spec: RegenerateSpec, n: int) -> tuple[int, int, int]:
    """(a, b, fixed): the sub-clip frames [a, b) `key_refine` solves and how many leading ones stay."""
    reach = RefineConfig().ease_frames + SPAN_MARGIN
    start = spec.first - lo
    a = max(0, min(k.frame for k in keys) - lo - reach)
    b = min(n, max(k.frame for k in keys) - lo + reach + 1)
    if a <= start:
        return 0, b, start
    return a - 2, b, 2


def _held_feet(body, rot: torch.Tensor, pel: torch.Tensor, contacts: torch.Tensor, keys: list[EditAnchor],
               lo: int) -> tuple[np.ndarray, np.ndarray]:
    """((n,4,3) ankle/ball points, (n,4) weights): planted feet stay, a foot keyed nearby is free."""
    with torch.no_grad():
        points = skeleton_fk(body)(rot, pel, 22)[:, FOOT_CONTACT_JOINTS].numpy()
    weights = (contacts.numpy()[:, [1, 1, 3, 3]] > 0.5).astype(np.float64)
    for a in keys:
        for side, chain in ((0, LEFT_FOOT_JOINTS), (1, RIGHT_FOOT_JOINTS)):
            if a.joint in chain:
                f = a.frame - lo
                weights[max(0, f - KEY_CLEAR_FRAMES):f + KEY_CLEAR_FRAMES + 1, 2 * side:2 * side + 2] = 0.0
    return points, weights


def carry_hand(clip: MotionClip, body) -> str | None:
    """The hand the carried object moves with (None: nothing carried): the wrist it stays rigid to."""
    if clip.object_transforms is None or clip.grasp_frame < 0:
        return None
    end = clip.release_frame if clip.release_frame >= 0 else clip.n_frames
    frames = np.arange(clip.grasp_frame, end)
    if len(frames) < 2:
        return None
    obj = np.asarray(clip.object_transforms, dtype=np.float64)[frames]
    if np.allclose(obj, obj[0], atol=1e-6):
        return None
    spread = {}
    for hand in ("right", "left"):
        wt = wrist_transforms(body, clip.poses[frames], clip.joints[frames, 0], hand).astype(np.float64)
        rel = np.linalg.inv(wt) @ obj
        spread[hand] = float(np.ptp(rel[:, :3, 3], axis=0).max())
    return min(spread, key=spread.get)


def splice(base: MotionClip, body, poses: np.ndarray, pelvis: np.ndarray, contacts: np.ndarray | None, lo: int,
           first: int, last: int, hand: str | None) -> MotionClip:
    """The base clip with frames [first, last] from the sub-clip (frame 0 = base frame ``lo``);
    every other frame copied unchanged, the carried object moved with the new hand."""
    out = copy_clip(base)
    splice_frames(out, base, body, poses, pelvis, contacts, lo, first, last, hand)
    out.validate("regenerated clip")
    return out


def copy_clip(base: MotionClip) -> MotionClip:
    """A copy of ``base`` whose arrays may be written (`splice_frames`)."""
    return MotionClip(
        poses=base.poses.copy(), trans=base.trans.copy(), joints=base.joints.copy(), betas=base.betas.copy(),
        gender=base.gender, object_name=base.object_name,
        object_transforms=None if base.object_transforms is None else base.object_transforms.copy(),
        grasp_frame=base.grasp_frame, release_frame=base.release_frame, path=base.path.copy(),
        body_identity=base.body_identity, contacts=None if base.contacts is None else base.contacts.copy(), fps=base.fps,
    )


def splice_frames(out: MotionClip, base: MotionClip, body, poses: np.ndarray, pelvis: np.ndarray,
                  contacts: np.ndarray | None, lo: int, first: int, last: int, hand: str | None,
                  span: tuple[int, int] | None = None) -> None:
    """Write base frames ``span`` = [a, b) (default the whole range [first, last]) of ``out`` from
    the sub-clip's poses (n,165), world pelvis (n,3) and contacts (n,4) (frame 0 = base frame
    ``lo``), the carried object moved with the new hand.

    The body's forward kinematics always run over the whole range, even for a piece of it: torch's
    vectorised kernels (Rodrigues' sines) give a frame's last bits by its place in the batch and the
    batch's size, so a range spliced window by window is then bit-identical to one spliced at once.
    Range frames not sampled yet may hold anything (zeros): they are computed and not written."""
    a, b = (first, last + 1) if span is None else span
    sl = slice(a - first, b - first)
    new_poses = poses[first - lo:last + 1 - lo].astype(np.float32)
    new_pelvis = pelvis[first - lo:last + 1 - lo].astype(np.float32)
    rest_pelvis = np.asarray(body.rest_joints_y[0], dtype=np.float32)
    out.poses[a:b] = new_poses[sl]
    out.trans[a:b] = new_pelvis[sl] - rest_pelvis
    out.joints[a:b] = world_joints(body, new_poses, new_pelvis)[sl]
    if out.contacts is not None and contacts is not None:
        out.contacts[a:b] = contacts[a - lo:b - lo]
    if hand is not None:
        _carry_object(out, base, body, first, last, hand, (a, b))


def _carry_object(out: MotionClip, base: MotionClip, body, first: int, last: int, hand: str,
                  span: tuple[int, int]) -> None:
    """Object transforms (T,4,4) of the carried frames in ``span`` (within [first, last]): the base
    transform carried by the change of the grasping wrist (new wrist @ inverse(base wrist) @ base
    object), computed over all the range's carried frames (see `splice_frames`)."""
    end = base.release_frame if base.release_frame >= 0 else base.n_frames
    frames = np.arange(max(first, base.grasp_frame), min(last + 1, end))
    if len(frames) == 0:
        return
    old = wrist_transforms(body, base.poses[frames], base.joints[frames, 0], hand).astype(np.float64)
    new = wrist_transforms(body, out.poses[frames], out.joints[frames, 0], hand).astype(np.float64)
    moved = new @ np.linalg.inv(old) @ np.asarray(base.object_transforms, dtype=np.float64)[frames]
    keep = (frames >= span[0]) & (frames < span[1])
    out.object_transforms[frames[keep]] = moved[keep].astype(np.float32)


def measure(a: EditAnchor, clip: MotionClip) -> AnchorOutcome:
    """The achieved errors of a key on the result; met within 2 cm and 5 degrees."""
    pos_err = rot_err = None
    if a.position is not None:
        pos_err = float(np.linalg.norm(np.asarray(clip.joints[a.frame, a.joint], dtype=np.float64) - a.position))
    if a.rotation is not None:
        got = axis_angle_to_matrix(np.asarray(clip.poses[a.frame, 3 * a.joint:3 * a.joint + 3], dtype=np.float64))
        want = axis_angle_to_matrix(quat_to_axis_angle(a.rotation))
        rot_err = rotation_angle_deg(got, want)
    met = (pos_err is None or pos_err <= POSITION_TOLERANCE_M) and (rot_err is None or rot_err <= ROTATION_TOLERANCE_DEG)
    return AnchorOutcome(a, met, None if met else "not_reached", pos_err, rot_err)


def seam_report(base: MotionClip, clip: MotionClip, first: int, last: int) -> dict[str, float]:
    """Joint speeds in and around the range and the velocity jumps at its two seams, against the
    base clip's own largest frame-to-frame velocity change (m/s, m/s per frame)."""
    fps = float(clip.fps)
    a, b = max(0, first - 2), min(clip.n_frames, last + 3)
    vel = np.diff(np.asarray(clip.joints[a:b], dtype=np.float64), axis=0) * fps  # (k,55,3)
    base_vel = np.diff(np.asarray(base.joints, dtype=np.float64), axis=0) * fps
    jumps = []
    for seam in (first, last + 1):  # velocity into the seam frame vs the velocity before it
        i = seam - 1 - a
        if 1 <= i < len(vel):
            jumps.append(float(np.linalg.norm(vel[i] - vel[i - 1], axis=-1).max()))
    base_jump = float(np.linalg.norm(np.diff(base_vel, axis=0), axis=-1).max()) if len(base_vel) > 1 else 0.0
    return {
        "max_joint_speed_m_s": float(np.linalg.norm(vel, axis=-1).max()) if len(vel) else 0.0,
        "speed_limit_m_s": MAX_JOINT_SPEED_M_S,
        "seam_velocity_jump_m_s": max(jumps) if jumps else 0.0,
        "base_max_velocity_jump_m_s": base_jump,
    }
