"""Diffusion schedule and samplers (x0-prediction, cosine schedule, T = 1000).

`sample` runs either a few-step DDIM (deterministic, eta = 0; the product default) or the full
1000-step DDPM ancestral sampler of the same network (the reference the speed-up is measured
against). Both share the per-step hooks: hard anchors are inpainted into every x0 estimate (so they
hold exactly in the output) and an optional guidance function edits the x0 estimate by gradient
steps (DESIGN §1 C: dual-space guidance at each denoising step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from hosig.errors import CancelledError

T_STEPS = 1000


def cosine_alphas_cumprod(n: int = T_STEPS, s: float = 0.008) -> torch.Tensor:
    """(n,) alpha-bar of the cosine schedule (Nichol & Dhariwal), clipped away from 0."""
    steps = torch.arange(n + 1, dtype=torch.float64) / n
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


@dataclass
class Schedule:
    alphas_cumprod: torch.Tensor  # (T,)

    @classmethod
    def cosine(cls, n: int = T_STEPS) -> "Schedule":
        return cls(cosine_alphas_cumprod(n))

    @property
    def n(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


# x0 (B,W,D) normalised, step index -> edited x0
X0Hook = Callable[[torch.Tensor, int], torch.Tensor]
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> x0


def ddim_timesteps(n_steps: int, n_train: int = T_STEPS) -> list[int]:
    """Descending training steps visited by an ``n_steps`` DDIM sampler (last one is 0)."""
    n_steps = max(1, min(n_steps, n_train))
    ts = torch.linspace(n_train - 1, 0, n_steps).round().long().tolist()
    return sorted(set(int(t) for t in ts), reverse=True)


def sample(
    denoise: Denoise,
    shape: tuple[int, ...],
    schedule: Schedule,
    n_steps: int = 10,
    hook: X0Hook | None = None,
    generator: torch.Generator | None = None,
    cancel: Callable[[], bool] | None = None,
    ddpm: bool = False,
) -> torch.Tensor:
    """Sample x0 of ``shape``. ``ddpm=True`` runs the full ancestral sampler (all T steps).

    ``hook(x0, step_index)`` is applied to each x0 estimate: guidance then inpainting. The
    returned tensor is the final (hooked) x0 estimate, so hard anchors hold exactly.
    """
    ab_all = schedule.alphas_cumprod
    ts = list(range(schedule.n - 1, -1, -1)) if ddpm else ddim_timesteps(n_steps, schedule.n)
    x = torch.randn(shape, generator=generator)
    x0 = x
    for i, t in enumerate(ts):
        if cancel is not None and cancel():
            raise CancelledError("motion synthesis cancelled")
        tt = torch.full((shape[0],), t, dtype=torch.long)
        with torch.no_grad():
            x0 = denoise(x, tt)
        if hook is not None:
            x0 = hook(x0, i)
        if i == len(ts) - 1:
            break
        ab_t = ab_all[t]
        if ddpm:
            t_prev = t - 1
            ab_prev = ab_all[t_prev]
            beta_t = 1 - ab_t / ab_prev
            # posterior q(x_{t-1} | x_t, x0)
            c0 = ab_prev.sqrt() * beta_t / (1 - ab_t)
            ct = (1 - beta_t).sqrt() * (1 - ab_prev) / (1 - ab_t)
            var = beta_t * (1 - ab_prev) / (1 - ab_t)
            x = c0 * x0 + ct * x + var.clamp_min(1e-20).sqrt() * torch.randn(shape, generator=generator)
        else:
            ab_prev = ab_all[ts[i + 1]]
            eps = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x0
