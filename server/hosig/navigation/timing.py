"""When the walker is where, and which way it faces.

Speed profile along the line: at most the walking speed, at most sqrt(lateral_accel / curvature)
on turns (people slow down on tight turns), accelerating from rest at the start and decelerating
to rest at the stand point (forward/backward passes of v^2 = v0^2 + 2 a ds). Times are snapped to
the 30 fps frame grid, strictly increasing. Headings follow the walking direction and blend
smoothly out of the start heading and into the final facing.
"""

from __future__ import annotations

import math

import numpy as np

from hosig.easing import smoothstep
from hosig.navigation.config import NavConfig
from hosig.navigation.smoothing import arc_length, curvature


def wrap(angle: np.ndarray | float) -> np.ndarray | float:
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def speed_profile(dense: np.ndarray, config: NavConfig) -> np.ndarray:
    """Speed (M,) m/s at each point of a dense line (M, 2), zero at both ends."""
    m = len(dense)
    s = arc_length(dense)
    kappa = curvature(dense)
    # curvature of a 2 cm polyline is noisy: take the local maximum over ~10 cm
    if m > 5:
        from scipy.ndimage import maximum_filter1d

        kappa = maximum_filter1d(kappa, size=5)
    vmax = np.minimum(config.speed, np.sqrt(config.lateral_accel / np.maximum(kappa, 1e-9)))
    vmax = np.maximum(vmax, config.min_speed)
    # v_i^2 = min(vmax_i^2, v_{i-1}^2 + 2 a ds) from rest unrolls to
    # v_i^2 = min_{j <= i}(vmax_j^2 - 2 a s_j) + 2 a s_i  (with vmax_0 = 0): a running minimum.
    vm2 = vmax**2
    vm2[0] = 0.0
    fwd = np.minimum.accumulate(vm2 - 2.0 * config.accel * s) + 2.0 * config.accel * s
    vm2[-1] = 0.0
    back = (np.minimum.accumulate((vm2 + 2.0 * config.decel * s)[::-1]))[::-1] - 2.0 * config.decel * s
    v = np.sqrt(np.maximum(np.minimum(np.minimum(fwd, back), vmax**2), 0.0))
    v[0] = 0.0
    v[-1] = 0.0
    return v


def time_along(dense: np.ndarray, config: NavConfig) -> np.ndarray:
    """Seconds (M,) from the start to each point of the dense line."""
    if len(dense) < 2:
        return np.zeros(len(dense))
    v = speed_profile(dense, config)
    ds = np.diff(arc_length(dense))
    vavg = np.maximum(0.5 * (v[1:] + v[:-1]), 1e-3)
    return np.concatenate([[0.0], np.cumsum(ds / vavg)])


def sample_by_time(dense: np.ndarray, config: NavConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints (N, 2) and times (N,) every k frames (k from `spacing` at full walking speed, so
    spacing <= config.spacing), the last one at the stand point on the first whole frame after
    arrival. Sampling at exact frame times (rather than rounding times of evenly spaced points)
    keeps the walked speed between waypoints free of frame-rounding jitter."""
    s_dense = arc_length(dense)
    t_dense = time_along(dense, config)
    total_t = float(t_dense[-1])
    k = max(1, int(math.floor(config.spacing / config.speed * config.fps + 1e-9)))
    step = k / float(config.fps)
    t = np.arange(0.0, total_t - 1e-9, step)
    t_end = math.ceil(total_t * config.fps - 1e-6) / config.fps
    t = np.concatenate([t, [max(t_end, t[-1] + 1.0 / config.fps if len(t) else t_end)]])
    s = np.interp(np.minimum(t, total_t), t_dense, s_dense)
    way = np.stack([np.interp(s, s_dense, dense[:, 0]), np.interp(s, s_dense, dense[:, 1])], axis=1)
    way[0], way[-1] = dense[0], dense[-1]
    return way, np.round(t * config.fps) / config.fps


def snap_times(times: np.ndarray, fps: int) -> np.ndarray:
    """Round to whole frames, keeping every time at least one frame after the previous one."""
    frames = np.round(np.asarray(times) * fps).astype(np.int64)
    for i in range(1, len(frames)):
        frames[i] = max(frames[i], frames[i - 1] + 1)
    return frames / float(fps)


def headings_along(
    waypoints: np.ndarray,
    final_heading: float,
    start_heading: float | None,
    config: NavConfig,
) -> np.ndarray:
    """Heading (N,) at each waypoint: walking direction, blended from the start heading over
    `start_turn_distance` and into `final_heading` over `end_turn_distance` (smoothstep)."""
    n = len(waypoints)
    s = arc_length(waypoints)
    total = s[-1] if n else 0.0
    if n < 2 or total < 1e-6:
        h0 = final_heading if start_heading is None else start_heading
        return np.linspace(0.0, 1.0, max(n, 1)) * wrap(final_heading - h0) + h0
    d = np.diff(waypoints, axis=0)
    seg = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    path_h = np.concatenate([seg[:1], 0.5 * (seg[1:] + seg[:-1]), seg[-1:]])
    h = path_h.copy()
    if start_heading is not None:
        dist = max(min(config.start_turn_distance, 0.5 * total), 1e-6)
        w = smoothstep(1.0 - s / dist)  # 1 at the start, 0 after `dist`
        h = h + w * wrap(start_heading - path_h)
    dist = max(min(config.end_turn_distance, 0.5 * total), 1e-6)
    w = smoothstep((s - (total - dist)) / dist)  # 0 before, 1 at the stand point
    h = h + w * wrap(final_heading - h)
    h = np.unwrap(np.asarray(wrap(h)))
    h[-1] = h[-1] + float(wrap(final_heading - h[-1]))
    return h


def turn_then_walk(
    way: np.ndarray, times: np.ndarray, walk_h: np.ndarray, start_heading: float, config: NavConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn on the spot from `start_heading` to `walk_h[0]` at `turn_rate` (extra waypoints at the
    start position every few frames), then walk `way`/`times` with headings `walk_h` (N,).

    Used when the start heading points well away from the path (> `turn_in_place_above`), and
    for short repositioning steps, which are taken facing the target (a side-step)."""
    delta = float(wrap(walk_h[0] - start_heading))
    k = max(1, int(round(config.fps * 0.5 / max(config.turn_rate, 1e-3))))  # ~0.5 rad per waypoint
    n_frames = max(1, int(math.ceil(abs(delta) / config.turn_rate * config.fps)))
    frames = np.unique(np.concatenate([np.arange(0, n_frames, k), [n_frames]]))
    turn_h = start_heading + delta * smoothstep(frames / n_frames)
    shift = n_frames / float(config.fps)
    out_way = np.concatenate([np.repeat(way[:1], len(frames) - 1, axis=0), way])
    out_t = np.concatenate([frames[:-1] / float(config.fps), np.asarray(times) + shift])
    out_h = np.concatenate([turn_h[:-1], np.asarray(walk_h) - walk_h[0] + turn_h[-1]])
    return out_way, out_t, out_h
