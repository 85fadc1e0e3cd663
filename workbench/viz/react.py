"""Figures of notebook 08 (REACT, arXiv 2601.04033): clips as frame strips with their distortions marked, the
probes' per-frame distortion scores, SFT against SFT + GRPO, and uniform against dynamic frame sampling. Each
returns a Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.tasks.video import render_clip
from workbench.viz.style import PALETTE

DISTORTED, CHOSEN = "#d62728", "#1f77b4"


def plot_frame_strips(specs: Sequence, frame_scores: np.ndarray | None = None, chosen: Sequence | None = None,
                      title: str = "clips with injected distortions (red: distorted frames)"):
    """One row per clip: all T frames (every other frame drawn), distorted frames framed in red, the frames a
    sampler chose marked blue underneath; with `frame_scores` [n, T] a bar row of the probes' distortion score."""
    n = len(specs)
    T = specs[0].n_frames if n else 0
    shown = list(range(0, T, 2)) if T > 8 else list(range(T))
    rows = 2 if frame_scores is not None else 1
    fig, axes = plt.subplots(n * rows, len(shown), figsize=(1.05 * len(shown), 1.25 * n * rows + 0.4), squeeze=False,
                             gridspec_kw={"height_ratios": ([1, 0.35] * n) if rows == 2 else [1] * n})
    for i, spec in enumerate(specs):
        frames = render_clip(spec, shown)
        hit = set(spec.distortion.frames) if spec.distortion is not None else set()
        picked = set(chosen[i]) if chosen is not None else set()
        for j, t in enumerate(shown):
            ax = axes[i * rows, j]
            ax.imshow(frames[j])
            ax.set_xticks([]), ax.set_yticks([])
            bad = t in hit or (t + 1 in hit and T > 8)
            for side in ax.spines.values():
                side.set(visible=True, color=DISTORTED if bad else "#bbb", lw=2.5 if bad else 0.5)
            ax.set_title(f"{t}" + ("•" if (t in picked or t + 1 in picked) else ""), fontsize=7,
                         color=CHOSEN if (t in picked or t + 1 in picked) else "#333")
            if j == 0:
                ax.set_ylabel(f"{spec.label}\nscore {spec.score}", fontsize=7)
            if rows == 2:
                axb = axes[i * rows + 1, j]
                vals = frame_scores[i, t : t + 2] if T > 8 else frame_scores[i, t : t + 1]
                axb.bar(range(len(vals)), vals, color=PALETTE[1])
                axb.set_ylim(0, 4), axb.set_xticks([]), axb.set_yticks([] if j else [0, 4])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_sft_vs_grpo(summary: pd.DataFrame, metrics: Sequence[str] = ("pairwise_accuracy", "spearman",
                                                                       "attribution_accuracy", "frame_recall"),
                     method: str = "uniform"):
    """Bars: SFT and the seed mean of SFT + GRPO per metric (uniform frames), one dot per seed."""
    s = summary[summary["method"] == method]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.38
    for k, model in enumerate(("SFT", "SFT + GRPO")):
        part = s[s["model"] == model]
        means = [part[m].mean() for m in metrics]
        x = np.arange(len(metrics)) + (k - 0.5) * width
        ax.bar(x, means, width, color=PALETTE[k], label=model)
        for j, m in enumerate(metrics):
            ax.scatter(np.full(len(part), x[j]), part[m], color="k", s=10, zorder=3)
    ax.axhline(0.5, color="#999", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(metrics)), [m.replace("_", " ") for m in metrics], fontsize=8)
    ax.set(ylabel="value on the bench (dashed: pairwise chance)", title="stage 1 (SFT) vs stage 2 (SFT + GRPO)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sampling(summary: pd.DataFrame, model: str = "SFT + GRPO"):
    """Frame recall against video frames rated per clip, one marker per sampling method (seed mean ± sd; methods at
    the same cost are nudged apart)."""
    s = summary[summary["model"] == model]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, (method, part) in enumerate(s.groupby("method", sort=False)):
        ax.errorbar(part["frames_per_clip"].mean() + 0.15 * i, part["frame_recall"].mean(),
                    yerr=part["frame_recall"].std(),
                    fmt="o", color=PALETTE[i % len(PALETTE)], label=method, capsize=3)
    ax.set(xlabel="frames rated per clip (probes + final)", ylabel="frame recall (true distorted frames predicted)",
           title=f"uniform vs dynamic sampling ({model})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
