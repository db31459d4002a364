"""The prepared motion dataset file (`hosig data prepare` writes it, training reads it).

One ``.npz`` (no pickled objects; loads with ``allow_pickle=False``), all clips concatenated along
frames. N = total frames, K = clips. Every array is in Blender's world (metres, Z up), 30 fps.

Per frame:
- ``poses`` (N,165) float32: SMPL-X axis-angle, smplx layout: global orient (3, **Z-up**: it
  already includes ``frames.YUP_TO_ZUP``), body (63), jaw (3), left eye (3), right eye (3), left
  hand (45), right hand (45). Hand poses are relative to the hands mean (smplx
  ``flat_hand_mean=False``), exactly what `BodyModel.forward` takes.
- ``trans`` (N,3) float32: the smplx translation for that Z-up orient, so that smplx output ==
  ``joints`` (pelvis joint = rest pelvis ``J0`` + ``trans``).
- ``joints`` (N,55,3) float32: world joint positions, floor at z = 0 (soles touch z = 0).
- ``contacts`` (N,4) uint8 in {0,1}: foot contact of (left_ankle, left_foot, right_ankle,
  right_foot) = `hosig.body.skeleton.FOOT_JOINTS`.
- ``valid`` (N,55) bool: per-joint rotation-channel validity. False = never captured (CMU: fingers,
  eyes, jaw and the toe joints ``left_foot``/``right_foot``, which CMU lacks; AMASS/TRUMANS: jaw
  and eyes): such channels hold the rest value and must be masked out of rotation losses. Joint
  *positions* are always valid.

Per clip (clips are contiguous: frames ``clip_start[k] : clip_start[k] + clip_length[k]``):
- ``clip_start`` (K,) int64, ``clip_length`` (K,) int64, ``clip_name`` (K,) str (source file stem,
  ``"<stem>#mirror"`` for mirrored copies), ``clip_category`` (K,) str, ``clip_mirrored`` (K,) bool.
- ``clip_fit_error_mean`` / ``clip_fit_error_max`` (K,) float32, metres: retarget joint-position
  error against the bone-length-normalised source (NaN where the source had no skeleton to fit,
  e.g. AMASS/TRUMANS which are already SMPL-X parameters).
- ``clip_source_skating`` (K,) float32, cm/s: foot skating of the source skeleton (same measure as
  `contacts.foot_skating`; NaN when not applicable).
- ``clip_source_fps`` (K,) float32: the frame rate the clip was captured at.
- ``clip_source_sliding`` (K,) float32, cm/s: planted-foot sliding of the source skeleton
  (`contacts.planted_sliding`; NaN when not applicable). Optional when reading (older files).

Optional extras: ``foot_rest_heights`` (4,) float32, metres: standing heights of the four foot
points above the sole for ``body_identity`` (the floor-penetration reference).

Scalars (0-d arrays): ``fps`` = 30, ``body_identity`` (str: the body model the joints/trans were
computed with, e.g. "mannequin-v1"), ``source`` (str: "cmu", "amass", "trumans" or a mix joined by
"+"), ``format_version`` (int).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hosig.clip import FPS
from hosig.errors import InputError

FORMAT_VERSION = 1
NUM_JOINTS = 55
POSE_DIM = 165

PER_FRAME = ("poses", "trans", "joints", "contacts", "valid")
PER_CLIP = (
    "clip_start", "clip_length", "clip_name", "clip_category", "clip_mirrored",
    "clip_fit_error_mean", "clip_fit_error_max", "clip_source_skating", "clip_source_fps",
    "clip_source_sliding",
)  # fmt: skip
OPTIONAL_PER_CLIP = ("clip_source_sliding",)  # filled with NaN when an older file lacks them


@dataclass
class ClipData:
    """One clip before concatenation (same fields as the dataset, per frame T)."""

    name: str
    category: str
    poses: np.ndarray  # (T,165)
    trans: np.ndarray  # (T,3)
    joints: np.ndarray  # (T,55,3)
    contacts: np.ndarray  # (T,4)
    valid: np.ndarray  # (T,55) or (55,)
    mirrored: bool = False
    fit_error_mean: float = float("nan")
    fit_error_max: float = float("nan")
    source_skating: float = float("nan")
    source_fps: float = float(FPS)
    source_sliding: float = float("nan")

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])


@dataclass
class MotionDataset:
    """All clips concatenated; see the module docstring for every field."""

    poses: np.ndarray
    trans: np.ndarray
    joints: np.ndarray
    contacts: np.ndarray
    valid: np.ndarray
    clip_start: np.ndarray
    clip_length: np.ndarray
    clip_name: np.ndarray
    clip_category: np.ndarray
    clip_mirrored: np.ndarray
    clip_fit_error_mean: np.ndarray
    clip_fit_error_max: np.ndarray
    clip_source_skating: np.ndarray
    clip_source_fps: np.ndarray
    clip_source_sliding: np.ndarray
    body_identity: str
    source: str
    fps: int = FPS
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def num_clips(self) -> int:
        return int(self.clip_start.shape[0])

    def clip_slice(self, k: int) -> slice:
        s = int(self.clip_start[k])
        return slice(s, s + int(self.clip_length[k]))

    def clip(self, k: int) -> ClipData:
        sl = self.clip_slice(k)
        return ClipData(
            name=str(self.clip_name[k]), category=str(self.clip_category[k]), poses=self.poses[sl],
            trans=self.trans[sl], joints=self.joints[sl], contacts=self.contacts[sl], valid=self.valid[sl],
            mirrored=bool(self.clip_mirrored[k]), fit_error_mean=float(self.clip_fit_error_mean[k]),
            fit_error_max=float(self.clip_fit_error_max[k]), source_skating=float(self.clip_source_skating[k]),
            source_fps=float(self.clip_source_fps[k]), source_sliding=float(self.clip_source_sliding[k]),
        )  # fmt: skip


def from_clips(clips: list[ClipData], body_identity: str, source: str) -> MotionDataset:
    """Concatenate clips into a dataset (validated)."""
    if not clips:
        raise InputError("no clips to put in the dataset")
    lengths = np.array([c.num_frames for c in clips], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def valid_of(c: ClipData) -> np.ndarray:
        v = np.asarray(c.valid, dtype=bool)
        return np.broadcast_to(v, (c.num_frames, NUM_JOINTS)) if v.ndim == 1 else v

    ds = MotionDataset(
        poses=np.concatenate([c.poses for c in clips]).astype(np.float32),
        trans=np.concatenate([c.trans for c in clips]).astype(np.float32),
        joints=np.concatenate([c.joints for c in clips]).astype(np.float32),
        contacts=np.concatenate([c.contacts for c in clips]).astype(np.uint8),
        valid=np.concatenate([valid_of(c) for c in clips]).astype(bool),
        clip_start=starts,
        clip_length=lengths,
        clip_name=np.array([c.name for c in clips], dtype=str),
        clip_category=np.array([c.category for c in clips], dtype=str),
        clip_mirrored=np.array([c.mirrored for c in clips], dtype=bool),
        clip_fit_error_mean=np.array([c.fit_error_mean for c in clips], dtype=np.float32),
        clip_fit_error_max=np.array([c.fit_error_max for c in clips], dtype=np.float32),
        clip_source_skating=np.array([c.source_skating for c in clips], dtype=np.float32),
        clip_source_fps=np.array([c.source_fps for c in clips], dtype=np.float32),
        clip_source_sliding=np.array([c.source_sliding for c in clips], dtype=np.float32),
        body_identity=body_identity,
        source=source,
    )
    validate(ds, "<new dataset>")
    return ds


def validate(ds: MotionDataset, where: str) -> None:
    """Shape, dtype and consistency checks; raises InputError naming the file and field."""
    n = ds.poses.shape[0] if ds.poses.ndim == 2 else -1

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise InputError(f"{where}: invalid motion dataset: {msg}")

    need(ds.poses.ndim == 2 and ds.poses.shape[1] == POSE_DIM, f"poses must be (N,{POSE_DIM}), got {ds.poses.shape}")
    need(ds.trans.shape == (n, 3), f"trans must be ({n},3), got {ds.trans.shape}")
    need(ds.joints.shape == (n, NUM_JOINTS, 3), f"joints must be ({n},{NUM_JOINTS},3), got {ds.joints.shape}")
    need(ds.contacts.shape == (n, 4), f"contacts must be ({n},4), got {ds.contacts.shape}")
    need(ds.valid.shape == (n, NUM_JOINTS), f"valid must be ({n},{NUM_JOINTS}), got {ds.valid.shape}")
    need(n > 0, "no frames")
    for name in ("poses", "trans", "joints"):
        need(bool(np.isfinite(getattr(ds, name)).all()), f"{name} contains NaN or inf")
    need(bool(np.isin(ds.contacts, (0, 1)).all()), "contacts must be 0 or 1")
    k = ds.clip_start.shape[0]
    for name in PER_CLIP:
        need(getattr(ds, name).shape == (k,), f"{name} must be ({k},), got {getattr(ds, name).shape}")
    need(k > 0, "no clips")
    need(bool((ds.clip_length > 0).all()), "clip_length must be positive")
    expected_start = np.concatenate([[0], np.cumsum(ds.clip_length)[:-1]])
    need(bool(np.array_equal(ds.clip_start, expected_start)), "clips must be contiguous (clip_start = cumsum of clip_length)")
    need(int(ds.clip_length.sum()) == n, f"clip lengths sum to {int(ds.clip_length.sum())} but there are {n} frames")
    need(int(ds.fps) == FPS, f"fps must be {FPS}, got {ds.fps}")


def save_dataset(path: str | Path, ds: MotionDataset) -> Path:
    """Write the dataset npz (validated first; strings as unicode arrays, no pickle)."""
    validate(ds, str(path))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(ds, name) for name in PER_FRAME + PER_CLIP}
    arrays.update(
        fps=np.array(ds.fps, dtype=np.int64),
        body_identity=np.array(ds.body_identity),
        source=np.array(ds.source),
        format_version=np.array(FORMAT_VERSION, dtype=np.int64),
    )
    arrays.update(ds.extra)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(p)
    return p


def load_dataset(path: str | Path) -> MotionDataset:
    """Read and validate a dataset file; clear InputError for missing/corrupt/foreign files."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: motion dataset not found (make one with `hosig data prepare`)")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - zip/format errors of all kinds
        raise InputError(f"{p}: not a readable .npz motion dataset ({type(err).__name__}: {err})") from None
    with data:
        required = [k for k in PER_FRAME + PER_CLIP if k not in OPTIONAL_PER_CLIP]
        missing = [k for k in required + ["fps", "body_identity", "source"] if k not in data.files]
        if missing:
            raise InputError(f"{p}: not a motion dataset: missing fields {', '.join(missing)}")
        try:
            fields = {k: data[k] for k in data.files}
        except Exception as err:  # noqa: BLE001 - truncated members, pickled objects
            raise InputError(f"{p}: corrupt motion dataset ({type(err).__name__}: {err})") from None
    version = int(fields.pop("format_version", FORMAT_VERSION))
    if version > FORMAT_VERSION:
        raise InputError(f"{p}: dataset format version {version} is newer than this hosig ({FORMAT_VERSION})")
    n_clips = int(np.shape(fields["clip_start"])[0])
    for k in OPTIONAL_PER_CLIP:
        fields.setdefault(k, np.full(n_clips, np.nan, dtype=np.float32))
    known = set(PER_FRAME + PER_CLIP + ("fps", "body_identity", "source"))
    ds = MotionDataset(
        **{k: fields[k] for k in PER_FRAME + PER_CLIP},
        body_identity=str(fields["body_identity"]),
        source=str(fields["source"]),
        fps=int(fields["fps"]),
        extra={k: v for k, v in fields.items() if k not in known},
    )
    validate(ds, str(p))
    return ds
