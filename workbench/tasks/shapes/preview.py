"""Notebook preview: a grid of rendered examples with their question and answer."""

from __future__ import annotations

from typing import Sequence

from workbench.tasks.shapes.dataset import generate
from workbench.tasks.shapes.questions import FAMILIES
from workbench.tasks.shapes.scene import SceneConfig


def show_examples(n: int = 8, seed: int = 0, config: SceneConfig | None = None,
                  families: Sequence[str] = FAMILIES, cols: int = 4):
    """A matplotlib Figure with `n` examples of `generate(n, seed, config, families)`: each image titled
    with its question and `answer: X`. Returns the Figure (not shown; a notebook displays it)."""
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"n must be >= 1 to show examples, got {n}")
    examples = generate(n, seed, config, families)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples):
        ax.imshow(ex.image, interpolation="nearest")
        ax.set_title(f"{ex.prompt}\nanswer: {ex.answer}", fontsize=7)
    fig.suptitle(f"ShapeWorld examples (seed {seed})", fontsize=9)
    fig.tight_layout()
    return fig
