"""Autoregressive synthesis: clips of any length from overlapping windows, streamed as they finish.

Window k covers frames [s_k, s_k + W). Its first ``context`` frames are the previous window's
final frames, inpainted exactly (all channels), so the motion continues; the next ``blend`` frames
cross-fade from the previous window's prediction to the new one; the rest is new. Per window:
few-step DDIM with hard anchors (inpainting) and guidance at every step, then the planted feet
(`footplant`: a walk lowered to where its legs reach, stance feet still, steps re-timed; with
``plant_feet=False``, `refine`'s soft foot lock instead), the seam eased (`ease_seam`), and the
short analytic correction (`refine`: arm IK to the targets, body out of the furniture). Frames
become final as soon as no later window can change them and are yielded (`synthesize_windows`)
or handed to ``on_window`` (`synthesize`) as a `MotionChunk` for streaming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator

import numpy as np
import torch

from hosig.body.skeleton import descendants
from hosig.clip import FPS, MotionClip
from hosig.errors import CancelledError, HosigError, UnreachableError
from hosig.motion.anchors import AnchorSet, WindowAnchors, parse_target
from hosig.motion.despike import despike
from hosig.motion.diffusion import Schedule, sample
from hosig.motion.footplant import LEGS, FootPlanter, blend_rotations, eased_share
from hosig.motion.guidance import Energy, guide_x0, smooth_in_time
from hosig.motion.refine import REFINE_JOINTS, RefineConfig, SceneTerm, refine
from hosig.motion.task import STANDING_PELVIS_M
from hosig.motion.representation import (
    ANCHOR_JOINTS,
    BODY_JOINTS,
    FOOT_CONTACT_JOINTS,
    HAND_JOINTS,
    LAYOUT,
    ROT_JOINTS,
    CanonFrame,
    aa_to_matrix,
    decode,
    heading_of,
    matrix_to_6d,
    matrix_to_aa,
    skeleton_fk,
)
from hosig.runs import true_runs

MAX_REACH_M = 1.25  # pelvis -> wrist distance a standing, leaning adult can reach
MAX_SPEED_M_S = 2.5  # how far the pelvis may travel between a pelvis anchor and a wrist anchor
HAND_RAMP = 12  # frames over which fingers move into / out of an anchored hand pose


class SynthesisError(HosigError):
    """Numerical failure inside the motion stage (never a NaN clip)."""

    code = "internal"


@dataclass
class MotionChunk:
    """Finished frames [start, start+n) ready to stream (world frame, as in MotionClip)."""

    start: int
    poses: np.ndarray  # (n,165)
    trans: np.ndarray  # (n,3)
    joints: np.ndarray  # (n,55,3)
    contacts: np.ndarray  # (n,4)

    @property
    def count(self) -> int:
        return int(self.poses.shape[0])


def check_reach(anchors: AnchorSet, floor_z: float = 0.0) -> None:
    """Wrist/hand targets the body cannot reach from its pelvis path -> UnreachableError (a
    pelvis anchor without a height stands `STANDING_PELVIS_M` over the floor at ``floor_z``)."""
    pelvis = [a for a in anchors.anchors if a.target == "pelvis" and np.isfinite(a.value[:2]).all()]
    if not pelvis:
        return
    pf = np.array([a.frame for a in pelvis])
    for a in anchors.anchors:
        kind, j = parse_target(a.target)
        if kind != "joint" or j in (0,) or j in ANCHOR_JOINTS[3:]:
            continue
        k = int(np.argmin(np.abs(pf - a.frame)))
        p = pelvis[k].value
        gap_s = abs(pf[k] - a.frame) / 30.0
        horiz = float(np.linalg.norm(np.nan_to_num(a.value[:2]) - p[:2])) if np.isfinite(a.value[:2]).all() else 0.0
        vert = float(abs(a.value[2] - (p[2] if np.isfinite(p[2]) else floor_z + STANDING_PELVIS_M))) if np.isfinite(a.value[2]) else 0.0
        dist = float(np.hypot(horiz, max(0.0, vert - 0.6)))
        if dist > MAX_REACH_M + MAX_SPEED_M_S * gap_s:
            raise UnreachableError(
                f"anchor {a.target!r} at frame {a.frame} is {horiz:.2f} m from the pelvis path "
                f"(pelvis anchor at frame {pf[k]}); a body reaches about {MAX_REACH_M:.2f} m"
            )


def finger_track(anchors: AnchorSet, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-frame finger rotations (n,30,3,3) from hand-pose anchors, ramped in and out; None if no hand anchors.

    Used when the model never saw fingers (CMU): relaxed (hands mean, zero) away from anchors,
    easing into the anchored pose over HAND_RAMP frames and holding it between anchors of a hand.
    """
    out = np.zeros((n, 30, 3))
    any_hand = False
    for side, joints in ((0, slice(0, 15)), (1, slice(15, 30))):
        hs = [a for a in anchors.anchors if a.target == ("left_hand_pose" if side == 0 else "right_hand_pose")]
        if not hs:
            continue
        any_hand = True
        hs.sort(key=lambda a: a.frame)
        frames = np.array([a.frame for a in hs])
        vals = np.stack([a.value.reshape(15, 3) for a in hs])
        for t in range(n):
            before = frames[frames <= t]
            after = frames[frames >= t]
            if len(before) and len(after):
                i0 = int(np.where(frames == before[-1])[0][-1])
                i1 = int(np.where(frames == after[0])[0][0])
                f0, f1 = frames[i0], frames[i1]
                # hold between anchors when they are close (grasp to release), else relax between them
                if f1 - f0 <= 4 * HAND_RAMP or i0 == i1:
                    w = 0.0 if f1 == f0 else (t - f0) / (f1 - f0)
                    out[t, joints] = (1 - w) * vals[i0] + w * vals[i1]
                else:
                    w0 = max(0.0, 1 - (t - f0) / HAND_RAMP)
                    w1 = max(0.0, 1 - (f1 - t) / HAND_RAMP)
                    out[t, joints] = w0 * vals[i0] + w1 * vals[i1]
            elif len(after):
                i1 = int(np.where(frames == after[0])[0][0])
                w = max(0.0, 1 - (after[0] - t) / HAND_RAMP)
                out[t, joints] = w * vals[i1]
            else:
                i0 = int(np.where(frames == before[-1])[0][-1])
                w = max(0.0, 1 - (t - before[-1]) / HAND_RAMP)
                out[t, joints] = w * vals[i0]
    if not any_hand:
        return None
    return aa_to_matrix(torch.as_tensor(out, dtype=torch.float32)).numpy()


