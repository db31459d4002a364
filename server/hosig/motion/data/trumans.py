"""TRUMANS arrays (a folder of frame-concatenated ``.npy`` files, DESIGN §2) -> `SmplxMotion` clips.

Layout: ``human_pose.npy`` (N,63) body axis-angle, ``human_orient.npy`` (N,3),
``human_transl.npy`` (N,3), ``left_hand_pose.npy``/``right_hand_pose.npy`` (N,45) full
axis-angle *relative to the hands mean* (add ``hands_mean`` for the actual rotation — exactly
smplx's ``flat_hand_mean=False`` convention, so they are used as they are), ``seg_name.npy`` (N,)
segment names, optionally ``frame_id.npy`` (N,). 30 fps, **Y up**, male SMPL-X with zero betas.

Clips are the runs of equal ``seg_name`` (split again where ``frame_id`` does not advance by one).
Orient and translation are converted to Z-up with `hosig.frames` using our body's rest pelvis;
the floor is then re-aligned from the feet. Validity: body and both hands captured; jaw/eyes not.
Large arrays are memory-mapped. Object poses, scenes and contacts of TRUMANS are not used here
(the dataset is human motion only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hosig.body.skeleton import NUM_JOINTS
from hosig.errors import InputError
from hosig.frames import orient_yup_to_zup, transl_yup_to_zup
from hosig.motion.data.smplx_motion import SmplxMotion

TRUMANS_FPS = 30.0
REQUIRED = ("human_pose", "human_orient", "human_transl", "left_hand_pose", "right_hand_pose", "seg_name")
TRUMANS_VALID = np.ones(NUM_JOINTS, dtype=bool)
TRUMANS_VALID[22:25] = False  # jaw, eyes


def _load(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError:
        if name != "seg_name":
            raise InputError(f"{path}: unreadable TRUMANS array (object/pickled arrays are not accepted)") from None
        # Segment names are sometimes saved as a Python-object array; they are plain strings.
        return np.asarray(np.load(path, allow_pickle=True), dtype=str)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"{path}: unreadable TRUMANS array ({type(err).__name__}: {err})") from None


def trumans_segments(folder: str | Path) -> list[tuple[str, int, int]]:
    """[(segment name, start, end)] half-open frame ranges of the clips in a TRUMANS folder."""
    folder = Path(folder)
    missing = [n for n in REQUIRED if not (folder / f"{n}.npy").is_file()]
    if missing:
        raise InputError(f"{folder}: not a TRUMANS folder; missing {', '.join(n + '.npy' for n in missing)}")
    seg = np.asarray(_load(folder, "seg_name", mmap=False)).astype(str).reshape(-1)
    n = len(seg)
    if n == 0:
        raise InputError(f"{folder}: TRUMANS seg_name.npy is empty")
    frames = int(_load(folder, "human_pose").shape[0])
    if frames != n:
        raise InputError(f"{folder}: seg_name.npy has {n} entries but human_pose.npy has {frames} frames")
    breaks = np.nonzero(seg[1:] != seg[:-1])[0] + 1
    if (folder / "frame_id.npy").is_file():
        fid = np.asarray(_load(folder, "frame_id", mmap=False)).reshape(-1)
        if len(fid) == n:
            breaks = np.union1d(breaks, np.nonzero(np.diff(fid.astype(np.int64)) != 1)[0] + 1)
    bounds = np.concatenate([[0], breaks, [n]]).astype(np.int64)
    return [(str(seg[s]), int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:]) if e > s]


def load_trumans_clip(folder: str | Path, start: int, end: int, name: str, pelvis_rest_y: np.ndarray) -> SmplxMotion:
    """One segment [start, end) of a TRUMANS folder as Z-up SMPL-X parameters."""
    folder = Path(folder)
    arrays = {k: _load(folder, k) for k in REQUIRED[:5]}
    n = int(arrays["human_pose"].shape[0]) if arrays["human_pose"].ndim else 0
    if not 0 <= start < end <= n:
        raise InputError(f"{folder}: TRUMANS segment {name!r} frames {start}-{end} outside 0-{n}")
    shapes = {"human_pose": 63, "human_orient": 3, "human_transl": 3, "left_hand_pose": 45, "right_hand_pose": 45}
    for key, width in shapes.items():
        a = arrays[key]
        if a.ndim != 2 or a.shape != (n, width):
            raise InputError(f"{folder / (key + '.npy')}: expected shape ({n},{width}), got {a.shape}")
    sl = slice(start, end)
    orient_y = np.asarray(arrays["human_orient"][sl], dtype=np.float64)
    transl_y = np.asarray(arrays["human_transl"][sl], dtype=np.float64)
    poses = np.zeros((end - start, NUM_JOINTS * 3))
    poses[:, 0:3] = orient_yup_to_zup(orient_y)
    poses[:, 3:66] = arrays["human_pose"][sl]
    poses[:, 75:120] = arrays["left_hand_pose"][sl]
    poses[:, 120:165] = arrays["right_hand_pose"][sl]
    trans = transl_yup_to_zup(transl_y, pelvis_rest_y)
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise InputError(f"{folder}: TRUMANS segment {name!r} (frames {start}-{end}) contains NaN or inf")
    return SmplxMotion(
        name=name, category="trumans", poses=poses, trans=trans, valid=TRUMANS_VALID.copy(), source_fps=TRUMANS_FPS
    )
