"""Foot contacts, floor drift and the foot measures, on constructed foot tracks."""

from __future__ import annotations

import numpy as np

from hosig.motion.data.contacts import (
    contact_labels,
    contact_runs,
    floor_drift,
    floor_height,
    floor_penetration,
    foot_skating,
    planted_sliding,
)

FPS = 30.0
REST = np.array([0.08, 0.04, 0.08, 0.04])


def walking_feet(n: int = 120, slide_m_s: float = 0.0) -> np.ndarray:
    """(n,4,3) feet alternating 0.5 s stance / 0.5 s swing, stance feet sliding at ``slide_m_s``."""
    t = np.arange(n) / FPS
    feet = np.zeros((n, 4, 3))
    for side, offset in ((0, 0.0), (2, 0.5)):
        phase = ((t + offset) % 1.0) < 0.5  # stance
        x = np.zeros(n)
        for i in range(1, n):
            x[i] = x[i - 1] + (slide_m_s if phase[i] else 2.4) / FPS
        lift = np.where(phase, 0.0, 0.12 * np.sin(np.pi * (((t + offset) % 1.0) - 0.5) / 0.5))
        for k, h in ((side, REST[side]), (side + 1, REST[side + 1])):
            feet[:, k, 0] = x + (0.15 if k % 2 else 0.0)
            feet[:, k, 1] = 0.1 * (1 if side == 0 else -1)
            feet[:, k, 2] = h + lift
    return feet


def test_contact_labels_mark_stance_not_swing() -> None:
    feet = walking_feet()
    labels = contact_labels(feet, REST, FPS)
    t = np.arange(len(feet)) / FPS
    stance_left = (t % 1.0) < 0.5
    agree = (labels[:, 0] == stance_left)[5:-5].mean()
    assert agree > 0.85
    runs = contact_runs(labels[:, 0])
    assert 3 <= len(runs) <= 5


def test_sliding_measures_see_stance_slide() -> None:
    still = walking_feet(slide_m_s=0.0)
    slide = walking_feet(slide_m_s=0.1)
    assert planted_sliding(still, FPS, REST).mean_cm_s < 1.0
    assert 8.0 < planted_sliding(slide, FPS, REST).mean_cm_s < 12.0
    assert foot_skating(slide, FPS, REST).mean_cm_s > foot_skating(still, FPS, REST).mean_cm_s


def test_floor_height_and_penetration() -> None:
    feet = walking_feet()
    feet[..., 2] += 0.3  # standing on a 30 cm platform
    assert abs(floor_height(feet, REST) - 0.3) < 1e-6
    feet[..., 2] -= 0.3
    feet[10, 1, 2] = REST[1] - 0.02
    mean, worst = floor_penetration(feet, REST)
    assert abs(worst - 0.02) < 1e-9 and 0 < mean < 0.001


def test_floor_drift_removed_only_for_a_flat_floor() -> None:
    feet = walking_feet(240)
    n = len(feet)
    ramp = np.linspace(0.0, 0.05, n)  # 5 cm rise over 8 s: a capture artefact
    drifting = feet.copy()
    drifting[..., 2] += ramp[:, None]
    toes = drifting[:, [1, 3]]
    d = floor_drift(toes, FPS)
    np.testing.assert_allclose(d - d.mean(), ramp - ramp.mean(), atol=2e-3)
    assert np.abs(floor_drift(feet[:, [1, 3]], FPS)).max() < 1e-3  # level floor: nothing to remove
    # Stairs: planted heights jump by 17 cm per step -> not a drift, left alone.
    stairs = feet.copy()
    stairs[..., 2] += 0.17 * np.floor(np.arange(n) / 30)[:, None]
    assert np.abs(floor_drift(stairs[:, [1, 3]], FPS)).max() == 0.0
