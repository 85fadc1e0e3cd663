"""A tiny segmenter for ShapeWorld images: the fidelity judge of notebook 10 (HGC, arXiv 2511.11031).

The paper measures semantic fidelity of segmentation-conditioned generation by running a segmenter on the
generated images and comparing its masks with the condition (mIoU). Ours is a fully convolutional net
that keeps full resolution (dilated 3 × 3 convolutions widen the receptive field to ~31 px, enough to tell
a star from a circle), trained on rendered scenes by `train.diffusion.train_segmenter`:

    logits = Segmenter(n_classes)(images)      # images [B, 3, H, W] in [-1, 1] -> logits [B, K, H, W]
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class Segmenter(nn.Module):
    """conv-GN-SiLU blocks at dilations 1, 2, 4, 8, 1, then a 1 × 1 classifier; `width` channels throughout."""

    def __init__(self, n_classes: int = 5, width: int = 32):
        super().__init__()
        self.n_classes, self.width = n_classes, width
        layers, c_in = [], 3
        for d in (1, 2, 4, 8, 1):
            layers += [nn.Conv2d(c_in, width, 3, padding=d, dilation=d), nn.GroupNorm(8, width), nn.SiLU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, n_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> [B, H, W] int64 class map (argmax)."""
        return self(images).argmax(1)

    def save_pretrained(self, path: str, safe_serialization: bool = True) -> None:
        """Write `config.json` and `model.safetensors` (`safe_serialization` must stay True)."""
        if not safe_serialization:
            raise ValueError("checkpoints are safetensors only (safe_serialization=False is refused)")
        os.makedirs(path, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, os.path.join(path, "model.safetensors"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({"n_classes": self.n_classes, "width": self.width}, f)

    @classmethod
    def from_pretrained(cls, path: str) -> "Segmenter":
        with open(os.path.join(path, "config.json")) as f:
            model = cls(**json.load(f))
        model.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
        return model.eval()
