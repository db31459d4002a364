"""A generated toy motion dataset for the motion tests (no real capture needed).

Walking-like clips: the pelvis follows smooth random curves at ~1.2 m/s facing its velocity, legs
and arms swing with the gait phase, contacts follow the phase; some clips stand still and raise an
arm (a reach). Joints come from the body model's FK so they agree with the rotations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hosig.frames import heading_to_orient
from hosig.motion.representation import aa_to_matrix


def toy_clip(rng: np.random.Generator, n: int, walk: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> poses (n,165), pelvis (n,3), contacts (n,4)."""
    from scipy.spatial.transform import Rotation

    t = np.arange(n) / 30.0
    speed = rng.uniform(0.9, 1.4) if walk else 0.0
    turn = rng.uniform(-0.6, 0.6) * np.sin(2 * np.pi * t / rng.uniform(3, 8) + rng.uniform(0, 6))
    heading = rng.uniform(-np.pi, np.pi) + np.cumsum(turn) / 30.0
    xy = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * speed / 30.0, 0)
    xy += rng.uniform(-2, 2, 2)
    phase = 2 * np.pi * 1.8 * t * (1 if walk else 0) + rng.uniform(0, 6)
    z = 0.93 + (0.02 * np.cos(2 * phase) if walk else 0.0)
    pelvis = np.concatenate([xy, np.broadcast_to(z, (n,))[:, None]], 1)
    poses = np.zeros((n, 165))
    poses[:, 0:3] = np.stack([Rotation.from_matrix(heading_to_orient(h)).as_rotvec() for h in heading])
    amp = 0.45 if walk else 0.0
    body = np.zeros((n, 21, 3))
    body[:, 0, 0] = amp * np.sin(phase)  # left hip
    body[:, 1, 0] = -amp * np.sin(phase)  # right hip
    body[:, 3, 0] = amp * (1 + np.sin(phase + 1.5))  # left knee
    body[:, 4, 0] = amp * (1 + np.sin(phase + 1.5 + np.pi))
    body[:, 15, 2] = -1.2 + 0.3 * np.sin(phase)  # left shoulder (arms down)
    body[:, 16, 2] = 1.2 + 0.3 * np.sin(phase)
    if not walk:  # raise the right arm over the clip
        body[:, 16, 2] = 1.2 - 1.0 * np.clip(t / t[-1], 0, 1)
        body[:, 18, 1] = -0.5 * np.clip(t / t[-1], 0, 1)
    poses[:, 3:66] = body.reshape(n, 63)
    poses[:, 75:165] = 0.2 * np.sin(phase[:, None] * 0.3 + np.arange(90)[None] * 0.1)
    left = np.sin(phase) > 0
    contacts = np.stack([~left, ~left, left, left], 1).astype(np.float32) if walk else np.ones((n, 4), np.float32)
    return poses.astype(np.float32), pelvis.astype(np.float32), contacts


def write_toy_dataset(path: str | Path, body, n_clips: int = 12, frames: int = 150, seed: int = 0, fingers: bool = False) -> Path:
    """Write a dataset npz in the `hosig data prepare` format."""
    rng = np.random.default_rng(seed)
    poses, pelvis, contacts, starts, lengths, names = [], [], [], [], [], []
    s = 0
    for i in range(n_clips):
        p, pe, c = toy_clip(rng, frames, walk=i % 4 != 3)
        poses.append(p)
        pelvis.append(pe)
        contacts.append(c)
        starts.append(s)
        lengths.append(frames)
        names.append(f"toy_{i:02d}")
        s += frames
    poses_a = np.concatenate(poses)
    pelvis_a = np.concatenate(pelvis)
    with torch.no_grad():
        rot = aa_to_matrix(torch.as_tensor(poses_a).reshape(-1, 55, 3))
        joints = body.fk(rot, torch.as_tensor(pelvis_a)).numpy()
    trans = pelvis_a - np.asarray(body.rest_joints_y[0])
    valid = np.ones((len(poses_a), 55), bool)
    valid[:, 22:25] = False
    if not fingers:
        valid[:, 25:55] = False
    np.savez(
        path, poses=poses_a, trans=trans, joints=joints.astype(np.float32), contacts=np.concatenate(contacts),
        valid=valid, clip_start=np.array(starts), clip_length=np.array(lengths), clip_name=np.array(names),
        clip_category=np.array(["walk"] * n_clips), clip_mirrored=np.zeros(n_clips, bool), fps=np.array(30),
        body_identity=np.array(body.identity), source=np.array("toy"),
    )
    return Path(path)


_TINY: dict[str, Path] = {}


def tiny_model_dir(root: Path, body, steps: int = 30, fingers: bool = False) -> Path:
    """Train (once per process) a tiny denoiser on the toy dataset; returns its checkpoint folder."""
    key = f"{steps}-{fingers}"
    if key in _TINY and (_TINY[key] / "model.safetensors").is_file():
        return _TINY[key]
    from hosig.motion.model import DenoiserConfig
    from hosig.motion.train import TrainConfig, train

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data = write_toy_dataset(root / "toy.npz", body, n_clips=8, frames=96, fingers=fingers)
    cfg = TrainConfig(steps=steps, batch=8, ckpt_every=steps, warmup=5, lr=2e-3, stats_windows=256, val_windows=16,
                      denoiser=DenoiserConfig(window=64, d_model=32, layers=1, heads=2, ff=64, dropout=0.0))
    train(data, root / "model", cfg, progress=False)
    _TINY[key] = root / "model"
    return _TINY[key]
