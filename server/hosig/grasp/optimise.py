"""The two optimisation phases, batched over candidates.

Phase 1 (body, Adam on global orient, translation and body pose; the grasping hand held open):
palm centre to the candidate's contact point, palm normal along the approach, fingers along the
candidate's finger direction, no object/scene penetration, flat feet on the floor near the stand
point, centre of mass over the feet, gaze on the object, fitted joint limits and the CMU pose prior.

Phase 2 (fingers, wrist fixed): every finger closes along its curl path and stops at the first
level where its vertices touch the object (or the scene); the thumb first swings into opposition,
then curls. All levels of all candidates are evaluated in one batched forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hosig.body.skeleton import JOINT_INDEX
from hosig.frames import heading_to_orient
from hosig.grasp import losses as L
from hosig.grasp.candidates import Candidate
from hosig.grasp.config import GraspConfig
from hosig.grasp.hand import FLEX_SHARE, MAX_CURL, THUMB_MAX_CURL, HandGeometry, angles_to_hand_pose, curl_to_hand_pose
from hosig.grasp.kin import LiteBody, forward_kinematics, local_rotations, skin
from hosig.grasp.objsdf import ObjectSDF
from hosig.grasp.prior import PosePrior

FORWARD_MODEL = torch.tensor([0.0, 0.0, 1.0])  # the body faces +Z in the model frame
HEAD = JOINT_INDEX["head"]


@dataclass
class BodySamples:
    """Vertex index subsets of one body used by the losses (indices into the full mesh)."""

    hand: np.ndarray  # grasping hand + forearm sample (object penetration)
    body: np.ndarray  # whole-body sample without feet (scene penetration, centre of mass)
    sole_left: np.ndarray
    sole_right: np.ndarray
    all_no_feet: np.ndarray  # every non-foot vertex (metrics)
    feet_left: np.ndarray
    feet_right: np.ndarray


def body_samples(lite: LiteBody, hand: HandGeometry, config: GraspConfig) -> BodySamples:
    rng = np.random.default_rng(config.seed)
    v = lite.rest_vertices.numpy()
    dom = lite.lbs_weights.numpy().argmax(1)
    foot_l = [JOINT_INDEX["left_ankle"], JOINT_INDEX["left_foot"]]
    foot_r = [JOINT_INDEX["right_ankle"], JOINT_INDEX["right_foot"]]
    feet_l = np.nonzero(np.isin(dom, foot_l))[0]
    feet_r = np.nonzero(np.isin(dom, foot_r))[0]
    ymin = v[:, 1].min()
    sole_l = feet_l[v[feet_l, 1] < ymin + 0.03]
    sole_r = feet_r[v[feet_r, 1] < ymin + 0.03]
    side = hand.side
    arm = [JOINT_INDEX[f"{side}_elbow"], JOINT_INDEX[f"{side}_wrist"]]
    forearm = np.nonzero(np.isin(dom, arm))[0]
    hand_all = np.union1d(hand.hand_verts, forearm)
    thumb = hand.finger_verts[4]
    keep = np.union1d(hand.palm_verts, np.concatenate(hand.tip_verts))
    keep = np.union1d(keep, rng.choice(thumb, size=min(40, len(thumb)), replace=False))
    rest = np.setdiff1d(hand_all, keep)
    n_extra = max(0, config.n_hand_samples - len(keep))
    hand_s = np.union1d(keep, rng.choice(rest, size=min(n_extra, len(rest)), replace=False))
    no_feet = np.setdiff1d(np.arange(len(v)), np.union1d(feet_l, feet_r))
    body_s = np.union1d(rng.choice(no_feet, size=min(config.n_body_samples, len(no_feet)), replace=False), hand_s)
    return BodySamples(hand_s, body_s, sole_l, sole_r, no_feet, feet_l, feet_r)


class _Adam:
    """Plain Adam with a cosine learning-rate decay to 10 %.

    Hand-written because ``torch.optim``'s first step imports torch._dynamo (~3 s on this CPU),
    which would dominate a 2 s grasp budget in a fresh process.
    """

    def __init__(self, params: list[tuple[torch.Tensor, float]], total: int, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = params
        self.total = max(total, 1)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p, _ in params]
        self.v = [torch.zeros_like(p) for p, _ in params]
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        scale = 0.1 + 0.9 * 0.5 * (1.0 + np.cos(np.pi * min(self.t, self.total) / self.total))
        for (p, lr), m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            mh = m / (1 - self.b1**self.t)
            vh = v / (1 - self.b2**self.t)
            p.sub_(lr * scale * mh / (vh.sqrt() + self.eps))
            p.grad = None


@dataclass
class Phase1Result:
    global_orient: torch.Tensor  # (B,3)
    transl: torch.Tensor  # (B,3)
    body_pose: torch.Tensor  # (B,63)
    hand_pose: torch.Tensor  # (B,45) grasping hand (open)
    energy: torch.Tensor  # (B,) final weighted loss
    terms: dict[str, torch.Tensor]  # (B,) each, unweighted

    def subset(self, idx: np.ndarray) -> "Phase1Result":
        i = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Phase1Result(
            self.global_orient[i], self.transl[i], self.body_pose[i], self.hand_pose[i], self.energy[i],
            {k: v[i] for k, v in self.terms.items()},
        )


def initial_state(lite: LiteBody, prior: PosePrior, stand: tuple[float, float, float], floor_z: float, bsz: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upright body at the stand point facing its heading, arms relaxed, legs straight."""
    from scipy.spatial.transform import Rotation

    orient = Rotation.from_matrix(heading_to_orient(stand[2])).as_rotvec()
    pose = prior.mean.clone().reshape(21, 3)
    for name in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "spine1", "head"):
        pose[JOINT_INDEX[name] - 1] = 0.0
    # Arms hanging by the sides (T-pose arms lowered about the model's Z axis).
    pose[JOINT_INDEX["left_shoulder"] - 1] = torch.tensor([0.0, 0.0, -1.2])
    pose[JOINT_INDEX["right_shoulder"] - 1] = torch.tensor([0.0, 0.0, 1.2])
    pose[JOINT_INDEX["left_elbow"] - 1] = torch.tensor([0.0, -0.3, 0.0])
    pose[JOINT_INDEX["right_elbow"] - 1] = torch.tensor([0.0, 0.3, 0.0])
    pelvis_h = float(lite.rest_joints[0, 1] - lite.rest_vertices[:, 1].min())
    pelvis = torch.tensor([stand[0], stand[1], floor_z + pelvis_h], dtype=torch.float32)
    transl = pelvis - lite.rest_joints[0]
    return (
        torch.tensor(orient, dtype=torch.float32).expand(bsz, 3).clone(),
        transl.expand(bsz, 3).clone(),
        pose.reshape(1, 63).expand(bsz, 63).clone(),
    )


