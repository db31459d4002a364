"""Deterministic builder of the embedded mannequin: a body model file in the exact SMPL-X npz format.

Why: real SMPL-X files are licence-restricted, yet the product must work out of the box and every
stage (retargeting, grasp, Blender rig) must run on the same code path as with a real model. So we
build a believable adult mannequin (CMU proportions, 1.75 m) with the SMPL-X topology contract:
10475 vertices, the 55-joint tree, smplx's fixed vertex ids on the right anatomical places, smooth
skinning, a joint regressor that reproduces the skeleton and two shape directions (height, girth).

Pipeline: smooth-union SDF of solids (`shape_sdf`) -> marching cubes (closed surface) -> quadric
decimation per region (hands and head keep more vertices; region borders are preserved so the pieces
weld back watertight) -> longest-edge splits to exactly 10475 vertices -> fixed-id permutation ->
weights, J_regressor, shapedirs, landmarks.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.optimize import nnls
from scipy.spatial import cKDTree

from hosig.body import skeleton as skel
from hosig.body.proportions import RestSkeleton, rest_skeleton
from hosig.body.shape_sdf import Solid, body_solids, grid_sdf, owner_parts, points_sdf

MANNEQUIN_VERSION = 1
SMPLX_NUM_VERTICES = 10475
NUM_SHAPE = 10  # smplx's fallback: 10 shape + 10 expression directions when fewer than 400 exist
NUM_EXPR = 10
NUM_POSE_BASIS = 54 * 9
NUM_LANDMARKS = 51


@dataclass(frozen=True)
class MannequinConfig:
    """Build parameters (stored next to the npz so the file can be regenerated)."""

    height_m: float = 1.75
    voxel_m: float = 0.003  # marching-cubes grid
    hand_vertices: int = 1150  # per hand, after decimation (fingers need them)
    head_vertices: int = 1700
    height_per_beta: float = 0.04  # beta0 = +1 -> 4 % taller (about 7 cm)
    girth_per_beta: float = 0.10  # beta1 = +1 -> 10 % thicker limbs and trunk
    finger_curl_rad: tuple[float, float, float] = (0.12, 0.22, 0.12)  # hands_mean: relaxed curl per phalanx
    blend_fraction: float = 0.3  # skinning blend width as a fraction of the local limb radius
    blend_floor_m: float = 0.003
    min_weight: float = 0.03
    smooth_iterations: int = 4
    other_part_margin: float = 1.0  # extra distance (in blend widths) for bones of another body part
    max_influences: int = 4


# --------------------------------------------------------------------------------------------------
# Surface


def _marching_cubes(solids: list[Solid], voxel: float) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    lo = np.min([s.bounds()[0] for s in solids], axis=0) - 4 * voxel
    hi = np.max([s.bounds()[1] for s in solids], axis=0) + 4 * voxel
    shape = tuple(int(n) for n in np.ceil((hi - lo) / voxel).astype(int) + 1)
    vol = grid_sdf(solids, lo, shape, voxel)
    verts, faces, _, _ = marching_cubes(vol, 0.0, spacing=(voxel, voxel, voxel))
    # skimage orients faces with normals toward increasing values (outside): keep as is.
    return verts + lo, faces.astype(np.int64)


def _regions(verts: np.ndarray, sk: RestSkeleton) -> np.ndarray:
    """Per-vertex region id: 0 body, 1 left hand, 2 right hand, 3 head (denser there)."""
    region = np.zeros(len(verts), dtype=np.int64)
    wl, wr = sk.joint("left_wrist"), sk.joint("right_wrist")
    region[verts[:, 0] > wl[0] + 0.01] = 1
    region[verts[:, 0] < wr[0] - 0.01] = 2
    neck = sk.joint("neck")
    region[(verts[:, 1] > neck[1] + 0.05) & (np.abs(verts[:, 0]) < 0.2)] = 3
    return region


def _decimate_piece(verts: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation of an open piece keeping its border vertices exactly where they are."""
    import fast_simplification

    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    v, f = verts[used], remap[faces]
    target_faces = int(max(2 * target_vertices, 8))
    if target_faces >= len(f):
        return v, f
    v2, f2 = fast_simplification.simplify(v, f.astype(np.int32), target_count=target_faces, agg=3.0, preserve_border=True)
    return np.asarray(v2, dtype=np.float64), np.asarray(f2, dtype=np.int64)


