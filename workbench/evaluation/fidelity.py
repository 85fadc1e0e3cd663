"""Semantic fidelity of segmentation-conditioned generation (HGC, arXiv 2511.11031; notebook 10).

For generated images and the maps they were conditioned on, a segmenter's predicted map P and the
condition M (both [H, W] class ids, K classes with 0 = background):

    IoU_k = |P = k ∧ M = k| / |P = k ∨ M = k|,        mIoU = mean of IoU_k over the classes present in P or M

per image (`miou`, one value per image, so two caches sampled from the same seeds are paired image by image),
and over a set of images by pooling the intersections and unions per class first (`pooled_miou`, the
benchmark convention). `pixel_distance` is the mean absolute pixel difference to a reference image (the
uncached sample of the same seed), in [0, 2] for images in [-1, 1].
"""

from __future__ import annotations

import torch


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be [B, H, W] class maps, got {tuple(pred.shape)} and {tuple(target.shape)}")


def miou(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[B] float64 per-image mIoU of `pred` against `target` (both [B, H, W] int64), over the classes present."""
    _check(pred, target)
    p = torch.nn.functional.one_hot(pred.long(), n_classes).flatten(1, 2).bool()  # [B, HW, K]
    m = torch.nn.functional.one_hot(target.long(), n_classes).flatten(1, 2).bool()
    inter = (p & m).sum(1).double()
    union = (p | m).sum(1).double()
    present = union > 0
    return torch.where(present, inter / union.clamp(min=1), torch.zeros_like(union)).sum(1) / present.sum(1)


def pooled_miou(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> float:
    """mIoU over a set: per class Σ intersections / Σ unions across images, averaged over the classes present."""
    _check(pred, target)
    p = torch.nn.functional.one_hot(pred.long(), n_classes).flatten(0, 2).bool()
    m = torch.nn.functional.one_hot(target.long(), n_classes).flatten(0, 2).bool()
    inter, union = (p & m).sum(0).double(), (p | m).sum(0).double()
    present = union > 0
    return float((inter[present] / union[present]).mean())


def pixel_distance(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[B] mean |images − reference| per image (both [B, 3, H, W])."""
    if images.shape != reference.shape:
        raise ValueError(f"images and reference must have one shape, got {tuple(images.shape)} and {tuple(reference.shape)}")
    return (images.double() - reference.double()).abs().flatten(1).mean(1)
