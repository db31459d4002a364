"""The short analytic correction after sampling: arm IK to the targets and foot-contact cleanup.

Guidance brings the wrist near the grasp target and the feet near rest; this pass makes it exact
where it must be. It optimises small local rotation offsets of the legs, spine and arms (the
pelvis path stays as sampled) so that: joint targets (wrist at the grasp/place frame, any key) are
met, feet in contact stay locked in place (no skating) at their standing height (no sinking), and
the offsets stay small and smooth in time, which blends the correction over the reach instead of
popping at one frame. Frames before ``fixed`` are already final (streamed) and are not changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hosig.motion.representation import FOOT_CONTACT_JOINTS, aa_to_matrix, skeleton_fk

MAX_LOCK_TRAVEL_M = 0.25  # a "contact" run whose foot slides further than this is not pinned
# Foot joints may not sink below their standing height by more than this: the sole and toe-tip
# vertices lie below the joints (a joint 1 cm down puts the toes ~1.4 cm into the floor), so the
# joints are kept slightly above it (kitchen pick: frames with floor contact > 1 mm 8 % -> 1 %).
SINK_TOLERANCE_M = -0.006

# legs, spine and arms (SMPL-X indices): what the correction may bend
REFINE_JOINTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 21]


@dataclass
class RefineConfig:
    iters: int = 30  # L-BFGS iterations with joint targets (arm IK); foot cleanup alone uses iters_feet
    iters_feet: int = 10
    target_weight: float = 200.0
    foot_weight: float = 100.0
    reg_weight: float = 0.05
    smooth_weight: float = 2.0
    contact_threshold: float = 0.5


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


def refine(
    body,
    rotmats: torch.Tensor,  # (W,55,3,3)
    pelvis: torch.Tensor,  # (W,3)
    contacts: torch.Tensor | None,  # (W,4)
    targets: list[tuple[int, int, np.ndarray, float]],  # (frame, joint, position (3,) NaN=free, weight)
    foot_floor: np.ndarray,  # (4,) standing z of the foot points (floor + foot height)
    fixed: int = 0,
    cfg: RefineConfig = RefineConfig(),
    lock_feet: bool = True,
    locked: torch.Tensor | None = None,  # (W,len(REFINE_JOINTS)) bool: hard-anchored rotations stay
) -> torch.Tensor:
    """Return corrected rotmats (W,55,3,3); the pelvis is not moved."""
    w = rotmats.shape[0]
    fk = skeleton_fk(body)
    nj = max([22] + [int(t[1]) + 1 for t in targets])
    rot0 = rotmats.detach()
    pel = pelvis.detach()
    with torch.no_grad():
        joints0 = fk(rot0, pel, nj)
    terms = []
    tg = [t for t in targets if fixed <= t[0] < w]
    if tg:
        tf = torch.tensor([t[0] for t in tg])
        tj = torch.tensor([t[1] for t in tg])
        tv = np.array([t[2] for t in tg], np.float32)
        tm = torch.as_tensor(~np.isnan(tv)).float()
        tt = torch.as_tensor(np.nan_to_num(tv))
        tw = torch.tensor([t[3] for t in tg], dtype=torch.float32)
        terms.append(("targets", tf, tj, tt, tm, tw))
    foot_t = foot_m = None
    if lock_feet and contacts is not None:
        ft, fm = contact_targets(
            joints0[:, FOOT_CONTACT_JOINTS].numpy(), contacts.detach().numpy(), fixed, np.asarray(foot_floor), cfg.contact_threshold
        )
        if fm.any():
            foot_t, foot_m = torch.as_tensor(ft), torch.as_tensor(fm).float()
    floor_t = torch.as_tensor(np.asarray(foot_floor), dtype=torch.float32)[None]
    free_t = torch.zeros(w, 1)
    free_t[fixed:] = 1.0
    sinking = bool((joints0[fixed:, FOOT_CONTACT_JOINTS, 2] < floor_t - SINK_TOLERANCE_M).any()) if lock_feet else False
    if not terms and foot_t is None and not sinking:
        return rot0
    free = torch.zeros(w, len(REFINE_JOINTS), 1)
    free[fixed:] = 1.0
    if locked is not None:
        free = free * (~locked[:w]).float()[..., None]
    delta = torch.zeros(w, len(REFINE_JOINTS), 3, requires_grad=True)
    idx = torch.tensor(REFINE_JOINTS)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        d = delta * free
        rot = rot0.clone()
        rot[:, idx] = rot0[:, idx] @ aa_to_matrix(d)
        joints = fk(rot, pel, nj)
        loss = cfg.reg_weight * (d ** 2).sum() + cfg.smooth_weight * ((d[1:] - d[:-1]) ** 2).sum()
        for _name, tf, tj, tt, tm, tw in terms:
            loss = loss + cfg.target_weight * ((((joints[tf, tj] - tt) * tm) ** 2).sum(-1) * tw).sum()
        if foot_t is not None:
            err = (joints[:, FOOT_CONTACT_JOINTS] - foot_t) ** 2
            loss = loss + cfg.foot_weight * (err.sum(-1) * foot_m).sum()
        if lock_feet:  # no sinking through the floor
            sink = torch.relu(floor_t - SINK_TOLERANCE_M - joints[:, FOOT_CONTACT_JOINTS, 2])
            loss = loss + cfg.foot_weight * (sink ** 2 * free_t).sum()
        loss.backward()
        return loss

    # L-BFGS: the problem is small and smooth; it converges in a few dozen evaluations
    opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=cfg.iters if terms else cfg.iters_feet,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    opt.step(closure)
    for _round in range(2):  # targets are the point of this pass: polish until they are met (<= 1.5 cm)
        if not terms:
            break
        with torch.no_grad():
            rot = rot0.clone()
            rot[:, idx] = rot0[:, idx] @ aa_to_matrix(delta * free)
            joints = fk(rot, pel, nj)
            worst = max(float((((joints[tf, tj] - tt) * tm).norm(dim=-1)).max()) for _n, tf, tj, tt, tm, tw in terms)
        if worst <= 0.015:
            break
        opt = torch.optim.LBFGS([delta], lr=1.0, max_iter=cfg.iters, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)
        opt.step(closure)
    with torch.no_grad():
        d = delta * free
        rot = rot0.clone()
        rot[:, idx] = rot0[:, idx] @ aa_to_matrix(d)
    return rot