def _weld(pieces: list[tuple[np.ndarray, np.ndarray]], shared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate pieces, merging only the shared border vertices (``shared`` (K,3), positions the
    decimator left bit-identical). Other coincident vertices are kept apart on purpose: quadric
    decimation can leave two unrelated vertices at one spot, and merging them would pinch the mesh."""
    lookup = {row.tobytes(): k for k, row in enumerate(np.ascontiguousarray(shared, dtype=np.float64))}
    verts: list[np.ndarray] = [shared.astype(np.float64)]
    faces: list[np.ndarray] = []
    n = len(shared)
    for pv, pf in pieces:
        pv = np.ascontiguousarray(pv, dtype=np.float64)
        index = np.empty(len(pv), dtype=np.int64)
        fresh = []
        for i, row in enumerate(pv):
            k = lookup.get(row.tobytes())
            if k is None:
                index[i] = n + len(fresh)
                fresh.append(i)
            else:
                index[i] = k
        verts.append(pv[fresh])
        faces.append(index[pf])
        n += len(fresh)
    return np.concatenate(verts), np.concatenate(faces)


def _drop_unused(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.unique(faces)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


def _split_to_count(verts: np.ndarray, faces: np.ndarray, count: int, solids: list[Solid]) -> tuple[np.ndarray, np.ndarray]:
    """Split longest edges (new vertex projected onto the SDF surface) until there are ``count`` vertices.

    Splitting an interior edge of a closed manifold keeps it closed and manifold.
    """
    import heapq

    V = [np.asarray(v, dtype=np.float64) for v in verts]
    F = [list(map(int, f)) for f in faces]
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, f in enumerate(F):
        for k in range(3):
            a, b = f[k], f[(k + 1) % 3]
            edge_faces.setdefault((min(a, b), max(a, b)), []).append(fi)

    def key(e: tuple[int, int]) -> tuple[float, int, int]:
        return (-float(np.sum((V[e[0]] - V[e[1]]) ** 2)), e[0], e[1])

    heap = [key(e) for e in edge_faces]
    heapq.heapify(heap)
    while len(V) < count:
        _, a, b = heapq.heappop(heap)
        if (a, b) not in edge_faces:
            continue  # stale: already split
        mid = _project((0.5 * (V[a] + V[b]))[None], solids)[0]
        m = len(V)
        V.append(mid)
        for fi in edge_faces.pop((a, b)):
            f = F[fi]
            c = next(x for x in f if x != a and x != b)
            k = f.index(c)
            p, q = f[(k + 1) % 3], f[(k + 2) % 3]  # face = (c, p, q): split edge p->q
            nf = len(F)
            F[fi] = [p, m, c]
            F.append([m, q, c])
            lst = edge_faces[(min(q, c), max(q, c))]
            lst[lst.index(fi)] = nf
            for e, fids in (((min(p, m), max(p, m)), [fi]), ((min(m, q), max(m, q)), [nf]), ((min(m, c), max(m, c)), [fi, nf])):
                if e not in edge_faces:
                    edge_faces[e] = []
                    heapq.heappush(heap, key(e))
                edge_faces[e].extend(fids)
    return np.array(V), np.array(F, dtype=np.int64)


def _project(points: np.ndarray, solids: list[Solid], steps: int = 3) -> np.ndarray:
    """Newton steps along the numerical SDF gradient onto the zero level set."""
    p = points.copy()
    h = 1e-4
    for _ in range(steps):
        d = points_sdf(solids, p)
        grad = np.stack([(points_sdf(solids, p + h * e) - d) / h for e in np.eye(3)], axis=1)
        grad /= np.linalg.norm(grad, axis=1, keepdims=True) + 1e-12
        p = p - d[:, None] * grad
    return p


def build_surface(sk: RestSkeleton, cfg: MannequinConfig) -> tuple[np.ndarray, np.ndarray]:
    """Closed mannequin surface with exactly SMPLX_NUM_VERTICES vertices (Y-up, metres)."""
    solids = body_solids(sk)
    verts, faces = _marching_cubes(solids, cfg.voxel_m)
    region_v = _regions(verts, sk)
    region_f = region_v[faces].max(axis=1)  # a face touching a dense region belongs to it
    dense = {1: cfg.hand_vertices, 2: cfg.hand_vertices, 3: cfg.head_vertices}
    pieces = {r: _decimate_piece(verts, faces[region_f == r], n) for r, n in dense.items()}
    body_faces = faces[region_f == 0]
    shared_ids = np.unique(np.concatenate([
        np.intersect1d(np.unique(faces[region_f == r]), np.unique(body_faces)) for r in sorted(dense)
    ]))
    shared = verts[shared_ids]
    border = len(shared_ids)
    budget = SMPLX_NUM_VERTICES - sum(len(p[0]) for p in pieces.values()) + border - 40
    target = budget
    for _ in range(6):
        body = _decimate_piece(verts, body_faces, target)
        v, f = _drop_unused(*_weld([body] + [pieces[r] for r in sorted(pieces)], shared))
        if len(v) <= SMPLX_NUM_VERTICES:
            break
        target -= len(v) - SMPLX_NUM_VERTICES + 20
    else:
        raise RuntimeError(f"mannequin decimation overshoots: {len(v)} vertices")
    mesh = trimesh.Trimesh(v, f, process=False)
    if not mesh.is_watertight:
        raise RuntimeError("mannequin surface is not watertight after decimation")
    return _split_to_count(v, f, SMPLX_NUM_VERTICES, solids)


# --------------------------------------------------------------------------------------------------
# Bones, labels, weights


def bone_segments(sk: RestSkeleton) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """For each joint the segment(s) of the body part it rotates (used for weights and girth)."""
    J = sk.joint
    idx = skel.JOINT_INDEX
    seg: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}

    def add(name: str, a: np.ndarray, b: np.ndarray) -> None:
        seg.setdefault(idx[name], []).append((np.asarray(a, float), np.asarray(b, float)))

    add("pelvis", J("pelvis"), J("spine1"))
    add("pelvis", J("left_hip") * [0.4, 1, 1], J("right_hip") * [0.4, 1, 1] + [0, 0, 0])
    add("spine1", J("spine1"), J("spine2"))
    add("spine2", J("spine2"), J("spine3"))
    add("spine3", J("spine3"), J("neck"))
    add("neck", J("neck"), J("head"))
    add("head", J("head"), sk.crown - [0, 0.03, 0])
    add("jaw", J("jaw"), J("jaw") + [0, -0.05, 0.05])
    for side in ("left", "right"):
        add(f"{side}_collar", J(f"{side}_collar"), J(f"{side}_shoulder"))
        add(f"{side}_shoulder", J(f"{side}_shoulder"), J(f"{side}_elbow"))
        add(f"{side}_elbow", J(f"{side}_elbow"), J(f"{side}_wrist"))
        for f in ("index", "middle", "ring", "pinky"):
            add(f"{side}_wrist", J(f"{side}_wrist"), J(f"{side}_{f}1"))
        add(f"{side}_hip", J(f"{side}_hip"), J(f"{side}_knee"))
        add(f"{side}_knee", J(f"{side}_knee"), J(f"{side}_ankle"))
        add(f"{side}_ankle", J(f"{side}_ankle"), J(f"{side}_foot"))
        add(f"{side}_ankle", J(f"{side}_ankle"), sk.heels[side] + [0, 0.02, 0])
        add(f"{side}_foot", J(f"{side}_foot"), sk.toe_tips[side] + [0, 0.015, 0])
        for f in skel.FINGERS:
            j1, j2, j3 = (J(f"{side}_{f}{k}") for k in (1, 2, 3))
            add(f"{side}_{f}1", j1, j2)
            add(f"{side}_{f}2", j2, j3)
            add(f"{side}_{f}3", j3, sk.fingertips[f"{side}_{f}"])
    return seg


PROXIMAL_PENALTY = 1.5


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    c = a + t[:, None] * ab
    return np.linalg.norm(p - c, axis=1), c


def bone_distances(verts: np.ndarray, sk: RestSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """(V,55) distance of each vertex to each joint's bone(s) (inf if none) and (V,55,3) closest points."""
    segs = bone_segments(sk)
    dist = np.full((len(verts), skel.NUM_JOINTS), np.inf)
    closest = np.zeros((len(verts), skel.NUM_JOINTS, 3))
    for j, lst in segs.items():
        limb = _side(skel.JOINT_NAMES[j]) != 0
        for a, b in lst:
            d, c = _segment_distance(verts, a, b)
            if limb:  # a limb bone does not reach back past its joint (shoulder vs chest, hip vs belly)
                ab = b - a
                behind = np.maximum(-((verts - a) @ ab) / np.linalg.norm(ab), 0.0)
                d = d + PROXIMAL_PENALTY * behind
            better = d < dist[:, j]
            dist[better, j] = d[better]
            closest[better, j] = c[better]
    return dist, closest


def _side(name: str) -> int:
    return 1 if name.startswith("left_") else (-1 if name.startswith("right_") else 0)


def _vertex_adjacency(faces: np.ndarray, n: int):
    """Row-normalised (V,V) sparse vertex adjacency (for smoothing weights over the surface)."""
    from scipy.sparse import coo_matrix, diags

    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj.data[:] = 1.0
    return diags(1.0 / np.maximum(np.asarray(adj.sum(axis=1)).ravel(), 1.0)) @ adj


def _tree_distance() -> np.ndarray:
    """(55,55) number of bones between two joints in the kinematic tree."""
    n = skel.NUM_JOINTS
    dist = np.full((n, n), 99, dtype=np.int64)
    for j in range(n):
        dist[j, j] = 0
        frontier = [j]
        while frontier:
            nxt = []
            for k in frontier:
                neighbours = skel.children(k) + ([int(skel.PARENTS[k])] if skel.PARENTS[k] >= 0 else [])
                for m in neighbours:
                    if dist[j, m] > dist[j, k] + 1:
                        dist[j, m] = dist[j, k] + 1
                        nxt.append(m)
            frontier = nxt
    return dist


def allowed_joints(label: int) -> list[int]:
    """Joints a vertex whose nearest bone is ``label``'s may depend on.

    Up to two bones away in the tree (so weights fade smoothly across label borders), never the other
    side's limbs, never the eyes; hands are isolated: a finger vertex follows only its own finger and
    the wrist, a palm/wrist vertex never follows a finger, and nothing outside a hand follows a finger.
    """
    name = skel.JOINT_NAMES[label]
    side = _side(name)
    eyes = {skel.JOINT_INDEX["left_eye_smplhf"], skel.JOINT_INDEX["right_eye_smplhf"]}
    fingers = set(skel.FINGER_JOINTS)
    if label in fingers:
        chain = [j for j in fingers if skel.JOINT_NAMES[j][:-1] == name[:-1]]
        return sorted(set(chain) | {skel.JOINT_INDEX[name.split("_")[0] + "_wrist"]})
    near = np.nonzero(_TREE_DISTANCE[label] <= 2)[0]
    out = []
    for j in near:
        j = int(j)
        if j in eyes or j in fingers:
            continue
        if side != 0 and _side(skel.JOINT_NAMES[j]) == -side:
            continue
        out.append(j)
    return sorted(out)


def vertex_labels(verts: np.ndarray, sk: RestSkeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V,55) bone distances, (V,) labels and (V,55) own-part mask.

    A vertex belongs to the solid whose surface is nearest (arm, chest, thigh, finger...), and its
    label is the nearest bone among that solid's joints. Nearest-bone alone mislabels e.g. the side
    of the chest as upper arm (the shoulder joint is close), which tears the armpit when arms drop.
    """
    dist, _ = bone_distances(verts, sk)
    parts = owner_parts(body_solids(sk), verts)
    in_part = np.zeros(dist.shape, dtype=bool)
    for part in sorted(set(parts)):
        rows = np.array([i for i, p in enumerate(parts) if p == part])
        in_part[np.ix_(rows, [skel.JOINT_INDEX[n] for n in part])] = True
    labels = np.argmin(np.where(in_part, dist, np.inf), axis=1)
    return dist, labels, in_part


def skinning_weights(verts: np.ndarray, faces: np.ndarray, sk: RestSkeleton, cfg: MannequinConfig) -> tuple[np.ndarray, np.ndarray]:
    """(V,55) skinning weights and (V,) labels (the nearest bone's joint).

    Each vertex blends the joints allowed for its label with ``exp(-(d_j - d_min) / sigma)`` where
    ``d_j`` is its distance to joint j's bone and ``sigma`` grows with the local limb radius, so a
    knee blends over a few centimetres and a knuckle over a few millimetres. Influences under
    ``cfg.min_weight`` are dropped, at most ``cfg.max_influences`` kept, rows normalised. Weights
    are then diffused over the surface (``cfg.smooth_iterations``) and re-restricted to the allowed
    joints, which removes seams where the nearest bone changes.
    """
    dist, labels, in_part = vertex_labels(verts, sk)
    d_min = dist[np.arange(len(verts)), labels]
    sigma = cfg.blend_fraction * d_min + cfg.blend_floor_m
    # joints outside the vertex's own body part count as at least a little farther than its own bone
    dist = np.where(in_part, dist, np.maximum(dist, d_min[:, None]) + cfg.other_part_margin * sigma[:, None])
    weights = np.zeros_like(dist)
    allowed = np.zeros(dist.shape, dtype=bool)
    for label in np.unique(labels):
        rows = np.nonzero(labels == label)[0]
        cols = allowed_joints(int(label))
        w = np.exp(-(dist[np.ix_(rows, cols)] - d_min[rows, None]) / sigma[rows, None])
        if _side(skel.JOINT_NAMES[label]) == 0:  # central part: a limb joint fades out on the other half
            for k, c in enumerate(cols):
                s = _side(skel.JOINT_NAMES[c])
                if s != 0:
                    w[:, k] *= np.clip(0.5 + s * verts[rows, 0] / 0.04, 0.0, 1.0)
        weights[np.ix_(rows, cols)] = w
        allowed[np.ix_(rows, cols)] = w > 0
    weights /= weights.sum(axis=1, keepdims=True)
    smooth = _vertex_adjacency(faces, len(verts))
    for _ in range(cfg.smooth_iterations):
        weights = 0.5 * weights + 0.5 * (smooth @ weights)
        weights = np.where(allowed, weights, 0.0)
        weights /= weights.sum(axis=1, keepdims=True)
    weights[weights < cfg.min_weight] = 0.0
    order = np.argsort(-weights, axis=1, kind="stable")
    mask = np.zeros_like(weights, dtype=bool)
    np.put_along_axis(mask, order[:, : cfg.max_influences], True, axis=1)
    weights = np.where(mask, weights, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights, labels


_TREE_DISTANCE = _tree_distance()

# --------------------------------------------------------------------------------------------------
# Fixed vertex ids (smplx.vertex_ids['smplx'])

SMPLX_VERTEX_IDS: dict[str, int] = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
    "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022,
    "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
    "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
}  # fmt: skip

def anatomical_vertices(verts: np.ndarray, labels: np.ndarray, sk: RestSkeleton) -> dict[str, int]:
    """Which current vertex plays each smplx fixed-id role."""
    J = sk.joint
    out: dict[str, int] = {}
    for side, s in (("left", "l"), ("right", "r")):
        for finger in skel.FINGERS:
            j3 = skel.JOINT_INDEX[f"{side}_{finger}3"]
            tip = sk.fingertips[f"{side}_{finger}"]
            direction = (tip - J(f"{side}_{finger}3")) / np.linalg.norm(tip - J(f"{side}_{finger}3"))
            cand = np.nonzero(labels == j3)[0]
            out[f"{s}{finger}"] = int(cand[np.argmax(verts[cand] @ direction)])
    floor = verts[:, 1].min()
    for side, S in (("left", "L"), ("right", "R")):
        sx = 1.0 if side == "left" else -1.0
        foot = np.nonzero(np.isin(labels, [skel.JOINT_INDEX[f"{side}_foot"], skel.JOINT_INDEX[f"{side}_ankle"]]))[0]
        sole = foot[verts[foot, 1] < floor + 0.012]
        toe = sk.toe_tips[side]
        heel = sk.heels[side]
        # big toe: front of the sole, medial; small toe: front, lateral (a little behind)
        big_pt = np.array([toe[0] - sx * 0.02, floor, toe[2]])
        small_pt = np.array([toe[0] + sx * 0.03, floor, toe[2] - 0.03])
        out[f"{S}BigToe"] = int(sole[np.argmin(np.linalg.norm(verts[sole] - big_pt, axis=1))])
        out[f"{S}SmallToe"] = int(sole[np.argmin(np.linalg.norm(verts[sole] - small_pt, axis=1))])
        out[f"{S}Heel"] = int(sole[np.argmin(np.linalg.norm(verts[sole] - (heel - [0, 0, 0.02]), axis=1))])
    head_ids = np.nonzero(np.isin(labels, [skel.JOINT_INDEX["head"], skel.JOINT_INDEX["jaw"], skel.JOINT_INDEX["neck"]]))[0]
    hv = verts[head_ids]
    eye_l, eye_r = J("left_eye_smplhf"), J("right_eye_smplhf")
    nose_band = head_ids[(np.abs(hv[:, 0]) < 0.012) & (hv[:, 1] < eye_l[1]) & (hv[:, 1] > eye_l[1] - 0.07)]
    out["nose"] = int(nose_band[np.argmax(verts[nose_band, 2])])
    for key, e in (("leye", eye_l), ("reye", eye_r)):
        front = head_ids[hv[:, 2] > e[2] - 0.03]
        target = np.array([e[0], e[1], verts[front, 2].max()])
        out[key] = int(front[np.argmin(np.linalg.norm(verts[front] - target, axis=1))])
    ear_band = head_ids[np.abs(hv[:, 1] - (eye_l[1] - 0.02)) < 0.02]
    out["lear"] = int(ear_band[np.argmax(verts[ear_band, 0])])
    out["rear"] = int(ear_band[np.argmin(verts[ear_band, 0])])
    if len(set(out.values())) != len(out):
        raise RuntimeError("two smplx fixed ids picked the same mannequin vertex")
    return out


def fixed_id_permutation(num: int, roles: dict[str, int]) -> np.ndarray:
    """perm (V,) with new vertex i = old vertex perm[i], putting each role at its smplx id."""
    perm = np.full(num, -1, dtype=np.int64)
    for name, old in roles.items():
        perm[SMPLX_VERTEX_IDS[name]] = old
    rest = np.setdiff1d(np.arange(num), np.array(list(roles.values())))
    perm[perm < 0] = rest  # others keep their relative order
    return perm


# --------------------------------------------------------------------------------------------------
# Joint regressor, shape directions, landmarks


def joint_regressor(verts: np.ndarray, joints: np.ndarray, closest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(55,V) non-negative sparse rows with ``R @ verts == joints`` (NNLS over nearby vertices).

    Each row also reproduces the joint from the vertices' bone-axis points where feasible, so girth
    (radial scaling about the bones) leaves the skeleton in place. Returns the regressor and the
    per-joint residual (m).
    """
    tree = cKDTree(verts)
    reg = np.zeros((len(joints), len(verts)))
    resid = np.zeros(len(joints))
    for j, p in enumerate(joints):
        d0, _ = tree.query(p)
        for grow in (2.0, 3.0, 4.5, 7.0):
            ids = np.array(sorted(tree.query_ball_point(p, r=d0 * grow + 0.004)))
            A = np.vstack([verts[ids].T, (verts[ids] - closest[ids, j]).T * 3.0, 10.0 * np.ones((1, len(ids)))])
            b = np.concatenate([p, np.zeros(3), [10.0]])
            w, r = nnls(A, b, maxiter=50 * len(ids))
            if r < 1e-7:
                break
        if r >= 1e-7:  # fall back to position-only (girth may then move this joint slightly)
            A = np.vstack([verts[ids].T, 10.0 * np.ones((1, len(ids)))])
            w, r = nnls(A, np.concatenate([p, [10.0]]), maxiter=50 * len(ids))
        w[w < 1e-9] = 0.0
        w /= w.sum()
        reg[j, ids] = w
        resid[j] = np.linalg.norm(w @ verts[ids] - p)
    return reg, resid


def shape_directions(verts: np.ndarray, labels: np.ndarray, closest: np.ndarray, floor_y: float, cfg: MannequinConfig) -> np.ndarray:
    """(V,3,20): beta0 height (uniform scale about the floor point under the pelvis), beta1 girth
    (radial scaling about each vertex's own bone, feet only widen so the sole stays on the floor)."""
    dirs = np.zeros((len(verts), 3, NUM_SHAPE + NUM_EXPR))
    origin = np.array([0.0, floor_y, 0.0])
    dirs[:, :, 0] = (verts - origin) * cfg.height_per_beta
    axis_pt = closest[np.arange(len(verts)), labels]
    radial = verts - axis_pt
    names = [skel.JOINT_NAMES[l] for l in labels]
    gain = np.ones(len(verts))
    for i, n in enumerate(names):
        if n in ("head", "jaw") or any(f in n for f in skel.FINGERS):
            gain[i] = 0.25
        if n.endswith("_foot") or n.endswith("_ankle"):
            radial[i, 1] = 0.0  # widen feet only sideways / lengthways: the sole stays on the floor
            radial[i, 2] = 0.0
    # the crown must not rise with girth (height is beta0's job)
    top = verts[:, 1] > verts[:, 1].max() - 0.04
    radial[top, 1] = np.minimum(radial[top, 1], 0.0)
    dirs[:, :, 1] = radial * (cfg.girth_per_beta * gain)[:, None]
    return dirs


def face_landmarks(verts: np.ndarray, faces: np.ndarray, sk: RestSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """51 face landmarks (brows 10, nose 9, eyes 12, mouth 20) as faces + barycentric coordinates,
    found by casting forward rays from a canonical layout onto the face."""
    e_l = sk.joint("left_eye_smplhf")
    cx, cy = 0.0, e_l[1]
    ex = e_l[0]
    pts: list[tuple[float, float]] = []
    for side in (-1, 1):  # brows, right then left (68-point order)
        for t in np.linspace(-1, 1, 5):
            pts.append((side * ex + t * 0.02 * (1 if side > 0 else -1), cy + 0.022 + 0.004 * (1 - t * t)))
    for t in np.linspace(0.0, 1.0, 4):
        pts.append((cx, cy - 0.005 - 0.035 * t))  # nose bridge
    for t in np.linspace(-1, 1, 5):
        pts.append((cx + 0.015 * t, cy - 0.048 + 0.004 * abs(t)))  # nostrils
    for side in (-1, 1):  # eyes
        for a in np.linspace(np.pi, -np.pi, 7)[:-1]:
            pts.append((side * ex + 0.013 * np.cos(a), cy + 0.005 * np.sin(a)))
    for a in np.linspace(np.pi, -np.pi, 13)[:-1]:
        pts.append((cx + 0.025 * np.cos(a), cy - 0.078 + 0.011 * np.sin(a)))  # outer lips
    for a in np.linspace(np.pi, -np.pi, 9)[:-1]:
        pts.append((cx + 0.015 * np.cos(a), cy - 0.078 + 0.004 * np.sin(a)))  # inner lips
    assert len(pts) == NUM_LANDMARKS
    mesh = trimesh.Trimesh(verts, faces, process=False)
    origins = np.array([[x, y, 0.5] for x, y in pts])
    dirs = np.tile([0.0, 0.0, -1.0], (len(pts), 1))
    from trimesh.ray.ray_triangle import RayMeshIntersector

    locs, ray_ids, tri_ids = RayMeshIntersector(mesh).intersects_location(origins, dirs, multiple_hits=True)
    face_idx = np.zeros(NUM_LANDMARKS, dtype=np.int64)
    bary = np.zeros((NUM_LANDMARKS, 3))
    for i in range(NUM_LANDMARKS):
        hits = np.nonzero(ray_ids == i)[0]
        h = hits[np.argmax(locs[hits, 2])]  # first hit from the front
        face_idx[i] = tri_ids[h]
        bary[i] = trimesh.triangles.points_to_barycentric(verts[faces[tri_ids[h]]][None], locs[h][None])[0]
    return face_idx, bary


def hands_mean(cfg: MannequinConfig) -> tuple[np.ndarray, np.ndarray]:
    """(45,) relaxed curl for each hand: flexion about the model's Z axis (palms face -Y in the T-pose);
    the thumb curls a little about its own axis. smplx adds this to hand poses (flat_hand_mean=False)."""
    out = []
    for sign in (-1.0, 1.0):  # left fingers point +X: flexing toward -Y is a negative rotation about +Z
        aa = []
        for finger in skel.FINGERS:
            for k in range(3):
                angle = cfg.finger_curl_rad[k] * (0.5 if finger == "thumb" else 1.0)
                aa.append([0.0, 0.0, sign * angle])
        out.append(np.array(aa).reshape(-1))
    return out[0], out[1]


# --------------------------------------------------------------------------------------------------
# Whole model


def build_mannequin(cfg: MannequinConfig = MannequinConfig()) -> dict[str, np.ndarray]:
    """All arrays of the SMPL-X npz (keys as in the official SMPLX_NEUTRAL.npz)."""
    sk = rest_skeleton(cfg.height_m)
    verts, faces = build_surface(sk, cfg)
    labels = vertex_labels(verts, sk)[1]
    roles = anatomical_vertices(verts, labels, sk)
    perm = fixed_id_permutation(len(verts), roles)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    verts = verts[perm]
    faces = inv[faces]
    weights, labels = skinning_weights(verts, faces, sk, cfg)
    _, closest = bone_distances(verts, sk)
    regressor, _ = joint_regressor(verts, sk.joints, closest)
    shapedirs = shape_directions(verts, labels, closest, sk.floor_y, cfg)
    lmk_faces, lmk_bary = face_landmarks(verts, faces, sk)
    hml, hmr = hands_mean(cfg)
    kintree = np.stack([skel.PARENTS.copy(), np.arange(skel.NUM_JOINTS)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # the official files store the root's parent as uint32 -1
    return {
        "v_template": verts.astype(np.float64),
        "f": faces.astype(np.uint32),
        "J_regressor": regressor.astype(np.float64),
        "weights": weights.astype(np.float64),
        "kintree_table": kintree,
        "shapedirs": shapedirs.astype(np.float64),
        "posedirs": np.zeros((len(verts), 3, NUM_POSE_BASIS), dtype=np.float32),  # float32: half the load time
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": hml,
        "hands_meanr": hmr,
        "lmk_faces_idx": lmk_faces.astype(np.int64),
        "lmk_bary_coords": lmk_bary.astype(np.float64),
        "joint_names": np.array(skel.JOINT_NAMES),
        "mannequin_version": np.array(MANNEQUIN_VERSION),
    }


def write_mannequin(out: str | Path, cfg: MannequinConfig = MannequinConfig()) -> dict:
    """Build and save ``out`` (npz, compressed) plus ``<out stem>.json`` with version and params."""
    t0 = time.perf_counter()
    arrays = build_mannequin(cfg)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    v = arrays["v_template"]
    info = {
        "format": "smplx-npz",
        "builder": "hosig.body.mannequin",
        "version": MANNEQUIN_VERSION,
        "config": asdict(cfg),
        "vertices": int(len(v)),
        "faces": int(len(arrays["f"])),
        "standing_height_m": float(v[:, 1].max() - v[:, 1].min()),
        "arrays_sha256": digest.hexdigest(),
        "proportions": "CMU mocap skeleton OFFSETs (02_01.bvh), scaled to height_m",
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return {"path": str(out), "bytes": out.stat().st_size, "build_s": round(time.perf_counter() - t0, 2), **info}
