"""Figures of the ToR notebook (03, arXiv 2603.25077): one response's token types next to its signed
visual dependency, and the ablation bars (variants × base methods, mean and min–max over seeds).

    fig = plot_token_view(tokens, labels, delta, "removed")
    fig = plot_ablation(final, ["grpo", "dapo"], ["full", "perception-only", "reasoning-only", "ToR"],
                        [("eval_accuracy", "final accuracy", base_acc)])
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from workbench.viz.image_attention import plot_token_types
from workbench.viz.style import PALETTE
from workbench.viz.tokens import plot_tokens


def plot_token_view(tokens: Sequence[str], labels, delta, perturbation: str):
    """Two rows: the tokens coloured by ToR type (perception / reasoning / both / neither), and by the
    signed Δ_t = log π(o|I,q) − log π(o|I',q) (blue: the image raised the token). Returns the Figure.

    Args:
        tokens: n response tokens; labels: [n] type labels 0..3; delta: [n] signed Δ_t;
        perturbation: the name of I' (e.g. "removed"), for the title.
    """
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.8), gridspec_kw={"hspace": 0.9})
    plot_token_types(tokens, labels, ax=axes[0], title="token types: perception / reasoning / both / neither")
    plot_tokens(tokens, np.asarray(delta), ax=axes[1],
                title=f"Δ = log π(o|I,q) − log π(o|{perturbation},q)  (blue: the image raised it)")
    return fig


def plot_ablation(final, methods: Sequence[str], variants: Sequence[str], panels: Sequence[tuple[str, str, float]],
                  n_seeds: int | None = None):
    """Grouped bars, one panel per metric: for each base method a bar per variant at the mean over
    seeds, error bars spanning min–max, and the base model as a dashed line. Returns the Figure.

    Args:
        final: one row per (run, seed) with columns `method`, `variant` and every panel's metric.
        panels: (column, label, base value) per panel.
        n_seeds: seeds per variant, for the titles (default: counted from `final`).
    """
    n_seeds = n_seeds or int(final.groupby(["method", "variant"]).size().max())
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), sharey=False, squeeze=False)
    width = 0.8 / len(variants)
    for ax, (metric, label, base) in zip(axes[0], panels):
        for j, v in enumerate(variants):
            xs, means, los, his = [], [], [], []
            for i, m in enumerate(methods):
                vals = final.loc[(final["method"] == m) & (final["variant"] == v), metric].astype(float)
                xs.append(i + (j - (len(variants) - 1) / 2) * width)
                means.append(vals.mean())
                los.append(vals.mean() - vals.min())
                his.append(vals.max() - vals.mean())
            ax.bar(xs, means, width, yerr=[los, his], color=PALETTE[j % len(PALETTE)], label=v, capsize=2)
        ax.axhline(base, color="#555", lw=1, ls="--", label="base")
        ax.set_xticks(range(len(methods)), [m.upper() for m in methods])
        ax.set(ylabel=label)
        ax.set_title(f"{label}\nmean, min–max over {n_seeds} seeds", fontsize=9)  # two lines: no overlap at 4.5 in
    axes[0, 0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
