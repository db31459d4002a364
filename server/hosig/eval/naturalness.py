"""`hosig eval motion`: generated motion against real capture, as generated/real ratios.

Real capture may be BVH (mapped onto SMPL-X joint names through the CMU joint map, so only the
joints both skeletons share are compared), a clip.npz, or a prepared dataset .npz (each clip on
its own). Measuring a retargeted real clip with the same code gives the ceiling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hosig.body.skeleton import JOINT_NAMES
from hosig.errors import InputError
from hosig.npz import read_npz
from hosig.runs import true_runs
from hosig.eval.metrics import FPS, floor_penetration, foot_skating, naturalness_ratios

Named = tuple[str, np.ndarray]  # (name, joints (T,55,3) Z-up, 30 fps)


def _expand(paths: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"not found: {p}")
    if not out:
        raise InputError(f"no {'/'.join(suffixes)} files in {', '.join(paths)}")
    return out


def _bvh_joints(path: Path) -> np.ndarray:
    """(T,55,3) with the CMU-mapped SMPL-X joints filled (others NaN), floor at z=0."""
    from hosig.motion.data.cmu import CMU_JOINT_MAP, load_cmu_capture

    cap = load_cmu_capture(path)
    joints = np.full((cap.num_frames, 55, 3), np.nan)
    for smplx_name, point in CMU_JOINT_MAP.positions.items():
        joints[:, JOINT_NAMES.index(smplx_name)] = cap.point(point)
    feet = joints[:, [JOINT_NAMES.index("left_foot"), JOINT_NAMES.index("right_foot")], 2]
    joints[..., 2] -= np.nanpercentile(feet, 5)
    return joints


def _npz_joints(path: Path) -> list[Named]:
    data = read_npz(path, "motion file")
    if "joints" not in data:
        raise InputError(f"{path}: no 'joints' array (expected a clip.npz or a prepared dataset)")
    joints = np.asarray(data["joints"], dtype=np.float64)
    if "clip_start" in data and "clip_length" in data:
        return [(f"{path.stem}[{i}]", joints[s:s + n]) for i, (s, n) in enumerate(zip(data["clip_start"], data["clip_length"]))]
    return [(path.stem, joints)]


def load_real(paths: list[str]) -> list[Named]:
    out: list[Named] = []
    for p in _expand(paths, (".bvh", ".npz")):
        out.extend(_npz_joints(p) if p.suffix.lower() == ".npz" else [(p.stem, _bvh_joints(p))])
    return out


def load_generated(paths: list[str]) -> list[Named]:
    out: list[Named] = []
    for p in _expand(paths, (".npz",)):
        out.extend(_npz_joints(p))
    return out


def sole_sliding_of(paths: list[str], body: Any) -> float:
    """Frame-weighted `metrics.sole_sliding` (cm/s) over the clips in the .npz files among ``paths``
    that carry body parameters (clip.npz, prepared datasets; floor at z = 0); NaN when none do.

    Why whole clips, not `moving_segments`: a foot must stay put while the body stands too."""
    from hosig.eval.geometry import clip_sole_sliding

    total = weight = 0.0
    for p in _expand(paths, (".bvh", ".npz")):
        if p.suffix.lower() != ".npz":
            continue
        data = read_npz(p, "motion file")
        if "poses" not in data or "trans" not in data:
            continue
        poses, trans = np.asarray(data["poses"]), np.asarray(data["trans"])
        spans = list(zip(data["clip_start"], data["clip_length"])) if "clip_start" in data else [(0, len(poses))]
        for s, n in spans:
            res = clip_sole_sliding(body, poses[s:s + n], trans[s:s + n])
            if np.isfinite(res.mean_cm_s):
                total += res.mean_cm_s * n
                weight += n
    return total / weight if weight else float("nan")


MOVING_SPEED_M_S = 0.5  # pelvis speed above which a frame counts as locomotion
MIN_SEGMENT_FRAMES = 15


def moving_segments(clips: list[Named], min_speed: float = MOVING_SPEED_M_S,
                    min_frames: int = MIN_SEGMENT_FRAMES) -> list[Named]:
    """The locomotion parts of clips: contiguous runs where the pelvis moves faster than
    ``min_speed`` (horizontal), at least ``min_frames`` long, each as its own clip.

    Why: a pick clip stands still for a second or two; compared with real walks its mean joint
    speed reads low for a reason that has nothing to do with how it walks. Cut both sides the same
    way and walking is compared with walking.
    """
    out: list[Named] = []
    for name, joints in clips:
        pelvis = joints[:, 0, :2]
        if np.isnan(pelvis).any() or len(joints) < 3:
            continue
        speed = np.linalg.norm(np.gradient(pelvis, axis=0), axis=1) * FPS
        for k, (a, b) in enumerate(true_runs(speed > min_speed)):
            if b - a >= min_frames:
                out.append((f"{name}#{k}", joints[a:b]))
    return out


def naturalness_report(generated: list[Named], real: list[Named]) -> dict[str, Any]:
    """Ratios generated/real of velocity, acceleration, jerk; foot skating and floor penetration."""
    gen = [j for _, j in generated]
    ref = [j for _, j in real]
    ratios = naturalness_ratios(gen, ref, FPS)

    def skate(clips: list[np.ndarray]) -> float:
        vals = [(foot_skating(c).mean_cm_s, len(c)) for c in clips if not np.isnan(c[:, [7, 8, 10, 11]]).any()]
        total = sum(n for _, n in vals)
        return float(sum(v * n for v, n in vals) / total) if total else float("nan")

    def floor(clips: list[np.ndarray]) -> float:
        vals = [floor_penetration(c) for c in clips if not np.isnan(c[:, [10, 11]]).any()]
        return float(max(vals)) if vals else float("nan")

    skate_gen, skate_real = skate(gen), skate(ref)
    return {
        "generated_clips": len(gen),
        "real_clips": len(ref),
        "generated_frames": int(sum(len(c) for c in gen)),
        "real_frames": int(sum(len(c) for c in ref)),
        "velocity_ratio": ratios["velocity"],
        "acceleration_ratio": ratios["acceleration"],
        "jerk_ratio": ratios["jerk"],
        "generated": {k.removeprefix("generated_"): v for k, v in ratios.items() if k.startswith("generated_")},
        "real": {k.removeprefix("real_"): v for k, v in ratios.items() if k.startswith("real_")},
        "foot_skating_cm_s": {"generated": skate_gen, "real": skate_real,
                              "ratio": skate_gen / skate_real if skate_real > 0 else float("nan")},
        "floor_penetration_m": {"generated": floor(gen), "real": floor(ref)},
    }
