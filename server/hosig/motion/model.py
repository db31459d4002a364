"""The denoiser: a compact transformer encoder predicting clean motion (x0) from a noisy window.

Each frame is one token. Its input is the noisy features, the anchor values and masks on the
feature channels and on the joint-position channels (so any channel at any frame can be
conditioned), projected to ``d_model``; a learned frame position and the diffusion step embedding
are added. Compact on purpose: it must sample in real time on a 2-core CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from hosig.motion.representation import LAYOUT


@dataclass(frozen=True)
class DenoiserConfig:
    """Architecture (stored in the checkpoint's JSON; a mismatch is a CheckpointError)."""

    feat_dim: int = LAYOUT.dim
    joint_dim: int = LAYOUT.joint_dim
    window: int = 64
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 512
    dropout: float = 0.1
    # x0 = sqrt(ab) x_t + sqrt(1-ab) F: identity at low noise, the network at high noise (EDM-style
    # skip; as v-prediction). Without it a d_model < feature-dim network cannot pass x_t through.
    skip: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps -> (B,dim) sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Denoiser(nn.Module):
    """x0-prediction network: (x_t, t, anchors) -> x0, all in normalised feature space."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        in_dim = 3 * cfg.feat_dim + 2 * cfg.joint_dim
        self.inp = nn.Linear(in_dim, d)
        self.pos = nn.Parameter(torch.zeros(cfg.window, d))
        nn.init.normal_(self.pos, std=0.02)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.feat_dim)
        from hosig.motion.diffusion import cosine_alphas_cumprod

        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(), persistent=False)

    def forward(
        self,
        x_t: torch.Tensor,  # (B,W,D)
        t: torch.Tensor,  # (B,)
        feat_val: torch.Tensor,  # (B,W,D) normalised, zero where unmasked
        feat_mask: torch.Tensor,  # (B,W,D) float {0,1}
        joint_val: torch.Tensor,  # (B,W,J) normalised, zero where unmasked
        joint_mask: torch.Tensor,  # (B,W,J) float {0,1}
    ) -> torch.Tensor:
        w = x_t.shape[1]
        h = self.inp(torch.cat([x_t, feat_val * feat_mask, feat_mask, joint_val * joint_mask, joint_mask], dim=-1))
        h = h + self.pos[:w][None] + self.time(step_embedding(t, self.cfg.d_model))[:, None]
        h = self.norm(self.encoder(h))
        out = self.out(h)
        if not self.cfg.skip:
            return out
        ab = self.alphas_cumprod[t].view(-1, 1, 1)
        return ab.sqrt() * x_t + (1 - ab).sqrt() * out
