"""MotionClip: the motion stage's output and the `clip.npz` file (DESIGN.md §5).

The file is AMASS-style so other tools read it (`poses`, `trans`, `betas`, `gender`,
`mocap_frame_rate`, `surface_model_type`), plus our own fields (world joints, the carried object's
transforms, the grasp frame, the planned path, the body identity). Everything is a plain array:
strings are 0-d unicode arrays, so loading works with ``allow_pickle=False``.

Conventions: Blender world (metres, Z up); ``poses`` are SMPL-X axis-angle (55 x 3: root, 21 body,
jaw, 2 eyes, 15 left hand, 15 right hand) with the global orient already Z-up; ``trans`` is the
smplx translation for that orient, so the body model's output equals ``joints``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hosig.atomic import atomic_open
from hosig.npz import read_npz
from hosig.errors import InputError

FPS = 30
CLIP_FORMAT = "hosig-clip/1"


@dataclass
class MotionClip:
    """A generated (or loaded) clip of T frames at 30 fps.

    ``object_transforms`` (T,4,4) is the transform applied to the carried object's scene geometry
    per frame (identity before the grasp, following the wrist while carried, constant after the
    release), or None when no object is carried. ``grasp_frame`` / ``release_frame`` are -1 when absent. ``contacts`` (T,4)
    are the predicted foot contacts (left ankle, left toe, right ankle, right toe), optional.
    """

    poses: np.ndarray  # (T,165)
    trans: np.ndarray  # (T,3)
    joints: np.ndarray  # (T,55,3)
    betas: np.ndarray = field(default_factory=lambda: np.zeros(10, dtype=np.float32))
    gender: str = "neutral"
    object_name: str | None = None
    object_transforms: np.ndarray | None = None  # (T,4,4)
    grasp_frame: int = -1
    release_frame: int = -1
    path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))
    body_identity: str = ""
    contacts: np.ndarray | None = None  # (T,4)
    fps: int = FPS

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float32)
        self.trans = np.asarray(self.trans, dtype=np.float32)
        self.joints = np.asarray(self.joints, dtype=np.float32)
        self.betas = np.asarray(self.betas, dtype=np.float32).reshape(-1)
        self.path = np.asarray(self.path, dtype=np.float32)
        if self.object_transforms is not None:
            self.object_transforms = np.asarray(self.object_transforms, dtype=np.float32)
        if self.contacts is not None:
            self.contacts = np.asarray(self.contacts, dtype=np.float32)
        self.validate()

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / float(self.fps)

    def validate(self, where: str = "MotionClip") -> None:
        """Shapes agree and every number is finite (NaNs never leave the engine)."""
        t = self.poses.shape[0] if self.poses.ndim == 2 else -1
        checks = [
            ("poses", self.poses.shape == (t, 165)),
            ("trans", self.trans.shape == (t, 3)),
            ("joints", self.joints.shape == (t, 55, 3)),
        ]
        if self.object_transforms is not None:
            checks.append(("object_transforms", self.object_transforms.shape == (t, 4, 4)))
        if self.contacts is not None:
            checks.append(("contacts", self.contacts.shape == (t, 4)))
        for name, ok in checks:
            if not ok:
                raise InputError(f"{where}: field {name!r} has shape {getattr(self, name).shape}, expected T={t} frames")
        for name in ("poses", "trans", "joints", "object_transforms", "contacts", "path", "betas"):
            arr = getattr(self, name)
            if arr is not None and arr.size and not np.isfinite(arr).all():
                raise InputError(f"{where}: field {name!r} contains NaN or infinite values")
        if not (-1 <= self.grasp_frame < max(t, 0) or t == 0):
            raise InputError(f"{where}: grasp_frame {self.grasp_frame} outside the clip's {t} frames")

    def slice(self, start: int, stop: int) -> "MotionClip":
        """Frames [start, stop) as a new clip (for streaming chunks); frame indices re-based."""
        sl = slice(start, stop)
        gf = self.grasp_frame - start if start <= self.grasp_frame < stop else -1
        rf = self.release_frame - start if start <= self.release_frame < stop else -1
        return MotionClip(
            poses=self.poses[sl], trans=self.trans[sl], joints=self.joints[sl], betas=self.betas,
            gender=self.gender, object_name=self.object_name,
            object_transforms=None if self.object_transforms is None else self.object_transforms[sl],
            grasp_frame=gf, release_frame=rf, path=self.path, body_identity=self.body_identity,
            contacts=None if self.contacts is None else self.contacts[sl], fps=self.fps,
        )

    def save(self, path: str | Path) -> Path:
        """Write the clip file (npz, no pickled objects) atomically. Returns the path written."""
        self.validate()
        path = Path(path)
        t = self.n_frames
        arrays: dict[str, np.ndarray] = {
            "format": np.array(CLIP_FORMAT),
            "poses": self.poses,
            "trans": self.trans,
            "betas": self.betas,
            "gender": np.array(self.gender),
            "mocap_frame_rate": np.array(float(self.fps)),
            "mocap_framerate": np.array(float(self.fps)),
            "surface_model_type": np.array("smplx"),
            "joints": self.joints,
            "object_name": np.array(self.object_name or ""),
            "object_transforms": (
                self.object_transforms if self.object_transforms is not None else np.zeros((0, 4, 4), np.float32)
            ),
            "grasp_frame": np.array(int(self.grasp_frame)),
            "release_frame": np.array(int(self.release_frame)),
            "path": self.path,
            "body_identity": np.array(self.body_identity),
            "contacts": self.contacts if self.contacts is not None else np.zeros((0, 4), np.float32),
            "n_frames": np.array(t),
        }
        with atomic_open(path) as fh:  # never a partial clip at the final name
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "MotionClip":
        """Read a clip file written by `save` (or any AMASS-style SMPL-X npz with joints)."""
        path = Path(path)
        d = read_npz(path, "clip file")
        for key in ("poses", "trans", "joints"):
            if key not in d:
                raise InputError(f"clip file {str(path)!r} lacks the field {key!r}")

        def text(key: str, default: str = "") -> str:
            return str(d[key]) if key in d else default

        def integer(key: str, default: int = -1) -> int:
            return int(d[key]) if key in d else default

        obj = d.get("object_transforms")
        contacts = d.get("contacts")
        fps = float(d["mocap_frame_rate"]) if "mocap_frame_rate" in d else FPS
        if abs(fps - FPS) > 1e-6:
            raise InputError(f"clip file {str(path)!r} is at {fps} fps; the engine works at {FPS} fps")
        try:
            return cls(
            poses=d["poses"], trans=d["trans"], joints=d["joints"],
            betas=d.get("betas", np.zeros(10, np.float32)), gender=text("gender", "neutral"),
            object_name=text("object_name") or None,
            object_transforms=obj if obj is not None and len(obj) else None,
            grasp_frame=integer("grasp_frame"), release_frame=integer("release_frame"),
            path=d.get("path", np.zeros((0, 2), np.float32)), body_identity=text("body_identity"),
            contacts=contacts if contacts is not None and len(contacts) else None,
            )
        except InputError as err:
            raise InputError(f"clip file {str(path)!r}: {err}") from None
