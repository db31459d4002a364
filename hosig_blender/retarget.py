"""Retargeting SMPL-X motion onto another humanoid rig: the math, in numpy (no bpy).

Matrices follow Blender's pose conventions. For a bone ``b`` with parent ``p``, rest matrices ``L``
(``bone.matrix_local``, armature space) and pose basis ``X`` (``pose_bone.matrix_basis``), its
armature-space pose matrix is ``M_b = M_p L_p^-1 L_b X_b`` (``M_b = L_b X_b`` for a root bone).

What carries over (for each mapped pair, world space, ``S`` source, ``T`` target):
``T_world(t) = S_world(t) S_rest^-1 A T_rest`` — the change of each bone's orientation from its
rest, so other bone rolls and axes do not matter. ``A`` lines the rests up first: the smallest
rotation turning the target's rest limb direction (head to the mapped child's head) onto the
source's. Without it (``A = I``) a T-pose source lowering its arms by 70 degrees would lower an
A-pose target's arms 70 degrees from *its* rest, crossing them over the body; with it the
limbs point where the source's do, and ``A = I`` wherever the rests already agree. The hips move as the source
pelvis scaled by the leg-length ratio ``s`` about a pivot (the grasping hand at the grasp frame, so
a smaller or larger body still arrives at the object). Then contacts are restored analytically:
two-bone IK on each leg puts the ball of the foot where the source's, scaled, is (held fixed while
the source foot is planted), and on the grasping arm puts the wrist where the source wrist is
around the grasp frame. Unmapped bones keep their rest pose relative to their parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .posemath import mat_to_quat, rotation_between

PLANT_SPEED = 0.25  # m/s: a ball of foot slower than this ...
PLANT_HEIGHT = 0.03  # m: ... and this close to its lowest is planted
EASE_FRAMES = 5  # a planted foot's hold eases in and out over this many frames
GRASP_EASE = 20  # frames: the grasping wrist is pulled onto the source wrist over this many frames


@dataclass
class Rig:
    """An armature's bones: ``names`` (n,), ``parents`` (n,) index or -1, ``rest`` (n,4,4)
    armature-space rest matrices, ``world`` (4,4) the armature object's matrix (uniform scale)."""

    names: list[str]
    parents: list[int]
    rest: np.ndarray
    world: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        self.rest = np.asarray(self.rest, dtype=np.float64)
        self.world = np.asarray(self.world, dtype=np.float64)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.order = topological_order(self.parents)
        # rest_rel[b] = L_p^-1 L_b (L_b for roots): a bone's rest seen from its parent
        inv = np.linalg.inv(self.rest)
        self.rest_rel = np.array([self.rest[b] if p < 0 else inv[p] @ self.rest[b] for b, p in enumerate(self.parents)])

    @property
    def world_rot(self) -> np.ndarray:
        """(3,3) rotation of the armature object (its scale divided out)."""
        m = self.world[:3, :3]
        return m / np.cbrt(np.linalg.det(m))

    @property
    def world_scale(self) -> float:
        return float(np.cbrt(np.linalg.det(self.world[:3, :3])))

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(...,3) armature-space points -> world."""
        return points @ self.world[:3, :3].T + self.world[:3, 3]

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """(...,3) world points -> armature space."""
        return (points - self.world[:3, 3]) @ np.linalg.inv(self.world[:3, :3]).T

    def rest_heads_world(self) -> np.ndarray:
        """(n,3) rest head positions in world space."""
        return self.to_world(self.rest[:, :3, 3])


def topological_order(parents: list[int]) -> list[int]:
    """Bone indices with every parent before its children."""
    order, placed = [], set()
    pending = list(range(len(parents)))
    while pending:
        rest = []
        for b in pending:
            p = parents[b]
            if p < 0 or p in placed:
                order.append(b)
                placed.add(b)
            else:
                rest.append(b)
        if len(rest) == len(pending):
            raise ValueError("bone hierarchy has a cycle")
        pending = rest
    return order


def forward_kinematics(rig: Rig, basis: np.ndarray) -> np.ndarray:
    """(T,n,4,4) pose bases -> (T,n,4,4) armature-space pose matrices ``M``."""
    out = np.empty_like(basis)
    for b in rig.order:
        p = rig.parents[b]
        local = rig.rest_rel[b] @ basis[:, b]
        out[:, b] = local if p < 0 else out[:, p] @ local
    return out


def rigid_inverse(m: np.ndarray) -> np.ndarray:
    """(...,4,4) rotation + translation matrices -> their inverses (``[R^T, -R^T t]``)."""
    out = np.zeros_like(m)
    rt = np.swapaxes(m[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def pose_to_basis(rig: Rig, mats: np.ndarray) -> np.ndarray:
    """(T,n,4,4) armature-space pose matrices (rigid: bones are not scaled) -> (T,n,4,4) bases
    (inverse of `forward_kinematics`)."""
    out = np.empty_like(mats)
    inv_rel = rigid_inverse(rig.rest_rel)
    inv_mats = rigid_inverse(mats)
    for b in range(len(rig.names)):
        p = rig.parents[b]
        out[:, b] = inv_rel[b] @ (mats[:, b] if p < 0 else inv_mats[:, p] @ mats[:, b])
    return out


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of every run of True in a (T,) bool array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def planted(ball: np.ndarray, fps: float = 30.0, min_frames: int = 3) -> np.ndarray:
    """(T,3) world ball-of-foot track -> (T,) bool: slow and near its lowest (runs of 3+ frames)."""
    ball = np.asarray(ball, dtype=np.float64)
    if len(ball) < 2:
        return np.ones(len(ball), bool)
    speed = np.linalg.norm(np.gradient(ball[:, :2], axis=0), axis=-1) * fps
    mask = (speed < PLANT_SPEED) & (ball[:, 2] < ball[:, 2].min() + PLANT_HEIGHT)
    out = np.zeros_like(mask)
    for a, b in true_runs(mask):
        if b - a >= min_frames:
            out[a:b] = True
    return out


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def held_goal(track: np.ndarray, mask: np.ndarray, ease: int = EASE_FRAMES) -> np.ndarray:
    """(T,3) goal track -> the same with every planted run held at its mean point (no slide),
    easing in and out over ``ease`` frames around each run."""
    track = np.asarray(track, dtype=np.float64)
    offset = np.zeros_like(track)
    weight = np.zeros(len(track))
    n = len(track)
    for a, b in true_runs(mask):
        held = track[a:b].mean(0)
        offset[a:b] = held - track[a:b]
        weight[a:b] = 1.0
        for k in range(1, ease + 1):
            w = float(smoothstep(np.array(1.0 - k / (ease + 1))))
            for t, edge in ((a - k, a), (b - 1 + k, b - 1)):
                if 0 <= t < n and not mask[t] and w > weight[t]:
                    offset[t] = w * (held - track[edge])
                    weight[t] = w
    return track + offset


def two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, goal: np.ndarray,
                pole_fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK, vectorised over frames.

    ``root``/``mid``/``end``/``goal`` (T,3) the chain's joints now and where ``end`` should go;
    the bend stays in the plane of the current chain (``pole_fallback`` (T,3) when it is straight).
    Returns (R1, R2) (T,3,3): rotate the upper bone (and all below it) about ``root`` by R1, then
    the lower bone about its new head by R2. Goals out of reach are met as closely as the chain
    allows (straightened, pointing at the goal)."""
    a = np.linalg.norm(mid - root, axis=-1)
    b = np.linalg.norm(end - mid, axis=-1)
    to_goal = goal - root
    dist = np.linalg.norm(to_goal, axis=-1)
    u = to_goal / np.maximum(dist, 1e-9)[:, None]
    d = np.clip(dist, np.abs(a - b) + 1e-5, (a + b) * 0.99999)
    bend = mid - (root + end) / 2
    pole = bend - np.sum(bend * u, -1, keepdims=True) * u
    weak = np.linalg.norm(pole, axis=-1) < 1e-4
    fb = pole_fallback - np.sum(pole_fallback * u, -1, keepdims=True) * u
    pole = np.where(weak[:, None], fb, pole)
    v = pole / np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-12)
    cos = np.clip((a * a + d * d - b * b) / (2 * a * d), -1.0, 1.0)
    sin = np.sqrt(1 - cos * cos)
    mid_new = root + a[:, None] * (cos[:, None] * u + sin[:, None] * v)
    r1 = rotation_between(mid - root, mid_new - root)
    end_1 = root + np.einsum("tij,tj->ti", r1, end - root)
    r2 = rotation_between(end_1 - mid_new, root + d[:, None] * u - mid_new)
    return r1, r2


