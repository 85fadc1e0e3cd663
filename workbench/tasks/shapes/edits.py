"""Scene edits that yield counterfactual images with exact masks and graphs (AdaViP arXiv 2504.15619,
Causal-HalBench arXiv 2511.10268).

Which pixels may change (F_i full mask, V_i visible mask of shape i in the *original* scene, k the
edited shape, "above k" = ∪_{m>k} F_m):

- `remove_object(k)`: the scene without k, re-rendered. Changed pixels ⊆ V_k. Inside V_k a pixel
  takes the colour of the top-most remaining shape covering it, else the background: shapes that k
  occluded gain exactly V_k ∩ F_j ∩ ¬(∪_{m>j, m≠k} F_m) and lose nothing.
- `fill_with_background(k)`: V_k is painted with the background texture ("inpainting"); every other
  shape keeps exactly its old visible mask, so pixels of shapes that k occluded stay hidden. The
  image equals `render(result.scene)` only when k occluded nothing (`rerenderable`).
- `replace_object(k, kind=, colour=)`: k changes kind and/or colour in place (same size, position,
  depth), re-rendered. Changed pixels ⊆ (F_k ∪ F'_k) ∧ ¬above k, where F'_k is the new full mask.
`EditResult.allowed` is that bound as a [H, W] mask; tests check the image differs nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from workbench.tasks.shapes.graph import SceneGraph, build_graph
from workbench.tasks.shapes.raster import rasterize
from workbench.tasks.shapes.render import render
from workbench.tasks.shapes.scene import Scene


@dataclass
class EditResult:
    """A counterfactual: the edited `scene`, its `image` [H, W, 3] uint8, visible `masks` [N', H, W]
    bool in the edited scene's order, `graph`, the `allowed` [H, W] bool pixels the edit may change,
    `index_map` (old shape index -> new index, None for a removed shape), `rerenderable` (image ==
    render(scene).image) and a one-line `description`."""

    scene: Scene
    image: np.ndarray
    masks: np.ndarray
    graph: SceneGraph
    allowed: np.ndarray
    index_map: tuple[int | None, ...]
    rerenderable: bool
    description: str


def _check_index(scene: Scene, index: int) -> None:
    if not isinstance(index, (int, np.integer)) or not 0 <= index < len(scene.shapes):
        raise ValueError(f"shape index {index!r} is out of range for a scene with {len(scene.shapes)} shapes")


def _label(scene: Scene, index: int) -> str:
    s = scene.shapes[index]
    return f"{s.colour} {s.kind} #{index}"


def remove_object(scene: Scene, index: int) -> EditResult:
    """Remove shape `index` and re-render: pixels it hid become visible (changes ⊆ its visible mask)."""
    _check_index(scene, index)
    before = render(scene)
    new_scene = scene.without(index)
    after = render(new_scene)
    index_map = tuple(None if i == index else i - (i > index) for i in range(len(scene.shapes)))
    return EditResult(scene=new_scene, image=after.image, masks=after.masks, graph=after.graph,
                      allowed=before.masks[index].copy(), index_map=index_map, rerenderable=True,
                      description=f"remove {_label(scene, index)}")


def fill_with_background(scene: Scene, index: int) -> EditResult:
    """Paint shape `index`'s visible pixels with the background texture; other masks are unchanged."""
    _check_index(scene, index)
    before = render(scene)
    visible_k = before.masks[index]
    image = before.image.copy()
    image[visible_k] = before.background[visible_k]
    keep = [i for i in range(len(scene.shapes)) if i != index]
    new_scene = scene.without(index)
    masks, full = before.masks[keep], before.full_masks[keep]
    graph = build_graph(new_scene, full, masks)
    hid_something = bool((before.full_masks[:index] & visible_k).any())
    index_map = tuple(None if i == index else i - (i > index) for i in range(len(scene.shapes)))
    return EditResult(scene=new_scene, image=image, masks=masks, graph=graph, allowed=visible_k.copy(),
                      index_map=index_map, rerenderable=not hid_something,
                      description=f"fill {_label(scene, index)} with background")


def replace_object(scene: Scene, index: int, kind: str | None = None, colour: str | None = None) -> EditResult:
    """Give shape `index` a new `kind` and/or `colour` in place (same box and depth) and re-render."""
    _check_index(scene, index)
    if kind is None and colour is None:
        raise ValueError("replace_object needs a new kind or a new colour, got neither")
    old = scene.shapes[index]
    new = replace(old, kind=old.kind if kind is None else kind, colour=old.colour if colour is None else colour)
    new_scene = replace(scene, shapes=scene.shapes[:index] + (new,) + scene.shapes[index + 1:])  # validates
    before, after = render(scene), render(new_scene)
    above = before.full_masks[index + 1:].any(axis=0) if index + 1 < len(scene.shapes) else np.zeros_like(before.masks[0])
    new_full = rasterize(new.kind, new.x, new.y, new.size, scene.width, scene.height)
    allowed = (before.full_masks[index] | new_full) & ~above
    return EditResult(scene=new_scene, image=after.image, masks=after.masks, graph=after.graph, allowed=allowed,
                      index_map=tuple(range(len(scene.shapes))), rerenderable=True,
                      description=f"replace {_label(scene, index)} by {new.colour} {new.kind}")
