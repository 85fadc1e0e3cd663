"""ShapeWorld as a controllable-generation task: segmentation map + prompt -> image (HGC, arXiv 2511.11031).

The COCO-Stuff analogue of notebook 10. A scene's **segmentation map** is the class of every pixel
(0 = background, k = the k-th kind of `SEG_KINDS`, visible pixels only); its **prompt** names each object's
colour and kind in drawing order ("red circle blue star"), as token ids over `PROMPT_VOCAB`. The map says
where and what shape; only the prompt says which colour — so a generator must read both, the map through
ControlNet and the prompt through cross-attention.

    batch = seg_batch(8, seed=0)       # images [8, 3, 32, 32] in [-1, 1], maps [8, 32, 32] int64,
                                       # prompts [8, L] int64 (L = 2 · max objects), scenes
    one_hot_maps(batch.maps)           # [8, K + 1, 32, 32] float: the ControlNet condition

Streams are seeded per example: example i of stream `seed` is scene `seed * 100_003 + i`, so training
streams (seed < 1000) and the evaluation stream (`EVAL_SEED`) never share a scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from workbench.tasks.shapes.render import render
from workbench.tasks.shapes.sampler import sample_scene
from workbench.tasks.shapes.scene import Scene, SceneConfig

SEG_KINDS = ("circle", "square", "triangle", "star")
SEG_COLOURS = ("red", "green", "blue", "yellow")
#: token 0 pads, token 1 is the null prompt (classifier-free guidance's unconditional branch)
PROMPT_VOCAB = ("<pad>", "<null>", *SEG_COLOURS, *SEG_KINDS)
PAD_ID, NULL_ID = 0, 1
EVAL_SEED = 7_777


def seg_config(size: int = 32, max_objects: int = 3) -> SceneConfig:
    """Scenes for the task: `size`² px, 1..`max_objects` disjoint objects of 35–55 % of the side, black
    background (so every non-background pixel belongs to exactly one object)."""
    if size < 16:
        raise ValueError(f"segmentation scenes need at least 16 px, got size={size}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    lo, hi = max(6, round(0.3 * size)), max(7, round(0.45 * size))
    return SceneConfig(width=size, height=size, n_objects=(1, max_objects), kinds=SEG_KINDS, colours=SEG_COLOURS,
                       sizes=(lo, hi), background="black", occlusion="none")


def segmentation_map(scene: Scene) -> np.ndarray:
    """[H, W] int64: 0 background, 1 + `SEG_KINDS.index(kind)` where an object is visible."""
    r = render(scene)
    out = np.zeros((scene.height, scene.width), dtype=np.int64)
    for i, s in enumerate(scene.shapes):
        out[r.masks[i]] = 1 + SEG_KINDS.index(s.kind)
    return out


def prompt_ids(scene: Scene, length: int) -> list[int]:
    """`[colour, kind] * objects` in drawing order, padded with `PAD_ID` to `length` tokens."""
    ids = [PROMPT_VOCAB.index(t) for s in scene.shapes for t in (s.colour, s.kind)]
    if len(ids) > length:
        raise ValueError(f"the scene has {len(scene.shapes)} objects: its prompt needs {len(ids)} > {length} tokens")
    return ids + [PAD_ID] * (length - len(ids))


def prompt_text(ids) -> str:
    """The prompt as words ("red circle blue star"); padding dropped."""
    return " ".join(PROMPT_VOCAB[int(i)] for i in ids if int(i) not in (PAD_ID,))


@dataclass
class SegBatch:
    """images [B, 3, H, W] float32 in [-1, 1]; maps [B, H, W] int64; prompts [B, L] int64; the scenes."""

    images: torch.Tensor
    maps: torch.Tensor
    prompts: torch.Tensor
    scenes: list[Scene]


def scenes(n: int, seed: int, config: SceneConfig | None = None, start: int = 0) -> list[Scene]:
    """Examples `start … start + n − 1` of stream `seed` (each its own seeded scene)."""
    config = config or seg_config()
    return [sample_scene(config, np.random.default_rng(seed * 100_003 + start + i)) for i in range(n)]


def batch_from_scenes(items: list[Scene], prompt_length: int) -> SegBatch:
    """Render `items` into a `SegBatch`."""
    images = np.stack([render(s).image for s in items]).astype(np.float32) / 127.5 - 1.0
    return SegBatch(images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                    maps=torch.from_numpy(np.stack([segmentation_map(s) for s in items])),
                    prompts=torch.tensor([prompt_ids(s, prompt_length) for s in items], dtype=torch.long),
                    scenes=list(items))


def seg_batch(n: int, seed: int, config: SceneConfig | None = None, start: int = 0) -> SegBatch:
    """`n` examples of stream `seed` from `start`, rendered (see the module docstring for shapes)."""
    config = config or seg_config()
    return batch_from_scenes(scenes(n, seed, config, start), 2 * config.n_objects[1])


def one_hot_maps(maps: torch.Tensor, n_classes: int = len(SEG_KINDS) + 1) -> torch.Tensor:
    """[B, H, W] int64 class map -> [B, n_classes, H, W] float32 one-hot (the ControlNet condition)."""
    if maps.dtype != torch.long or maps.dim() != 3:
        raise ValueError(f"maps must be [B, H, W] int64, got {tuple(maps.shape)} {maps.dtype}")
    if maps.numel() and (int(maps.min()) < 0 or int(maps.max()) >= n_classes):
        raise ValueError(f"map classes must lie in [0, {n_classes}), got [{int(maps.min())}, {int(maps.max())}]")
    return torch.nn.functional.one_hot(maps, n_classes).permute(0, 3, 1, 2).float()