@dataclass
class Proportion:
    """Where source world points go for a body ``scale`` times the source's: horizontally about
    ``pivot`` (3,), vertically over the floor at ``floor`` (a planted foot stays on the floor)."""

    pivot: np.ndarray
    scale: float
    floor: float = 0.0

    def __call__(self, track: np.ndarray) -> np.ndarray:
        """(...,3) source world points -> (...,3) the target's."""
        out = self.pivot + self.scale * (np.asarray(track, dtype=np.float64) - self.pivot)
        out[..., 2] = self.floor + self.scale * (track[..., 2] - self.floor)
        return out


@dataclass
class Limb:
    """One two-bone chain on the target: bone indices and its end goal (T,3) armature space with
    per-frame weight (T,) (0: leave as transferred, 1: reach the goal)."""

    upper: int
    lower: int
    end: int
    goal: np.ndarray
    weight: np.ndarray
    pole: np.ndarray  # (T,3) bend direction when the chain is straight


@dataclass
class Transfer:
    """The rotation transfer of one clip onto one target rig (see the module docstring).

    ``targets`` (m,) target bone indices; ``src_rest_world`` (m,3,3); ``src_world`` (T,m,3,3)
    source bones' world rotations; ``hips`` target index of the hips; ``hips_world`` (T,3) where
    the target hips head goes (world)."""

    rig: Rig
    targets: np.ndarray
    src_rest_world: np.ndarray
    src_world: np.ndarray
    hips: int
    hips_world: np.ndarray
    align: np.ndarray | None = None  # (m,3,3) world rest alignments (`rest_alignment`), None = I

    def desired(self) -> np.ndarray:
        """(T,m,3,3) armature-space rotations of the mapped target bones:
        ``W^-1 S_world(t) S_rest^-1 A W L_T`` (rotation parts; W the target object's rotation)."""
        ra = self.rig.world_rot
        change = self.src_world @ np.swapaxes(self.src_rest_world, -1, -2)[None]  # (T,m,3,3) world
        rest_t = ra @ self.rig.rest[self.targets, :3, :3]  # (m,3,3) world
        if self.align is not None:
            rest_t = self.align @ rest_t
        return ra.T @ change @ rest_t[None]


