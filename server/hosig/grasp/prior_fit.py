"""Fit the grasp pose prior (a Gaussian over the 21 SMPL-X body joint rotations) on real capture.

Why a Gaussian: the grasp optimiser needs a cheap, smooth, differentiable "does this look human"
term; a full-covariance Gaussian over axis-angle body pose captures the joint couplings (spine
bends together, knees with hips) and fits in a few kilobytes. Per-joint angle limits come from
the same data (robust percentiles, widened), so they need no hand-written sign conventions.

Sources, best first:
- the prepared motion dataset (`hosig data prepare`, npz with ``poses (N,165)`` SMPL-X Z-up), or
- the CMU BVH clips directly (``/work/shared/data/cmu/bvh``), with a quick joint-to-joint copy of
  local rotations: both skeletons share a T-pose rest with world-aligned joint frames (Y up,
  facing +Z), so a BVH local rotation is close to the SMPL-X local rotation of the matching joint.

Regenerate the committed asset with::

    .venv/bin/python -m hosig.grasp.prior_fit --bvh-dir /work/shared/data/cmu/bvh \
        --out server/hosig/assets/pose_prior.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from hosig.errors import InputError

# SMPL-X body joints 1..21 in order, and the CMU (cgspeed) joints whose local rotations feed them.
BODY_JOINTS: list[str] = [
    "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar",
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
    "right_wrist",
]
# Each entry: list of (bvh joint, fraction of its rotation) composed left to right; [] = identity.
CMU_TO_SMPLX: dict[str, list[tuple[str, float]]] = {
    "left_hip": [("lButtock", 1.0), ("lThigh", 1.0)],
    "right_hip": [("rButtock", 1.0), ("rThigh", 1.0)],
    "spine1": [("abdomen", 1.0)],
    "left_knee": [("lShin", 1.0)],
    "right_knee": [("rShin", 1.0)],
    "spine2": [("chest", 0.5)],
    "left_ankle": [("lFoot", 1.0)],
    "right_ankle": [("rFoot", 1.0)],
    "spine3": [("chest", 0.5)],
    "left_foot": [],
    "right_foot": [],
    "neck": [("neck", 1.0)],
    "left_collar": [("lCollar", 1.0)],
    "right_collar": [("rCollar", 1.0)],
    "head": [("head", 1.0)],
    "left_shoulder": [("lShldr", 1.0)],
    "right_shoulder": [("rShldr", 1.0)],
    "left_elbow": [("lForeArm", 1.0)],
    "right_elbow": [("rForeArm", 1.0)],
    "left_wrist": [("lHand", 1.0)],
    "right_wrist": [("rHand", 1.0)],
}
# Categories that show bending, squatting, reaching and handling get more weight than walking.
CATEGORY_WEIGHT: dict[str, float] = {
    "reach_pickup_bend": 4.0, "object_manip": 3.0, "sit_stand": 2.0, "variety": 1.0,
    "steps_climb": 1.0, "turn_navigate": 1.0, "walk": 0.5, "run": 0.25,
}


def read_bvh_rotations(path: Path, step: int = 8) -> dict[str, np.ndarray]:
    """Local rotations of every channelled joint: name -> (T,3,3), every ``step``-th frame.

    Drops the first 4 frames (synthetic rest + retarget jolt, per the data README).
    """
    lines = path.read_text().splitlines()
    names: list[str] = []
    channels: list[list[str]] = []
    i = 0
    while i < len(lines) and not lines[i].strip().startswith("MOTION"):
        tok = lines[i].split()
        if tok and tok[0] in ("ROOT", "JOINT"):
            names.append(tok[1])
        elif tok and tok[0] == "CHANNELS":
            channels.append(tok[2:])
        i += 1
    if len(names) != len(channels):
        raise InputError(f"{path}: {len(names)} joints but {len(channels)} CHANNELS lines")
    data = np.array([list(map(float, ln.split())) for ln in lines[i + 3 :] if ln.strip()], dtype=np.float64)
    data = data[4::step]
    out: dict[str, np.ndarray] = {}
    col = 0
    for name, chans in zip(names, channels):
        rot_chans = [c for c in chans if c.endswith("rotation")]
        idx = [col + chans.index(c) for c in rot_chans]
        order = "".join(c[0] for c in rot_chans)  # e.g. "ZXY", intrinsic
        out[name] = Rotation.from_euler(order.upper(), data[:, idx], degrees=True).as_matrix()
        col += len(chans)
    return out


def bvh_body_pose(path: Path, step: int = 8) -> np.ndarray:
    """(T,63) SMPL-X body pose (axis-angle, model frame locals) from one CMU BVH clip."""
    rots = read_bvh_rotations(path, step)
    frames = len(next(iter(rots.values())))
    pose = np.zeros((frames, 21, 3))
    for j, joint in enumerate(BODY_JOINTS):
        total = Rotation.identity(frames)
        for bvh_name, frac in CMU_TO_SMPLX[joint]:
            r = Rotation.from_matrix(rots[bvh_name])
            total = total * Rotation.from_rotvec(r.as_rotvec() * frac)
        pose[:, j] = total.as_rotvec()
    return pose.reshape(frames, 63)


def _mirror_body_pose(pose: np.ndarray) -> np.ndarray:
    """Left/right mirror of (N,63) body pose about the model's x=0 plane (doubles the data)."""
    p = pose.reshape(-1, 21, 3).copy()
    p[..., 1] *= -1.0
    p[..., 2] *= -1.0
    swap = list(range(21))
    for j, name in enumerate(BODY_JOINTS):
        if name.startswith("left_"):
            k = BODY_JOINTS.index("right_" + name[5:])
            swap[j], swap[k] = k, j
    return p[:, swap].reshape(-1, 63)