def initial_frame(anchors: AnchorSet, floor_z: float = 0.0) -> CanonFrame:
    """World frame of the first window: frame-0 pelvis and heading (from root or path direction),
    standing on the floor at ``floor_z``."""
    pel = [a for a in anchors.joint_anchors("pelvis") if np.isfinite(a.value[:2]).all()]
    x, y = (pel[0].value[0], pel[0].value[1]) if pel else (0.0, 0.0)
    root = anchors.at(0, "root_orient")
    if root is not None:
        mat = root.value if root.value.shape == (3, 3) else aa_to_matrix(torch.as_tensor(root.value)).numpy()
        h = float(heading_of(torch.as_tensor(mat)))
    else:
        ahead = [a for a in pel if np.linalg.norm(a.value[:2] - np.array([x, y])) > 0.05]
        h = float(np.arctan2(ahead[0].value[1] - y, ahead[0].value[0] - x)) if ahead else 0.0
    return CanonFrame(float(x), float(y), h, float(floor_z))


def _features_in_frame(rot_w: np.ndarray, pel_w: np.ndarray, con: np.ndarray, frame: CanonFrame) -> torch.Tensor:
    """World rotations (n,55,3,3), pelvis (n,3), contacts (n,4) -> features (n,319) in ``frame``."""
    rot = torch.as_tensor(rot_w, dtype=torch.float32).clone()
    rot[:, 0] = torch.as_tensor(frame.yaw().T, dtype=torch.float32) @ rot[:, 0]
    idx = [0] + list(range(1, 22)) + HAND_JOINTS
    six = matrix_to_6d(rot[:, idx]).reshape(len(rot), -1)
    pel = torch.as_tensor(frame.to_canon_points(pel_w), dtype=torch.float32)
    return torch.cat([pel, six, torch.as_tensor(con, dtype=torch.float32)], -1)


