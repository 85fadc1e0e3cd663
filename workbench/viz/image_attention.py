"""Where a response token looks in the image, and which response tokens are perception or reasoning.

    plot_image_attention(image, attn.heatmap(0, t), title=f"token {tokens[t]!r}")   # patch heatmap overlay
    render_token_types(tokens, types.labels[0])        # HTML: perception / reasoning / both / neither
    plot_token_types(tokens, types.labels[0])          # matplotlib twin with a legend

The patch heatmap ([rows, cols], one value per merged image token) is upsampled to the image by
nearest neighbour — each merged token covers a (H / rows) × (W / cols) block — and drawn over the
image with transparency. Token types reuse `workbench.viz.tokens` with a four-colour categorical
colormap (`TOKEN_TYPE_CMAP`) on the values −1, −⅓, ⅓, 1 for neither, perception, reasoning, both.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap

from workbench.viz.tokens import plot_tokens, render_tokens

TOKEN_TYPES = ("neither", "perception", "reasoning", "both")  # labels 0..3 (see analysis.perturbation)
TOKEN_TYPE_COLORS = ("#f2f2f2", "#3B6FB6", "#D1495B", "#7D5BA6")
TOKEN_TYPE_CMAP = "workbench_token_types"
_TYPE_VALUES = np.array([-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0])
if TOKEN_TYPE_CMAP not in matplotlib.colormaps:
    matplotlib.colormaps.register(ListedColormap(list(TOKEN_TYPE_COLORS), name=TOKEN_TYPE_CMAP))


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def upsample_heatmap(heatmap, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a [rows, cols] grid to [height, width]: pixel (y, x) takes cell
    (⌊y · rows / height⌋, ⌊x · cols / width⌋)."""
    grid = _as_numpy(heatmap).astype(float)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"heatmap must be a non-empty [rows, cols] grid, got shape {grid.shape}")
    rows = (np.arange(height) * grid.shape[0]) // height
    cols = (np.arange(width) * grid.shape[1]) // width
    return grid[rows[:, None], cols[None, :]]


def plot_image_attention(image, heatmap, ax=None, *, title: str | None = None, alpha: float = 0.55,
                         cmap: str = "magma", grid_lines: bool = True, colorbar: bool = True):
    """The image with a patch-grid attention heatmap drawn over it.

    Args:
        image: [H, W, 3] uint8.
        heatmap: [rows, cols] attention per merged image token (e.g. `ImageAttention.heatmap(b, t)`).
        alpha: opacity of the heatmap; grid_lines: outline the merged patches.
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    image = _as_numpy(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {image.shape}")
    H, W = image.shape[:2]
    grid = _as_numpy(heatmap)
    up = upsample_heatmap(grid, H, W)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(image, interpolation="nearest")
    shown = ax.imshow(up, cmap=cmap, alpha=alpha, interpolation="nearest", vmin=0.0, vmax=max(float(up.max()), 1e-12))
    if grid_lines:
        for r in range(1, grid.shape[0]):
            ax.axhline(r * H / grid.shape[0] - 0.5, color="white", lw=0.5, alpha=0.6)
        for c in range(1, grid.shape[1]):
            ax.axvline(c * W / grid.shape[1] - 0.5, color="white", lw=0.5, alpha=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax.figure


def token_type_values(labels) -> np.ndarray:
    """Map type labels (0 neither, 1 perception, 2 reasoning, 3 both; −1 padding -> NaN) to the values
    the categorical colormap shows: [N] -> [N] floats."""
    lab = _as_numpy(labels).astype(int).reshape(-1)
    if ((lab < -1) | (lab > 3)).any():
        raise ValueError(f"token type labels must lie in -1..3, got {sorted(set(lab.tolist()))}")
    out = np.full(lab.shape, np.nan)
    ok = lab >= 0
    out[ok] = _TYPE_VALUES[lab[ok]]
    return out


def render_token_types(tokens: Sequence[str], labels, *, title: str | None = None):
    """HTML rendering of tokens coloured by type (grey neither, blue perception, red reasoning,
    purple both); padding (label −1) is uncoloured. Returns a `TokenHeatmap`."""
    return render_tokens(tokens, token_type_values(labels), title=title, label="token type", vmin=-1.0, vmax=1.0,
                         cmap=TOKEN_TYPE_CMAP, categories=tuple(zip(TOKEN_TYPES, TOKEN_TYPE_COLORS)))


def plot_token_types(tokens: Sequence[str], labels, ax=None, *, title: str | None = None, line_width: int = 60,
                     fontsize: float = 10.0):
    """Matplotlib twin of `render_token_types`, with a legend of the four types. Returns the Figure."""
    from matplotlib.patches import Patch

    fig = plot_tokens(tokens, token_type_values(labels), ax=ax, title=title, vmin=-1.0, vmax=1.0, cmap=TOKEN_TYPE_CMAP,
                      colorbar=False, line_width=line_width, fontsize=fontsize)
    handles = [Patch(facecolor=c, edgecolor="#999", label=n) for n, c in zip(TOKEN_TYPES, TOKEN_TYPE_COLORS)]
    fig.axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=4, fontsize=fontsize - 1)
    return fig