def collect_from_bvh(bvh_dir: Path, index_tsv: Path | None = None, step: int = 8) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N,63) poses, (N,) weights and the clip names from a CMU BVH folder."""
    categories: dict[str, str] = {}
    if index_tsv is None:
        index_tsv = bvh_dir.parent / "INDEX.tsv"
    if index_tsv.exists():
        for row in index_tsv.read_text().splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) >= 7:
                categories[Path(cols[0]).name] = cols[6]
    files = sorted(bvh_dir.glob("*.bvh"))
    if not files:
        raise InputError(f"no .bvh files in {bvh_dir}")
    poses, weights = [], []
    for f in files:
        p = bvh_body_pose(f, step)
        w = CATEGORY_WEIGHT.get(categories.get(f.name, "variety"), 1.0)
        poses.append(p)
        weights.append(np.full(len(p), w))
    return np.concatenate(poses), np.concatenate(weights), [f.name for f in files]


def collect_from_dataset(path: Path, step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(N,63) body poses and unit weights from a prepared dataset npz (``poses (N,165)``)."""
    with np.load(path, allow_pickle=False) as z:
        poses = np.asarray(z["poses"], dtype=np.float64)[::step, 3:66]
    return poses, np.ones(len(poses))


# Joints the capture barely moves (CMU collars, toes, a split chest, hands that never flex) would get
# a near-zero variance and forbid any motion there; these floors (rad, per component std) and
# minimum ranges (rad, symmetric about 0) keep them usable while the data shapes the rest.
STD_FLOOR: dict[str, float] = {
    "left_wrist": 0.6, "right_wrist": 0.6, "left_collar": 0.15, "right_collar": 0.15,
    "spine2": 0.15, "spine3": 0.15, "left_foot": 0.1, "right_foot": 0.1,
}
DEFAULT_STD_FLOOR = 0.08
MIN_RANGE: dict[str, float] = {
    "left_wrist": 1.3, "right_wrist": 1.3, "left_collar": 0.5, "right_collar": 0.5,
    "spine2": 0.6, "spine3": 0.6, "left_foot": 0.4, "right_foot": 0.4, "neck": 0.8, "head": 0.8,
}


def fit_gaussian(poses: np.ndarray, weights: np.ndarray, shrink: float = 0.05) -> dict[str, np.ndarray]:
    """Weighted mean + full covariance (shrunk toward its diagonal, floored), and angle limits."""
    w = weights / weights.sum()
    mean = (w[:, None] * poses).sum(0)
    centred = poses - mean
    cov = (w[:, None] * centred).T @ centred
    cov = (1.0 - shrink) * cov + shrink * np.diag(np.diag(cov))
    floor = np.repeat([STD_FLOOR.get(n, DEFAULT_STD_FLOOR) for n in BODY_JOINTS], 3) ** 2
    cov = cov + np.diag(np.maximum(floor - np.diag(cov), 0.0)) + 1e-4 * np.eye(63)
    # Limits: 0.5 / 99.5 percentiles per component, widened by 0.35 rad (capture rarely hits the ends).
    rng = np.repeat([MIN_RANGE.get(n, 0.0) for n in BODY_JOINTS], 3)
    lo = np.minimum(np.percentile(poses, 0.5, axis=0) - 0.35, -rng)
    hi = np.maximum(np.percentile(poses, 99.5, axis=0) + 0.35, rng)
    return {
        "mean": mean.astype(np.float32),
        "cov": cov.astype(np.float32),
        "precision": np.linalg.inv(cov).astype(np.float32),
        "limits_lo": lo.astype(np.float32),
        "limits_hi": hi.astype(np.float32),
    }


def main(argv: list[str] | None = None) -> int:
    from safetensors.numpy import save_file

    parser = argparse.ArgumentParser(prog="python -m hosig.grasp.prior_fit", description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--bvh-dir", type=Path, help="CMU BVH folder (…/cmu/bvh)")
    src.add_argument("--dataset", type=Path, help="prepared dataset npz with poses (N,165)")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors")
    args = parser.parse_args(argv)
    if args.bvh_dir:
        poses, weights, clips = collect_from_bvh(args.bvh_dir)
        source = {"kind": "cmu-bvh", "path": str(args.bvh_dir), "clips": len(clips),
                  "mapping": "cgspeed joint local rotations copied to SMPL-X joints (chest split over spine2/3, buttock+thigh -> hip)"}
    else:
        poses, weights = collect_from_dataset(args.dataset)
        source = {"kind": "hosig-dataset", "path": str(args.dataset)}
    poses = np.concatenate([poses, _mirror_body_pose(poses)])
    weights = np.concatenate([weights, weights])
    fit = fit_gaussian(poses, weights)
    note = {
        "what": "Gaussian pose prior over SMPL-X body_pose (21 joints x axis-angle, model frame locals)",
        "source": source, "frames": int(len(poses)), "mirrored": True,
        "category_weights": CATEGORY_WEIGHT, "std_floor": STD_FLOOR, "default_std_floor": DEFAULT_STD_FLOOR,
        "min_range": MIN_RANGE, "command": "python -m hosig.grasp.prior_fit " + " ".join(argv or sys.argv[1:]),
        "license": "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), free for any use",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(fit, str(args.out), metadata={"note": json.dumps(note)})
    args.out.with_suffix(".json").write_text(json.dumps(note, indent=2) + "\n")
    sys.stderr.write(f"pose prior: {len(poses)} frames -> {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
