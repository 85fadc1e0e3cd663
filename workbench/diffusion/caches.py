"""Caches for controllable diffusion (registry `CACHES`): HGC's two grains (arXiv 2511.11031) and their peers.

A cache is a registered function `(model, n_steps, **settings) -> Cache`; the sampler calls
`cache.begin_step(i, x, t, prompt)` before each denoising step and `cache.close()` at the end, which puts the
model's modules back. Names below are those of `diffusion.model.ControlledDiffusion`: the UNet has levels
0 … n−1 (0 = full resolution); at branch b its **shallow** part is `down_blocks[:b]` and `up_blocks[n−b:]`
(plus conv_in / conv_out), its **deep** part `down_blocks[b:]`, `mid_block`, `up_blocks[:n−b]` (`deep_blocks`).

| name | what is reused on a cached step | from |
|---|---|---|
| `none` | nothing | — |
| `deepcache` | the deep part, on every step but each `interval`-th; ControlNet runs every step | DeepCache, arXiv 2312.00858 |
| `block` | the deep part and the ControlNet residuals, except on refresh steps (below) | HGC, coarse grain |
| `prompt` | every cross-attention output, from the gate step `gate` on (recomputed every `refresh` steps if > 0) | HGC, fine grain; T-GATE |
| `hgc` | `block` and `prompt` together (a module runs only when both grains say so) | HGC |
| `pab` | diffusers' `apply_pyramid_attention_broadcast` on every cross-attention of UNet and ControlNet | PAB, arXiv 2408.12588 |
| `controlnet` | the ControlNet residuals inside the step window [`start`, `stop`) only | claim (c) of notebook 10 |

HGC's block cache, as reconstructed from the abstract and the spec (the paper has no code): step 0 is a full
pass and a *refresh*. Before step i the shallow feature h_i = `down_blocks[0]` output is computed (a probe,
which the UNet's own forward then reuses, so it costs nothing extra) and step i refreshes when

    1 − cos(h_i, h_r) > τ      or      i − r ≥ 1 / λ_inter          (r = the last refresh step)

On a refresh step every module runs (and the ControlNet residuals are recomputed: control matters most early,
and refreshes are where the features moved). On a cached step the deep part is reused, except
⌈λ_intra · |deep|⌉ deep blocks recomputed round-robin (their inputs are the cached features, their time
embedding the current one); the ControlNet is reused. Inferred, not from the paper: the cosine is taken over
the whole batch (one decision per batch, as every module-skipping cache must), and "deep" is DeepCache's
skip branch at the same `branch`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from workbench.diffusion.hooks import ReusePlan, cross_attention_names
from workbench.registry import Registry

CACHES: Registry[Callable] = Registry("diffusion cache")


class Cache:
    """Base: no reuse. `plans` are the `ReusePlan`s it attached; `refresh_steps` the steps that ran in full."""

    name = "none"

    def __init__(self, model, n_steps: int):
        self.model, self.n_steps = model, n_steps
        self.plans: list[ReusePlan] = []
        self.refresh_steps: list[int] = []

    def begin_step(self, i: int, x: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor) -> None:
        for plan in self.plans:
            plan.begin_step(i)

    def close(self) -> None:
        for plan in self.plans:
            plan.close()

    def reused(self) -> dict[int, list[str]]:
        """Per step, the modules whose cached output was used."""
        out: dict[int, list[str]] = {}
        for plan in self.plans:
            for step, names in plan.reused.items():
                out.setdefault(step, []).extend(names)
        return out


def deep_blocks(model, branch: int) -> list[str]:
    """The UNet's deep part at `branch` (see the module docstring), in forward order."""
    n = len(model.unet.down_blocks)
    if not 1 <= branch < n:
        raise ValueError(f"branch must be in [1, {n - 1}] for a {n}-level UNet, got {branch!r}")
    return ([f"unet.down_blocks.{j}" for j in range(branch, n)] + ["unet.mid_block"]
            + [f"unet.up_blocks.{j}" for j in range(n - branch)])


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"cache setting {name} must be an integer >= {lo}, got {value!r}")
    return value


@CACHES.register("none")
def no_cache(model, n_steps: int) -> Cache:
    """The uncached sampler."""
    return Cache(model, n_steps)


class DeepCache(Cache):
    name = "deepcache"

    def __init__(self, model, n_steps: int, interval: int = 3, branch: int = 1):
        super().__init__(model, n_steps)
        self.interval = _check_int("interval", interval, 1)
        self.plans = [ReusePlan(model, deep_blocks(model, branch), lambda name, i: i % self.interval == 0)]
        self.refresh_steps = [i for i in range(n_steps) if i % self.interval == 0]


@CACHES.register("deepcache")
def deepcache(model, n_steps: int, interval: int = 3, branch: int = 1) -> Cache:
    """DeepCache (arXiv 2312.00858): the deep part runs on steps 0, N, 2N, …; the shallow branch every step."""
    return DeepCache(model, n_steps, interval, branch)