def facing(heads: dict[str, np.ndarray]) -> np.ndarray | None:
    """(3,) horizontal unit direction a rest skeleton faces: from the ankles toward the balls of
    the feet (``heads`` joint -> (3,) world), else None."""
    pairs = [(heads.get(f"{s}_ankle"), heads.get(f"{s}_foot")) for s in ("left", "right")]
    steps = [b - a for a, b in pairs if a is not None and b is not None]
    if not steps:
        return None
    d = np.mean(steps, axis=0) * [1.0, 1.0, 0.0]
    n = np.linalg.norm(d)
    return d / n if n > 1e-6 else None


def yaw_between(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    """(3,3) rotation about +Z turning horizontal direction ``a`` onto ``b`` (identity if either
    is unknown)."""
    if a is None or b is None:
        return np.eye(3)
    angle = np.arctan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1])
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rest_alignment(joints: list[str], children: dict[str, str], src_heads: np.ndarray, tgt_heads: np.ndarray) -> np.ndarray:
    """(m,3,3) world rotations lining each target rest bone up with the source's: first a turn
    about +Z so the target faces where the source faces (feet: ankle to ball), then, for mapped
    joint ``joints[k]`` with a mapped child ``children[joints[k]]``, the smallest rotation from
    the target's head-to-child direction to the source's (``src_heads``/``tgt_heads`` (m,3)
    world rest heads in ``joints`` order). Joints without a mapped child get the turn alone."""
    index = {j: k for k, j in enumerate(joints)}
    turn = yaw_between(facing({j: tgt_heads[k] for j, k in index.items()}), facing({j: src_heads[k] for j, k in index.items()}))
    tgt_heads = tgt_heads @ turn.T
    out = np.tile(turn, (len(joints), 1, 1))
    for k, j in enumerate(joints):
        c = index.get(children.get(j, ""))
        if c is None:
            continue
        d_t, d_s = tgt_heads[c] - tgt_heads[k], src_heads[c] - src_heads[k]
        if np.linalg.norm(d_t) > 1e-6 and np.linalg.norm(d_s) > 1e-6:
            out[k] = rotation_between(d_t, d_s) @ turn
    return out


