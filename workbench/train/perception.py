"""Perception pre-training of a VLM's vision tower on ShapeWorld: dense kind labels from the exact masks.

A tiny vision transformer trained from scratch by next-token loss alone learns colours and counts but not
shapes (a tiny Qwen2.5-VL after 900 SFT steps answers "Is there a moon?" at 57 % on unbiased images). Real
LVLMs start from a pre-trained vision encoder (CLIP, SigLIP); this is ours. Every merged image token t (one
cell of the merger grid, 28 px at 112 px) predicts which kinds are visible in its cell, through a linear
probe on the merger output z_t ∈ R^d (the very vectors the language model reads):

    y_{t,k} = 1[ visible pixels of kind k in cell t ≥ min_pixels ],   logits = W z_t + b  ∈ R^K
    L = mean_{t,k} BCE(logits_{t,k}, y_{t,k})

Only the vision tower and the probe train; the probe is discarded afterwards.

    history = pretrain_perception(model, processor, kinds, scene_stream, PerceptionConfig(steps=800))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from workbench.utils import tqdm

from workbench.tasks.shapes.render import render
from workbench.tasks.shapes.scene import Scene


@dataclass(frozen=True)
class PerceptionConfig:
    """Hyper-parameters of `pretrain_perception`."""

    steps: int = field(default=800, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "images per step"})
    lr: float = field(default=3e-3, metadata={"help": "AdamW learning rate (constant)"})
    min_pixels: int = field(default=20, metadata={"help": "visible pixels of a kind that make a cell positive"})
    eval_images: int = field(default=128, metadata={"help": "held-out images of the final image-level accuracy"})

    def __post_init__(self):
        for name in ("steps", "batch_size", "min_pixels", "eval_images"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PerceptionConfig.{name} must be a positive int, got {v!r}")
        if not 0 < self.lr < 1:
            raise ValueError(f"PerceptionConfig.lr must be in (0, 1), got {self.lr!r}")


def cell_labels(scene: Scene, kinds: Sequence[str], grid: tuple[int, int], min_pixels: int) -> np.ndarray:
    """[cells, K] float32 targets: cell (row-major over the `grid` (rows, cols) of equal cells) is positive for
    kind k when the scene's non-clutter objects of kind k show ≥ `min_pixels` visible pixels in it."""
    rows, cols = grid
    if scene.height % rows or scene.width % cols:
        raise ValueError(f"a {scene.width}x{scene.height} image does not split into a {rows}x{cols} grid")
    masks = render(scene).masks
    out = np.zeros((rows * cols, len(kinds)), dtype=np.float32)
    for i, s in enumerate(scene.shapes):
        if s.clutter or s.kind not in kinds:
            continue
        per_cell = masks[i].reshape(rows, scene.height // rows, cols, scene.width // cols).sum((1, 3)).reshape(-1)
        out[per_cell >= min_pixels, list(kinds).index(s.kind)] = 1.0
    return out


def _merged_features(model, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
    """[Σ merged tokens, d] merger outputs of the images (row-major per image)."""
    out = model.get_image_features(pixel_values, grid_thw)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    return torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats


def _batch(processor, scenes: list[Scene], kinds, grid, min_pixels, device):
    enc = processor.image_processor(images=[render(s).image for s in scenes], return_tensors="pt")
    labels = np.concatenate([cell_labels(s, kinds, grid, min_pixels) for s in scenes])
    return enc["pixel_values"].to(device), enc["image_grid_thw"].to(device), torch.from_numpy(labels).to(device)


def pretrain_perception(model, processor, kinds: Sequence[str], scenes: Callable[[int, int], list[Scene]],
                        config: PerceptionConfig = PerceptionConfig(), *, desc: str = "perception") -> dict:
    """Train `model`'s vision tower (in place) to tell which `kinds` each merged image token shows.

    Args:
        model: a Qwen2.5-VL-style model with `get_image_features` and `model.visual`.
        processor: its processor (the image processor cuts the patches).
        kinds: the K kind names the probe predicts.
        scenes: `(start, n) -> n scenes`, a deterministic stream (training draws start = 0, n, 2n, …; the
            held-out check draws from start = 10⁹).
        config: steps, batch size, learning rate, cell threshold.

    Returns:
        `{"final_loss", "kind_accuracy"}`: the last step's loss and, on held-out images, the accuracy of the
        image-level "kind k is present" decisions (a kind is predicted present when any cell predicts it).
    """
    device = next(model.parameters()).device
    merge = model.config.vision_config.spatial_merge_size * model.config.vision_config.patch_size
    probe = torch.nn.Linear(model.config.text_config.hidden_size, len(kinds)).to(device)
    params = list(model.model.visual.parameters()) + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr)
    was_training = model.training
    model.train()
    loss = torch.tensor(float("nan"))
    try:
        bar = tqdm(range(config.steps), desc=desc, mininterval=1.0)
        for step in bar:
            batch = scenes(step * config.batch_size, config.batch_size)
            grid = (batch[0].height // merge, batch[0].width // merge)
            pv, thw, y = _batch(processor, batch, kinds, grid, config.min_pixels, device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(_merged_features(model, pv, thw)), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"perception loss is {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
        model.eval()
        with torch.no_grad():
            held = scenes(10**9, config.eval_images)
            grid = (held[0].height // merge, held[0].width // merge)
            pv, thw, y = _batch(processor, held, kinds, grid, config.min_pixels, device)
            cells = grid[0] * grid[1]
            pred = (probe(_merged_features(model, pv, thw)) > 0).view(len(held), cells, -1).any(1)
            truth = y.view(len(held), cells, -1).amax(1) > 0
            accuracy = float((pred == truth).float().mean())
    finally:
        model.train(was_training)
    return {"final_loss": float(loss.detach()), "kind_accuracy": accuracy}
