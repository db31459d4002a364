"""`generate_grasp`: candidates -> batched body optimisation -> finger closing -> best by energy.

The result is a whole-body SMPL-X pose in Blender's Z-up world, measured on the full body model
(contact distance, penetrations, foot heights), plus the object's pose relative to the grasping
wrist for carrying.
"""

from __future__ import annotations

import time
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import trimesh

from hosig.body.skeleton import JOINT_INDEX
from hosig.errors import InfeasibleError, UsageError
from hosig.grasp.candidates import Candidate, generate_candidates
from hosig.grasp.config import GraspConfig
from hosig.grasp.hand import HandGeometry, build_hand, mean_flexion
from hosig.grasp.kin import LiteBody, forward_kinematics, local_rotations
from hosig.grasp.localsdf import LocalSDF, grasp_region
from hosig.grasp.objsdf import ObjectSDF
from hosig.grasp.optimise import body_samples, close_fingers, optimise_body
from hosig.grasp.prior import load_prior


@dataclass
class GraspResult:
    """A whole-body grasp pose (Z-up world) and its measured quality."""

    hand: str
    stand: list[float]  # [x, y, heading]
    target: str
    global_orient: np.ndarray  # (3,)
    transl: np.ndarray  # (3,)
    body_pose: np.ndarray  # (63,)
    left_hand_pose: np.ndarray  # (45,) relative to the hands mean (smplx, flat_hand_mean=False)
    right_hand_pose: np.ndarray  # (45,)
    betas: np.ndarray  # (B,)
    full_pose: np.ndarray  # (165,) axis-angle: root, body, jaw, eyes, left hand, right hand (absolute)
    joints: np.ndarray  # (55,3)
    wrist: np.ndarray  # (3,)
    object_in_wrist: np.ndarray  # (4,4) object transform relative to the grasping wrist
    contact_distance_m: float
    object_penetration_m: float
    scene_penetration_m: float
    feet_height_m: list[float]  # [left, right]: lowest sole vertex above the floor
    finger_flexion_rad: float
    fingers_in_contact: int
    grasp_kind: str
    energy: float
    candidates: int
    grasp_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    vertices: np.ndarray | None = None  # (V,3) full posed mesh, for rendering (not saved)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "hand": self.hand,
            "stand": [float(v) for v in self.stand],
            "wrist": self.wrist.tolist(),
            "grasp_kind": self.grasp_kind,
            "contact_distance_m": self.contact_distance_m,
            "object_penetration_m": self.object_penetration_m,
            "scene_penetration_m": self.scene_penetration_m,
            "feet_height_m": list(self.feet_height_m),
            "finger_flexion_rad": self.finger_flexion_rad,
            "fingers_in_contact": self.fingers_in_contact,
            "energy": self.energy,
            "candidates": self.candidates,
            "grasp_ms": self.grasp_ms,
            "timings_ms": self.timings_ms,
            "object_in_wrist": self.object_in_wrist.tolist(),
        }

    def save_npz(self, path: str | Path) -> Path:
        """SMPL-X parameters and joints (Z-up world), loadable with allow_pickle=False."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            p,
            global_orient=self.global_orient, transl=self.transl, body_pose=self.body_pose,
            left_hand_pose=self.left_hand_pose, right_hand_pose=self.right_hand_pose,
            betas=self.betas, full_pose=self.full_pose, poses=self.full_pose, joints=self.joints,
            wrist=self.wrist, object_in_wrist=self.object_in_wrist, hand=np.array(self.hand),
            target=np.array(self.target), stand=np.asarray(self.stand, dtype=np.float64),
            frame=np.array("z-up"),
        )
        return p


@lru_cache(maxsize=8)
def _lite_and_hands(body: Any) -> tuple[LiteBody, dict[str, HandGeometry]]:
    lite = LiteBody.from_body(body)
    return lite, {s: build_hand(lite, s) for s in ("left", "right")}


def choose_hand(hand: str, stand: tuple[float, float, float], point: np.ndarray) -> str:
    """'auto' -> the side of the body that faces the object (right when straight ahead)."""
    if hand in ("left", "right"):
        return hand
    if hand != "auto":
        raise UsageError(f"--hand must be left, right or auto, got {hand!r}")
    fwd = np.array([np.cos(stand[2]), np.sin(stand[2])])
    to = np.asarray(point[:2]) - np.asarray(stand[:2])
    cross = fwd[0] * to[1] - fwd[1] * to[0]  # > 0: object on the left
    return "left" if cross > 0.05 * np.linalg.norm(to) else "right"


def _hand_order(hand: str, stand: tuple[float, float, float], centre: np.ndarray) -> list[str]:
    """The sides to try: ``hand`` alone, or for 'auto' the side facing the object, then the other."""
    first = choose_hand(hand, stand, centre)
    return [first] if hand != "auto" else [first, "left" if first == "right" else "right"]


def _candidates_by_side(scene: Any, target: str, stand: tuple[float, float, float], sides: list[str],
                        config: GraspConfig, scene_sdf: Any) -> list[tuple[str, list]]:
    """[(side, candidates)] for each side with a free approach, in order (a mug whose right side is
    against a wall is taken with the left hand); InfeasibleError naming every side when none has one."""
    found: list[tuple[str, list]] = []
    blocked: list[str] = []
    for side in sides:
        try:
            found.append((side, generate_candidates(scene, target, stand, side, config, sdf=scene_sdf)))
        except InfeasibleError as err:
            blocked.append(str(err))
    if found:
        return found
    if len(blocked) == 1:
        raise InfeasibleError(blocked[0])
    raise InfeasibleError(f"{blocked[0]}; and for the {sides[1]} hand: {blocked[1].split(': ', 1)[-1]}")


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run on one torch thread: the grasp's tensors are small, and on a shared 2-core machine
    two OpenMP threads spin-wait on each other (measured 5-10x slower wall time under load).

    Only on the main thread: torch's thread count is process-wide, and a grasp optimised beside a
    job's motion (walk-first) must leave the motion's numerics alone: a request gives the same
    clip whether its grasp was computed or cached."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate_grasp(
    scene: Any,
    target: str,
    stand: tuple[float, float, float] | list[float],
    body: Any,
    hand: str = "right",
    config: GraspConfig | None = None,
) -> GraspResult:
    """Whole-body grasp of ``target`` from the stand point ``(x, y, heading)`` (see module doc).

    Raises `UnknownObjectError` (unknown target), `InfeasibleError` (object too big for a hand,
    no free approach, no pose whose hand reaches it) or `UnreachableError` (out of reach from the
    stand point).
    """
    with _single_thread():
        return _generate(scene, target, stand, body, hand, config or GraspConfig())


@dataclass
class _GraspContext:
    """What every side's optimisation of one grasp shares."""

    scene: Any
    target: str
    body: Any
    stand: tuple[float, float, float]
    floor_z: float
    config: GraspConfig
    scene_sdf: Any  # LocalSDF around the stand point and the object
    obj_sdf: Any  # ObjectSDF of the target
    timings: dict[str, float]


