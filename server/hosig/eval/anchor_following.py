"""`hosig eval anchors`: does the motion network follow its pelvis anchors by itself?

Guidance can drag any sampled pelvis onto its path, but the legs were generated for the pelvis the
network chose: when the two disagree, the feet glide. This measures the network alone (no
guidance, no correction) on real windows of a prepared dataset, conditioned the way a walk is:
pelvis xy every few frames and the facing at frame 0, exactly the training format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hosig.errors import InputError

ANCHOR_EVERY = 8  # frames between pelvis anchors, as `motion.task` lays a walk


def anchor_following(model: Any, data_path: str | Path, windows: int = 32, every: int = ANCHOR_EVERY,
                     seed: int = 0) -> dict[str, Any]:
    """Pelvis error (cm) of the unguided network against the real pelvis of held windows.

    ``one_step_*``: its x0 estimate from pure noise (t = T-1), where only the conditioning can say
    where the pelvis is; ``sampled_*``: the model's own few-step sampler. ``travel_m``: how far the
    real pelvis moves in a window (an error that large means the network did not walk at all).
    """
    from hosig.motion.diffusion import Schedule, sample
    from hosig.motion.representation import LAYOUT
    from hosig.motion.train import load_dataset, make_batch

    data = load_dataset(data_path, model.window, holdout_every=10**9)  # every clip: this is a measurement
    if len(data.train_starts) == 0:
        raise InputError(f"{data_path}: no clip is {model.window} frames long")
    pick = np.linspace(0, len(data.train_starts) - 1, min(windows, len(data.train_starts))).round().astype(int)
    starts = data.train_starts[torch.as_tensor(pick)]
    feats, joints, _valid = make_batch(data, starts, model.window)  # canonical (B,W,D), (B,W,18)
    stats = model.stats
    x0 = stats.norm(feats)
    b, w, _ = x0.shape
    fm = torch.zeros_like(x0, dtype=torch.bool)
    jm = torch.zeros(b, w, LAYOUT.joint_dim, dtype=torch.bool)
    anchored = torch.zeros(w, dtype=torch.bool)
    anchored[::every] = True
    anchored[-1] = True
    fm[:, anchored, 0:2] = True
    jm[:, anchored, 0:2] = True
    fm[:, 0, LAYOUT.root] = True
    fv, jv = x0 * fm, stats.jnorm(joints) * jm
    true_xy = feats[..., 0:2]  # (B,W,2) metres
    sched = Schedule.cosine()

    def errors(pred_norm: torch.Tensor) -> torch.Tensor:
        return (stats.denorm(pred_norm)[..., 0:2] - true_xy).norm(dim=-1) * 100.0  # (B,W) cm

    with torch.no_grad():
        t = torch.full((b,), sched.n - 1, dtype=torch.long)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        one = errors(model.net(noise, t, fv, fm.float(), jv, jm.float()))
        outs = []
        for k in range(b):  # one window at a time, each with its own seed, as synthesis samples
            def denoise(x: torch.Tensor, tt: torch.Tensor, k: int = k) -> torch.Tensor:
                return model.net(x, tt, fv[k:k + 1], fm[k:k + 1].float(), jv[k:k + 1], jm[k:k + 1].float())

            outs.append(sample(denoise, (1, w, LAYOUT.dim), sched, model.sampler.steps, None,
                               torch.Generator().manual_seed(seed + k)))
        samp = errors(torch.cat(outs))  # (B,W) cm
    travel = (true_xy[:, -1] - true_xy[:, 0]).norm(dim=-1)
    return {
        "windows": int(b),
        "anchor_every": int(every),
        "sampler_steps": int(model.sampler.steps),
        "travel_m": round(float(travel.mean()), 3),
        "one_step_anchor_cm": round(float(one[:, anchored].mean()), 2),
        "sampled_anchor_cm": round(float(samp[:, anchored].mean()), 2),
        "sampled_all_frames_cm": round(float(samp.mean()), 2),
        "sampled_frame0_cm": round(float(samp[:, 0].mean()), 2),
    }