class BlockCache(Cache):
    """HGC's coarse grain (module docstring). `tau` ≥ 0, `lam_inter` ∈ (0, 1], `lam_intra` ∈ [0, 1]."""

    name = "block"

    def __init__(self, model, n_steps: int, tau: float = 0.1, lam_inter: float = 0.25, lam_intra: float = 0.0,
                 branch: int = 1):
        super().__init__(model, n_steps)
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
            raise ValueError(f"cache setting tau must be a finite number >= 0, got {tau!r}")
        if not (isinstance(lam_inter, (int, float)) and 0 < lam_inter <= 1):
            raise ValueError(f"cache setting lam_inter must be in (0, 1], got {lam_inter!r}")
        if not (isinstance(lam_intra, (int, float)) and 0 <= lam_intra <= 1):
            raise ValueError(f"cache setting lam_intra must be in [0, 1], got {lam_intra!r}")
        self.tau, self.max_gap = float(tau), round(1 / lam_inter)
        self.deep = deep_blocks(model, branch)
        self.n_intra = math.ceil(lam_intra * len(self.deep))
        self.refresh, self.last, self.h_ref, self.rr = True, 0, None, 0
        self.intra: set[str] = set()
        self.distances: dict[int, float] = {}
        self.plans = [ReusePlan(model, ["unet.time_embedding", "unet.conv_in", "unet.down_blocks.0"], lambda n, i: True),
                      ReusePlan(model, ["controlnet", *self.deep], self._decide)]

    def _decide(self, name: str, i: int) -> bool:
        return self.refresh or name in self.intra

    def begin_step(self, i, x, t, prompt) -> None:
        super().begin_step(i, x, t, prompt)
        unet = self.model.unet
        emb = unet.time_embedding(unet.get_time_embed(sample=x, timestep=t))
        h, _ = unet.down_blocks[0](hidden_states=unet.conv_in(x), temb=emb, encoder_hidden_states=prompt,
                                   attention_mask=None, cross_attention_kwargs=None, encoder_attention_mask=None)
        if self.h_ref is None:
            self.refresh = True
        else:
            d = 1.0 - float(torch.nn.functional.cosine_similarity(h.flatten().double(), self.h_ref.flatten().double(), dim=0))
            self.distances[i] = d
            self.refresh = d > self.tau or i - self.last >= self.max_gap
        self.intra = set()
        if self.refresh:
            self.last, self.h_ref = i, h
            self.refresh_steps.append(i)
        elif self.n_intra:
            picks = [self.deep[(self.rr + k) % len(self.deep)] for k in range(self.n_intra)]
            self.rr = (self.rr + self.n_intra) % len(self.deep)
            self.intra = set(picks)


@CACHES.register("block")
def block_cache(model, n_steps: int, tau: float = 0.1, lam_inter: float = 0.25, lam_intra: float = 0.0,
                branch: int = 1) -> Cache:
    """HGC's block-level (coarse) cache; τ = 0 refreshes every step (never reuses)."""
    return BlockCache(model, n_steps, tau, lam_inter, lam_intra, branch)


class PromptCache(Cache):
    name = "prompt"

    def __init__(self, model, n_steps: int, gate: int = 10, refresh: int = 0):
        super().__init__(model, n_steps)
        self.gate, self.every = _check_int("gate", gate, 1), _check_int("refresh", refresh, 0)
        names = cross_attention_names(model.unet, "unet.") + cross_attention_names(model.controlnet, "controlnet.")
        self.plans = [ReusePlan(model, names, self.compute)]

    def compute(self, name: str, i: int) -> bool:
        """Cross-attention runs before the gate, and from it on every `refresh`-th step (never when 0)."""
        return i < self.gate or (self.every > 0 and (i - self.gate) % self.every == 0 and i > self.gate)


@CACHES.register("prompt")
def prompt_cache(model, n_steps: int, gate: int = 10, refresh: int = 0) -> Cache:
    """HGC's prompt-level (fine) cache: from step `gate` on, each cross-attention returns its last computed output."""
    return PromptCache(model, n_steps, gate, refresh)


class HGC(Cache):
    name = "hgc"

    def __init__(self, model, n_steps: int, block: dict, prompt: dict):
        super().__init__(model, n_steps)
        self.block = BlockCache(model, n_steps, **block)
        try:
            self.prompt = PromptCache(model, n_steps, **prompt)
        except Exception:
            self.block.close()  # a bad prompt setting leaves no block wrapper behind
            raise
        self.plans = [*self.block.plans, *self.prompt.plans]
        self.refresh_steps = self.block.refresh_steps
        self.distances = self.block.distances

    def begin_step(self, i, x, t, prompt) -> None:
        for plan in self.prompt.plans:
            plan.begin_step(i)
        self.block.begin_step(i, x, t, prompt)


@CACHES.register("hgc")
def hgc(model, n_steps: int, tau: float = 0.1, lam_inter: float = 0.25, lam_intra: float = 0.0, branch: int = 1,
        gate: int = 10, refresh: int = 0) -> Cache:
    """HGC = block cache (τ, λ_inter, λ_intra, branch) + prompt cache (gate, refresh) on the remaining modules."""
    return HGC(model, n_steps, dict(tau=tau, lam_inter=lam_inter, lam_intra=lam_intra, branch=branch),
               dict(gate=gate, refresh=refresh))


class ControlNetWindow(Cache):
    name = "controlnet"

    def __init__(self, model, n_steps: int, start: int = 0, stop: int = 0):
        super().__init__(model, n_steps)
        self.start, self.stop = _check_int("start", start, 0), _check_int("stop", stop, 0)
        self.plans = [ReusePlan(model, ["controlnet"], lambda n, i: not self.start <= i < self.stop)]


@CACHES.register("controlnet")
def controlnet_window(model, n_steps: int, start: int = 0, stop: int = 0) -> Cache:
    """Reuse the ControlNet residuals of the last computed step inside steps [start, stop); the UNet runs in full."""
    return ControlNetWindow(model, n_steps, start, stop)
