"""The committed pose prior: a Gaussian over SMPL-X body pose fitted on CMU capture.

`PosePrior.energy(body_pose (B,63)) -> (B,)` is the Mahalanobis distance; `limits (lo, hi)` are
per-component bounds from the same data (see `hosig.grasp.prior_fit` for how they were made).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from hosig.errors import CheckpointError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "assets" / "pose_prior.safetensors"


@dataclass
class PosePrior:
    mean: torch.Tensor  # (63,)
    precision: torch.Tensor  # (63,63)
    lo: torch.Tensor  # (63,)
    hi: torch.Tensor  # (63,)
    note: dict

    def energy(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B,63) -> (B,) squared Mahalanobis distance divided by the dimension (~1 on the data)."""
        d = body_pose - self.mean
        return ((d @ self.precision) * d).sum(-1) / d.shape[-1]

    def limit_violation(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B,63) -> (B,) summed squared excess beyond the fitted angle bounds."""
        return (torch.relu(body_pose - self.hi) ** 2 + torch.relu(self.lo - body_pose) ** 2).sum(-1)


@lru_cache(maxsize=4)
def load_prior(path: str | None = None) -> PosePrior:
    """Load the prior (default: the committed asset)."""
    from safetensors import safe_open

    p = Path(path) if path else DEFAULT_PATH
    if not p.exists():
        raise CheckpointError(f"pose prior {p} is missing; regenerate it with python -m hosig.grasp.prior_fit")
    try:
        with safe_open(str(p), framework="pt") as f:
            t = {k: f.get_tensor(k).float() for k in f.keys()}
            meta = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - any read failure is a bad checkpoint
        raise CheckpointError(f"pose prior {p} cannot be read: {err}") from None
    for key, shape in (("mean", (63,)), ("precision", (63, 63)), ("limits_lo", (63,)), ("limits_hi", (63,))):
        if key not in t or tuple(t[key].shape) != shape:
            raise CheckpointError(f"pose prior {p}: tensor {key!r} missing or not of shape {shape}")
    note = json.loads(meta.get("note", "{}"))
    return PosePrior(t["mean"], t["precision"], t["limits_lo"], t["limits_hi"], note)
