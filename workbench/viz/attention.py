"""Attention heatmaps and selected-block maps, with punctuation positions marked (PHSA, arXiv 2601.02819).

    probs = attention_probs(rec.q, rec.k)                     # from `record_attention` records
    plot_attention_map(probs[0, head], punctuation=punct[0])  # one head
    plot_selected_blocks(selection, punctuation=punct[0])     # which blocks each query tile reads
    plot_attention_grid(records)                              # layers x heads
    attention_explorer(records, cfg)                          # ipywidgets, or a static figure

Long maps are max-pooled to at most `max_pixels` per side, so a 32k-token map stays a small image
(max-pooling keeps isolated peaks visible, unlike averaging).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap, LogNorm

from workbench.attention.blocks import BlockSelection, tile_local_start
from workbench.attention.kernels import dense_attention

# codes of a selected-block map
FUTURE, SKIPPED, INITIAL, LOCAL, SELECTED = 0, 1, 2, 3, 4
BLOCK_COLORS = ["#FFFFFF", "#E8E8E8", "#EDAE49", "#3B6FB6", "#D1495B"]
BLOCK_LABELS = ["future (causal)", "skipped", "initial", "local window", "selected"]


def attention_probs(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Dense causal attention probabilities softmax(q kᵀ·scale).

    q [B, Hq, Tq, D], k [B, Hkv, Tk, D] -> [B, Hq, Tq, Tk].
    """
    return dense_attention(q.float(), k.float(), k.float(), scale=scale, return_probs=True)[1]