def solve_pose(rig: Rig, mapped: np.ndarray, rotations: np.ndarray, hips: int, hips_pos: np.ndarray) -> np.ndarray:
    """(T,n,4,4) armature-space pose matrices: mapped bones ``mapped`` (m,) take ``rotations``
    (T,m,3,3) (armature space), the hips head goes to ``hips_pos`` (T,3) armature space, other
    bones keep their rest relative to their parent; every bone's head stays where its parent puts it."""
    T, n = rotations.shape[0], len(rig.names)
    slot = -np.ones(n, dtype=int)
    slot[mapped] = np.arange(len(mapped))
    mats = np.empty((T, n, 4, 4))
    for b in rig.order:
        p = rig.parents[b]
        chain = np.broadcast_to(rig.rest_rel[b], (T, 4, 4)) if p < 0 else mats[:, p] @ rig.rest_rel[b]
        m = np.array(chain)
        if slot[b] >= 0:
            m[:, :3, :3] = rotations[:, slot[b]]
        if b == hips:
            m[:, :3, 3] = hips_pos
        mats[:, b] = m
    return mats


def apply_ik(rig: Rig, mats: np.ndarray, mapped: np.ndarray, rotations: np.ndarray, hips: int, hips_pos: np.ndarray,
             limbs: list[Limb]) -> tuple[np.ndarray, np.ndarray]:
    """Bend each limb's upper/lower bones so its end reaches the goal (weighted); returns the new
    (rotations, pose matrices). Ends keep their armature-space rotation (feet stay as transferred).
    The limbs must not lie on one another's chains (legs and arms do not), so all are solved from
    the same pose and the pose is rebuilt once."""
    rotations = rotations.copy()
    slot = {int(b): k for k, b in enumerate(mapped)}
    for limb in limbs:
        root, mid, end = mats[:, limb.upper, :3, 3], mats[:, limb.lower, :3, 3], mats[:, limb.end, :3, 3]
        goal = end + limb.weight[:, None] * (limb.goal - end)
        r1, r2 = two_bone_ik(root, mid, end, goal, limb.pole)
        su, sl = slot[limb.upper], slot[limb.lower]
        rotations[:, su] = r1 @ rotations[:, su]
        rotations[:, sl] = r2 @ r1 @ rotations[:, sl]
    return rotations, solve_pose(rig, mapped, rotations, hips, hips_pos)


def basis_channels(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,n,4,4) bases -> ((T,n,4) quaternions w-first, (T,n,3) locations)."""
    return mat_to_quat(basis[..., :3, :3]), basis[..., :3, 3].copy()


def slide_cm_s(track: np.ndarray, mask: np.ndarray, fps: float = 30.0) -> float:
    """Mean horizontal speed (cm/s) of a (T,3) track over consecutive frames both in ``mask``."""
    track = np.asarray(track, dtype=np.float64)
    both = np.asarray(mask[1:], bool) & np.asarray(mask[:-1], bool)
    if not both.any():
        return 0.0
    step = np.linalg.norm(track[1:, :2] - track[:-1, :2], axis=-1)
    return float(step[both].mean() * fps * 100.0)


def max_slide_cm_s(track: np.ndarray, mask: np.ndarray, fps: float = 30.0) -> float:
    """The fastest horizontal frame-to-frame speed (cm/s) of a (T,3) track within ``mask``."""
    track = np.asarray(track, dtype=np.float64)
    both = np.asarray(mask[1:], bool) & np.asarray(mask[:-1], bool)
    if not both.any():
        return 0.0
    step = np.linalg.norm(track[1:, :2] - track[:-1, :2], axis=-1)
    return float(step[both].max() * fps * 100.0)
