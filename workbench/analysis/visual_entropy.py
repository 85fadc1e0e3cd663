"""Visual entropy: how spread an image's vision-encoder features are (Durian's perceptual difficulty,
arXiv 2602.21743).

For one image with patch features F ∈ R^{P×d} (the P merged image tokens the language model receives):

    C   = (F − mean_P F)ᵀ (F − mean_P F) / (P − 1)          centred covariance, d × d
    λ_k = eigenvalues of C (clamped at 0),  p_k = λ_k / Σ_j λ_j
    H   = −Σ_k p_k log p_k                                  (0 · log 0 = 0), in nats, 0 ≤ H ≤ log min(P − 1, d)

A cluttered, occluded or noisy scene spreads its features over more directions and scores higher.
C's non-zero eigenvalues are those of the P × P Gram matrix of the centred features, so the smaller
of the two is decomposed. Everything runs in float64.

Degenerate inputs have a defined answer, never NaN: P = 1 (no covariance) and features that are all
equal (every λ = 0) give H = 0.

    H = visual_entropy(feats)                              # feats: list of [P_i, d] -> [B]
    H = image_visual_entropy(model, pixel_values, grid)    # from a Qwen2.5-VL policy's own encoder
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def feature_entropy(features: Tensor) -> Tensor:
    """Visual entropy H of one image's patch features `features` [P, d] (see the module docstring): a
    float64 scalar tensor, 0 when P < 2 or when all patches are equal."""
    if features.dim() != 2:
        raise ValueError(f"features must be [P, d] (patches x channels), got shape {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError("features must be finite; got NaN or inf in an image's patch features")
    P, d = features.shape
    if P < 2 or d == 0:
        return torch.zeros((), dtype=torch.float64)
    f = features.detach().to(torch.float64)
    f = f - f.mean(0, keepdim=True)
    gram = f @ f.T if P <= d else f.T @ f  # same non-zero spectrum, the smaller matrix
    lam = torch.linalg.eigvalsh(gram / (P - 1)).clamp(min=0.0)
    total = lam.sum()
    if total <= 0:  # all patches equal
        return torch.zeros((), dtype=torch.float64)
    p = lam / total
    p = p[p > 0]
    return -(p * p.log()).sum()


def visual_entropy(features: Sequence[Tensor]) -> Tensor:
    """Visual entropy of each image: `features` is a sequence of B tensors [P_i, d] (images may have
    different patch counts). Returns [B] float64."""
    return torch.stack([feature_entropy(f) for f in features]) if len(features) else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def image_features(model, pixel_values: Tensor, image_grid_thw: Tensor) -> list[Tensor]:
    """The merged image-token features a Qwen2.5-VL-style `model` feeds its language model, one [P_i, d]
    tensor per image (`pixel_values` [Σ patches, D], `image_grid_thw` [B, 3] as the processor makes them)."""
    out = model.get_image_features(pixel_values, image_grid_thw)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    return [f.float().cpu() for f in feats]


def image_visual_entropy(model, pixel_values: Tensor, image_grid_thw: Tensor) -> Tensor:
    """[B] visual entropy of each image under `model`'s own vision encoder (one forward of the encoder)."""
    return visual_entropy(image_features(model, pixel_values, image_grid_thw))