def _pool(a: np.ndarray, max_pixels: int) -> tuple[np.ndarray, int, int]:
    """Max-pool a 2-D array so that no side exceeds max_pixels; returns (pooled, row factor, col factor)."""
    fr, fc = max(1, -(-a.shape[0] // max_pixels)), max(1, -(-a.shape[1] // max_pixels))
    if fr == 1 and fc == 1:
        return a, 1, 1
    r, c = -(-a.shape[0] // fr) * fr, -(-a.shape[1] // fc) * fc
    padded = np.full((r, c), np.nan)
    padded[: a.shape[0], : a.shape[1]] = a
    return np.nanmax(padded.reshape(r // fr, fr, c // fc, fc), axis=(1, 3)), fr, fc


_CMAP = plt.get_cmap("magma_r").with_extremes(bad="white")


def _shown(pooled: np.ndarray, floor: float) -> np.ndarray:
    """Exact zeros (masked / not attended) become NaN, drawn white; the rest is clipped to [floor, 1]."""
    return np.where(pooled > 0, np.clip(pooled, floor, 1.0), np.nan)


def _mark_punctuation(ax, punctuation, factor: int, n_rows: int) -> None:
    if punctuation is None:
        return
    pos = np.flatnonzero(np.asarray(punctuation, dtype=bool))
    if pos.size:
        ax.scatter(pos / factor, np.full(pos.shape, -0.5 - 0.01 * n_rows), marker="|", s=25, color="#D1495B",
                   clip_on=False, linewidths=0.8, label="punctuation")


def plot_attention_map(probs, *, punctuation=None, tokens: Sequence[str] | None = None, ax=None,
                       title: str | None = None, max_pixels: int = 512, floor: float = 1e-4):
    """Heatmap of one head's attention, log colour scale, punctuation keys marked above the map.

    Args:
        probs: [Tq, Tk] array or tensor of attention probabilities (rows = queries).
        punctuation: [Tk] bool, marked as red ticks above the key axis.
        tokens: key tokens, used as x tick labels when Tk <= 64.
        floor: smallest probability shown (the log scale's lower end).

    Returns:
        The matplotlib Axes.
    """
    a = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"probs must be a non-empty [Tq, Tk] array, got shape {a.shape}")
    pooled, fr, fc = _pool(a, max_pixels)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(_shown(pooled, floor), norm=LogNorm(vmin=floor, vmax=1.0), cmap=_CMAP, aspect="auto",
                   interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="attention probability")
    _mark_punctuation(ax, punctuation, fc, pooled.shape[0])
    if tokens is not None and len(tokens) == a.shape[1] and a.shape[1] <= 64:
        ax.set_xticks(range(len(tokens)), [t if t.strip() else repr(t) for t in tokens], rotation=90, fontsize=7)
    ax.set_xlabel("key position" + (f" (x{fc} max-pooled)" if fc > 1 else ""))
    ax.set_ylabel("query position" + (f" (x{fr})" if fr > 1 else ""))
    ax.grid(False)
    ax.set_title(title or "attention (log scale); red ticks: punctuation keys")
    return ax


def selected_block_map(sel: BlockSelection, batch: int = 0, head: int = 0) -> np.ndarray:
    """Per query tile and key block: FUTURE / SKIPPED / INITIAL / LOCAL / SELECTED codes, [n_tiles, Nb] int."""
    nt, nb = sel.n_tiles, sel.n_blocks
    start = tile_local_start(nt, sel.first_tile, sel.query_tile, sel.block_size, sel.initial_blocks,
                             sel.window_blocks).numpy()
    tiles = np.arange(sel.first_tile, sel.first_tile + nt)
    last_block = (np.minimum((tiles + 1) * sel.query_tile, sel.kv_len) - 1) // sel.block_size
    b = np.arange(nb)[None, :]
    out = np.full((nt, nb), SKIPPED, dtype=int)
    out[np.broadcast_to(b >= start[:, None], out.shape)] = LOCAL
    out[:, : sel.initial_blocks] = INITIAL
    idx = sel.indices[batch, head].cpu().numpy()
    for t in range(nt):
        out[t, idx[t][idx[t] >= 0]] = SELECTED
    out[np.broadcast_to(b > last_block[:, None], out.shape)] = FUTURE
    return out


def plot_selected_blocks(sel: BlockSelection, *, batch: int = 0, head: int = 0, punctuation=None, ax=None,
                         title: str | None = None):
    """Which key blocks each query tile attends to (initial / local / selected / skipped), with the
    number of punctuation tokens per block as a strip above the map.

    Args:
        sel: a selection; batch, head: which sequence and KV head.
        punctuation: [Tk] bool of the same sequence.

    Returns:
        The matplotlib Axes of the map.
    """
    codes = selected_block_map(sel, batch, head)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.2))
    ax.imshow(codes, cmap=ListedColormap(BLOCK_COLORS), vmin=-0.5, vmax=len(BLOCK_COLORS) - 0.5,
              aspect="auto", interpolation="nearest")
    if punctuation is not None:
        p = np.asarray(punctuation, dtype=float)
        pad = sel.n_blocks * sel.block_size - p.size
        counts = np.pad(p, (0, max(pad, 0)))[: sel.n_blocks * sel.block_size].reshape(sel.n_blocks, -1).sum(1)
        strip = ax.inset_axes([0, 1.02, 1, 0.06], sharex=ax)
        strip.imshow(counts[None, :], cmap="Reds", aspect="auto", interpolation="nearest")
        strip.set_axis_off()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in BLOCK_COLORS[1:]]
    ax.legend(handles, BLOCK_LABELS[1:], loc="upper right", fontsize=7, frameon=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(f"key block ({sel.block_size} tokens)")
    ax.set_ylabel(f"query tile ({sel.query_tile} tokens)")
    ax.grid(False)
    ax.set_title(title or f"blocks read per query tile (KV head {head}); top strip: punctuation per block",
                 pad=18 if punctuation is not None else 6)
    return ax


def plot_attention_grid(records, *, batch: int = 0, layers: Sequence[int] | None = None,
                        heads: Sequence[int] | None = None, punctuation=None, max_pixels: int = 160,
                        floor: float = 1e-4, title: str | None = None):
    """Small multiples of attention maps: one row per layer, one column per query head.

    Args:
        records: `LayerRecord`s (from `record_attention`) or a [L, H, Tq, Tk] array of probabilities.

    Returns:
        The matplotlib Figure.
    """
    if isinstance(records, (np.ndarray, torch.Tensor)):
        maps = [np.asarray(r) for r in records]
    else:
        maps = [attention_probs(r.q, r.k, r.scale)[batch].numpy() for r in records]
        if punctuation is None and records and records[0].punctuation_mask is not None:
            punctuation = records[0].punctuation_mask[batch].cpu().numpy()
    if not maps:
        raise ValueError("no attention maps to plot")
    layers = list(range(len(maps))) if layers is None else list(layers)
    heads = list(range(maps[0].shape[0])) if heads is None else list(heads)
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(2.2 * len(heads), 2.0 * len(layers)), squeeze=False)
    for i, layer in enumerate(layers):
        for j, head in enumerate(heads):
            ax = axes[i, j]
            pooled, _, fc = _pool(maps[layer][head], max_pixels)
            ax.imshow(_shown(pooled, floor), norm=LogNorm(vmin=floor, vmax=1), cmap=_CMAP, aspect="auto",
                      interpolation="nearest")
            _mark_punctuation(ax, punctuation, fc, pooled.shape[0])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
    fig.suptitle(title or "attention per layer and head (log scale; red ticks: punctuation)", fontsize=10)
    return fig


def attention_explorer(records, cfg, *, batch: int = 0, static: bool | None = None):
    """Pick layer, KV head, selector and top-K; see the attention map beside the blocks that selector reads.

    Args:
        records: `LayerRecord`s from `record_attention`; cfg: `SparseAttentionConfig` (the start values).
        static: True -> a static figure of the first layer/head; None -> widgets inside a kernel.

    Returns:
        An ipywidgets `VBox`, or a matplotlib Figure (static).
    """
    from workbench.attention.config import SparseAttentionConfig
    from workbench.attention.selectors import SELECTORS, select_blocks
    from workbench.viz.widgets import has_widget_frontend

    if not records:
        raise ValueError("no attention records: run the model inside record_attention() first")
    cfg = SparseAttentionConfig.from_dict(cfg)

    def figure(layer: int, head: int, selector: str, top_k: int):
        rec = records[layer]
        sel = select_blocks(rec.q, rec.k, cfg.replace(selector=selector, top_k=top_k), scale=rec.scale,
                            punctuation_mask=rec.punctuation_mask, key_padding_mask=rec.key_padding_mask)
        g = rec.q.shape[1] // rec.k.shape[1]
        probs = attention_probs(rec.q, rec.k, rec.scale)[batch, head * g]
        punct = None if rec.punctuation_mask is None else rec.punctuation_mask[batch].cpu().numpy()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        plot_attention_map(probs, punctuation=punct, ax=a1, title=f"layer {layer}, query head {head * g}")
        plot_selected_blocks(sel, batch=batch, head=head, punctuation=punct, ax=a2,
                             title=f"{selector}, top-{top_k}: blocks read")
        fig.tight_layout()
        return fig

    if static is None:
        static = not has_widget_frontend()
    if static:
        return figure(0, 0, cfg.selector if cfg.selector != "dense" else "phsa", cfg.top_k)
    import ipywidgets as w
    from IPython.display import display

    names = [n for n in SELECTORS.names() if n != "nsa"]
    layer = w.IntSlider(0, 0, len(records) - 1, description="layer")
    head = w.IntSlider(0, 0, records[0].k.shape[1] - 1, description="KV head")
    selector = w.Dropdown(options=names, value=cfg.selector if cfg.selector in names else "phsa",
                          description="selector")
    top_k = w.IntSlider(max(cfg.top_k, 1), 1, 32, description="top-K")
    out = w.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            fig = figure(layer.value, head.value, selector.value, top_k.value)
            display(fig)
            plt.close(fig)

    for c in (layer, head, selector, top_k):
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([layer, head]), w.HBox([selector, top_k]), out])
