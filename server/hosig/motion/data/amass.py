"""AMASS motion files (``*.npz`` with SMPL-H 156 or SMPL-X 165 poses) -> `SmplxMotion`.

Conventions (AMASS / MoSh++ as read by human_body_prior):
- The AMASS world is **Z up** already: ``root_orient`` maps the body model's Y-up frame into a
  Z-up world, so poses[:, :3] is used as our Z-up global orient unchanged.
- ``trans`` is the body-model translation in that world. It was solved for the subject's own
  shape; we drive our body (zero betas) with the same rotations and translation, then move the
  floor to z = 0 from the feet, so the small pelvis-offset difference does not matter.
- Hand poses are absolute axis-angle (no PCA, no hands mean); smplx with ``flat_hand_mean=False``
  wants them relative to the mean, so ``hands_mean`` is subtracted.
- Frame rate: ``mocap_framerate`` (SMPL-H) or ``mocap_frame_rate`` (SMPL-X); resampled to 30 fps.
- Validity: body and hands captured; jaw and eyes are not (AMASS has no face capture).
- ``betas`` and ``gender`` are ignored (the dataset is for one body; documented in the report).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hosig.body.skeleton import NUM_JOINTS
from hosig.errors import InputError
from hosig.motion.data.resample import TARGET_FPS, resample_axis_angle, resample_linear
from hosig.motion.data.smplx_motion import SmplxMotion

AMASS_VALID = np.ones(NUM_JOINTS, dtype=bool)
AMASS_VALID[22:25] = False  # jaw, left eye, right eye


def amass_valid() -> np.ndarray:
    return AMASS_VALID.copy()


def load_amass(
    path: str | Path, hands_mean_left: np.ndarray, hands_mean_right: np.ndarray, category: str = "amass"
) -> SmplxMotion:
    """Read one AMASS npz; InputError for non-motion files (e.g. ``shape.npz``) or bad arrays."""
    p = Path(path)
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{p}: not a readable AMASS .npz ({type(err).__name__}: {err})") from None
    with data:
        if "poses" not in data.files or "trans" not in data.files:
            raise InputError(f"{p}: not an AMASS motion file (needs 'poses' and 'trans'; has {', '.join(data.files)})")
        rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in data.files), None)
        if rate_key is None:
            raise InputError(f"{p}: AMASS file has no 'mocap_framerate'/'mocap_frame_rate'")
        try:
            poses = np.asarray(data["poses"], dtype=np.float64)
            trans = np.asarray(data["trans"], dtype=np.float64)
            fps = float(np.asarray(data[rate_key]))
        except (ValueError, TypeError) as err:
            raise InputError(f"{p}: unreadable AMASS arrays: {err}") from None
    if poses.ndim != 2 or poses.shape[1] not in (156, 165):
        raise InputError(f"{p}: AMASS 'poses' must be (T,156) SMPL-H or (T,165) SMPL-X, got {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise InputError(f"{p}: AMASS 'trans' must be ({poses.shape[0]},3), got {trans.shape}")
    if len(poses) < 2:
        raise InputError(f"{p}: AMASS clip has {len(poses)} frames; need at least 2")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise InputError(f"{p}: AMASS poses/trans contain NaN or inf")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{p}: AMASS frame rate must be positive, got {fps}")

    full = np.zeros((len(poses), NUM_JOINTS * 3))
    full[:, :66] = poses[:, :66]  # root + 21 body joints
    if poses.shape[1] == 156:
        hands = poses[:, 66:156]
        kind = "SMPL-H"
    else:
        full[:, 66:75] = poses[:, 66:75]  # jaw/eyes kept (marked invalid)
        hands = poses[:, 75:165]
        kind = "SMPL-X"
    full[:, 75:165] = hands
    notes = []
    if abs(fps - TARGET_FPS) > 1e-3:  # slerp the actual rotations, then make hands mean-relative
        full = resample_axis_angle(full, fps, TARGET_FPS)
        trans = resample_linear(trans, fps, TARGET_FPS)
        notes.append(f"resampled {fps:g} -> {TARGET_FPS:g} fps")
    full[:, 75:120] -= np.asarray(hands_mean_left).reshape(45)
    full[:, 120:165] -= np.asarray(hands_mean_right).reshape(45)
    notes.append(kind)
    return SmplxMotion(
        name=p.stem, category=category, poses=full, trans=trans, valid=amass_valid(), source_fps=fps, notes=notes
    )