def synthesize(
    model,
    anchors: AnchorSet,
    body,
    scene_sdf=None,
    seed: int = 0,
    on_window: Callable[[MotionChunk], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **options,
) -> MotionClip:
    """Generate ``anchors.n_frames`` frames meeting the anchors, handing each window's final frames
    to ``on_window``; ``options`` as `synthesize_windows` (which does the work)."""
    windows = synthesize_windows(model, anchors, body, scene_sdf, seed, cancel, **options)
    while True:
        try:
            chunk = next(windows)
        except StopIteration as stop:
            return stop.value
        if on_window is not None:
            on_window(chunk)


def synthesize_windows(
    model,
    anchors: AnchorSet,
    body,
    scene_sdf=None,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    *,
    steps: int | None = None,
    guidance: bool = True,
    refine_pass: bool = True,
    ddpm: bool = False,
    floor_z: float = 0.0,
    touch_spans: tuple[tuple[int, int], ...] = (),
    grasp_frame: int = -1,
    release_frame: int = -1,
    path: np.ndarray | None = None,
    smooth: float | None = None,
    plant_feet: bool = True,
    later=None,
) -> Generator[MotionChunk, None, MotionClip]:
    """Generate ``anchors.n_frames`` frames meeting the anchors; see the module docstring. Yields
    each window's final frames (`MotionChunk`, in order, contiguous) as soon as the window is done
    and returns the whole clip (``StopIteration.value``; `synthesize` drives it).

    ``later`` (`walkfirst.LaterAnchors`): ``anchors`` are only right before ``later.frame``; the
    first window reaching past it calls ``later.resolve()`` for the real anchors, touch spans and
    grasp/release frames (the walk streams while the grasp is optimised; same clip either way).

    ``touch_spans`` = frame spans where the reaching wrist may touch the scene (grasp, place); ``ddpm`` uses the
    1000-step reference sampler (benchmarks only). Raises UnreachableError for targets out of reach,
    CancelledError when ``cancel()`` turns true, SynthesisError on a numerical failure.

    Per window: `_next_window` -> `_sample` -> `_post_process` -> `_to_world` -> `_emit`.
    """
    anchors.validate()
    model.check_body(getattr(body, "identity", ""))
    if later is None:
        check_reach(anchors, floor_z)
    cfg = _Settings.of(model, seed, steps, guidance, ddpm, smooth, refine_pass, floor_z)
    clip = _Stream.of(model, anchors, touch_spans, grasp_frame, release_frame, later)
    first_frame = initial_frame(anchors, floor_z)  # the walk's anchors, also when `later` resolves in window 0
    planter = FootPlanter(body, floor_z, clearance=getattr(scene_sdf, "query_np", None)) if plant_feet else None
    while clip.emitted < clip.n:
        if cancel is not None and cancel():
            raise CancelledError("motion synthesis cancelled")
        win = _next_window(model, clip, cfg, body, first_frame)
        motion = _sample(model, win, clip, cfg, body, scene_sdf, cancel)
        motion = _post_process(win, motion, cfg, body, scene_sdf, planter)
        rot_world, pel_world = _to_world(win, motion, cfg.window)
        yield _emit(win, rot_world, pel_world, motion.con, clip, cfg.blend, body)
        clip.start += cfg.stride
        clip.index += 1
    return _finished_clip(clip, body, path)


@dataclass(frozen=True)
class SampleConfig:
    """How every window of a clip is sampled (`_sample_window`)."""

    steps: int  # denoising steps (DDIM; all 1000 with ``ddpm``)
    guidance: bool = True  # guide the x0 estimate at every step (when the checkpoint has guidance iterations)
    ddpm: bool = False  # the 1000-step reference sampler (benchmarks only)
    smooth: float | None = None  # temporal smoothing sigma after sampling; None: the checkpoint's


@dataclass(frozen=True)
class _Settings:
    """The constants of one `synthesize_windows` call: window geometry, sampler, passes."""

    window: int  # W, frames per window (the network's)
    context: int  # frames a window takes over from the previous one, inpainted exactly
    blend: int  # frames after the context cross-faded from the previous window's prediction
    sample: SampleConfig
    seed: int  # window k samples with seed * 7919 + k
    refine_pass: bool
    floor_z: float  # world height of the floor (canonical z = 0)
    foot_floor: np.ndarray  # (4,) foot contact points' standing height, canonical

    @property
    def stride(self) -> int:
        """Frames between the starts of consecutive windows."""
        return self.window - self.context - self.blend

    @classmethod
    def of(cls, model, seed: int, steps: int | None, guidance: bool, ddpm: bool, smooth: float | None,
           refine_pass: bool, floor_z: float) -> "_Settings":
        w = model.window
        sc = model.sampler
        return cls(window=w, context=min(sc.context, w // 4), blend=min(sc.blend, w // 4),
                   sample=SampleConfig(steps or sc.steps, guidance, ddpm, smooth), seed=seed,
                   refine_pass=refine_pass, floor_z=floor_z,
                   foot_floor=model.stats.foot_height.numpy())  # canonical frames stand on the floor (z = 0)


@dataclass
class _Stream:
    """The clip being streamed, in the world. Frames [0, emitted) are final (yielded); the next
    window starts at clip frame ``start``. The anchors are replaced once, when ``later`` resolves."""

    anchors: AnchorSet
    touch_spans: tuple[tuple[int, int], ...]  # clip frame spans where the reaching wrist may touch the scene
    grasp_frame: int
    release_frame: int
    later: object  # `walkfirst.LaterAnchors` not resolved yet, or None
    fingers_learned: bool  # the model saw finger motion; else `finger_track` drives the hands
    fingers: np.ndarray | None  # (n,30,3,3) finger rotations when not learned, else None
    rot: np.ndarray  # (n,55,3,3) float32 local rotations (the root's in the world)
    pel: np.ndarray  # (n,3) float32 world pelvis
    con: np.ndarray  # (n,4) float32 contacts
    pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # previous window's world prediction past its final frames
    emitted: int = 0
    start: int = 0  # the next window's first clip frame
    index: int = 0  # the next window's number

    @property
    def n(self) -> int:
        return self.anchors.n_frames

    @classmethod
    def of(cls, model, anchors: AnchorSet, touch_spans: tuple[tuple[int, int], ...], grasp_frame: int, release_frame: int,
           later) -> "_Stream":
        learned = bool(model.meta.get("data_report", {}).get("finger_channels_valid_fraction", 1.0) > 0.05)
        n = anchors.n_frames
        return cls(anchors, touch_spans, grasp_frame, release_frame, later, learned,
                   None if learned else finger_track(anchors, n),
                   np.zeros((n, 55, 3, 3), np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 4), np.float32))

    def resolve_later(self, floor_z: float) -> None:
        """Swap in ``later``'s real anchors, touch spans and grasp/release frames (blocking on the grasp);
        the world buffers follow the new clip length (frames so far kept)."""
        real = self.later.resolve()
        self.later = None
        self.anchors, self.touch_spans = real.anchors, real.touch_spans
        self.grasp_frame, self.release_frame = real.grasp_frame, real.release_frame
        self.anchors.validate()
        check_reach(self.anchors, floor_z)
        n = self.anchors.n_frames
        self.fingers = None if self.fingers_learned else finger_track(self.anchors, n)
        self.rot, self.pel, self.con = (_resized(arr, n) for arr in (self.rot, self.pel, self.con))


@dataclass
class _Window:
    """One window: clip frames [s, s + W) seen from ``frame``; [s, end) become final with it."""

    k: int  # the window's number
    s: int  # first clip frame
    c: int  # leading frames taken over from the stream as context (0 in the first window)
    frame: CanonFrame  # the window's canonical frame in the world
    wa: WindowAnchors  # anchors in ``frame``, the context and the finger track inpainted
    end: int  # clip frames [s, end) are final after this window
    last: bool  # the window reaches the clip's end
    look: int  # window frames the planter reads: the final ones in the last window, else all W
    seed: int  # the sampler's seed
    touch: tuple[tuple[int, int], ...]  # window frame spans where the reaching wrist may touch the scene

    @property
    def m(self) -> int:
        """M, the window's frames that become final (context included)."""
        return self.end - self.s


@dataclass
class _Motion:
    """A window's motion in its canonical frame (W frames)."""

    rot: torch.Tensor  # (W,55,3,3) local rotations (the root's in the canonical frame)
    pel: torch.Tensor  # (W,3)
    con: torch.Tensor  # (W,4) contacts in [0, 1]


def _next_window(model, clip: _Stream, cfg: _Settings, body, first_frame: CanonFrame) -> _Window:
    """The window at ``clip.start``: its canonical frame (the stream's pelvis and heading there;
    ``first_frame`` for window 0), ``later`` resolved if the window reaches past it, and its anchors
    with the stream's last frames as context and the finger track as hard hand channels."""
    k, s, w = clip.index, clip.start, cfg.window
    frame = first_frame if k == 0 else _frame_at(clip, s, cfg.floor_z)
    if clip.later is not None and s + w > clip.later.frame:  # this window needs the grasp's anchors
        clip.resolve_later(cfg.floor_z)
    n = clip.n
    wa = clip.anchors.window(s, w, frame)
    c = cfg.context if k > 0 else 0
    if c:
        _inpaint_context(wa, clip, body, s, c, frame)
    if clip.fingers is not None:
        _inpaint_fingers(wa, clip.fingers, s, min(w, n - s))
    last = s + w >= n
    end = n if last else s + cfg.stride + cfg.context
    touch = tuple((a - s, b - s) for a, b in clip.touch_spans)
    return _Window(k, s, c, frame, wa, end, last, end - s if last else w, cfg.seed * 7919 + k, touch)


def _frame_at(clip: _Stream, t: int, floor_z: float) -> CanonFrame:
    """The canonical frame at clip frame ``t``: the stream's pelvis and heading there, on the floor."""
    return CanonFrame(float(clip.pel[t, 0]), float(clip.pel[t, 1]), float(heading_of(torch.as_tensor(clip.rot[t, 0]))),
                      float(floor_z))


def _inpaint_context(wa: WindowAnchors, clip: _Stream, body, s: int, c: int, frame: CanonFrame) -> None:
    """Window frames [0, c) = the stream's frames [s, s + c): every feature channel hard, the anchor
    joints' positions conditioned."""
    wa.feat_val[:c] = _features_in_frame(clip.rot[s:s + c], clip.pel[s:s + c], clip.con[s:s + c], frame)
    wa.feat_mask[:c] = True
    wa.hard_mask[:c] = True
    with torch.no_grad():
        jc = skeleton_fk(body)(torch.as_tensor(clip.rot[s:s + c]), torch.as_tensor(clip.pel[s:s + c]), 22)
    jc = torch.as_tensor(frame.to_canon_points(jc.numpy()[:, ANCHOR_JOINTS]), dtype=torch.float32)
    wa.joint_val[:c] = jc.reshape(c, -1)
    wa.joint_mask[:c] = True


def _inpaint_fingers(wa: WindowAnchors, fingers: np.ndarray, s: int, m: int) -> None:
    """The hand channels hard from ``fingers`` (n,30,3,3) on the window's first ``m`` frames (those
    inside the clip), the last finger pose held past the clip's end."""
    w = wa.feat_val.shape[0]
    six = matrix_to_6d(torch.as_tensor(fingers[s:s + m])).reshape(m, -1)
    wa.feat_val[:m, LAYOUT.hands] = six
    wa.hard_mask[:m, LAYOUT.hands] = True
    if m < w:  # past the clip end: hold the last finger pose
        wa.feat_val[m:, LAYOUT.hands] = six[-1]
        wa.hard_mask[m:, LAYOUT.hands] = True


def _sample(model, win: _Window, clip: _Stream, cfg: _Settings, body, scene_sdf, cancel) -> _Motion:
    """The window sampled (`_sample_window`) and decoded; its ``blend`` frames after the context
    cross-fade from ``clip.pending`` (the previous window's world prediction of them) to the new ones."""
    stats = model.stats
    x0 = _sample_window(model, win, body, scene_sdf, cfg.sample, cancel)
    dec = decode(stats.denorm(x0[0]))
    mo = _Motion(dec.rotmats.detach(), dec.pelvis.detach(), dec.contacts.detach().clamp(0, 1))
    c, blend = win.c, cfg.blend
    if win.k > 0 and clip.pending is not None and blend:
        prev = _features_in_frame(*clip.pending, win.frame)[: blend]
        new = x0.new_tensor(0) + stats.denorm(x0[0])[c:c + blend]
        wts = torch.linspace(1, blend, blend)[:, None] / (blend + 1)
        mix = decode((1 - wts) * prev[: len(new)] + wts * new)
        mo.rot[c:c + blend] = mix.rotmats
        mo.pel[c:c + blend] = mix.pelvis
        mo.con[c:c + blend] = mix.contacts.clamp(0, 1)
    return mo


def _post_process(win: _Window, mo: _Motion, cfg: _Settings, body, scene_sdf, planter: FootPlanter | None) -> _Motion:
    """The procedural passes on the window's final frames [0, M), in this order: despike the whole
    body, plant the feet, ease the seam, despike the upper body, `refine` (the scene and the
    targets), despike the upper body again on its hard keys only (a correction's flick)."""
    m, c = win.m, win.c
    targets = target_frames(win.wa.guide, m)
    mo.rot[:m] = despike_window(body, mo.rot[:m], mo.pel[:m], c, win.wa.hard_mask[:m], WHOLE_BODY, also_keyed=targets)
    held = None
    if planter is not None:  # feet planted first, so the correction below keeps them planted
        mo.rot, mo.pel, mo.con = plant_window(planter, win.wa, win.frame, mo.rot, mo.pel, mo.con, c, m, win.look, win.s)
        held = swinging_feet(body, mo.rot[:m], mo.pel[:m], mo.con[:m])
    if c >= 2:  # the first new frame continues the streamed ones; `refine` then keeps it out of the furniture
        keys = keyed_rotations(win.wa.hard_mask[:m], SEAM_JOINTS).numpy()
        keys[:c] = False  # the context is hard for continuity, not a key
        mo.rot[:m] = ease_seam(mo.rot[:m], c, keys)
    # despiked before `refine`, which has the last word (the scene, the targets): a flick smoothed after it went through furniture
    mo.rot[:m] = despike_window(body, mo.rot[:m], mo.pel[:m], c, win.wa.hard_mask[:m], UPPER_BODY, also_keyed=targets)
    if cfg.refine_pass:
        _refine_window(win, mo, cfg, body, scene_sdf, planted=planter is not None, held=held)
        # a correction never flicks: where it moved a joint faster than a person can (an arm
        # solved out of a shelf, yanked onto a place target), the calm poses around it are eased
        # together; only hard keys are kept (a soft target met by a flick is left partly unmet)
        mo.rot[:m] = despike_window(body, mo.rot[:m], mo.pel[:m], c, win.wa.hard_mask[:m], UPPER_BODY)
    return mo


def _refine_window(win: _Window, mo: _Motion, cfg: _Settings, body, scene_sdf, planted: bool,
                   held: tuple[np.ndarray, np.ndarray] | None) -> None:
    """`refine` on the window's final frames (``mo`` updated in place): wrist targets met, body out
    of the scene; hard rotation keys locked and, with ``planted`` feet, the legs in stance too."""
    m, c, wa = win.m, win.c, win.wa
    tg = [(f, j, p, wt) for f, j, p, wt in wa.guide if j != 0]
    locked = keyed_rotations(wa.hard_mask[:m], REFINE_JOINTS)
    if planted:  # a planted leg is final: locked (a stiff hold made the solver converge worse)
        down = torch.as_tensor(mo.con[:m].numpy()[:, [1, 3]] > 0.5)  # (m,2)
        for side, leg in enumerate(LEGS):
            locked[:, [REFINE_JOINTS.index(j) for j in leg]] |= down[:, side:side + 1]
    scene = SceneTerm(scene_sdf, win.frame, cfg.floor_z) if scene_sdf is not None else None
    # the pelvis height may move where it is not a hard anchor (a grasp pose's pelvis is)
    height_free = ~wa.hard_mask[:m, 2] if scene is not None and not planted else None
    mo.rot[:m], mo.pel[:m] = refine(body, mo.rot[:m], mo.pel[:m], mo.con[:m], tg, cfg.foot_floor, fixed=c,
                                    cfg=RefineConfig(), locked=locked, scene=scene, height_free=height_free,
                                    lock_feet=not planted, held_feet=held)


def _to_world(win: _Window, mo: _Motion, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The window's canonical motion in the world: (rotations (W,55,3,3), pelvis (W,3)); SynthesisError if not finite."""
    yaw = torch.as_tensor(win.frame.yaw(), dtype=torch.float32)
    rot_world = mo.rot.clone()
    rot_world[:, 0] = yaw @ mo.rot[:, 0]
    pel_world = win.frame.to_world_points_t(mo.pel).float()
    if not (torch.isfinite(rot_world).all() and torch.isfinite(pel_world).all()):
        raise SynthesisError(f"motion synthesis produced NaN/inf in window {win.k} (frames {win.s}-{win.s + w}); try another seed")
    return rot_world, pel_world


def _emit(win: _Window, rot_world: torch.Tensor, pel_world: torch.Tensor, con: torch.Tensor, clip: _Stream,
          blend: int, body) -> MotionChunk:
    """The window's final frames written to the stream (its ``blend`` frames past them kept as
    ``clip.pending`` for the next window); returns the newly final frames [emitted, end) as a chunk."""
    m, s, end = win.m, win.s, win.end
    clip.rot[s:end] = rot_world[:m].numpy()
    clip.pel[s:end] = pel_world[:m].numpy()
    clip.con[s:end] = con[:m].numpy()
    if not win.last:
        clip.pending = (rot_world[m:m + blend].numpy(), pel_world[m:m + blend].numpy(), con[m:m + blend].numpy())
    chunk = _chunk(body, clip.rot, clip.pel, clip.con, clip.emitted, end, _rest_pelvis(body))
    clip.emitted = end
    return chunk


def _rest_pelvis(body) -> np.ndarray:
    """(3,) float32: the body's rest pelvis (world pelvis - trans)."""
    return np.asarray(body.rest_joints_y[0], dtype=np.float32)


def _finished_clip(clip: _Stream, body, path: np.ndarray | None) -> MotionClip:
    """The finished stream as a `MotionClip` (axis-angle poses, world joints)."""
    n = clip.n
    poses = matrix_to_aa(clip.rot.astype(np.float64)).reshape(n, 165).astype(np.float32)
    joints = world_joints(body, poses, clip.pel)
    return MotionClip(
        poses=poses, trans=clip.pel - _rest_pelvis(body), joints=joints, contacts=clip.con,
        grasp_frame=clip.grasp_frame, release_frame=clip.release_frame,
        path=np.zeros((0, 2), np.float32) if path is None else path,
        body_identity=str(getattr(body, "identity", "")),
    )


LEG_JOINTS = [j for leg in LEGS for j in leg]
# eased at window seams: the trunk, head, arms and fingers (the planter continues the legs itself;
# the root carries the planted legs)
SEAM_JOINTS = [j for j in ROT_JOINTS if j != 0 and j not in LEG_JOINTS]
# despiked: before planting the whole body (the planter then re-plants the legs it carries);
# before `refine` the upper body only (the planted legs are final)
WHOLE_BODY = [0] + BODY_JOINTS
UPPER_BODY = [j for j in BODY_JOINTS if j not in LEG_JOINTS]
SEAM_EASE_FRAMES = 8  # a jump at a window seam fades out over this many frames (~0.27 s)


def ease_seam(rot: torch.Tensor, c: int, held: np.ndarray, radius: int = SEAM_EASE_FRAMES) -> torch.Tensor:
    """Inertialization at a window seam: (W,55,3,3) -> (W,55,3,3) with the `SEAM_JOINTS` of frames
    [c, c+radius) turned so frame c continues frames c-2, c-1 at their angular velocity, the
    correction fading out (the new frames keep their own motion beyond). ``held`` (W,len(SEAM_JOINTS))
    bool: hard keys (a grasp pose), kept exactly and eased into.

    Why: planting and `refine` work on a window's new frames with its context fixed but not
    continued: an arm solved afresh at the first new frame jumped up to 10 m/s (most pops of
    random rooms sat on a seam)."""
    end = min(c + radius, rot.shape[0])
    if end <= c:
        return rot
    r = rot.numpy().astype(np.float64)
    joints = np.asarray(SEAM_JOINTS)
    before, last = r[c - 2, joints], r[c - 1, joints]
    predicted = last @ (np.swapaxes(before, -1, -2) @ last)  # frame c at the context's angular velocity
    offset = np.swapaxes(r[c, joints], -1, -2) @ predicted  # (J,3,3): new frame c -> predicted
    out = r.copy()
    keep = np.stack([eased_share(held[:, i], radius) for i in range(len(joints))], -1)  # (W,J)
    for k, t in enumerate(range(c, end)):
        share = (1.0 - k / radius) * keep[t]  # (J,)
        out[t, joints] = r[t, joints] @ blend_rotations(np.broadcast_to(np.eye(3), offset.shape), offset, share)
    return torch.as_tensor(out, dtype=rot.dtype)


def plant_window(planter: FootPlanter, wa: WindowAnchors, frame: CanonFrame, rot_c: torch.Tensor,
                 pel_c: torch.Tensor, con_c: torch.Tensor, c: int, m: int, look: int, start: int):
    """One window's feet planted (`footplant`): (rot_c, pel_c, con_c) with the walk lowered where
    its legs cannot reach, the legs re-solved on frames [c, m) and the contacts set to the stances.

    The planter keeps its state in the world (stances cross windows); leg rotations are local, so
    they come back to the canonical frame unchanged."""
    keep_height = wa.hard_mask[:, 2].numpy().copy()
    keep_height[:c] = False  # the context frames are hard for continuity, not keys
    rot_world = rot_c.clone()
    rot_world[:, 0] = torch.as_tensor(frame.yaw(), dtype=torch.float32) @ rot_c[:, 0]
    pel_world = frame.to_world_points_t(pel_c).float()
    lowered = torch.as_tensor(planter.lowered_pelvis(rot_world.numpy(), pel_world.numpy(), c, look, keep_height))
    pel_c = pel_c.clone()
    pel_c[:, 2] -= pel_world[:, 2] - lowered[:, 2]
    pel_world = lowered
    keep = np.stack([leg_keys(wa.hard_mask, side) for side in range(2)], 1)
    keep[:c] = False
    planted, con_p = planter.plant(rot_world.numpy(), pel_world.numpy(), c, m, look, start, keep)
    rot_c = rot_c.clone()
    rot_c[c:m, LEG_JOINTS] = torch.as_tensor(planted[c:m, LEG_JOINTS], dtype=rot_c.dtype)
    con_c = con_c.clone()
    con_c[c:m] = torch.as_tensor(con_p)
    return rot_c, pel_c, con_c


def swinging_feet(body, rot: torch.Tensor, pel: torch.Tensor, contacts: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """((W,4,3) ankle and ball positions, (W,4) weights 1 where the foot swings): `refine` holds a
    swinging foot lightly. Left free, a foot lifting off was bent by the correction and dragged its
    toes along the floor at over 1 m/s; held hard, the thigh could not be bent out of a table edge."""
    with torch.no_grad():
        points = skeleton_fk(body)(rot, pel, 22)[:, FOOT_CONTACT_JOINTS].numpy()
    return points, (contacts.numpy()[:, [1, 1, 3, 3]] <= 0.5).astype(np.float64)


def target_frames(guide: list, m: int) -> np.ndarray:
    """(m,) bool: frames of a window where a joint other than the pelvis has a position target
    (a wrist at the grasp, the lift or the place)."""
    out = np.zeros(m, bool)
    for f, j, _, _ in guide:
        if j != 0 and 0 <= f < m:
            out[f] = True
    return out


def despike_window(body, rot: torch.Tensor, pel: torch.Tensor, first: int, hard_mask: torch.Tensor,
                   joints: list[int], also_keyed: np.ndarray | None = None) -> torch.Tensor:
    """(M,55,3,3) rotations, (M,3) pelvis of a window's frames -> rotations where no joint that
    ``joints`` carry (they and everything below them) flicks faster than a person moves
    (`despike`); frames before ``first`` (context), frames with a hard body rotation key and
    ``also_keyed`` (M,) frames are kept (a flick next to a kept frame is eased into it)."""
    keyed = keyed_rotations(hard_mask, [0] + BODY_JOINTS).any(-1).numpy()
    if also_keyed is not None:
        keyed = keyed | also_keyed
    measured = sorted({d for j in joints for d in descendants(j)})

    def fk(r: np.ndarray, p: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return body.fk(torch.as_tensor(r, dtype=torch.float32), torch.as_tensor(p, dtype=torch.float32)).numpy()

    out, _ = despike(rot.numpy(), pel.numpy(), fk, first, keyed, joints, measured)
    return torch.as_tensor(out, dtype=rot.dtype)


def keyed_rotations(hard_mask: torch.Tensor, joints) -> torch.Tensor:
    """(W,D) hard mask, J joints -> (W,J) bool: frames where each joint's rotation is a hard anchor."""
    return torch.stack([hard_mask[:, LAYOUT.rot_slice(j)].any(-1) for j in joints], -1)


def leg_keys(hard_mask: torch.Tensor, side: int) -> np.ndarray:
    """(W,) bool: frames where any rotation of one leg (0 left, 1 right) is a hard anchor."""
    return keyed_rotations(hard_mask, LEGS[side]).any(1).numpy()


def _resized(arr: np.ndarray, n: int) -> np.ndarray:
    """(T,...) -> (n,...): the first min(T, n) frames kept, zeros after."""
    out = np.zeros((n,) + arr.shape[1:], arr.dtype)
    out[: min(n, len(arr))] = arr[:n]
    return out


def _chunk(body, rot_w, pel_w, con_w, a: int, b: int, rest_pelvis) -> MotionChunk:
    poses = matrix_to_aa(rot_w[a:b].astype(np.float64)).reshape(b - a, 165).astype(np.float32)
    joints = world_joints(body, poses, pel_w[a:b])
    if not (np.isfinite(poses).all() and np.isfinite(joints).all()):
        raise SynthesisError(f"motion synthesis produced NaN/inf in frames {a}-{b}")
    return MotionChunk(a, poses, pel_w[a:b] - rest_pelvis, joints.astype(np.float32), con_w[a:b].copy())


def world_joints(body, poses: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """(T,165) poses (hands relative to the hands mean) + (T,3) pelvis -> (T,55,3) world joints."""
    with torch.no_grad():
        rot = body.full_pose_rotmats(torch.as_tensor(poses, dtype=torch.float32))
        return body.fk(rot, torch.as_tensor(pelvis, dtype=torch.float32)).numpy().astype(np.float32)


@dataclass
class _Condition:
    """A window's anchors as the network and the inpainting see them (all (1,W,·), normalised)."""

    feat_val: torch.Tensor  # (1,W,D) feature values, zero where not conditioned
    feat_mask: torch.Tensor  # (1,W,D) float 0/1
    joint_val: torch.Tensor  # (1,W,18) joint positions, zero where not conditioned
    joint_mask: torch.Tensor  # (1,W,18) float 0/1
    hard: torch.Tensor  # (1,W,D) bool: channels inpainted exactly
    hard_val: torch.Tensor  # (1,W,D) the values the hard channels take

    @classmethod
    def of(cls, stats, wa: WindowAnchors) -> "_Condition":
        fm = wa.feat_mask.float()[None]
        jm = wa.joint_mask.float()[None]
        return cls(stats.norm(wa.feat_val)[None] * fm, fm, stats.jnorm(wa.joint_val)[None] * jm, jm,
                   wa.hard_mask[None], stats.norm(wa.feat_val)[None])

    def inpaint(self, x0: torch.Tensor) -> torch.Tensor:
        """(1,W,D) -> (1,W,D) with the hard channels set to their values."""
        return torch.where(self.hard, self.hard_val, x0)


def _sample_window(model, win: _Window, body, scene_sdf, cfg: SampleConfig, cancel) -> torch.Tensor:
    """One window: DDIM (or DDPM) with inpainting + guidance -> x0 (1,W,D) normalised.

    `_Condition` -> `_denoiser` and `_x0_hook` (inpaint, guide, bound the pelvis height) -> `sample` ->
    `_smoothed` -> `ease_into_hard`."""
    cond = _Condition.of(model.stats, win.wa)
    energy = _guidance_energy(model, win, body, scene_sdf, cfg.guidance)
    bounds = PelvisBounds.of(body, model.stats, cond)
    hook = _x0_hook(model, cond, energy, bounds, cfg.steps)
    gen = torch.Generator().manual_seed(int(win.seed) % (2**63))
    x0 = sample(_denoiser(model, cond), (1, model.window, LAYOUT.dim), sched_cache(), cfg.steps, hook, gen, cancel,
                ddpm=cfg.ddpm)
    x0 = _smoothed(model, x0, cond, energy, bounds, cfg.smooth)
    return ease_into_hard(x0, cond.hard_val, cond.hard)


def _guidance_energy(model, win: _Window, body, scene_sdf, guidance: bool) -> Energy | None:
    """The window's guidance `Energy`; None when guidance is off (by request or by the checkpoint)."""
    if not (guidance and model.sampler.guidance_iters > 0):
        return None
    return Energy(body, win.wa, win.frame, model.stats.foot_height, scene_sdf, touch_spans=win.touch)


def _denoiser(model, cond: _Condition) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x (1,W,D), t) -> the network's x0 estimate (1,W,D) on the window's anchors."""
    net = model.net
    cfg_scale = float(getattr(model.sampler, "cond_scale", 1.0))
    zf, zj = torch.zeros_like(cond.feat_val), torch.zeros_like(cond.joint_val)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        conditioned = net(x, t, cond.feat_val, cond.feat_mask, cond.joint_val, cond.joint_mask)
        if cfg_scale == 1.0:
            return conditioned
        # classifier-free guidance on the anchors (trained with 10 % dropped conditioning)
        uncond = net(x, t, zf, zf, zj, zj)
        return uncond + cfg_scale * (conditioned - uncond)

    return denoise


def _x0_hook(model, cond: _Condition, energy: Energy | None, bounds: "PelvisBounds",
             n_steps: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The sampler's hook on step ``i``'s x0 estimate (1,W,D): inpainted, then guided with the
    pelvis height bounded (`PelvisBounds.apply`) and inpainted again; SynthesisError if not finite."""

    def hook(x0: torch.Tensor, i: int) -> torch.Tensor:
        x0 = cond.inpaint(x0)
        if energy is not None and (i > 0 or n_steps == 1):  # the first estimate (from pure noise) is not worth guiding
            x0 = cond.inpaint(_guided(model, x0, energy, bounds))
        if not torch.isfinite(x0).all():
            raise SynthesisError("motion synthesis produced NaN/inf during denoising")
        return x0

    return hook


def _smoothed(model, x0: torch.Tensor, cond: _Condition, energy: Energy | None, bounds: "PelvisBounds",
              smooth: float | None) -> torch.Tensor:
    """(1,W,D) -> (1,W,D): the residual high-frequency noise of a few-step sampler smoothed in time
    (sigma ``smooth``, None: the checkpoint's; 0: unchanged), guidance getting the last word."""
    sigma = getattr(model.sampler, "smooth", 0.0) if smooth is None else smooth
    if sigma > 0:
        x0 = cond.inpaint(smooth_in_time(x0, sigma))
        if energy is not None:
            x0 = _guided(model, x0, energy, bounds)
    return x0


def _guided(model, x0: torch.Tensor, energy: Energy, bounds: "PelvisBounds") -> torch.Tensor:
    """(1,W,D) -> (1,W,D): the checkpoint's guidance steps on x0, the pelvis height then bounded."""
    return bounds.apply(guide_x0(x0, energy, model.stats, model.sampler.guidance_iters, model.sampler.guidance_lr))


PELVIS_CEILING_M = 0.06  # how far above its standing height a pelvis may rise (on tiptoe; nothing here jumps)
WALK_PELVIS_FRACTION = 0.88  # a walking pelvis stays at least this fraction of its standing height above the floor
WALK_MIN_SPEED_M_S = 0.3  # a hard pelvis path moving faster than this is a walk
WALK_FLOOR_FADE_FRAMES = 15  # the walking floor fades out over this many frames (0.5 s) before and after a walk


def pelvis_ceiling(body) -> float:
    """Highest pelvis height above the floor (m) a window may have: standing plus `PELVIS_CEILING_M`."""
    return body.standing_pelvis_height + PELVIS_CEILING_M


def walking_frames(hard: np.ndarray, pelvis_xy: np.ndarray, fps: float = FPS,
                   min_speed: float = WALK_MIN_SPEED_M_S) -> np.ndarray:
    """(W,) bool: frames whose pelvis xy is hard (a navigation path) and moves faster than ``min_speed``.

    hard (W,2) bool, pelvis_xy (W,2) metres, canonical frame; a frame walks when the step into it
    or out of it does (both frames anchored)."""
    both = hard.all(1)
    step = np.linalg.norm(np.diff(pelvis_xy, axis=0), axis=1) * fps  # (W-1,) m/s
    moving = (step > min_speed) & both[1:] & both[:-1]
    walk = np.zeros(len(both), dtype=bool)
    walk[1:] |= moving
    walk[:-1] |= moving
    return walk


def walking_floor(walk: np.ndarray, height: float, fade: int = WALK_FLOOR_FADE_FRAMES) -> np.ndarray:
    """(W,) lowest pelvis height (m) per frame: ``height`` on walking frames, fading linearly to 0
    over ``fade`` frames away from the nearest one (a body slows, then bends to a low shelf)."""
    idx = np.flatnonzero(walk)
    if idx.size == 0:
        return np.zeros(len(walk))
    gap = np.abs(np.arange(len(walk))[:, None] - idx[None, :]).min(1)
    return height * np.clip(1.0 - gap / (fade + 1), 0.0, 1.0)


@dataclass(frozen=True)
class PelvisBounds:
    """Per-frame range of the pelvis height above the floor (canonical z), in normalised feature units.

    Invariants: guidance never lifts a body off its legs (ceiling: with the pelvis xy pinned, a
    walk, a turn on the spot, the scene term's only way out of furniture was up: hips rose 1.8 m
    in a few frames); a walking body never crouches (floor: a crouch sampled in one window is the
    next window's context, and the body shuffled on bent knees for metres)."""

    low: torch.Tensor  # (W,) normalised; -inf where free
    high: float  # normalised ceiling

    @classmethod
    def of(cls, body, stats, cond: "_Condition") -> "PelvisBounds":
        mean, std = stats.mean.numpy()[:3], stats.std.numpy()[:3]
        hard = cond.hard[0, :, :2].numpy()
        xy = cond.hard_val[0, :, :2].numpy() * std[:2] + mean[:2]
        floor = walking_floor(walking_frames(hard, xy), WALK_PELVIS_FRACTION * body.standing_pelvis_height)
        low = np.where(floor > 0, (floor - mean[2]) / std[2], -np.inf)
        return cls(torch.as_tensor(low, dtype=torch.float32), (pelvis_ceiling(body) - float(mean[2])) / float(std[2]))

    def apply(self, x0: torch.Tensor) -> torch.Tensor:
        """(1,W,D) normalised features with the pelvis height clamped into the bounds."""
        out = x0.clone()
        out[..., 2] = torch.minimum(torch.maximum(out[..., 2], self.low), torch.tensor(self.high))
        return out


HARD_EASE_FRAMES = 14  # a hard anchor's correction fades out over this many frames on each side (~0.5 s)


def ease_into_hard(x0: torch.Tensor, hv: torch.Tensor, hard: torch.Tensor, radius: int = HARD_EASE_FRAMES) -> torch.Tensor:
    """Meet hard anchors inside a window without a one-frame snap: (1,W,D) -> (1,W,D).

    Inpainting overwrites the anchored frames only, so the frames around a grasp pose can differ
    from it by several centimetres: a pop at every grasp (walk clips: most joint accelerations
    over 60 m/s^2 sat within 4 frames of the grasp). For each run of hard frames that reaches
    past the window's context (its leading frames where every channel is hard: the blend
    continues those), the jump between the anchored value and its free neighbours is spread over
    ``radius`` frames on each side, fading linearly (offset blending, as in inertialization). A
    run that starts in the context (a walk's pelvis path, anchored on every frame) is eased where it ends.
    """
    h = hard[0].numpy()  # (W,D)
    out = x0[0].clone()
    w = h.shape[0]
    context = int(np.argmin(h.all(1))) if not h.all() else w
    for d in np.flatnonzero(h[1:].any(0)):
        for a, b in true_runs(h[:, d]):
            if b <= context or b - a == w:
                continue
            # values, not views: `out` changes below; a run at an end of the window has one side
            left = float(out[a - 1, d]) if a > 0 else float(out[b, d])
            right = float(out[b, d]) if b < w else left
            if b - a == 1:  # a single anchored frame: its free estimate lies between the neighbours
                left = right = 0.5 * (left + right)
            for k in range(radius):
                fade = 1.0 - (k + 1) / (radius + 1)
                if a - 1 - k >= 0 and not h[a - 1 - k, d]:
                    out[a - 1 - k, d] += fade * (hv[0, a, d] - left)
                if b + k < w and not h[b + k, d]:
                    out[b + k, d] += fade * (hv[0, b - 1, d] - right)
    return torch.where(hard, hv, out[None])


_SCHED: Schedule | None = None


def sched_cache() -> Schedule:
    global _SCHED
    if _SCHED is None:
        _SCHED = Schedule.cosine()
    return _SCHED
