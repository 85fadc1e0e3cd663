"""Render a `Scene` to an RGB uint8 image with exact per-object masks and the scene graph.

Painter's algorithm on exact masks (`raster.rasterize`, no antialiasing):

    full_i     = pixels whose centre lies inside shape i
    visible_i  = full_i ∧ ¬(full_{i+1} ∨ … ∨ full_{N−1})        (later shapes are on top)
    image[p]   = colour_i            if p ∈ visible_i
               = background[p]       if p lies in no visible_i

so the visible masks are disjoint, every visible pixel has exactly its shape's flat colour, and
their union plus the background texture is the whole image. The background is the named colour
plus, when `scene.noise > 0`, integer noise U{−noise, …, noise} per pixel and channel drawn from
`numpy.random.default_rng(scene.noise_seed)`, clipped to [0, 255].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.tasks.shapes.graph import SceneGraph, build_graph
from workbench.tasks.shapes.raster import rasterize
from workbench.tasks.shapes.scene import ALL_COLOURS, BACKGROUNDS, Scene


@dataclass
class Rendering:
    """`image`: [H, W, 3] uint8; `masks`: [N, H, W] bool visible pixels per shape (N = len(scene.shapes),
    in scene order); `full_masks`: [N, H, W] bool amodal masks; `background`: [H, W, 3] uint8 (the
    image with no shapes); `graph`: the `SceneGraph`."""

    image: np.ndarray
    masks: np.ndarray
    full_masks: np.ndarray
    background: np.ndarray
    graph: SceneGraph

    def pil(self):
        """The image as a `PIL.Image.Image` (RGB)."""
        from PIL import Image

        return Image.fromarray(self.image, mode="RGB")


def background_image(scene: Scene) -> np.ndarray:
    """The scene's background texture: [H, W, 3] uint8 (flat colour ± seeded integer noise)."""
    bg = np.empty((scene.height, scene.width, 3), dtype=np.int16)
    bg[:] = BACKGROUNDS[scene.background]
    if scene.noise > 0:
        rng = np.random.default_rng(scene.noise_seed)
        bg += rng.integers(-scene.noise, scene.noise + 1, size=bg.shape, dtype=np.int16)
    return np.clip(bg, 0, 255).astype(np.uint8)


def shape_masks(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(full, visible) masks, each [N, H, W] bool, N = len(scene.shapes) (N may be 0)."""
    H, W = scene.height, scene.width
    full = np.zeros((len(scene.shapes), H, W), dtype=bool)
    for i, s in enumerate(scene.shapes):
        full[i] = rasterize(s.kind, s.x, s.y, s.size, W, H)
    visible = full.copy()
    covered = np.zeros((H, W), dtype=bool)
    for i in range(len(scene.shapes) - 1, -1, -1):  # top to bottom
        visible[i] &= ~covered
        covered |= full[i]
    return full, visible


def render(scene: Scene) -> Rendering:
    """Render `scene` (see the module docstring for the exact pixel rule).

    Returns:
        A `Rendering` with image [H, W, 3] uint8, masks / full_masks [N, H, W] bool, background
        [H, W, 3] uint8 and the scene graph.
    """
    full, visible = shape_masks(scene)
    background = background_image(scene)
    image = background.copy()
    for i, s in enumerate(scene.shapes):
        image[visible[i]] = ALL_COLOURS[s.colour]
    return Rendering(image=image, masks=visible, full_masks=full, background=background,
                     graph=build_graph(scene, full, visible))


def scene_graph(scene: Scene) -> SceneGraph:
    """The scene graph alone (rasterises the masks, skips painting)."""
    full, visible = shape_masks(scene)
    return build_graph(scene, full, visible)
