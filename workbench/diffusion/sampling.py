"""DDIM sampling with classifier-free guidance, a cache and per-step MAC counting (notebook 10).

One denoising step of `ControlledDiffusion` runs the CFG batch [unconditional; conditional] (2B rows) through
ControlNet and UNet, then

    ε̂ = ε̂_∅ + w · (ε̂_c − ε̂_∅),      x_{t−1} = DDIM(x_t, ε̂)  (η = 0: deterministic)

The initial noise of image k comes from a generator seeded by `seeds[k]`, so an image does not depend on the
batch it is sampled in, and two caches sampled from the same seeds are paired image by image.

    out = sample(model, maps, prompts, steps=20, guidance=3.0, seeds=range(8), cache="hgc", tau=0.1)
    out.images      # [B, 3, H, W] in [-1, 1]
    out.macs        # MACs per step (FlopCounterMode FLOPs / 2) when count_macs=True
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from workbench.diffusion.caches import CACHES
from workbench.diffusion.macs import StepMacs
from workbench.diffusion.model import ControlledDiffusion
from workbench.tasks.shapes.segmentation import NULL_ID, one_hot_maps


@dataclass
class SampleResult:
    """images [B, 3, H, W]; `macs[i]` = MACs of step i (empty unless counted); seconds of the loop; the cache's
    refresh steps, per step the modules it reused, and (block / hgc) the shallow-feature distance
    1 − cos(h_i, h_ref) it measured at each step after the first."""

    images: torch.Tensor
    macs: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refresh_steps: list[int] = field(default_factory=list)
    reused: dict[int, list[str]] = field(default_factory=dict)
    distances: dict[int, float] = field(default_factory=dict)

    @property
    def total_macs(self) -> float:
        return float(sum(self.macs))


def initial_noise(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """[B, *shape] standard normal, row k from a generator seeded by `seeds[k]`."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def sample(model: ControlledDiffusion, maps: torch.Tensor, prompts: torch.Tensor, *, steps: int = 20,
           guidance: float = 3.0, seeds: Sequence[int] | None = None, cache: str = "none", count_macs: bool = False,
           **settings) -> SampleResult:
    """Sample one image per (map [B, H, W], prompt [B, L]) with cache `cache` (a `CACHES` name) and its `settings`."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if maps.shape[0] != prompts.shape[0]:
        raise ValueError(f"maps and prompts must have the same batch size, got {maps.shape[0]} and {prompts.shape[0]}")
    B = maps.shape[0]
    seeds = list(range(B)) if seeds is None else list(seeds)
    if len(seeds) != B:
        raise ValueError(f"seeds must give one seed per image ({B}), got {len(seeds)}")
    device = next(model.parameters()).device
    sched = model.scheduler("ddim")
    sched.set_timesteps(steps)
    size = model.cfg.size
    x = initial_noise(seeds, (3, size, size)).to(device)
    cond = one_hot_maps(maps).to(device)
    cond2 = torch.cat([cond, cond])
    emb = model.prompt_encoder(torch.cat([torch.full_like(prompts, NULL_ID), prompts]).to(device))
    counter = StepMacs() if count_macs else None
    plan = CACHES.get(cache)(model, steps, **settings)
    t0 = time.perf_counter()
    try:
        for i, t in enumerate(sched.timesteps):
            x2 = torch.cat([x, x])
            tt = t.to(device)
            with counter.step() if counter else contextlib.nullcontext():
                plan.begin_step(i, x2, tt, emb)
                eps = model.predict_noise(x2, tt, emb, cond2)
            eps_u, eps_c = eps.chunk(2)
            x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x, eta=0.0).prev_sample
    finally:
        plan.close()
    return SampleResult(images=x.clamp(-1, 1).cpu(), macs=counter.macs if counter else [],
                        seconds=time.perf_counter() - t0, refresh_steps=list(plan.refresh_steps), reused=plan.reused(),
                        distances=dict(getattr(plan, "distances", {})))
