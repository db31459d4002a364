"""Foot contacts, floor alignment and the foot-quality measures of the data report.

Why: the motion model learns where feet are planted from these labels, the retarget pins planted
feet, and the report compares foot skating of retargeted clips with the source capture using one
measure for both. Foot points are (left ankle, left toe, right ankle, right toe) — the order of
the dataset ``contacts`` channels. Heights are measured above each point's *standing height*
(its height above the sole when the foot is flat on the floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hosig.eval.metrics import foot_points_skating, horizontal_speed


@dataclass(frozen=True)
class ContactConfig:
    """Thresholds for contact labels (height above standing height and horizontal speed)."""

    height_m: float = 0.05
    speed_m_s: float = 0.30
    min_run: int = 2  # shorter contact runs are dropped (flicker)


def _drop_short_runs(mask: np.ndarray, min_run: int) -> np.ndarray:
    out = mask.copy()
    if min_run <= 1:
        return out
    for k in range(mask.shape[1]):
        col = mask[:, k]
        edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        for s, e in zip(starts, ends):
            if e - s < min_run:
                out[s:e, k] = False
    return out


def contact_labels(
    feet: np.ndarray, rest_heights: np.ndarray, fps: float, config: ContactConfig = ContactConfig()
) -> np.ndarray:
    """(T,4,3) foot points above a floor at z=0 -> (T,4) bool: low and (nearly) still."""
    feet = np.asarray(feet, dtype=np.float64)
    low = (feet[..., 2] - np.asarray(rest_heights)[None]) < config.height_m
    still = horizontal_speed(feet, fps) < config.speed_m_s
    return _drop_short_runs(low & still, config.min_run)


def contact_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> [(start, end)] half-open runs of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))


def floor_height(feet: np.ndarray, rest_heights: np.ndarray, percentile: float = 10.0) -> float:
    """Floor z under a clip: a low percentile of the per-frame lowest sole estimate.

    feet (T,4,3); a point's sole estimate is its z minus its standing height. The per-frame minimum
    is on the floor whenever a foot is planted, so a low percentile is robust to jumps and noise.
    """
    soles = np.asarray(feet)[..., 2] - np.asarray(rest_heights)[None]  # (T,4)
    return float(np.percentile(soles.min(axis=1), percentile))


@dataclass(frozen=True)
class SkatingResult:
    """Mean horizontal speed of foot points in contact (cm/s) and how many samples were in contact."""

    mean_cm_s: float
    contact_samples: int
    total_samples: int


def foot_skating(
    feet: np.ndarray, fps: float, rest_heights: np.ndarray | None = None, threshold_m: float = 0.05
) -> SkatingResult:
    """Foot skating exactly as `hosig.eval.metrics.foot_points_skating` defines it (one measure for
    all sources), reported with the contact sample counts the data report shows."""
    feet = np.asarray(feet, dtype=np.float64)
    if feet.shape[0] < 3:
        return SkatingResult(float("nan"), 0, 0)
    result = foot_points_skating(feet, fps, rest_heights, threshold_m)
    n = int(round(result.contact_fraction * feet.shape[0] * feet.shape[1]))
    return SkatingResult(result.mean_cm_s if n else float("nan"), n, int(feet.shape[0] * feet.shape[1]))


def planted_sliding(
    feet: np.ndarray, fps: float, rest_heights: np.ndarray | None = None, config: ContactConfig = ContactConfig()
) -> SkatingResult:
    """Mean horizontal speed (cm/s) of foot points while *planted* (the `contact_labels` rule: low
    and slower than ``config.speed_m_s``). Complements `foot_skating`, whose height-only rule also
    counts a swinging toe that passes low over the floor; this one isolates sliding in stance.
    """
    feet = np.asarray(feet, dtype=np.float64)
    if feet.shape[0] < 3:
        return SkatingResult(float("nan"), 0, 0)
    base = np.percentile(feet[..., 2], 5, axis=0) if rest_heights is None else np.asarray(rest_heights)
    planted = contact_labels(feet, base, fps, config)
    speed = horizontal_speed(feet, fps) * 100.0
    n = int(planted.sum())
    return SkatingResult(float(speed[planted].mean()) if n else float("nan"), n, int(planted.size))


def floor_penetration(feet: np.ndarray, rest_heights: np.ndarray) -> tuple[float, float]:
    """(mean over frames, max) depth in metres of foot points below their standing height."""
    depth = np.clip(np.asarray(rest_heights)[None] - np.asarray(feet)[..., 2], 0.0, None)  # (T,4)
    per_frame = depth.max(axis=1)
    return float(per_frame.mean()), float(per_frame.max(initial=0.0))


@dataclass(frozen=True)
class DriftConfig:
    """When a clip's planted-foot height drifts linearly in time, it is a capture artefact."""

    still_m_s: float = 0.10  # a toe slower than this (horizontally and vertically) is planted
    inlier_m: float = 0.02  # robust fit: planted samples further than this from the line are outliers
    max_residual_m: float = 0.012  # flat-floor evidence: RMS of the inliers
    max_inlier_share_loss: float = 0.3  # at least 70 % of planted samples must fit the line
    max_total_m: float = 0.12  # never correct more than this over the clip (stairs stay stairs)
    min_samples: int = 10


def floor_drift(toes: np.ndarray, fps: float, config: DriftConfig = DriftConfig()) -> np.ndarray:
    """(T,P,3) toe points -> (T,) height offset of the floor under a clip that drifts in time.

    Why: some converted CMU clips (the "hip-corrected" BVH) let the whole body rise or sink a few
    centimetres over a clip, so planted feet end up floating or below the floor. A robust line
    through the planted toe heights over time measures it; it is only trusted when the planted
    samples fit one line well (a flat floor), so stairs, ladders and jumps are left alone.
    Returns zeros when the evidence is weak; subtract the result from every z.
    """
    toes = np.asarray(toes, dtype=np.float64)
    t_count = toes.shape[0]
    zero = np.zeros(t_count)
    if t_count < 3:
        return zero
    speed = horizontal_speed(toes, fps)
    vz = np.abs(np.gradient(toes[..., 2], axis=0)) * fps
    planted = (speed < config.still_m_s) & (vz < config.still_m_s)
    frames, cols = np.nonzero(planted)
    if len(frames) < config.min_samples:
        return zero
    heights = toes[frames, cols, 2]
    times = frames / fps
    a_mat = np.stack([times, np.ones_like(times)], axis=1)
    keep = heights < np.percentile(heights, 50) + config.inlier_m
    coef = np.zeros(2)
    for _ in range(4):
        if keep.sum() < config.min_samples:
            return zero
        coef, *_ = np.linalg.lstsq(a_mat[keep], heights[keep], rcond=None)
        keep = np.abs(heights - a_mat @ coef) < config.inlier_m
    if keep.mean() < 1.0 - config.max_inlier_share_loss or keep.sum() < config.min_samples:
        return zero
    resid = heights[keep] - a_mat[keep] @ coef
    duration = (t_count - 1) / fps
    if np.sqrt(np.mean(resid**2)) > config.max_residual_m or abs(coef[0]) * duration > config.max_total_m:
        return zero
    t_all = np.arange(t_count) / fps
    return coef[0] * (t_all - t_all.mean())
