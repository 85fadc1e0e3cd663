"""Zoo recipes of notebook 10 (HGC): the tiny controllable diffusion model and its fidelity segmenter.

- `tiny-shapes-diffusion`: `diffusion.model.ControlledDiffusion` (channels 8/16/32, pixel space 32 × 32,
  UNet 0.2M + ControlNet 0.1M parameters) trained jointly from scratch by `train.diffusion.train_diffusion`
  on ShapeWorld (segmentation map, prompt) → image; a checkpoint every 200 steps under the zoo cache, so an
  interrupted build resumes where it stopped.
- `tiny-shapes-seg`: `diffusion.segmenter.Segmenter` trained on rendered scenes; its `info` records the
  held-out mIoU on real images (the ceiling any generated image can reach).
- `-smoke` twins: a few steps, untrained stand-ins for CI.
"""

from __future__ import annotations

import os
import shutil

import torch

from workbench.diffusion.model import ControlledDiffusion, DiffusionConfig
from workbench.diffusion.segmenter import Segmenter
from workbench.evaluation.fidelity import miou, pooled_miou
from workbench.models.zoo import register_recipe
from workbench.tasks.shapes.segmentation import EVAL_SEED, SEG_KINDS, seg_batch
from workbench.train.diffusion import DiffusionTrainConfig, checkpoint_folder, train_diffusion, train_segmenter
from workbench.utils import cache_dir, seed_everything

TINY_DIFFUSION = DiffusionConfig(size=32, channels=(8, 16, 32), prompt_dim=32, head_dim=8)
DIFFUSION_TRAIN = DiffusionTrainConfig(steps=1500, batch_size=32, lr=2e-3, warmup=50, checkpoint_every=200)
SEG_TRAIN = DiffusionTrainConfig(steps=600, batch_size=32, lr=2e-3, warmup=20)


def _load_diffusion(path, device, dtype):
    return ControlledDiffusion.from_pretrained(path).to(device), None


def _load_segmenter(path, device, dtype):
    return Segmenter.from_pretrained(path).to(device), None


def build_diffusion(name: str, seed: int, train: DiffusionTrainConfig):
    seed_everything(seed)
    model = ControlledDiffusion(TINY_DIFFUSION)
    ckpt = checkpoint_folder(os.path.join(cache_dir(), "zoo"), f"{name}-seed{seed}")
    train = DiffusionTrainConfig(**{**train.__dict__, "seed": seed})
    history = train_diffusion(model, train, checkpoint=ckpt, desc=f"train {name}")
    shutil.rmtree(ckpt, ignore_errors=True)  # the zoo keeps the trained model; the resume state is no longer needed
    info = {"config": TINY_DIFFUSION.__dict__, "train": train.__dict__, "history": history,
            "parameters": {k: sum(p.numel() for p in getattr(model, k).parameters())
                           for k in ("unet", "controlnet", "prompt_encoder")}}
    return model, None, info


def build_segmenter(seed: int, train: DiffusionTrainConfig, n_eval: int = 256):
    seed_everything(seed)
    seg = Segmenter(len(SEG_KINDS) + 1)
    history = train_segmenter(seg, DiffusionTrainConfig(**{**train.__dict__, "seed": seed}))
    batch = seg_batch(n_eval, EVAL_SEED)
    with torch.no_grad():
        pred = seg.predict(batch.images)
    return seg, None, {"history": history, "heldout_pooled_miou": pooled_miou(pred, batch.maps, len(SEG_KINDS) + 1),
                       "heldout_mean_image_miou": float(miou(pred, batch.maps, len(SEG_KINDS) + 1).mean()),
                       "n_eval": n_eval}


@register_recipe("tiny-shapes-diffusion", version="1", loader=_load_diffusion)
def tiny_shapes_diffusion(seed: int = 0):
    """Tiny ControlNet + UNet, 1500 steps of 32 images (about 20 CPU-minutes on 2 cores)."""
    return build_diffusion("tiny-shapes-diffusion", seed, DIFFUSION_TRAIN)


@register_recipe("tiny-shapes-diffusion-smoke", version="1", loader=_load_diffusion)
def tiny_shapes_diffusion_smoke(seed: int = 0):
    """The same model after 3 steps of 4 images: an untrained stand-in for CI smoke runs."""
    return build_diffusion("tiny-shapes-diffusion-smoke", seed, DiffusionTrainConfig(steps=3, batch_size=4, warmup=1))


@register_recipe("tiny-shapes-seg", version="1", loader=_load_segmenter)
def tiny_shapes_seg(seed: int = 0):
    """The fidelity segmenter, 600 steps of 32 rendered scenes (about a minute)."""
    return build_segmenter(seed, SEG_TRAIN)


@register_recipe("tiny-shapes-seg-smoke", version="1", loader=_load_segmenter)
def tiny_shapes_seg_smoke(seed: int = 0):
    """The segmenter after 3 steps: an untrained stand-in for CI smoke runs."""
    return build_segmenter(seed, DiffusionTrainConfig(steps=3, batch_size=4, warmup=1), n_eval=8)
