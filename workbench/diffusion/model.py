"""A tiny controllable diffusion model: prompt encoder + diffusers `UNet2DConditionModel` + `ControlNetModel`.

Pixel-space DDPM on 32 × 32 ShapeWorld images (no VAE: the images are small enough, and a VAE would
be one more model to train and to cache). The three parts:

- `PromptEncoder`: token ids [B, L] -> embeddings [B, L, D] (a token table plus learned positions and a
  LayerNorm; the tokens are `tasks.shapes.segmentation.PROMPT_VOCAB`), the UNet's `encoder_hidden_states`;
- the UNet (SD-1.5's layout scaled down: cross-attention in every block but the deepest; the full-resolution
  level attends to the prompt only (`only_cross_attention`), since a 1024-token self-attention costs more CPU
  time than the rest of the block; channels double with depth);
- the ControlNet, a copy of the UNet's encoder (`ControlNetModel.from_unet`) whose conditioning embedding
  keeps full resolution (pixel space: the map is the image's own size), fed the one-hot segmentation map.

`ControlledDiffusion.save_pretrained(path)` writes `config.json`, `unet/`, `controlnet/` (diffusers'
safetensors) and `prompt_encoder.safetensors`; `ControlledDiffusion.from_pretrained(path)` reads them back.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import nn


@dataclass(frozen=True)
class DiffusionConfig:
    """Sizes of the tiny model. `channels` per UNet level (deep = wide), `prompt_dim` = cross-attention dim."""

    size: int = 32
    channels: tuple[int, ...] = (8, 16, 32)
    layers_per_block: int = 1
    prompt_dim: int = 32
    prompt_length: int = 6
    vocab: int = 10
    n_classes: int = 5
    head_dim: int = 8
    train_timesteps: int = 1000
    prediction: str = "sample"

    def __post_init__(self):
        if self.prediction not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"prediction must be epsilon, sample or v_prediction, got {self.prediction!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) < 2:
            raise ValueError(f"the UNet needs at least 2 levels, got channels={self.channels}")
        if self.size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"size {self.size} must be divisible by 2^(levels - 1) = {2 ** (len(self.channels) - 1)}")


class PromptEncoder(nn.Module):
    """[B, L] token ids -> [B, L, D]: token embedding + learned position embedding, then LayerNorm."""

    def __init__(self, vocab: int, length: int, dim: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Parameter(torch.zeros(length, dim))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.tokens.weight, std=0.5)
        nn.init.normal_(self.positions, std=0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[-1] != self.positions.shape[0]:
            raise ValueError(f"prompts must have {self.positions.shape[0]} tokens, got {ids.shape[-1]}")
        return self.norm(self.tokens(ids) + self.positions)


def build_unet(cfg: DiffusionConfig):
    """The UNet: `CrossAttnDownBlock2D` at every level but the deepest (`DownBlock2D`), mirrored on the way up."""
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
    return UNet2DConditionModel(sample_size=cfg.size, in_channels=3, out_channels=3, down_block_types=down,
                                up_block_types=up, block_out_channels=cfg.channels, layers_per_block=cfg.layers_per_block,
                                cross_attention_dim=cfg.prompt_dim, attention_head_dim=cfg.head_dim, norm_num_groups=8,
                                only_cross_attention=(True,) + (False,) * (n - 1))


def build_controlnet(unet, cfg: DiffusionConfig):
    """`ControlNetModel.from_unet` with a full-resolution conditioning embedding over `n_classes` one-hot channels."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16,),
                                     conditioning_channels=cfg.n_classes)


class ControlledDiffusion(nn.Module):
    """The three parts under one module (one `state_dict`, one `.to(device)`); `scheduler()` gives a fresh DDIM."""

    def __init__(self, cfg: DiffusionConfig, unet=None, controlnet=None):
        super().__init__()
        self.cfg = cfg
        self.prompt_encoder = PromptEncoder(cfg.vocab, cfg.prompt_length, cfg.prompt_dim)
        self.unet = unet if unet is not None else build_unet(cfg)
        self.controlnet = controlnet if controlnet is not None else build_controlnet(self.unet, cfg)

    def scheduler(self, kind: str = "ddim"):
        """A fresh noise scheduler over `train_timesteps` (linear β, the config's prediction target): `ddim` for sampling,
        `ddpm` for training's forward process."""
        from diffusers import DDIMScheduler, DDPMScheduler

        kw = dict(num_train_timesteps=self.cfg.train_timesteps, beta_schedule="linear", prediction_type=self.cfg.prediction,
                  clip_sample=True)
        if kind == "ddim":
            return DDIMScheduler(**kw, set_alpha_to_one=False, steps_offset=1)
        if kind == "ddpm":
            return DDPMScheduler(**kw)
        raise ValueError(f"scheduler kind must be 'ddim' or 'ddpm', got {kind!r}")

    def predict_noise(self, x: torch.Tensor, t: torch.Tensor, prompt: torch.Tensor, condition: torch.Tensor,
                      conditioning_scale: float = 1.0) -> torch.Tensor:
        """The network output at (x_t, t | prompt embeddings [B, L, D], one-hot map [B, K, H, W]) -> [B, 3, H, W]:
        ControlNet, then UNet. It is ε̂, x̂₀ or v̂ by `cfg.prediction` (the scheduler interprets it)."""
        down, mid = self.controlnet(x, t, encoder_hidden_states=prompt, controlnet_cond=condition,
                                    conditioning_scale=conditioning_scale, return_dict=False)
        return self.unet(x, t, encoder_hidden_states=prompt, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]

    def save_pretrained(self, path: str, safe_serialization: bool = True) -> None:
        """Write the model as safetensors (see the module docstring); `safe_serialization` must stay True."""
        if not safe_serialization:
            raise ValueError("checkpoints are safetensors only (safe_serialization=False is refused)")
        os.makedirs(path, exist_ok=True)
        self.unet.save_pretrained(os.path.join(path, "unet"), safe_serialization=True)
        self.controlnet.save_pretrained(os.path.join(path, "controlnet"), safe_serialization=True)
        save_file({k: v.contiguous() for k, v in self.prompt_encoder.state_dict().items()},
                  os.path.join(path, "prompt_encoder.safetensors"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({"workbench_kind": "controlled_diffusion", **asdict(self.cfg)}, f, indent=1)

    @classmethod
    def from_pretrained(cls, path: str) -> "ControlledDiffusion":
        """Read a folder written by `save_pretrained` (nothing is unpickled)."""
        from diffusers import ControlNetModel, UNet2DConditionModel

        with open(os.path.join(path, "config.json")) as f:
            raw = json.load(f)
        if raw.pop("workbench_kind", None) != "controlled_diffusion":
            raise ValueError(f"{path} does not hold a controlled-diffusion model (config.json has no workbench_kind)")
        model = cls(DiffusionConfig(**raw), unet=UNet2DConditionModel.from_pretrained(os.path.join(path, "unet")),
                    controlnet=ControlNetModel.from_pretrained(os.path.join(path, "controlnet")))
        model.prompt_encoder.load_state_dict(load_file(os.path.join(path, "prompt_encoder.safetensors")))
        return model.eval()
