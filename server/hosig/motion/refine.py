"""The short analytic correction after sampling: arm IK to the targets and foot-contact cleanup.

Guidance brings the wrist near the grasp target and the feet near rest; this pass makes it exact
where it must be. It optimises small local rotation offsets of the legs, spine and arms (the
pelvis path stays as sampled; `refine` may also raise or lower the pelvis a few millimetres)
so that: joint targets (wrist at the grasp/place frame, any key) are met, each with its correction
faded in and out over the neighbouring frames (`eased_targets`), feet in contact stay locked in
place (no skating) at their standing height (no sinking), the offsets stay small and smooth in time,
and (given a `SceneTerm`) no skin point enters the furniture: the reaching
arm, the free hand and the knees are bent out of shelf boards and table tops the sampler's coarse
joint-sphere guidance let them graze. Frames before ``fixed`` are already final (streamed) and are
not changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hosig.easing import smoothstep
from hosig.motion.representation import FOOT_CONTACT_JOINTS, CanonFrame, aa_to_matrix, matrix_to_aa, skeleton_fk
from hosig.motion.skin import carried_local, skin_points, world_points
from hosig.motion.walls import ARM_JOINTS, STENCIL_M, ways_out
from hosig.runs import true_runs

MAX_LOCK_TRAVEL_M = 0.25  # a "contact" run whose foot slides further than this is not pinned
# Foot joints may not sink below their standing height by more than this: the sole and toe-tip
# vertices lie below the joints (a joint 1 cm down puts the toes ~1.4 cm into the floor), so the
# joints are kept slightly above it (kitchen pick: frames with floor contact > 1 mm 8 % -> 1 %).
SINK_TOLERANCE_M = -0.006

# legs, spine and arms (SMPL-X indices): what the correction may bend
REFINE_JOINTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# elbows and wrists: where a correction that jumps between frames shows as a pop
SMOOTH_JOINTS = [18, 19, 20, 21]
# spine, neck and collars cost more to bend: a hand grazing a table is lifted by its own arm, not
# by twisting the torso (which would swing the free arm and the head along)
TRUNK_JOINTS = (3, 6, 9, 12, 13, 14)


@dataclass
class SceneTerm:
    """The scene as `refine` sees it: a world SDF and where the window sits in the world."""

    sdf: object  # `SceneSDF` (or anything with a differentiable ``query(points (...,3)) -> (...)``)
    frame: CanonFrame  # canonical window frame -> world
    floor_z: float = 0.0
    margin_m: float = 0.012  # skin points kept this far outside (the 2 cm grid's surface error)
    hand_margin_m: float = 0.004  # hands may come close: they grasp things standing on furniture
    weight: float = 3000.0
    watch_m: float = 0.05  # only points closer than margin + this at the start are watched
    probe_sdf: object | None = None  # ``sdf`` with `probed_distance`'s blend built in (one query per point)


@dataclass
class RefineConfig:
    iters: int = 30  # L-BFGS iterations with joint targets (arm IK); foot cleanup alone uses iters_feet
    iters_feet: int = 10  # ... and foot cleanup with no scene: a scene couples the frames (`RefineConfig.accel_weight`)
    target_weight: float = 200.0
    foot_weight: float = 100.0
    held_foot_weight: float = 300.0  # ``held_feet``: a swinging foot may still bend a thigh out of a table
    reg_weight: float = 0.05
    trunk_reg_scale: float = 40.0
    smooth_weight: float = 2.0
    accel_weight: float = 300.0  # the correction's acceleration at `SMOOTH_JOINTS` (m/frame², squared): arms move smoothly
    contact_threshold: float = 0.5
    height_reg: float = 20.0  # pelvis height offsets (``height_free``): 1 cm costs like 0.06 rad of a limb
    height_smooth: float = 2000.0
    ease_frames: int = 12  # a joint target's correction fades out over this many frames on each side


def contact_targets(feet: np.ndarray, contacts: np.ndarray, fixed: int, floor: np.ndarray, threshold: float):
    """Locked foot positions: each contact run of a foot point keeps one place.

    feet (W,4,3), contacts (W,4), floor (4,) the standing height of each point (world z).
    Returns target (W,4,3) and mask (W,4). A run that starts in the fixed prefix keeps the last
    fixed position (so the streamed part and the new part agree).
    """
    w = feet.shape[0]
    target = feet.copy()
    mask = np.zeros((w, 4), bool)
    # in contact = predicted so AND near the floor (a raised foot is never pinned)
    on = (contacts > threshold) & (feet[..., 2] < floor[None, :] + 0.05)
    on = _steady_contacts(on)
    for k in range(4):
        t = 0
        while t < w:
            if not on[t, k]:
                t += 1
                continue
            e = t
            while e < w and on[e, k]:
                e += 1
            travel = float(np.linalg.norm(feet[e - 1, k, :2] - feet[t, k, :2]))
            if travel > MAX_LOCK_TRAVEL_M and e - t > 1:  # the foot really travels: not a stance, leave it
                t = e
                continue
            if t < fixed:
                anchor = feet[min(fixed, e) - 1, k, :2]
            else:
                anchor = feet[t:e, k, :2].mean(0)
            target[t:e, k, :2] = anchor
            target[t:e, k, 2] = np.minimum(feet[t:e, k, 2], floor[k]) * 0 + floor[k]
            mask[t:e, k] = True
            t = e
    mask[:fixed] = False
    return target, mask


Target = tuple[int, int, np.ndarray, float]  # (frame, joint, position (3,) NaN = free, weight)


def eased_targets(targets: list[Target], joints0: np.ndarray, fixed: int, radius: int) -> list[Target]:
    """``targets`` plus targets on the frames around them that carry the same correction, faded.

    joints0 (W,J,3): the joints before the correction. Why: the correction's smoothness term alone
    let a wrist target bend the arm at the anchored frames only; when the sampled hand lagged the
    grasp or sagged between sparse hold anchors, it snapped there and back (a 20-80 cm pop). The
    offset (target - sampled) is spread like inertialization: interpolated between targets closer
    than 2*radius+1 frames, faded to zero over ``radius`` frames outside them (smoothstep: a
    limb eases into and out of its target, no kink for the correction's acceleration term).
    """
    w = joints0.shape[0]
    out = list(targets)
    by_joint: dict[int, dict[int, tuple[np.ndarray, float]]] = {}
    for f, j, p, wt in targets:
        by_joint.setdefault(int(j), {})[int(f)] = (np.asarray(p, dtype=np.float64), float(wt))
    for j, at in by_joint.items():
        keys = np.array(sorted(at))
        offset = {f: at[f][0] - joints0[f, j] for f in keys}  # NaN components stay free
        for f in range(max(fixed, int(keys[0]) - radius), min(w, int(keys[-1]) + radius + 1)):
            if f in at:
                continue
            k = int(np.searchsorted(keys, f))
            prev = int(keys[k - 1]) if k > 0 else None
            nxt = int(keys[k]) if k < len(keys) else None
            if prev is not None and nxt is not None and nxt - prev <= 2 * radius + 1:
                u = (f - prev) / (nxt - prev)
                off = (1 - u) * np.nan_to_num(offset[prev]) + u * np.nan_to_num(offset[nxt])
                off[np.isnan(offset[prev]) & np.isnan(offset[nxt])] = np.nan
                wt = min(at[prev][1], at[nxt][1])
            elif prev is not None and f - prev <= radius:
                off, wt = offset[prev] * smoothstep(1 - (f - prev) / (radius + 1)), at[prev][1]
            elif nxt is not None and nxt - f <= radius:
                off, wt = offset[nxt] * smoothstep(1 - (nxt - f) / (radius + 1)), at[nxt][1]
            else:
                continue
            out.append((f, j, joints0[f, j] + off, wt))
    return out


POLISH_DEPTH_M = 0.01  # skin still this deep inside the scene after a solve gets another round
TARGET_ROUNDS = 3  # polishing rounds for joint targets still short (an unreachable one never converges)
SCENE_ROUNDS = 6  # ... and while skin is still, or newly, inside the scene: each round may push another point in
MAX_HEIGHT_SHIFT_M = 0.01  # refine moves the pelvis height by less than this


MIN_GAP_FRAMES = 3  # shorter breaks inside a stance are flicker of the contact channel
MIN_RUN_FRAMES = 3  # shorter "stances" are a swinging foot brushing the threshold


def _steady_contacts(on: np.ndarray) -> np.ndarray:
    """(W,4) bool contacts with short breaks inside a stance closed and short runs dropped.

    Why: a stance the contact channel interrupts for a frame is pinned as two runs, each at its
    own mean position, with the frame between them free; the foot then popped 4 cm for that one
    frame (and into a table's foot in the corridor case).
    """
    out = on.copy()
    for k in range(on.shape[1]):
        runs = true_runs(on[:, k])
        for (_, e0), (s1, _) in zip(runs[:-1], runs[1:]):
            if s1 - e0 <= MIN_GAP_FRAMES:
                out[e0:s1, k] = True
        for s0, e0 in true_runs(out[:, k]):
            if e0 - s0 < MIN_RUN_FRAMES:
                out[s0:e0, k] = False
    return out


@dataclass
class TargetTerm:
    """Joint position targets as index tensors: ``joints[frames, joints]`` should reach ``values``."""

    frames: torch.Tensor  # (N,) long
    joints: torch.Tensor  # (N,) long
    values: torch.Tensor  # (N,3), 0 where free
    mask: torch.Tensor  # (N,3) float: 0 on free (NaN) components
    weights: torch.Tensor  # (N,)

    @classmethod
    def of(cls, targets: list[Target]) -> "TargetTerm":
        values = np.array([t[2] for t in targets], np.float32)
        return cls(torch.tensor([t[0] for t in targets]), torch.tensor([t[1] for t in targets]),
                    torch.as_tensor(np.nan_to_num(values)), torch.as_tensor(~np.isnan(values)).float(),
                    torch.tensor([t[3] for t in targets], dtype=torch.float32))

    def error(self, joints: torch.Tensor) -> torch.Tensor:
        """(W,J,3) joints -> (N,3) target errors on the constrained components."""
        return (joints[self.frames, self.joints] - self.values) * self.mask

    def cost(self, joints: torch.Tensor, weight: float) -> torch.Tensor:
        """Weighted sum of squared errors (scalar)."""
        return weight * ((self.error(joints) ** 2).sum(-1) * self.weights).sum()

    def worst(self, joints: torch.Tensor) -> float:
        """The largest target distance (m)."""
        return float((self.error(joints).norm(dim=-1)).max())


@dataclass
class FootTerm:
    """Foot contact points (`FOOT_CONTACT_JOINTS`) held at positions, per frame and point."""

    positions: torch.Tensor  # (W,4,3)
    mask: torch.Tensor  # (W,4) float weights, 0 where the point is free
    weight: float
    starts_solver: bool  # False for held swinging feet: alone they never call for a correction

    def cost(self, joints: torch.Tensor) -> torch.Tensor:
        """Weighted squared distance of the foot points from their positions (scalar)."""
        err = (joints[:, FOOT_CONTACT_JOINTS] - self.positions) ** 2
        return self.weight * (err.sum(-1) * self.mask).sum()


@dataclass
class RefineProblem:
    """One `refine` call set up: the sampled window, what may change, and the loss terms.

    The unknowns are per-frame axis-angle offsets (W,len(`REFINE_JOINTS`),3) of the local
    rotations and, where ``height_free``, pelvis height offsets (W,1) bounded by `MAX_HEIGHT_SHIFT_M`.
    Frames before ``fixed`` never change (their ``free`` and ``height_free`` rows are 0)."""

    fk: object  # `skeleton_fk(body)`
    rot0: torch.Tensor  # (W,55,3,3) sampled rotations
    pelvis: torch.Tensor  # (W,3) sampled pelvis
    n_joints: int  # joints the forward kinematics reaches (22, more for a hand target)
    joints0: torch.Tensor  # (W,n_joints,3) joints before the correction
    fixed: int
    free: torch.Tensor  # (W,J,1) 1 where a `REFINE_JOINTS` rotation may change
    height_free: torch.Tensor  # (W,1) 1 where the pelvis height may change
    moves_height: bool  # the pelvis height offsets are unknowns at all
    reg: torch.Tensor  # (1,J,1) offset regularisation weights (the trunk stiffer)
    floor: torch.Tensor  # (1,4) standing z of the foot points
    new_frames: torch.Tensor  # (W,1) 1 on frames from ``fixed`` on
    lock_feet: bool  # foot points kept above the floor (and, without held feet, locked in contact)
    targets: TargetTerm | None
    feet: FootTerm | None
    scene: SceneTerm | None  # cropped around ``watched`` when there was skin to watch
    watched: "_Watched | None"  # skin points near the scene; grows while polishing
    lift_all: bool  # every sole near the floor kept `FLOOR_MARGIN_M` up (the pelvis may rise)
    whole_scene: SceneTerm | None = None  # ``scene`` uncropped: where skin that moved outside the crop is looked for

    def rotations(self, offsets: torch.Tensor) -> torch.Tensor:
        """(W,J,3) axis-angle offsets (already masked) -> (W,55,3,3) corrected rotations."""
        rot = self.rot0.clone()
        idx = torch.tensor(REFINE_JOINTS)
        rot[:, idx] = self.rot0[:, idx] @ aa_to_matrix(offsets)
        return rot

    def pelvis_at(self, dz: torch.Tensor) -> torch.Tensor:
        """(W,1) raw height offsets -> (W,3) pelvis. Bounded: a few millimetres out of the floor,
        never a lift over furniture (a knee in a coffee table raised the whole body 18 cm with one
        leg kicked up to the hip)."""
        w = self.pelvis.shape[0]
        return self.pelvis + torch.cat([torch.zeros(w, 2), self.height_shift(dz)], 1)

    def height_shift(self, dz: torch.Tensor) -> torch.Tensor:
        """(W,1) raw height offsets -> (W,1) metres, bounded and zero where the height is not free."""
        return MAX_HEIGHT_SHIFT_M * torch.tanh(dz / MAX_HEIGHT_SHIFT_M) * self.height_free


@dataclass
class _Offsets:
    """The unknowns of `refine` (leaf tensors the optimiser changes in place)."""

    delta: torch.Tensor  # (W,J,3) axis-angle offsets of `REFINE_JOINTS`
    dz: torch.Tensor  # (W,1) raw pelvis height offsets (see `RefineProblem.height_shift`)

    @classmethod
    def zeros(cls, w: int) -> "_Offsets":
        return cls(torch.zeros(w, len(REFINE_JOINTS), 3, requires_grad=True), torch.zeros(w, 1, requires_grad=True))


def refine(
    body,
    rotmats: torch.Tensor,  # (W,55,3,3)
    pelvis: torch.Tensor,  # (W,3)
    contacts: torch.Tensor | None,  # (W,4)
    targets: list[Target],
    foot_floor: np.ndarray,  # (4,) standing z of the foot points (floor + foot height)
    fixed: int = 0,
    cfg: RefineConfig = RefineConfig(),
    lock_feet: bool = True,
    locked: torch.Tensor | None = None,  # (W,len(REFINE_JOINTS)) bool: hard-anchored rotations stay
    scene: SceneTerm | None = None,
    height_free: torch.Tensor | None = None,  # (W,) bool: frames whose pelvis height may move
    held_feet: tuple[np.ndarray, np.ndarray] | None = None,  # ((W,4,3) foot points, (W,4) weights) kept near
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrected (rotmats (W,55,3,3), pelvis (W,3)); the pelvis moves only in height, only where
    ``height_free`` says, and by less than `MAX_HEIGHT_SHIFT_M` (None: never).

    ``held_feet``: foot points placed by `footplant` (its swinging feet; planted legs come in
    ``locked``), kept near where they are (`RefineConfig.held_foot_weight`); alone they never
    start the solver, and they replace the soft foot lock.

    Why a height: with the pelvis fixed, a body whose soles are all a millimetre under the floor
    can only get out by bending (it twisted the torso); lifting it is the honest correction, so
    then every sole near the floor is kept `FLOOR_MARGIN_M` up, not only those already under it.
    """
    problem = _build_problem(body, rotmats, pelvis, contacts, targets, foot_floor, fixed, cfg, lock_feet, locked,
                             scene, height_free, held_feet)
    if not _needs_correction(problem):
        return problem.rot0, problem.pelvis
    offsets = _Offsets.zeros(rotmats.shape[0])
    _run_lbfgs(problem, cfg, offsets, cfg.iters if problem.targets is not None or problem.watched is not None
               else cfg.iters_feet)
    for done in range(SCENE_ROUNDS):  # polish until targets are met (<= 1.5 cm) and nothing new went inside
        targets_short, skin_inside = _needs_another_round(problem, body, offsets)
        if not (skin_inside or (targets_short and done < TARGET_ROUNDS)):
            break
        _run_lbfgs(problem, cfg, offsets, cfg.iters)
    return _corrected(problem, offsets)


def _build_problem(body, rotmats: torch.Tensor, pelvis: torch.Tensor, contacts: torch.Tensor | None,
                   targets: list[Target], foot_floor: np.ndarray, fixed: int, cfg: RefineConfig, lock_feet: bool,
                   locked: torch.Tensor | None, scene: SceneTerm | None, height_free: torch.Tensor | None,
                   held_feet: tuple[np.ndarray, np.ndarray] | None) -> RefineProblem:
    """`refine`'s arguments -> the problem: the sampled joints, the watched skin (and the scene
    cropped around it), the target and foot terms and the masks of what may change."""
    w = rotmats.shape[0]
    fk = skeleton_fk(body)
    n_joints = max([22] + [int(t[1]) + 1 for t in targets])
    rot0 = rotmats.detach()
    pel = pelvis.detach()
    with torch.no_grad():
        joints0 = fk(rot0, pel, n_joints)
    lift_all = height_free is not None
    watched = _watched_skin(body, rot0, pel, fixed, scene, lift_all=lift_all) if scene is not None else None
    cropped = _cropped(fk, rot0, pel, scene, watched) if watched is not None else scene
    tg = eased_targets([t for t in targets if fixed <= t[0] < w], joints0.numpy(), fixed, cfg.ease_frames)
    new_frames = torch.zeros(w, 1)
    new_frames[fixed:] = 1.0
    return RefineProblem(
        fk=fk, rot0=rot0, pelvis=pel, n_joints=n_joints, joints0=joints0, fixed=fixed,
        free=_free_rotations(w, fixed, locked), height_free=_free_heights(w, fixed, height_free),
        moves_height=height_free is not None, reg=_offset_weights(cfg),
        floor=torch.as_tensor(np.asarray(foot_floor), dtype=torch.float32)[None], new_frames=new_frames,
        lock_feet=lock_feet, targets=TargetTerm.of(tg) if tg else None,
        feet=_foot_term(joints0, contacts, foot_floor, fixed, cfg, lock_feet, held_feet),
        scene=cropped, watched=watched, lift_all=lift_all, whole_scene=scene,
    )


def _free_rotations(w: int, fixed: int, locked: torch.Tensor | None) -> torch.Tensor:
    """(W,J,1) 1 where a `REFINE_JOINTS` rotation may change: new frames, not hard-anchored."""
    free = torch.zeros(w, len(REFINE_JOINTS), 1)
    free[fixed:] = 1.0
    if locked is not None:
        free = free * (~locked[:w]).float()[..., None]
    return free


def _free_heights(w: int, fixed: int, height_free: torch.Tensor | None) -> torch.Tensor:
    """(W,1) 1 where the pelvis height may change (new frames that ``height_free`` allows)."""
    zfree = torch.zeros(w, 1)
    if height_free is not None:
        zfree[:, 0] = height_free[:w].float()
        zfree[:fixed] = 0.0
    return zfree


def _offset_weights(cfg: RefineConfig) -> torch.Tensor:
    """(1,J,1) regularisation weight of each `REFINE_JOINTS` offset: the trunk costs more to bend."""
    scale = torch.tensor([cfg.trunk_reg_scale if j in TRUNK_JOINTS else 1.0 for j in REFINE_JOINTS])
    return scale[None, :, None] * cfg.reg_weight


def _foot_term(joints0: torch.Tensor, contacts: torch.Tensor | None, foot_floor: np.ndarray, fixed: int,
               cfg: RefineConfig, lock_feet: bool, held_feet: tuple[np.ndarray, np.ndarray] | None) -> FootTerm | None:
    """The planter's held swinging feet (light), else each contact run locked in place (soft lock,
    with ``lock_feet`` and contacts), else None."""
    if held_feet is not None:
        positions = torch.as_tensor(held_feet[0], dtype=torch.float32)
        mask = torch.as_tensor(held_feet[1], dtype=torch.float32)
        mask[:fixed] = 0.0
        return FootTerm(positions, mask, cfg.held_foot_weight, starts_solver=False)
    if lock_feet and contacts is not None:
        ft, fm = contact_targets(
            joints0[:, FOOT_CONTACT_JOINTS].numpy(), contacts.detach().numpy(), fixed, np.asarray(foot_floor), cfg.contact_threshold
        )
        if fm.any():
            return FootTerm(torch.as_tensor(ft), torch.as_tensor(fm).float(), cfg.foot_weight, starts_solver=True)
    return None


def _needs_correction(problem: RefineProblem) -> bool:
    """Whether anything calls for a solve: targets, locked feet, feet sinking into the floor, or
    skin near the scene."""
    sinking = bool((problem.joints0[problem.fixed:, FOOT_CONTACT_JOINTS, 2] < problem.floor - SINK_TOLERANCE_M).any()) \
        if problem.lock_feet else False
    feet_lock = problem.feet is not None and problem.feet.starts_solver
    return problem.targets is not None or feet_lock or sinking or problem.watched is not None


def _objective(problem: RefineProblem, cfg: RefineConfig, offsets: _Offsets) -> torch.Tensor:
    """The scalar loss of the current offsets: regularisation, smoothness, the arms' acceleration,
    the pelvis height, targets, feet, the floor and the scene."""
    d = offsets.delta * problem.free
    rot = problem.rotations(d)
    p = problem.pelvis_at(offsets.dz)
    joints = problem.fk(rot, p, problem.n_joints)
    loss = (problem.reg * d ** 2).sum() + cfg.smooth_weight * ((d[1:] - d[:-1]) ** 2).sum()
    # among the frames it may change (a limb already inside at the first may need to jump out)
    change = (joints - problem.joints0)[problem.fixed:, SMOOTH_JOINTS]
    loss = loss + cfg.accel_weight * ((change[2:] - 2 * change[1:-1] + change[:-2]) ** 2).sum()
    z = problem.height_shift(offsets.dz)
    loss = loss + cfg.height_reg * (z ** 2).sum() + cfg.height_smooth * ((z[1:] - z[:-1]) ** 2).sum()
    if problem.targets is not None:
        loss = loss + problem.targets.cost(joints, cfg.target_weight)
    if problem.feet is not None:
        loss = loss + problem.feet.cost(joints)
    if problem.lock_feet:  # no sinking through the floor
        sink = torch.relu(problem.floor - SINK_TOLERANCE_M - joints[:, FOOT_CONTACT_JOINTS, 2])
        loss = loss + cfg.foot_weight * (sink ** 2 * problem.new_frames).sum()
    if problem.watched is not None:
        loss = loss + problem.scene.weight * _skin_penetration(problem.fk, rot, p, problem.scene, problem.watched)
    return loss


def _run_lbfgs(problem: RefineProblem, cfg: RefineConfig, offsets: _Offsets, max_iter: int) -> None:
    """Minimise `_objective` over ``offsets`` (in place) with a fresh L-BFGS: the problem is small
    and smooth; it converges in a few dozen evaluations."""

    def closure() -> torch.Tensor:
        offsets.delta.grad = None
        offsets.dz.grad = None
        loss = _objective(problem, cfg, offsets)
        loss.backward()
        return loss

    params = [offsets.delta, offsets.dz] if problem.moves_height else [offsets.delta]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)
    opt.step(closure)


def _corrected(problem: RefineProblem, offsets: _Offsets) -> tuple[torch.Tensor, torch.Tensor]:
    """The current offsets applied: (rotations (W,55,3,3), pelvis (W,3)), no gradient."""
    with torch.no_grad():
        return problem.rotations(offsets.delta * problem.free), problem.pelvis_at(offsets.dz)


def _needs_another_round(problem: RefineProblem, body, offsets: _Offsets) -> tuple[bool, bool]:
    """After a solve: (a target still over 1.5 cm away, skin inside the scene: newly near it
    (added to ``problem.watched``) or watched skin still over `POLISH_DEPTH_M` inside)."""
    targets_short = skin_inside = False
    rot, p = _corrected(problem, offsets)
    if problem.targets is not None:
        with torch.no_grad():
            joints = problem.fk(rot, p, problem.n_joints)
            targets_short = problem.targets.worst(joints) > 0.015
    if problem.scene is not None:  # bending one limb out may push another in: watch those points too
        watched = problem.watched
        # looked for in the whole scene: a hand bent out of a table may swing into a wall beyond the crop
        now = _watched_skin(body, rot, p, problem.fixed, problem.whole_scene, watch_m=0.0, lift_all=problem.lift_all,
                            known=None if watched is None else watched.keys)
        if now is not None:
            problem.watched = now if watched is None else watched.union(now)
            problem.scene = _cropped(problem.fk, rot, p, problem.whole_scene, problem.watched)
            skin_inside = True
        if problem.watched is not None and not skin_inside:  # the frame-coupled problem converges slowly: go on while it is inside
            with torch.no_grad():
                skin_inside = float(_watched_depths(problem.fk, rot, p, problem.scene, problem.watched).max()) > POLISH_DEPTH_M
    return targets_short, skin_inside


@dataclass
class _Watched:
    """Skin points near the scene at the start of `refine`: (frame, point) pairs and their margins."""

    keys: np.ndarray  # (N,) frame * points + point, to merge watch lists
    frames: torch.Tensor  # (N,) long
    carriers: torch.Tensor  # (N,K) long, body joint carrying each influence
    weights: torch.Tensor  # (N,K) skinning weights
    local: torch.Tensor  # (N,K,3) each influence in its carrier's frame (fixed: fingers are not refined)
    margin: torch.Tensor  # (N,) metres
    on_floor: torch.Tensor  # (N,) bool: measured against the floor plane (soles), not the SDF
    plane_only: torch.Tensor  # (N,) bool: on the floor and far from furniture: the plane alone, no SDF probes
    exit_point: torch.Tensor  # (N,3) world: where a point inside a wall leaves it on the body's side (`ways_out`)
    exit_normal: torch.Tensor  # (N,3) world unit normal of that face, towards the body; 0 where not guarded

    def union(self, other: "_Watched") -> "_Watched":
        new = ~np.isin(other.keys, self.keys)
        return _Watched(
            np.concatenate([self.keys, other.keys[new]]),
            *(torch.cat([a, b[torch.as_tensor(new)]]) for a, b in (
                (self.frames, other.frames), (self.carriers, other.carriers), (self.weights, other.weights),
                (self.local, other.local), (self.margin, other.margin), (self.on_floor, other.on_floor),
                (self.plane_only, other.plane_only), (self.exit_point, other.exit_point),
                (self.exit_normal, other.exit_normal))),
        )


def _watched_skin(body, rot0: torch.Tensor, pel: torch.Tensor, fixed: int, scene: SceneTerm,
                  watch_m: float | None = None, lift_all: bool = False,
                  known: np.ndarray | None = None) -> _Watched | None:
    """The skin points within ``watch_m`` (default: the term's) of their margin, in the frames `refine`
    may change, but for the ``known`` keys (`_Watched.keys`: points already watched)."""
    skin = skin_points(body)
    w = rot0.shape[0]
    # absolute local rotations (hand poses in the clip are relative to the hands mean)
    aa = torch.as_tensor(matrix_to_aa(rot0.numpy().astype(np.float64)).reshape(w, 165), dtype=torch.float32)
    glob, pos = skeleton_fk(body).transforms(body.full_pose_rotmats(aa), pel, 55)
    pts = world_points(skin, glob, pos)  # (W,P,3) canonical
    world = scene.frame.to_world_points_t(pts)
    dist = torch.as_tensor(scene.sdf.query_np(world.reshape(-1, 3).numpy()), dtype=torch.float32).reshape(w, -1)
    margin = torch.where(torch.as_tensor(skin.on_hands), scene.hand_margin_m, scene.margin_m).expand(w, -1)
    # Points low over the floor are measured against the floor plane itself: exact where the 2 cm
    # grid is not (a toe tip 1 cm under the floor reads as "on the surface" in the SDF).
    height = world[..., 2] - scene.floor_z
    # the grid's distance includes the floor itself: ask 12 cm higher, where only furniture is near
    clear = torch.zeros_like(height, dtype=torch.bool)
    footish = height < FLOOR_ONLY_M
    if bool(footish.any()):
        lifted = world[footish] + torch.tensor([0.0, 0.0, PLANE_ONLY_LIFT_M])
        clear[footish] = torch.as_tensor(scene.sdf.query_np(lifted.numpy()), dtype=torch.float32) > PLANE_ONLY_M
    # ankles and insteps a few centimetres up read "near the scene" only because of the floor;
    # the soles below them guard it (watching them all made three quarters of the points)
    low = (height < 0.03) | (footish & clear)
    watch = scene.watch_m if watch_m is None else watch_m
    # soles move little in the correction: only those already (nearly) touching are watched
    near = torch.where(low, height < min(watch, FLOOR_WATCH_M), dist < margin + watch)
    near[:fixed] = False
    if known is not None and len(known):
        near.view(-1)[torch.as_tensor(known, dtype=torch.long)] = False
    if not bool(near.any()):
        return None
    t_idx, p_idx = torch.nonzero(near, as_tuple=True)
    local = carried_local(skin, glob, pos)  # (W,P,K,3)
    on_floor = low[t_idx, p_idx]
    # soles already under the floor are lifted a little clear of it (the vertices between the
    # samples dip too); soles standing on it are left where they are
    floor_margin = torch.where(world[..., 2] < scene.floor_z, FLOOR_MARGIN_M, FLOOR_MARGIN_M if lift_all else 0.0)
    keys = (t_idx * dist.shape[1] + p_idx).numpy()
    plane_only = on_floor & clear[t_idx, p_idx]
    pelvis = scene.frame.to_world_points_t(pel)[t_idx]
    inside = (dist[t_idx, p_idx] < 0) & torch.as_tensor(np.isin(skin.main_carrier, ARM_JOINTS))[p_idx]
    exit_point, exit_normal = ways_out(scene.sdf, world[t_idx, p_idx].double().numpy(), pelvis.double().numpy(),
                                        inside.numpy())
    return _Watched(keys, t_idx, torch.as_tensor(skin.carrier, dtype=torch.long)[p_idx],
                    torch.as_tensor(skin.weight)[p_idx], local[t_idx, p_idx],
                    torch.where(on_floor, floor_margin[t_idx, p_idx], margin[t_idx, p_idx]), on_floor, plane_only,
                    torch.as_tensor(exit_point, dtype=torch.float32), torch.as_tensor(exit_normal, dtype=torch.float32))


CROP_PAD_M = 0.3  # the correction moves skin points a few centimetres; the crop reaches far beyond


def _cropped(fk, rot: torch.Tensor, pel: torch.Tensor, scene: SceneTerm, watched: _Watched) -> SceneTerm:
    """``scene`` with its grid cut to a dense box around the watched points (same values there).

    Why: every L-BFGS evaluation queries the grid seven times per watched point; gathering the
    values from the lazily computed tiles each time was most of the correction's cost. With the
    grid's voxel equal to the probe step, the seven queries become one (`GridSDF.probe_blended`)."""
    crop = getattr(scene.sdf, "crop", None)
    if crop is None:
        return scene
    with torch.no_grad():
        world = scene.frame.to_world_points_t(_watched_points(fk, rot, pel, watched)).double().numpy()
    box = crop(world.min(0) - CROP_PAD_M, world.max(0) + CROP_PAD_M)
    if abs(box.voxel - STENCIL_M) < 1e-6:  # the probes are one voxel apart: blend them into the grid once
        return replace(scene, sdf=box, probe_sdf=box.probe_blended())
    return replace(scene, sdf=box)


def _watched_points(fk, rot: torch.Tensor, pel: torch.Tensor, watched: _Watched) -> torch.Tensor:
    """(N,3) canonical positions of the watched skin points for rotations (W,55,3,3)."""
    glob, pos = fk.transforms(rot, pel, 22)  # (W,22,3,3), (W,22,3)
    n, k = watched.carriers.shape
    # each influence reads its carrier's 3x4 transform by index_select (its backward, a plain
    # index_add, is much cheaper than advanced indexing's) and applies the weighted local point
    affine = torch.cat([glob, pos[..., None]], -1).reshape(-1, 12)  # (W*22, 12)
    row = (watched.frames[:, None] * glob.shape[1] + watched.carriers).reshape(-1)  # (N*K,)
    homog = torch.cat([watched.local, torch.ones(n, k, 1)], -1) * watched.weights[..., None]  # (N,K,4)
    per = affine.index_select(0, row).view(n * k, 3, 4) @ homog.view(n * k, 4, 1)  # (N*K,3,1)
    return per.view(n, k, 3).sum(1)


def _skin_penetration(fk, rot: torch.Tensor, pel: torch.Tensor, scene: SceneTerm, watched: _Watched) -> torch.Tensor:
    """Squared depth (m^2, summed) of the watched skin points inside the scene plus their margin."""
    return (torch.relu(_watched_depths(fk, rot, pel, scene, watched)) ** 2).sum()


def _watched_depths(fk, rot: torch.Tensor, pel: torch.Tensor, scene: SceneTerm, watched: _Watched) -> torch.Tensor:
    """(N,) how far each watched skin point is inside the scene plus its margin (m; negative: clear)."""
    pts = _watched_points(fk, rot, pel, watched)
    dist = pts[:, 2] + scene.frame.z - scene.floor_z  # height over the floor plane: exact for soles far from furniture
    probe = ~watched.plane_only
    if bool(probe.any()):
        world = scene.frame.to_world_points_t(pts[probe])
        scene_d = probed_distance(scene.sdf, world) if scene.probe_sdf is None else scene.probe_sdf.query(world)
        # soles: the floor plane exactly; furniture (a table's foot) only beyond the grid's error there
        floor_d = torch.minimum(dist[probe], scene_d + FLOOR_GRID_SLACK_M)
        dist = dist.masked_scatter(probe, torch.where(watched.on_floor[probe], floor_d, scene_d))
    guarded = watched.exit_normal.abs().sum(1) > 0
    if bool(guarded.any()):  # a point in a wall leaves it on the body's side: the near face as a half-space
        world = scene.frame.to_world_points_t(pts[guarded])
        face = ((world - watched.exit_point[guarded]) * watched.exit_normal[guarded]).sum(1)
        dist = dist.masked_scatter(guarded, torch.minimum(dist[guarded], face))
    return watched.margin - dist


FLOOR_WATCH_M = 0.01  # soles higher than this above the floor are not watched until they go below it
PLANE_ONLY_M = 0.08  # soles this far from furniture (by the grid) are measured against the plane alone
PLANE_ONLY_LIFT_M = 0.12  # ... asked this high above the sole, out of the floor's own reach
FLOOR_ONLY_M = 0.10  # skin points this low and that far from furniture are measured against the floor plane
FLOOR_GRID_SLACK_M = 0.015  # a sole on the floor reads down to -1 cm in the 2 cm grid
FLOOR_MARGIN_M = 0.003  # sole points found under the floor are lifted this far, so the vertices between them clear it too


def probed_distance(sdf, points: torch.Tensor, h: float = STENCIL_M) -> torch.Tensor:
    """Signed distance (N,) of points (N,3), blended with six probes at +-h along the axes.

    Why: inside a table top or shelf board a few voxels thick, trilinear interpolation of the grid
    is flat (every inner voxel is the same distance from a face), so its gradient is zero and an
    optimiser cannot tell which way is out. Probes one voxel away reach the faces; blending in
    their mean gives a slightly blurred distance whose gradient points out of the slab, and it
    stays a true function of the points (value and gradient agree, as L-BFGS's line search needs).
    """
    offsets = torch.cat([torch.zeros(1, 3), torch.eye(3) * h, -torch.eye(3) * h]).to(points.dtype)  # (7,3)
    probes = points[:, None, :] + offsets  # (N,7,3)
    d = sdf.query(probes.reshape(-1, 3)).reshape(-1, 7)
    # half the point's own distance, half the probes' mean: the blur alone would read a point just
    # inside a board's front edge as outside (its outer probes are positive)
    return 0.5 * d[:, 0] + 0.5 * d.mean(-1)
