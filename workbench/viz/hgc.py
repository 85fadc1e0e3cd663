"""Figures of notebook 10 (HGC, arXiv 2511.11031): sample grids, the MACs–fidelity Pareto plot, where each
cache's skips fall over the steps, and wall-clock speedups. Each function returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from workbench.tasks.shapes.segmentation import prompt_text
from workbench.viz.style import PALETTE

CACHE_COLOURS = {"none": "#000000", "deepcache": PALETTE[0], "pab": PALETTE[5], "block": PALETTE[2],
                 "prompt": PALETTE[3], "hgc": PALETTE[1], "controlnet": PALETTE[6]}


def _img(x: torch.Tensor) -> np.ndarray:
    return ((x.permute(1, 2, 0).clamp(-1, 1) + 1) / 2).numpy()


def plot_samples(maps: torch.Tensor, prompts: torch.Tensor, samples: dict[str, torch.Tensor], labels: list[str],
                 n: int = 6):
    """Rows: the condition map in grey levels (one per kind; titled with the prompt, which alone gives the colours),
    then each setting in `labels` (the uncached first); columns: the first `n` evaluation images."""
    n = min(n, len(maps))
    fig, axes = plt.subplots(len(labels) + 1, n, figsize=(1.5 * n, 1.5 * (len(labels) + 1)), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(maps[j].numpy(), cmap="gray", vmin=0, vmax=4, interpolation="nearest")  # grey: no colour to misread
        axes[0, j].set_title(prompt_text(prompts[j]), fontsize=6)
        for i, lab in enumerate(labels, start=1):
            axes[i, j].imshow(_img(samples[lab][j]), interpolation="nearest")
    for i, lab in enumerate(["condition", *labels]):
        axes[i, 0].set_ylabel(lab, fontsize=7, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_pareto(table: pd.DataFrame, front: pd.DataFrame, tolerance_pct: float):
    """MACs per image (M) against mIoU, one colour per cache, the Pareto front as a line and the paper's
    tolerance (uncached mIoU − `tolerance_pct` %) as a dashed band edge."""
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    base = table.iloc[0]
    for cache, g in table.groupby("cache", sort=False):
        ax.scatter(g["macs_per_image"] / 1e6, g["miou"], s=36, color=CACHE_COLOURS.get(cache, "grey"), label=cache,
                   zorder=3, edgecolor="white", linewidth=0.5)
    ax.plot(front["macs_per_image"] / 1e6, front["miou"], color="grey", lw=1, ls=":", zorder=2, label="Pareto front")
    ax.axhline(base["miou"] * (1 - tolerance_pct / 100), color=CACHE_COLOURS["hgc"], lw=0.8, ls="--",
               label=f"uncached − {tolerance_pct:g} %")
    ax.set_xlabel("MACs per image (millions, ControlNet + UNet, CFG batch, all steps)")
    ax.set_ylabel("mIoU of the segmenter vs the condition")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Compute against fidelity: up and to the left is better", fontsize=9)
    fig.tight_layout()
    return fig


def plot_skips(skips: pd.DataFrame):
    """Heatmap [setting × step]: the share of the uncached step's MACs each setting computed (1 = full step)."""
    fig, ax = plt.subplots(figsize=(7.0, 0.3 * len(skips) + 1.2))
    im = ax.imshow(skips.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(skips)), skips.index, fontsize=7)
    ax.set_xlabel("denoising step (0 = noisiest)")
    fig.colorbar(im, ax=ax, label="share of the full step's MACs computed")
    ax.set_title("Where each cache skips", fontsize=9)
    fig.tight_layout()
    return fig


def plot_speedups(table: pd.DataFrame):
    """Horizontal bars: wall-clock speedup over no cache (measured) next to the MAC ratio (counted)."""
    t = table.iloc[1:]
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(t) + 1.2))
    y = np.arange(len(t))
    ax.barh(y - 0.2, t["speedup"], height=0.4, color=[CACHE_COLOURS.get(c, "grey") for c in t["cache"]],
            label="wall-clock speedup")
    ax.barh(y + 0.2, 1 / (1 - t["mac_cut_pct"] / 100), height=0.4, color="lightgrey", label="MAC ratio (none / cache)")
    ax.axvline(1, color="black", lw=0.6)
    ax.set_yticks(y, t["label"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("× faster than no cache")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
