"""Controllable diffusion and its caches (notebook 10, HGC arXiv 2511.11031).

| module | what |
|---|---|
| `model` | `ControlledDiffusion`: prompt encoder + diffusers UNet + ControlNet, safetensors save/load |
| `segmenter` | the fidelity judge (images -> masks) |
| `hooks` | `ReusePlan`: module-output reuse across steps; `LeafCalls`: proof of a skip |
| `caches` | registry `CACHES`: none, deepcache, block, prompt, hgc, controlnet (+ `pab` from `pab.py`) |
| `macs` | FlopCounterMode per denoising step, analytic conv / linear counts |
| `sampling` | DDIM + CFG `sample(model, maps, prompts, cache=..., **settings)` |
"""

from workbench.diffusion import pab  # noqa: F401  (registers the diffusers peer)
from workbench.diffusion.caches import CACHES
from workbench.diffusion.model import ControlledDiffusion, DiffusionConfig
from workbench.diffusion.sampling import SampleResult, sample

__all__ = ["CACHES", "ControlledDiffusion", "DiffusionConfig", "SampleResult", "sample"]