def crouch_state(lite: LiteBody, orient: torch.Tensor, transl: torch.Tensor, pose: torch.Tensor, rows: list[int],
                 floor_z: float, config: GraspConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Squat the bodies of ``rows``: (B,3) transl and (B,63) pose -> new tensors.

    Hips flex by ``crouch_hip``, knees by ``crouch_knee``, ankles keep the soles flat and the
    trunk leans by ``crouch_lean``; the body is then moved so its soles rest on the floor and its
    ankles stand where they stood upright (the stand point keeps its meaning).
    """
    if not rows:
        return transl, pose
    idx = torch.as_tensor(rows, dtype=torch.long)
    pose, transl = pose.clone(), transl.clone()
    bent = pose[idx].reshape(len(rows), 21, 3)
    shin = config.crouch_hip - config.crouch_knee  # shin's forward tilt from vertical (negative: knee ahead of ankle)
    for side in ("left", "right"):
        bent[:, JOINT_INDEX[f"{side}_hip"] - 1] = torch.tensor([-config.crouch_hip, 0.0, 0.0])  # -x flexes a hip
        bent[:, JOINT_INDEX[f"{side}_knee"] - 1] = torch.tensor([config.crouch_knee, 0.0, 0.0])  # +x flexes a knee
        bent[:, JOINT_INDEX[f"{side}_ankle"] - 1] = torch.tensor([shin, 0.0, 0.0])  # foot flat on the floor
    bent[:, JOINT_INDEX["spine1"] - 1] = torch.tensor([config.crouch_lean, 0.0, 0.0])  # +x leans forward
    ankles = [JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"]]
    feet = [JOINT_INDEX[f"{s}_{p}"] for s in ("left", "right") for p in ("ankle", "foot")]
    foot_verts = torch.as_tensor(np.flatnonzero(np.isin(lite.lbs_weights.numpy().argmax(1), feet)))
    zeros = torch.zeros(len(rows), 45)
    with torch.no_grad():
        _, up_pos = forward_kinematics(lite, local_rotations(lite, orient[idx], pose[idx], zeros, zeros), transl[idx])
        new_pose = bent.reshape(len(rows), 63)
        g_rot, g_pos = forward_kinematics(lite, local_rotations(lite, orient[idx], new_pose, zeros, zeros), transl[idx])
        verts = skin(lite, g_rot, g_pos, foot_verts)
    shift = torch.zeros(len(rows), 3)
    shift[:, :2] = (up_pos[:, ankles, :2] - g_pos[:, ankles, :2]).mean(1)
    shift[:, 2] = floor_z - verts[..., 2].min(1).values
    pose[idx] = new_pose
    transl[idx] = transl[idx] + shift
    return transl, pose


def low_candidates(cands: list[Candidate], floor_z: float, config: GraspConfig) -> list[int]:
    """Indices of candidates whose grasp point lies below ``config.crouch_below`` over the floor."""
    return [i for i, c in enumerate(cands) if float(c.point[2]) - floor_z < config.crouch_below]


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3,3) smallest rotation taking unit vector u to unit vector v."""
    from scipy.spatial.transform import Rotation

    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(u @ v)
    if s < 1e-8:
        return np.eye(3) if c > 0 else Rotation.from_rotvec(np.pi * _perp(u)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def _perp(u: np.ndarray) -> np.ndarray:
    p = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    return p / np.linalg.norm(p)


def reach_init(lite: LiteBody, hand: HandGeometry, orient: torch.Tensor, transl: torch.Tensor, pose: torch.Tensor, cands: list[Candidate]) -> torch.Tensor:
    """Point the grasping arm at each candidate and turn the wrist into the candidate's hand frame.

    A closed-form start (shoulder aims the slightly bent arm at the wrist target, wrist rotation
    matches palm/finger directions) so Adam only has to refine: far fewer iterations than from
    arms-down, which is what keeps a grasp under the time budget.
    """
    from scipy.spatial.transform import Rotation

    side = hand.side
    sh, el, wr = (JOINT_INDEX[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist"))
    zeros = torch.zeros(len(cands), 45)
    with torch.no_grad():
        g_rot, g_pos = forward_kinematics(lite, local_rotations(lite, orient, pose, zeros, zeros), transl)
    rest = lite.rest_joints.double().numpy()
    arm_rest = rest[wr] - rest[sh]
    arm_len = float(np.linalg.norm(arm_rest))
    arm_dir = arm_rest / arm_len
    m_rest = np.stack([hand.fwd, hand.thumb, hand.palm], 1)  # columns, model frame
    bend = Rotation.from_rotvec(np.cross(arm_dir, [0.0, -1.0, 0.0]) * 0.0).as_matrix()
    out = pose.clone().reshape(len(cands), 21, 3)
    for b, c in enumerate(cands):
        m_tgt = np.stack([c.fwd, c.thumb, c.approach], 1)
        wrist_world = m_tgt @ m_rest.T  # wrist global rotation giving the candidate's hand frame
        # Wrist target: back from the palm contact along the hand (palm centre ~ 8 cm from the wrist).
        w_tgt = c.point - c.approach * 0.03 - c.fwd * 0.08
        g_par = g_rot[b, JOINT_INDEX[f"{side}_collar"]].double().numpy()
        d = w_tgt - g_pos[b, sh].double().numpy()
        dist = float(np.linalg.norm(d))
        d = d / max(dist, 1e-6)
        shoulder_world = _align(g_par @ arm_dir, d) @ g_par
        local_sh = g_par.T @ shoulder_world @ bend
        local_wr = shoulder_world.T @ wrist_world  # elbow straight
        out[b, sh - 1] = torch.tensor(Rotation.from_matrix(local_sh).as_rotvec(), dtype=torch.float32)
        out[b, el - 1] = 0.0
        out[b, wr - 1] = torch.tensor(Rotation.from_matrix(local_wr).as_rotvec(), dtype=torch.float32)
    return out.reshape(len(cands), 63)


def optimise_body(
    lite: LiteBody,
    hand: HandGeometry,
    samples: BodySamples,
    prior: PosePrior,
    cands: list[Candidate],
    obj_sdf: ObjectSDF,
    scene_sdf: object,
    stand: tuple[float, float, float],
    floor_z: float,
    look_at: np.ndarray,
    config: GraspConfig,
) -> Phase1Result:
    """Phase 1: whole-body reach for every candidate at once."""
    bsz = len(cands)
    orient, transl, pose = initial_state(lite, prior, stand, floor_z, bsz)
    low_rows = low_candidates(cands, floor_z, config)
    transl, pose = crouch_state(lite, orient, transl, pose, low_rows, floor_z, config)
    w_feet = torch.full((bsz,), config.w_feet)  # (B,) a squatting body's soles are held harder to the floor
    w_feet[low_rows] = config.w_feet_crouch
    pose0 = pose.clone()
    pose = reach_init(lite, hand, orient, transl, pose, cands)
    other = "left" if hand.side == "right" else "right"
    free_arm = [JOINT_INDEX[f"{other}_{n}"] - 1 for n in ("collar", "shoulder", "elbow", "wrist")]
    free_mask = torch.zeros(21, 3)
    free_mask[free_arm] = 1.0
    free_mask = free_mask.reshape(63)
    orient.requires_grad_(True)
    transl.requires_grad_(True)
    pose.requires_grad_(True)
    mean = lite.left_hand_mean if hand.side == "left" else lite.right_hand_mean
    open_curl = np.full((1, 5), config.open_curl)
    hand_open = torch.tensor(curl_to_hand_pose(hand, open_curl, 0.0, mean.numpy()), dtype=torch.float32).expand(bsz, 45)
    zeros45 = torch.zeros(bsz, 45)
    lhand, rhand = (hand_open, zeros45) if hand.side == "left" else (zeros45, hand_open)

    tgt = torch.tensor(np.stack([c.point + c.normal * config.palm_gap for c in cands]), dtype=torch.float32)
    app = torch.tensor(np.stack([c.approach for c in cands]), dtype=torch.float32)
    fwd = torch.tensor(np.stack([c.fwd for c in cands]), dtype=torch.float32)
    palm_rest = torch.tensor(hand.palm, dtype=torch.float32)
    fwd_rest = torch.tensor(hand.fwd, dtype=torch.float32)
    stand_xy = torch.tensor(stand[:2], dtype=torch.float32)
    look = torch.tensor(look_at, dtype=torch.float32)

    rest_y = lite.rest_vertices[:, 1]
    lift_l = rest_y[samples.sole_left] - rest_y.min()  # rest height of each sole vertex
    lift_r = rest_y[samples.sole_right] - rest_y.min()
    idx_all = np.concatenate([samples.hand, samples.body, samples.sole_left, samples.sole_right, hand.palm_verts])
    idx_t = torch.as_tensor(idx_all, dtype=torch.long)
    n_h, n_b, n_l, n_r = len(samples.hand), len(samples.body), len(samples.sole_left), len(samples.sole_right)
    s1, s2, s3, s4 = n_h, n_h + n_b, n_h + n_b + n_l, n_h + n_b + n_l + n_r
    wrist = hand.wrist

    opt = _Adam([(pose, config.lr), (orient, config.lr * 0.5), (transl, config.lr * 0.25)], config.iters)
    sh_free, el_free, wr_free = (JOINT_INDEX[f"{other}_{n}"] for n in ("shoulder", "elbow", "wrist"))
    down = torch.tensor([0.0, 0.0, -1.0])
    # Vertices currently close to the scene get checked every step (refreshed periodically), so
    # thighs against a table edge are not missed between the sparse random samples.
    all_body = torch.as_tensor(samples.all_no_feet, dtype=torch.long)
    all_verts = torch.arange(lite.rest_vertices.shape[0])
    near_idx = torch.zeros(0, dtype=torch.long)
    near_obj_idx = torch.zeros(0, dtype=torch.long)
    legs = [JOINT_INDEX[f"{s}_{p}"] for s in ("left", "right") for p in ("hip", "knee")]
    on_legs = torch.as_tensor(np.isin(lite.lbs_weights.numpy().argmax(1), legs))
    margin_all = torch.where(on_legs, config.leg_margin, config.scene_margin)  # (V,) per-vertex scene margin
    body_margin = margin_all[torch.as_tensor(samples.body, dtype=torch.long)]

    def closest(d: torch.Tensor, limit: float) -> torch.Tensor:
        close = torch.nonzero(d < limit).flatten()
        if len(close) > config.max_near:
            close = close[torch.argsort(d[close])[: config.max_near]]
        return close

    def refresh_near() -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices near the scene (feet excluded: they stand on it) and near the object."""
        with torch.no_grad():
            rot = local_rotations(lite, orient, pose, lhand, rhand)
            g_rot, g_pos = forward_kinematics(lite, rot, transl)
            v = skin(lite, g_rot, g_pos, all_verts)
            d_scene = scene_sdf.query(v[:, all_body]).min(0).values  # type: ignore[attr-defined]
            d_obj = obj_sdf.query(v).min(0).values
        return all_body[closest(d_scene, config.near_scene)], closest(d_obj, 0.02)

    def evaluate() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rot = local_rotations(lite, orient, pose, lhand, rhand)
        g_rot, g_pos = forward_kinematics(lite, rot, transl)
        verts = skin(lite, g_rot, g_pos, idx_t)
        near_v = skin(lite, g_rot, g_pos, near_idx) if len(near_idx) else verts[:, :0]
        near_o = skin(lite, g_rot, g_pos, near_obj_idx) if len(near_obj_idx) else verts[:, :0]
        upper = g_pos[:, el_free] - g_pos[:, sh_free]
        fore = g_pos[:, wr_free] - g_pos[:, el_free]
        hand_v, body_v = verts[:, :s1], verts[:, s1:s2]
        sole_l, sole_r, palm_v = verts[:, s2:s3], verts[:, s3:s4], verts[:, s4:]
        palm_c = palm_v.mean(1)
        palm_n = g_rot[:, wrist] @ palm_rest
        fwd_n = g_rot[:, wrist] @ fwd_rest
        feet_l_xy, feet_r_xy = sole_l[..., :2].mean(1), sole_r[..., :2].mean(1)
        # One lookup per distance field per step (each call has a fixed overhead).
        n_all = verts.shape[1]
        d_obj = obj_sdf.query(torch.cat([verts, near_o], 1))
        d_obj_body, d_obj_palm, d_obj_near = d_obj[:, :s4], d_obj[:, s4:n_all], d_obj[:, n_all:]
        d_scn = scene_sdf.query(torch.cat([body_v, verts[:, s2:s4], near_v], 1))  # type: ignore[attr-defined]
        n_b2 = body_v.shape[1]
        n_f = s4 - s2
        feet_z = verts[:, s2:s4, 2]
        lifted = (feet_z > floor_z + 0.025).to(d_scn.dtype)
        d_feet = d_scn[:, n_b2 : n_b2 + n_f] * lifted + (1.0 - lifted)
        terms = {
            "palm": torch.relu(torch.sqrt(L.palm_position(palm_c, tgt) + 1e-8) - config.palm_slack) ** 2,
            "palm_abs": torch.relu(torch.sqrt(L.palm_position(palm_c, tgt) + 1e-6) - config.palm_slack),
            # Closest palm vertex at the contact gap (the palm centroid floats in front of a cupped palm).
            "palm_contact": (d_obj_palm.min(-1).values - config.palm_gap) ** 2,
            "palm_normal": 1.0 + (palm_n * obj_sdf.normals_at(palm_c)).sum(-1),
            "palm_dir": L.direction_mismatch(palm_n, app),
            "fwd_dir": L.direction_mismatch(fwd_n, fwd),
            "obj_pen": L.penetration(d_obj_body, 0.002),
            "scene_pen": L.penetration(d_scn[:, :n_b2], body_margin) + L.penetration(d_feet, config.scene_margin),
            "feet": L.feet_on_floor(sole_l[..., 2] - lift_l, floor_z) + L.feet_on_floor(sole_r[..., 2] - lift_r, floor_z),
            "stand": L.stand_offset(0.5 * (feet_l_xy + feet_r_xy), stand_xy, config.stand_slack),
            "heading": L.heading_error(g_rot[:, 0] @ FORWARD_MODEL, stand[2]),
            "com": L.com_support(body_v[..., :2].mean(1), feet_l_xy, feet_r_xy, config.com_radius),
            "gaze": L.gaze(g_pos[:, HEAD], g_rot[:, HEAD] @ FORWARD_MODEL, look),
            "limits": prior.limit_violation(pose),
            "prior": prior.energy(pose),
            "free_arm": (((pose - pose0) * free_mask) ** 2).sum(-1) * 0.1
            + L.direction_mismatch(upper / upper.norm(dim=-1, keepdim=True), down)
            + 0.5 * L.direction_mismatch(fore / fore.norm(dim=-1, keepdim=True), down),
            "scene_near": L.penetration(d_scn[:, n_b2 + n_f :], margin_all[near_idx]),
            "obj_near": L.penetration(d_obj_near, 0.002),
            "stance": torch.relu(torch.linalg.vector_norm(feet_l_xy - feet_r_xy, dim=-1) - config.max_stance) ** 2
            + torch.relu(config.min_stance - torch.linalg.vector_norm(feet_l_xy - feet_r_xy, dim=-1)) ** 2,
            "floor_pen": (torch.relu(floor_z - sole_l[..., 2]) ** 2).sum(-1) + (torch.relu(floor_z - sole_r[..., 2]) ** 2).sum(-1),
        }
        w = config
        total = (
            w.w_palm * terms["palm"] + w.w_palm_abs * terms["palm_abs"]
            + w.w_palm_contact * terms["palm_contact"] + w.w_palm_normal * terms["palm_normal"] + w.w_palm_dir * terms["palm_dir"] + w.w_fwd_dir * terms["fwd_dir"]
            + w.w_obj_pen * (terms["obj_pen"] + terms["obj_near"]) + w.w_scene_pen * (terms["scene_pen"] + terms["scene_near"]) + w_feet * terms["feet"]
            + w.w_stand * terms["stand"] + w.w_heading * terms["heading"] + w.w_com * terms["com"]
            + w.w_gaze * terms["gaze"] + w.w_limits * terms["limits"] + w.w_prior * terms["prior"]
            + w.w_free_arm * terms["free_arm"] + w.w_stance * terms["stance"] + w.w_floor_pen * terms["floor_pen"]
        )
        return total, terms

    for it in range(config.iters):
        if it % config.near_every == 0:
            near_idx, near_obj_idx = refresh_near()
        total, _ = evaluate()
        total.sum().backward()
        opt.step()
    near_idx, near_obj_idx = refresh_near()
    with torch.no_grad():
        total, terms = evaluate()
    return Phase1Result(orient.detach(), transl.detach(), pose.detach(), hand_open[:1].expand(bsz, 45).clone(), total, terms)


@dataclass
class Phase2Result:
    hand_pose: torch.Tensor  # (B,45)
    curl: np.ndarray  # (B,5)
    opposition: np.ndarray  # (B,)
    touching: np.ndarray  # (B,5) bool: finger stopped by contact
    finger_pen: np.ndarray  # (B,) deepest finger penetration after closing (m, >= 0)


def _thumb_path(levels: int, opp_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Thumb closing path: swing into opposition first, then curl."""
    s = np.linspace(0.0, 1.0, levels)
    opp = np.clip(s / 0.4, 0.0, 1.0) * opp_max
    curl = np.clip((s - 0.4) / 0.6, 0.0, 1.0) * THUMB_MAX_CURL
    return opp, curl


def close_fingers(
    lite: LiteBody,
    hand: HandGeometry,
    p1: Phase1Result,
    obj_sdf: ObjectSDF,
    scene_sdf: object,
    config: GraspConfig,
) -> Phase2Result:
    """Phase 2: close each finger until first contact (all candidates and levels batched).

    Two sweeps, like a real hand wrapping an object: (1) all joints of a finger curl together until
    any of its vertices touches; (2) with the knuckle held there, the middle and distal joints keep
    curling until those segments touch too. The thumb swings into opposition in sweep 1.
    """
    bsz = p1.global_orient.shape[0]
    k = config.curl_levels
    rng = np.random.default_rng(config.seed)
    mean = (lite.left_hand_mean if hand.side == "left" else lite.right_hand_mean).numpy()
    share = np.asarray(config.wrap_share)  # sweep 1: mostly the knuckle, like a wrapping hand
    dom = lite.lbs_weights.numpy().argmax(1)
    # Per finger: its pad vertices plus a sample of the rest (the closing test needs no more).
    fverts, distal = [], []
    for f, (fv, tips) in enumerate(zip(hand.finger_verts, hand.tip_verts)):
        rest = np.setdiff1d(fv, tips)
        pick = np.union1d(tips, rng.choice(rest, size=min(config.finger_samples, len(rest)), replace=False))
        fverts.append(pick)
        distal.append(np.isin(dom[pick], hand.fingers[f][1:]))  # middle + distal segment vertices
    idx = torch.as_tensor(np.concatenate(fverts), dtype=torch.long)
    bounds = np.cumsum([0] + [len(v) for v in fverts])

    def sweep(angles: np.ndarray, opp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """angles (B,K,5,3), opp (B,K) -> object and scene distance minima (B,K,5) per finger,
        plus the same over middle/distal vertices only, stacked as (2,B,K,5) each."""
        poses = angles_to_hand_pose(hand, angles.reshape(-1, 5, 3), opp.reshape(-1), mean)
        hp = torch.tensor(poses, dtype=torch.float32)
        zeros = torch.zeros_like(hp)
        lh, rh = (hp, zeros) if hand.side == "left" else (zeros, hp)
        rep = lambda x: x.repeat_interleave(k, 0)  # noqa: E731 - (B,..) -> (B*K,..)
        with torch.no_grad():
            rot = local_rotations(lite, rep(p1.global_orient), rep(p1.body_pose), lh, rh)
            g_rot, g_pos = forward_kinematics(lite, rot, rep(p1.transl))
            verts = skin(lite, g_rot, g_pos, idx)
            d_o = obj_sdf.query(verts).reshape(bsz, k, -1).numpy()
            d_s = scene_sdf.query(verts).reshape(bsz, k, -1).numpy()  # type: ignore[attr-defined]
        obj = np.full((2, bsz, k, 5), np.inf)
        scn = np.full((2, bsz, k, 5), np.inf)
        for f in range(5):
            sl = slice(bounds[f], bounds[f + 1])
            obj[0, ..., f] = d_o[..., sl].min(-1)
            scn[0, ..., f] = d_s[..., sl].min(-1)
            if distal[f].any():
                obj[1, ..., f] = d_o[..., sl][..., distal[f]].min(-1)
                scn[1, ..., f] = d_s[..., sl][..., distal[f]].min(-1)
        return obj, scn

    def first_stop(obj: np.ndarray, scn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B,K,5) -> chosen level (B,5), touching (B,5), penetration at that level (B,5)."""
        hit = (obj < config.contact_margin) | (scn < 0.0)
        any_hit = hit.any(1)
        first = np.where(any_hit, hit.argmax(1), k - 1)  # (B,5)
        d_first = np.take_along_axis(obj, first[:, None], 1)[:, 0]
        back = any_hit & (d_first < -0.002) & (first > 0)  # overshot: step back one level
        level = first - back.astype(int)
        touching = any_hit & (d_first < config.contact_margin + 0.004)
        pen = np.maximum(0.0, -np.take_along_axis(obj, level[:, None], 1)[:, 0])
        return level, touching, pen

    # Sweep 1: whole fingers; thumb into opposition then curling.
    levels = np.linspace(config.open_curl, MAX_CURL, k)
    t_opp, t_curl = _thumb_path(k, config.thumb_opposition)
    ang1 = np.broadcast_to(levels[:, None, None] * share[None, None], (k, 5, 3)).copy()
    ang1[:, 4] = t_curl[:, None] * np.asarray(FLEX_SHARE)[None]
    obj, scn = sweep(np.broadcast_to(ang1, (bsz, k, 5, 3)).copy(), np.broadcast_to(t_opp, (bsz, k)).copy())
    lvl1, touch1, pen1 = first_stop(obj[0], scn[0])
    base = ang1[lvl1, np.arange(5)[None]]  # (B,5,3)
    opp = t_opp[lvl1[:, 4]]
    # Sweep 2: knuckles held, middle and distal joints keep curling (up to their limits).
    extra = np.linspace(0.0, config.wrap_extra, k)
    step = np.array([0.0, 1.0, 0.8])
    ang2 = base[:, None] + extra[None, :, None, None] * step[None, None, None]
    ang2 = np.minimum(ang2, np.array(config.joint_max)[None, None, None])
    obj2, scn2 = sweep(ang2, np.broadcast_to(opp[:, None], (bsz, k)).copy())
    # Only the middle/distal segments decide where sweep 2 stops, but nothing may go deeper.
    lvl2, touch2, _ = first_stop(obj2[1], scn2[1])
    pen2 = np.maximum(0.0, -np.take_along_axis(obj2[0], lvl2[:, None], 1)[:, 0])
    bad = pen2 > pen1 + 0.002  # the wrap would push the proximal part in: keep sweep 1
    lvl2 = np.where(bad, 0, lvl2)
    final = ang2[np.arange(bsz)[:, None], lvl2, np.arange(5)[None]]  # (B,5,3)
    touching = touch1 | (touch2 & ~bad)
    pen = np.maximum(pen1, np.where(bad, 0.0, pen2)).max(1)
    poses = angles_to_hand_pose(hand, final, opp, mean)
    return Phase2Result(torch.tensor(poses, dtype=torch.float32), final.mean(2), opp, touching, pen)