def _generate(scene: Any, target: str, stand: Any, body: Any, hand: str, config: GraspConfig) -> GraspResult:
    """Each side in `_hand_order` with a free approach is optimised (`_grasp_with`) until one is
    acceptable (`_shortfall` 0); the least short wins. A hand that ends 5 cm short of a box beside
    the body is no grasp when the other hand closes on it; InfeasibleError when the winner's hand
    still ends farther than `GraspConfig.max_miss_distance` from the object."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    timings: dict[str, float] = {}
    stand_t = (float(stand[0]), float(stand[1]), float(stand[2]))
    obj = scene.object(target)
    floor_z = float(scene.floor_z)
    t = time.perf_counter()
    scene_sdf = LocalSDF(scene, (target,), *grasp_region(stand_t, obj.bounds, floor_z))
    timings["scene_sdf"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    by_side = _candidates_by_side(scene, target, stand_t, _hand_order(hand, stand_t, obj.center), config, scene_sdf)
    ctx = _GraspContext(scene, target, body, stand_t, floor_z, config, scene_sdf, ObjectSDF(obj.mesh, seed=config.seed),
                        timings)
    timings["candidates"] = (time.perf_counter() - t) * 1e3
    sizes: list[int] = []  # candidates of each side tried

    def each_side() -> Iterator[tuple[str, GraspResult]]:
        for side, cands in by_side:
            sizes.append(len(cands))
            yield side, _grasp_with(ctx, side, cands)

    _, result = _least_short(each_side(), config)
    n_cands = sum(sizes)
    if result.contact_distance_m > config.max_miss_distance:
        tried = " and ".join(side for side, _ in by_side)
        raise InfeasibleError(
            f"object {target!r}: no grasp reaches it from the stand point ({stand_t[0]:.2f}, {stand_t[1]:.2f}): "
            f"the closest pose of the {tried} hand{'s' if len(by_side) > 1 else ''} ({n_cands} candidates) ends "
            f"{result.contact_distance_m:.3f} m from it (max {config.max_miss_distance:.2f})")
    result.candidates = n_cands
    result.grasp_ms = (time.perf_counter() - t0) * 1e3
    timings["cpu"] = (time.process_time() - c0) * 1e3  # process CPU time: robust to a busy machine
    result.timings_ms = {k: round(v, 1) for k, v in timings.items()}
    return result


def _grasp_with(ctx: _GraspContext, side: str, cands: list[Candidate]) -> GraspResult:
    """One hand's grasp: body optimisation over ``cands``, fingers closed on the best, ranked, and
    the winners measured on the meshes (``ctx.timings`` accumulates the stages)."""
    config, timings = ctx.config, ctx.timings
    lite, hands = _lite_and_hands(ctx.body)
    hg = hands[side]
    samples = body_samples(lite, hg, config)
    t = time.perf_counter()
    p1 = optimise_body(lite, hg, samples, load_prior(), cands, ctx.obj_sdf, ctx.scene_sdf, ctx.stand, ctx.floor_z,
                       ctx.scene.object(ctx.target).center, config)
    timings["body"] = timings.get("body", 0.0) + (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    order = np.argsort(p1.energy.numpy())[: config.finger_candidates]
    p1 = p1.subset(order)
    cands = [cands[i] for i in order]
    p2 = close_fingers(lite, hg, p1, ctx.obj_sdf, ctx.scene_sdf, config)
    timings["fingers"] = timings.get("fingers", 0.0) + (time.perf_counter() - t) * 1e3
    # Rank: phase-1 energy + closing quality (fingers that found the surface, no penetration).
    flex = p2.curl[:, :4].mean(1)  # mean flexion of the four fingers (rad from flat)
    energy = (
        p1.energy.numpy() + config.w_untouched * (5 - p2.touching.sum(1)) + 2000.0 * p2.finger_pen**2
        + config.w_flat * np.maximum(0.0, config.min_flexion - flex)  # a flat hand is not a grasp
        + 1000.0 * np.maximum(0.0, np.sqrt(p1.terms["palm_contact"].numpy()) - 0.006)  # palm off the surface
    )
    t = time.perf_counter()
    # The voxel SDF the optimiser sees is 2 cm coarse: measure the winner on the meshes and let
    # the next-ranked candidates stand in when it is inside the furniture or short of the object.
    finished = ((int(b), _finalise(ctx.scene, ctx.target, ctx.body, lite, hg, cands[b], p1, p2, int(b), ctx.obj_sdf,
                                   ctx.scene_sdf, ctx.stand, ctx.floor_z))
                for b in np.argsort(energy)[: max(1, config.finalise_tries)])
    best, result = _least_short(finished, config)
    timings["measure"] = timings.get("measure", 0.0) + (time.perf_counter() - t) * 1e3
    result.energy = float(energy[best])
    return result


def _least_short(tries: Iterable[tuple[Any, GraspResult]], config: GraspConfig) -> tuple[Any, GraspResult]:
    """The (key, result) of ``tries`` with the least `_shortfall` (the first of near-equals, within
    1 mm); stops drawing tries at the first acceptable one (shortfall 0)."""
    best: tuple[Any, GraspResult] | None = None
    best_short = np.inf
    for key, result in tries:
        short = _shortfall(result, config)
        if best is None or short < best_short - 1e-3:
            best, best_short = (key, result), short
        if short == 0.0:
            break
    assert best is not None, "no grasp was tried"
    return best


def _shortfall(result: GraspResult, config: GraspConfig) -> float:
    """How far (m) a finished grasp is from acceptable: depth in the furniture beyond
    `max_scene_penetration` plus the hand's distance from the object beyond `max_contact_distance`."""
    return (max(0.0, result.scene_penetration_m - config.max_scene_penetration)
            + max(0.0, result.contact_distance_m - config.max_contact_distance))


