"""Retarget a skeleton capture onto the SMPL-X body: fit root, global orient and 21 body rotations.

How (and why each step):
1. Rest alignment. For every mapped SMPL-X joint, a constant rotation ``A_j`` turns the SMPL-X
   rest bone (joint -> child) onto the capture's rest bone, so capture segment rotations can drive
   SMPL-X joints even though the two rest poses differ slightly (both Y-up T-poses facing +Z).
2. Initialisation. SMPL-X world rotations ``G_j = G_capture(j) @ A_j`` (slerped between two capture
   joints where SMPL-X has extra spine joints) give an analytic retarget that already keeps twists.
3. Bone-length normalisation. Targets with the *body's* proportions: the pelvis follows the
   capture root scaled by the leg-length ratio (so strides match the legs and planted feet stay
   planted); every mapped joint sits at the body's bone length along the capture's bone direction
   (branch offsets such as hips and collars hang rigidly off the parent's rotation).
4. Floor and contacts. A slow linear drift of the planted-foot height over time (an artefact of
   some converted captures; `contacts.floor_drift`) is removed, targets are shifted so the soles
   touch z = 0, and source foot contacts (low + still) pin the feet at their mean planted position
   in the fit (runs that wander > 5 cm, i.e. a foot shuffling on the spot, follow the source).
5. Batched fit (Adam on 6D rotations + root position, whole chunks of frames at once): joint
   positions to the targets, pinned feet, no foot below the floor, temporal smoothness
   (joint accelerations and rotation accelerations), a pull to the analytic init (keeps twist the
   positions cannot see) and knee/elbow hinge limits (no flips). Long clips are cut into
   overlapping chunks, each warm-started and tied to the previous chunk's overlap frames.

Everything is in Blender's world (Z up, metres) at 30 fps; the body model supplies the rest joints
(and `TreeFK` mirrors `BodyModel.fk` over the 22 fitted joints), so any SMPL-X shape works like the
mannequin. Fit error is reported against the normalised targets (step 3), not the raw capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hosig.body.rotations import matrix_to_6d, rot6d_to_matrix
from hosig.body.skeleton import FOOT_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS
from hosig.motion.data.capture import Capture, JointMap
from hosig.motion.data.contacts import ContactConfig, DriftConfig, contact_labels, contact_runs, floor_drift, floor_height
from hosig.motion.data.resample import slerp_quats

NUM_FIT = 22  # pelvis + 21 body joints
FIT_PARENTS = PARENTS[:NUM_FIT]


@dataclass(frozen=True)
class RetargetConfig:
    """Weights and schedule of the fit (metres, 30 fps)."""

    iterations: int = 80
    lr: float = 0.01
    chunk: int = 900  # frames per batch
    overlap: int = 12  # frames shared with the previous chunk (warm start + continuity)
    w_pos: float = 1.0
    w_foot: float = 4.0  # pinned feet (source contacts)
    pin_max_spread_m: float = 0.05  # contact runs wandering further than this follow the source
    w_floor: float = 10.0  # foot points below their standing height
    w_smooth: float = 2.0  # joint position accelerations
    w_rot_smooth: float = 0.02  # 6D rotation accelerations
    w_init: float = 0.002  # pull to the analytic initialisation (twist)
    w_limit: float = 0.05  # knee/elbow hinge limits
    w_continuity: float = 10.0  # overlap frames tied to the previous chunk's solution
    contact: ContactConfig = ContactConfig()
    drift: DriftConfig = DriftConfig()
    seed: int = 0


@dataclass
class RetargetResult:
    """Fitted SMPL-X parameters (Z-up) plus what the report needs."""

    poses: np.ndarray  # (T,165) axis-angle; hands/jaw/eyes zero (relative to the hands mean)
    root_pos: np.ndarray  # (T,3) fitted pelvis position (FK)
    targets: np.ndarray  # (T,J,3) bone-length-normalised source positions of the mapped joints
    target_joints: list[int]  # (J,) SMPL-X indices of the targets
    source_contacts: np.ndarray  # (T,4) bool, on the normalised source
    scale: float  # leg-length ratio body / capture
    final_loss: float
    drift: np.ndarray  # (T,) floor drift removed from the normalised source heights (m)


# ------------------------------------------------------------------------------- rotation maths
def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,3) minimal rotation taking direction ``a`` onto direction ``b``."""
    a = np.asarray(a, dtype=np.float64) / np.linalg.norm(a)
    b = np.asarray(b, dtype=np.float64) / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(perp) < 1e-6:
            perp = np.cross(a, [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * perp / np.linalg.norm(perp)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def slerp_rotmats(r0: np.ndarray, r1: np.ndarray, w: float) -> np.ndarray:
    """(T,3,3) pairwise slerp with a constant weight."""
    if w <= 0.0:
        return r0.copy()
    if w >= 1.0:
        return r1.copy()
    q0 = Rotation.from_matrix(r0).as_quat()
    q1 = Rotation.from_matrix(r1).as_quat()
    return Rotation.from_quat(slerp_quats(q0, q1, np.full(len(q0), w))).as_matrix()


# ------------------------------------------------------------------------------- preparation
def rest_alignment(capture: Capture, jmap: JointMap, rest_joints: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL-X joint -> (3,3) A_j taking its rest bone onto the capture's rest bone (model frame)."""
    out: dict[str, np.ndarray] = {}
    for j in jmap.rotations:
        if j in jmap.directions:
            child, a, b = jmap.directions[j]
            d_s = rest_joints[JOINT_INDEX[child]] - rest_joints[JOINT_INDEX[j]]
            d_c = capture.rest_point(b) - capture.rest_point(a)
            out[j] = rotation_between(d_s, d_c)
        else:
            out[j] = np.eye(3)
    return out


def initial_rotations(capture: Capture, jmap: JointMap, rest_joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,22,3,3) local and (T,22,3,3) world rotations of the analytic retarget (root = Z-up orient)."""
    align = rest_alignment(capture, jmap, rest_joints)
    t = capture.num_frames
    glob = np.zeros((t, NUM_FIT, 3, 3))
    for k in range(NUM_FIT):
        name = JOINT_NAMES[k]
        if name in jmap.rotations:
            a, b, w = jmap.rotations[name]
            g = capture.rotation(a) if a == b else slerp_rotmats(capture.rotation(a), capture.rotation(b), w)
            glob[:, k] = g @ align[name]
        else:  # unmapped (toes): follow the parent
            glob[:, k] = glob[:, FIT_PARENTS[k]]
    local = np.empty_like(glob)
    local[:, 0] = glob[:, 0]
    for k in range(1, NUM_FIT):
        local[:, k] = np.swapaxes(glob[:, FIT_PARENTS[k]], -1, -2) @ glob[:, k]
    return local, glob


def _mapped_ancestor(k: int, mapped: set[int]) -> int:
    p = int(PARENTS[k])
    while p >= 0 and p not in mapped:
        p = int(PARENTS[p])
    return p


def leg_scale(capture: Capture, jmap: JointMap, rest_joints: np.ndarray) -> float:
    """Body / capture leg length (hip -> knee -> ankle), both legs averaged."""
    ratios = []
    for side in ("left", "right"):
        names = [f"{side}_hip", f"{side}_knee", f"{side}_ankle"]
        body = sum(np.linalg.norm(rest_joints[JOINT_INDEX[b]] - rest_joints[JOINT_INDEX[a]]) for a, b in zip(names, names[1:]))
        pts = [jmap.positions[n] for n in names]
        cap = sum(np.linalg.norm(capture.rest_point(b) - capture.rest_point(a)) for a, b in zip(pts, pts[1:]))
        ratios.append(body / cap)
    return float(np.mean(ratios))


def normalised_targets(
    capture: Capture, jmap: JointMap, rest_joints: np.ndarray, glob_init: np.ndarray, scale: float
) -> tuple[np.ndarray, list[int]]:
    """(T,J,3) capture positions re-proportioned to the body, for the mapped SMPL-X joints."""
    mapped = sorted(JOINT_INDEX[n] for n in jmap.positions)
    mset = set(mapped)
    pos: dict[int, np.ndarray] = {}
    for k in mapped:  # parents precede children in SMPL-X order
        name = JOINT_NAMES[k]
        src = capture.point(jmap.positions[name])
        p = _mapped_ancestor(k, mset)
        if p < 0:
            pos[k] = src * scale
            continue
        if name in jmap.rigid:
            offset = rest_joints[k] - rest_joints[p]  # model frame; glob maps model -> world
            pos[k] = pos[p] + glob_init[:, p] @ offset
            continue
        d = src - capture.point(jmap.positions[JOINT_NAMES[p]])
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        length = np.linalg.norm(rest_joints[k] - rest_joints[p])
        pos[k] = pos[p] + d / np.maximum(norm, 1e-9) * length
    return np.stack([pos[k] for k in mapped], axis=1), mapped


# ------------------------------------------------------------------------------------- the fit
def _limit_penalty(local: torch.Tensor) -> torch.Tensor:
    """(B,22,3,3) local rotations -> (B,) hinge penalty: knees and elbows must not bend backwards.

    Measured on the child bone's direction in the parent's frame (twist-invariant): the shin
    (rest -y) must swing back (z < 0), the forearm (rest +-x) forward (z > 0), beyond a few degrees
    of tolerated hyperextension. Knees also get a weak pull towards a pure hinge about x.
    """
    pen = local.new_zeros(local.shape[0])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        knee = local[:, JOINT_INDEX[f"{side}_knee"]]
        shin_back = knee[:, 2, 1]  # shin direction = -column 1; its -z component
        pen = pen + torch.relu(-shin_back - 0.05) ** 2
        pen = pen + 0.02 * (knee[:, 0, 1] ** 2 + knee[:, 1, 0] ** 2)
        elbow = local[:, JOINT_INDEX[f"{side}_elbow"]]
        forearm_fwd = sign * elbow[:, 2, 0]  # forearm direction = sign * column 0; its z component
        pen = pen + torch.relu(-forearm_fwd - 0.1) ** 2
    return pen


class TreeFK:
    """FK of the body's 22 trunk/limb joints, batched level by level of the kinematic tree.

    Same maths as `BodyModel.fk` (rest offsets of this body, Z-up, root = pelvis position) but only
    over the joints the retarget fits, and one batched matmul per tree level instead of per joint:
    the fit calls it hundreds of times per chunk. Tested against `BodyModel.fk`.
    """

    def __init__(self, rest_joints_y: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
        rest = np.asarray(rest_joints_y, dtype=np.float64)[:NUM_FIT]
        offsets = rest.copy()
        offsets[1:] -= rest[FIT_PARENTS[1:]]
        self.offsets = torch.as_tensor(offsets, dtype=dtype)  # (22,3)
        depth = np.zeros(NUM_FIT, dtype=np.int64)
        for k in range(1, NUM_FIT):
            depth[k] = depth[FIT_PARENTS[k]] + 1
        self.levels = [
            (torch.as_tensor(np.nonzero(depth == d)[0]), torch.as_tensor(FIT_PARENTS[depth == d]))
            for d in range(1, int(depth.max()) + 1)
        ]

    def __call__(self, local: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        """(B,22,3,3) local rotations (root = Z-up orient), (B,3) pelvis -> (B,22,3) joints."""
        b = local.shape[0]
        glob = local.new_zeros(b, NUM_FIT, 3, 3).index_copy(1, torch.tensor([0]), local[:, :1])
        pos = root.new_zeros(b, NUM_FIT, 3).index_copy(1, torch.tensor([0]), root[:, None])
        for idx, par in self.levels:
            g_par = glob[:, par]  # (B,n,3,3)
            glob = glob.index_copy(1, idx, g_par @ local[:, idx])
            pos = pos.index_copy(1, idx, pos[:, par] + (g_par @ self.offsets[idx][..., None]).squeeze(-1))
        return pos


class _Fitter:
    """Holds the per-clip tensors; ``fit_chunk`` optimises one window of frames."""

    def __init__(self, body, config: RetargetConfig) -> None:
        self.body = body
        self.cfg = config
        self.tree = TreeFK(body.rest_joints_y)

    def fk(self, local: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
        """(B,22,3,3),(B,3) -> (B,22,3) joints."""
        return self.tree(local, root)

    def fit_chunk(
        self,
        init_local: np.ndarray,  # (B,22,3,3)
        init_root: np.ndarray,  # (B,3)
        targets: np.ndarray,  # (B,J,3)
        target_idx: list[int],
        pins: np.ndarray,  # (B,4,3) pinned foot positions (NaN where free)
        rest_heights: np.ndarray,  # (4,)
        prev_local: np.ndarray | None,  # (O,22,3,3) previous solution on the overlap
        prev_root: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        cfg = self.cfg
        dt = torch.float32
        r6_init = matrix_to_6d(torch.as_tensor(init_local, dtype=dt))
        r6 = r6_init.clone().requires_grad_(True)
        root = torch.as_tensor(init_root, dtype=dt).clone().requires_grad_(True)
        tgt = torch.as_tensor(targets, dtype=dt)
        pin = torch.as_tensor(np.nan_to_num(pins), dtype=dt)
        pin_mask = torch.as_tensor(~np.isnan(pins[..., 0]), dtype=dt)  # (B,4)
        rest_h = torch.as_tensor(rest_heights, dtype=dt)
        foot_idx = list(FOOT_JOINTS)
        n_prev = 0 if prev_local is None else len(prev_local)
        if n_prev:
            prev_r6 = matrix_to_6d(torch.as_tensor(prev_local, dtype=dt))
            prev_rt = torch.as_tensor(prev_root, dtype=dt)
        opt = torch.optim.Adam([r6, root], lr=cfg.lr)
        b = len(init_local)
        loss_val = 0.0
        for _ in range(cfg.iterations):
            opt.zero_grad(set_to_none=True)
            local = rot6d_to_matrix(r6)
            joints = self.fk(local, root)  # (B,22,3)
            body_j = joints
            loss = cfg.w_pos * ((joints[:, target_idx] - tgt) ** 2).sum(-1).mean()
            feet = joints[:, foot_idx]  # (B,4,3)
            if pin_mask.any():
                loss = loss + cfg.w_foot * (((feet - pin) ** 2).sum(-1) * pin_mask).sum() / b
            loss = loss + cfg.w_floor * (torch.relu(rest_h - feet[..., 2]) ** 2).mean() * 4
            if b >= 3:
                acc = body_j[2:] - 2 * body_j[1:-1] + body_j[:-2]
                loss = loss + cfg.w_smooth * (acc**2).sum(-1).mean()
                racc = r6[2:] - 2 * r6[1:-1] + r6[:-2]
                loss = loss + cfg.w_rot_smooth * (racc**2).sum(-1).mean()
            loss = loss + cfg.w_init * ((r6 - r6_init) ** 2).sum(-1).mean()
            loss = loss + cfg.w_limit * _limit_penalty(local).mean()
            if n_prev:
                loss = loss + cfg.w_continuity * (
                    ((r6[:n_prev] - prev_r6) ** 2).sum(-1).mean() + ((root[:n_prev] - prev_rt) ** 2).sum(-1).mean()
                )
            loss.backward()
            opt.step()
            loss_val = float(loss.detach())
        with torch.no_grad():
            local = rot6d_to_matrix(r6).double().numpy()
        return local, root.detach().double().numpy(), loss_val


def foot_rest_heights(body) -> np.ndarray:
    """(4,) standing heights above the sole of (l ankle, l toe, r ankle, r toe) for this body."""
    rest = np.asarray(body.rest_joints_y, dtype=np.float64)
    return rest[FOOT_JOINTS, 1] - float(body.floor_y)


def retarget(capture: Capture, jmap: JointMap, body, config: RetargetConfig = RetargetConfig()) -> RetargetResult:
    """Fit the body to ``capture`` (see module docstring). Deterministic for a given config."""
    jmap.check(capture)
    torch.manual_seed(config.seed)
    rest = np.asarray(body.rest_joints_y, dtype=np.float64)
    local0, glob0 = initial_rotations(capture, jmap, rest)
    scale = leg_scale(capture, jmap, rest)
    targets, tidx = normalised_targets(capture, jmap, rest, glob0, scale)
    rest_h = foot_rest_heights(body)
    # Feet of the normalised source: the toe targets and the ankle targets.
    feet_cols = [tidx.index(k) for k in FOOT_JOINTS]
    targets = targets.copy()
    drift = floor_drift(targets[:, [feet_cols[1], feet_cols[3]]], capture.fps, config.drift)  # toes
    targets[..., 2] -= drift[:, None]
    dz = floor_height(targets[:, feet_cols], rest_h)
    targets[..., 2] -= dz
    root0 = targets[:, tidx.index(0)].copy()
    feet_src = targets[:, feet_cols]
    src_contacts = contact_labels(feet_src, rest_h, capture.fps, config.contact)
    pins = np.full(feet_src.shape, np.nan)
    for f in range(4):
        for s, e in contact_runs(src_contacts[:, f]):
            centre = feet_src[s:e, f, :2].mean(axis=0)
            spread = float(np.linalg.norm(feet_src[s:e, f, :2] - centre, axis=-1).max())
            # A foot that really shuffles during "contact" (turning on the spot) is not pinned in
            # place, only kept on the floor; planted feet that merely jitter or slip are pinned.
            if spread <= config.pin_max_spread_m:
                pins[s:e, f, :2] = centre
            else:
                pins[s:e, f, :2] = feet_src[s:e, f, :2]
            pins[s:e, f, 2] = max(rest_h[f], float(feet_src[s:e, f, 2].mean()))

    fitter = _Fitter(body, config)
    t = capture.num_frames
    out_local = np.empty_like(local0)
    out_root = np.empty_like(root0)
    step = max(config.chunk - config.overlap, 1)
    start, last_loss = 0, 0.0
    prev_end = 0
    while start < t:
        end = min(start + config.chunk, t)
        n_prev = prev_end - start if start > 0 else 0
        init_local = local0[start:end].copy()
        init_root = root0[start:end].copy()
        if n_prev:  # warm start from the previous chunk on the overlap
            init_local[:n_prev] = out_local[start:prev_end]
            init_root[:n_prev] = out_root[start:prev_end]
        loc, rt, last_loss = fitter.fit_chunk(
            init_local, init_root, targets[start:end], tidx, pins[start:end], rest_h,
            out_local[start:prev_end] if n_prev else None, out_root[start:prev_end] if n_prev else None,
        )  # fmt: skip
        out_local[start:end] = loc
        out_root[start:end] = rt
        prev_end = end
        if end >= t:
            break
        start += step
    aa = Rotation.from_matrix(out_local.reshape(-1, 3, 3)).as_rotvec().reshape(t, NUM_FIT * 3)
    poses = np.zeros((t, NUM_JOINTS * 3))
    poses[:, : NUM_FIT * 3] = aa
    return RetargetResult(
        poses=poses, root_pos=out_root, targets=targets, target_joints=tidx,
        source_contacts=src_contacts, scale=scale, final_loss=last_loss, drift=drift,
    )  # fmt: skip
