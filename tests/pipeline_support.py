"""Helpers for the pipeline/API tests: a tiny motion checkpoint trained on generated toy motion and
a quick grasp configuration, so end-to-end tests run the real stages in seconds.

The checkpoint is trained once per test session into a temp folder (a few seconds on CPU); its
motion is crude, which is fine: these tests check the pipeline's protocol, not motion quality.
"""

from __future__ import annotations

import sys
from pathlib import Path

_CACHE: dict[str, Path] = {}


def tiny_motion_checkpoint(folder: Path) -> Path:
    """Train (once per process) a very small denoiser on toy motion; returns the checkpoint folder."""
    if "ckpt" in _CACHE and (_CACHE["ckpt"] / "model.safetensors").is_file():
        return _CACHE["ckpt"]
    sys.path.insert(0, str(Path(__file__).parent))
    from motion_toy import write_toy_dataset

    from hosig.body import load_body_model
    from hosig.motion.model import DenoiserConfig
    from hosig.motion.train import TrainConfig, train

    folder.mkdir(parents=True, exist_ok=True)
    body = load_body_model()
    data = write_toy_dataset(folder / "toy.npz", body, n_clips=8, frames=128, seed=0)
    cfg = TrainConfig(steps=4, batch=4, warmup=1, ckpt_every=1000, log_every=1000,
                      denoiser=DenoiserConfig(window=64, d_model=32, layers=1, heads=2, ff=64, dropout=0.0))
    train(data, folder / "model", cfg, progress=False)
    _CACHE["ckpt"] = folder / "model"
    return _CACHE["ckpt"]


def tiny_engine(checkpoint: Path):
    """An engine on the tiny checkpoint at preview quality (the real stages, less search).

    It uses the session's cache folder ($HOSIG_CACHE_DIR, one per test run, see conftest), so a
    grasp optimised by one test (or by the `hosig serve` subprocess) is reused by the others.
    """
    from hosig.pipeline.engine import Engine, EngineConfig
    from hosig.pipeline.scenes import default_cache_dir

    return Engine(EngineConfig(cache_dir=default_cache_dir(), motion_checkpoint=str(checkpoint), quality="preview"))


def tiny_kitchen(folder: Path):
    """(engine, scene path): the tiny-checkpoint engine and the demo kitchen written into ``folder``."""
    from hosig.scene.demo import write_demo_scene

    engine = tiny_engine(tiny_motion_checkpoint(folder / "ckpt"))
    return engine, write_demo_scene(folder / "kitchen.glb", "kitchen", 0)