def _finalise(scene, target, body, lite, hg, cand: Candidate, p1, p2, b, obj_sdf, scene_sdf, stand, floor_z) -> GraspResult:
    go = p1.global_orient[b : b + 1]
    tr = p1.transl[b : b + 1]
    bp = p1.body_pose[b : b + 1]
    hp = p2.hand_pose[b : b + 1]
    zeros = torch.zeros(1, 45)
    lh, rh = (hp, zeros) if hg.side == "left" else (zeros, hp)
    with torch.no_grad():
        out = body.forward(global_orient=go, transl=tr, body_pose=bp, left_hand_pose=lh, right_hand_pose=rh)
        verts = out.vertices[0].double().numpy()
        joints = out.joints[0].double().numpy()[:55]
        rot = local_rotations(lite, go, bp, lh, rh)
        g_rot, g_pos = forward_kinematics(lite, rot, tr)
    wrist_t = np.eye(4)
    wrist_t[:3, :3] = g_rot[0, hg.wrist].double().numpy()
    wrist_t[:3, 3] = joints[hg.wrist]
    obj_in_wrist = np.linalg.inv(wrist_t)  # object mesh is in world coordinates: its transform is I

    contact_ids = np.concatenate([hg.palm_verts] + list(hg.tip_verts))
    d_contact = obj_sdf.exact(verts[contact_ids])
    contact = float(np.abs(d_contact).min())
    # Penetration into the object: hand, forearm and any vertex near the object's box.
    lo, hi = scene.object(target).bounds
    near = np.nonzero(np.all((verts > lo - 0.02) & (verts < hi + 0.02), axis=1))[0]
    obj_pen = float(max(0.0, -obj_sdf.exact(verts[near]).min())) if len(near) else 0.0
    dom = lite.lbs_weights.numpy().argmax(1)
    foot = np.isin(dom, [JOINT_INDEX[f"{s}_{p}"] for s in ("left", "right") for p in ("ankle", "foot")])
    scene_pen = scene_penetration(scene, target, verts, foot, floor_z, scene_sdf)
    dom = lite.lbs_weights.numpy().argmax(1)
    feet = []
    for s in ("left", "right"):
        ids = np.nonzero(np.isin(dom, [JOINT_INDEX[f"{s}_ankle"], JOINT_INDEX[f"{s}_foot"]]))[0]
        feet.append(float(verts[ids, 2].min() - floor_z))
    mean_h = (lite.left_hand_mean if hg.side == "left" else lite.right_hand_mean).numpy()
    full = np.zeros(165)
    full[:3] = go[0].numpy()
    full[3:66] = bp[0].numpy()
    full[75:120] = lh[0].numpy() + lite.left_hand_mean.numpy()
    full[120:165] = rh[0].numpy() + lite.right_hand_mean.numpy()
    return GraspResult(
        hand=hg.side, stand=list(stand), target=target,
        global_orient=go[0].double().numpy(), transl=tr[0].double().numpy(), body_pose=bp[0].double().numpy(),
        left_hand_pose=lh[0].double().numpy(), right_hand_pose=rh[0].double().numpy(),
        betas=lite.betas.double().numpy()[:10], full_pose=full, joints=joints, wrist=joints[hg.wrist].copy(),
        object_in_wrist=obj_in_wrist, contact_distance_m=contact, object_penetration_m=obj_pen,
        scene_penetration_m=scene_pen, feet_height_m=feet,
        finger_flexion_rad=mean_flexion(hg, hp[0].numpy(), mean_h),
        fingers_in_contact=int(p2.touching[b].sum()), grasp_kind=cand.kind, energy=0.0, candidates=0,
        grasp_ms=0.0, vertices=verts,
    )


def scene_penetration(scene: Any, target: str, verts: np.ndarray, foot: np.ndarray, floor_z: float, local_sdf: Any) -> float:
    """Deepest body vertex inside scene geometry (m), exact on the object meshes.

    The voxel SDF (2 cm) only pre-selects vertices near geometry; their depth is then measured on
    each nearby object's own triangles (watertight objects; open meshes cannot be "inside").
    Foot vertices at floor level are skipped: soles stand on the floor by design (see feet_height_m).
    """
    check = ~(foot & (verts[:, 2] < floor_z + 0.025))
    d = local_sdf.query_np(verts)
    near = np.nonzero(check & (d < 0.02))[0]
    if len(near) == 0:
        return 0.0
    pts = verts[near]
    deepest = 0.0
    for name, obj in scene.objects.items():
        if name == target or not obj.watertight:
            continue
        lo, hi = obj.bounds
        inside_box = np.all((pts > lo - 1e-3) & (pts < hi + 1e-3), axis=1)
        if not inside_box.any():
            continue
        depth = trimesh.proximity.signed_distance(obj.mesh, pts[inside_box])  # positive inside
        deepest = max(deepest, float(depth.max()))
    return deepest
