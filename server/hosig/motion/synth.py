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
from hosig.clip import MotionClip
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
    LEFT_HAND_JOINTS,
    RIGHT_HAND_JOINTS,
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
    scene_skip: tuple[int, int] = (-1, -1),
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
    first window reaching past it calls ``later.resolve()`` for the real anchors, skip frames and
    grasp/release frames (the walk streams while the grasp is optimised; same clip either way).

    ``scene_skip`` = frames where the wrists may touch the scene (grasping); ``ddpm`` uses the
    1000-step reference sampler (benchmarks only). Raises UnreachableError for targets out of reach,
    CancelledError when ``cancel()`` turns true, SynthesisError on a numerical failure.
    """
    anchors.validate()
    model.check_body(getattr(body, "identity", ""))
    if later is None:
        check_reach(anchors, floor_z)
    n = anchors.n_frames
    w = model.window
    sc = model.sampler
    ctx = min(sc.context, w // 4)
    blend = min(sc.blend, w // 4)
    stride = w - ctx - blend
    n_steps = steps or sc.steps
    stats = model.stats
    sched = Schedule.cosine()
    fingers_learned = bool(model.meta.get("data_report", {}).get("finger_channels_valid_fraction", 1.0) > 0.05)
    fingers = None if fingers_learned else finger_track(anchors, n)
    foot_floor = stats.foot_height.numpy()  # canonical frames stand on the floor (z = 0)

    rot_w = np.zeros((n, 55, 3, 3), np.float32)
    pel_w = np.zeros((n, 3), np.float32)
    con_w = np.zeros((n, 4), np.float32)
    pending = None  # (feature-free) world prediction of the previous window beyond its final frames
    frame = initial_frame(anchors, floor_z)
    emitted = 0
    s = 0
    k = 0
    rest_pelvis = np.asarray(body.rest_joints_y[0], dtype=np.float32)
    clearance = getattr(scene_sdf, "query_np", None)
    planter = FootPlanter(body, floor_z, clearance=clearance) if plant_feet else None
    while emitted < n:
        if cancel is not None and cancel():
            raise CancelledError("motion synthesis cancelled")
        if k > 0:
            frame = CanonFrame(float(pel_w[s, 0]), float(pel_w[s, 1]), float(heading_of(torch.as_tensor(rot_w[s, 0]))),
                               float(floor_z))
        if later is not None and s + w > later.frame:  # this window needs the grasp's anchors
            real = later.resolve()
            later = None
            anchors, scene_skip, grasp_frame, release_frame = real.anchors, real.scene_skip, real.grasp_frame, real.release_frame
            anchors.validate()
            check_reach(anchors, floor_z)
            n = anchors.n_frames
            fingers = None if fingers_learned else finger_track(anchors, n)
            rot_w, pel_w, con_w = (_resized(arr, n) for arr in (rot_w, pel_w, con_w))
        wa = anchors.window(s, w, frame)
        c = ctx if k > 0 else 0
        if c:
            feats_ctx = _features_in_frame(rot_w[s:s + c], pel_w[s:s + c], con_w[s:s + c], frame)
            wa.feat_val[:c] = feats_ctx
            wa.feat_mask[:c] = True
            wa.hard_mask[:c] = True
            with torch.no_grad():
                jc = skeleton_fk(body)(torch.as_tensor(rot_w[s:s + c]), torch.as_tensor(pel_w[s:s + c]), 22)
            jc = torch.as_tensor(frame.to_canon_points(jc.numpy()[:, ANCHOR_JOINTS]), dtype=torch.float32)
            wa.joint_val[:c] = jc.reshape(c, -1)
            wa.joint_mask[:c] = True
        if fingers is not None:
            m = min(w, n - s)
            six = matrix_to_6d(torch.as_tensor(fingers[s:s + m])).reshape(m, -1)
            wa.feat_val[:m, LAYOUT.hands] = six
            wa.hard_mask[:m, LAYOUT.hands] = True
            if m < w:  # past the clip end: hold the last finger pose
                wa.feat_val[m:, LAYOUT.hands] = six[-1]
                wa.hard_mask[m:, LAYOUT.hands] = True
        x0 = _sample_window(model, wa, frame, body, scene_sdf, seed * 7919 + k, n_steps, guidance, ddpm,
                            floor_z, scene_skip, s, cancel, smooth)
        dec = decode(stats.denorm(x0[0]))
        rot_c, pel_c, con_c = dec.rotmats.detach(), dec.pelvis.detach(), dec.contacts.detach().clamp(0, 1)
        if k > 0 and pending is not None and blend:
            prev = _features_in_frame(*pending, frame)[: blend]
            new = x0.new_tensor(0) + stats.denorm(x0[0])[c:c + blend]
            wts = torch.linspace(1, blend, blend)[:, None] / (blend + 1)
            mix = decode((1 - wts) * prev[: len(new)] + wts * new)
            rot_c[c:c + blend] = mix.rotmats
            pel_c[c:c + blend] = mix.pelvis
            con_c[c:c + blend] = mix.contacts.clamp(0, 1)
        last = s + w >= n
        end = n if last else s + stride + ctx
        m = end - s
        held = None
        targets = target_frames(wa.guide, m)
        rot_c[:m] = despike_window(body, rot_c[:m], pel_c[:m], c, wa.hard_mask[:m], WHOLE_BODY, also_keyed=targets)
        if planter is not None:  # feet planted first, so the correction below keeps them planted
            rot_c, pel_c, con_c = plant_window(planter, wa, frame, rot_c, pel_c, con_c, c, m, m if last else w, s)
            held = swinging_feet(body, rot_c[:m], pel_c[:m], con_c[:m])
        if c >= 2:  # the first new frame continues the streamed ones; `refine` then keeps it out of the furniture
            keys = keyed_rotations(wa.hard_mask[:m], SEAM_JOINTS).numpy()
            keys[:c] = False  # the context is hard for continuity, not a key
            rot_c[:m] = ease_seam(rot_c[:m], c, keys)
        # `refine` has the last word: the scene and the targets (a flick smoothed after it went through furniture)
        rot_c[:m] = despike_window(body, rot_c[:m], pel_c[:m], c, wa.hard_mask[:m], UPPER_BODY, also_keyed=targets)
        if refine_pass:
            tg = [(f, j, p, wt) for f, j, p, wt in wa.guide if j != 0]
            locked = keyed_rotations(wa.hard_mask[:m], REFINE_JOINTS)
            if planter is not None:  # a planted leg is final: locked (a stiff hold made the solver converge worse)
                down = torch.as_tensor(con_c[:m].numpy()[:, [1, 3]] > 0.5)  # (m,2)
                for side, leg in enumerate(LEGS):
                    locked[:, [REFINE_JOINTS.index(j) for j in leg]] |= down[:, side:side + 1]
            scene = SceneTerm(scene_sdf, frame, floor_z) if scene_sdf is not None else None
            # the pelvis height may move where it is not a hard anchor (a grasp pose's pelvis is)
            height_free = ~wa.hard_mask[:m, 2] if scene is not None and planter is None else None
            rot_c[:m], pel_c[:m] = refine(body, rot_c[:m], pel_c[:m], con_c[:m], tg, foot_floor, fixed=c,
                                         cfg=RefineConfig(), locked=locked, scene=scene, height_free=height_free,
                                         lock_feet=planter is None, held_feet=held)
            # a correction never flicks: where it moved a joint faster than a person can (an arm
            # solved out of a shelf next to a target), the calm poses around it are eased together
            rot_c[:m] = despike_window(body, rot_c[:m], pel_c[:m], c, wa.hard_mask[:m], UPPER_BODY)
        # back to world
        yaw = torch.as_tensor(frame.yaw(), dtype=torch.float32)
        rot_world = rot_c.clone()
        rot_world[:, 0] = yaw @ rot_c[:, 0]
        pel_world = frame.to_world_points_t(pel_c).float()
        if not (torch.isfinite(rot_world).all() and torch.isfinite(pel_world).all()):
            raise SynthesisError(f"motion synthesis produced NaN/inf in window {k} (frames {s}-{s + w}); try another seed")
        rot_w[s:end] = rot_world[:m].numpy()
        pel_w[s:end] = pel_world[:m].numpy()
        con_w[s:end] = con_c[:m].numpy()
        if not last:
            pending = (rot_world[m:m + blend].numpy(), pel_world[m:m + blend].numpy(), con_c[m:m + blend].numpy())
        chunk = _chunk(body, rot_w, pel_w, con_w, emitted, end, rest_pelvis)
        emitted = end
        yield chunk
        s += stride
        k += 1

    poses = matrix_to_aa(rot_w.astype(np.float64)).reshape(n, 165).astype(np.float32)
    joints = world_joints(body, poses, pel_w)
    clip = MotionClip(
        poses=poses, trans=pel_w - rest_pelvis, joints=joints, contacts=con_w,
        grasp_frame=grasp_frame, release_frame=release_frame,
        path=np.zeros((0, 2), np.float32) if path is None else path,
        body_identity=str(getattr(body, "identity", "")),
    )
    return clip


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


def _sample_window(model, wa: WindowAnchors, frame: CanonFrame, body, scene_sdf, seed: int, n_steps: int,
                   guidance: bool, ddpm: bool, floor_z: float, scene_skip: tuple[int, int], start: int,
                   cancel, smooth: float | None = None) -> torch.Tensor:
    """One window: DDIM (or DDPM) with inpainting + guidance -> x0 (1,W,D) normalised."""
    stats = model.stats
    net = model.net
    fm = wa.feat_mask.float()[None]
    jm = wa.joint_mask.float()[None]
    fv = stats.norm(wa.feat_val)[None] * fm
    jv = stats.jnorm(wa.joint_val)[None] * jm
    hard = wa.hard_mask[None]
    hv = stats.norm(wa.feat_val)[None]
    energy = None
    if guidance and model.sampler.guidance_iters > 0:
        skip = (scene_skip[0] - start, scene_skip[1] - start)
        energy = Energy(body, wa, frame, stats.foot_height, scene_sdf, scene_skip=skip)

    cfg_scale = float(getattr(model.sampler, "cond_scale", 1.0))
    zf, zj = torch.zeros_like(fv), torch.zeros_like(jv)

    def denoise(x, t):
        cond = net(x, t, fv, fm, jv, jm)
        if cfg_scale == 1.0:
            return cond
        # classifier-free guidance on the anchors (trained with 10 % dropped conditioning)
        uncond = net(x, t, zf, zf, zj, zj)
        return uncond + cfg_scale * (cond - uncond)

    ceiling = pelvis_ceiling(body)

    def hook(x0: torch.Tensor, i: int) -> torch.Tensor:
        x0 = torch.where(hard, hv, x0)
        if energy is not None and (i > 0 or n_steps == 1):  # the first estimate (from pure noise) is not worth guiding
            x0 = guide_x0(x0, energy, stats, model.sampler.guidance_iters, model.sampler.guidance_lr)
            x0 = torch.where(hard, hv, cap_pelvis_height(x0, stats, ceiling))
        if not torch.isfinite(x0).all():
            raise SynthesisError("motion synthesis produced NaN/inf during denoising")
        return x0

    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    x0 = sample(denoise, (1, model.window, LAYOUT.dim), sched_cache(), n_steps, hook, gen, cancel, ddpm=ddpm)
    sigma = getattr(model.sampler, "smooth", 0.0) if smooth is None else smooth
    if sigma > 0:  # residual high-frequency noise of a few-step sampler; guidance gets the last word
        x0 = torch.where(hard, hv, smooth_in_time(x0, sigma))
        if energy is not None:
            x0 = cap_pelvis_height(guide_x0(x0, energy, stats, model.sampler.guidance_iters, model.sampler.guidance_lr),
                                   stats, ceiling)
    return ease_into_hard(x0, hv, hard)


PELVIS_CEILING_M = 0.06  # how far above its standing height a pelvis may rise (on tiptoe; nothing here jumps)


def pelvis_ceiling(body) -> float:
    """Highest pelvis height above the floor (m) a window may have: standing plus `PELVIS_CEILING_M`."""
    return float(body.rest_joints_y[0, 1] - body.floor_y) + PELVIS_CEILING_M


def cap_pelvis_height(x0: torch.Tensor, stats, ceiling: float) -> torch.Tensor:
    """(1,W,D) normalised features with the pelvis height (canonical z: above the floor) at most ``ceiling``.

    Invariant: guidance never lifts a body off its legs. With the pelvis xy pinned (a walk, a turn
    on the spot), the scene term's only way out of furniture was up: hips rose 1.8 m in a few frames."""
    top = (ceiling - float(stats.mean[2])) / float(stats.std[2])
    out = x0.clone()
    out[..., 2] = torch.clamp(out[..., 2], max=top)
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
