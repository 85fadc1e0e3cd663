"""Figures of notebook 05 (TGRL, arXiv 2603.26126): grounding accuracy against accuracy per run and seed, and
the gradient weight the shaped ratio gives each expert token. Each returns a Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.style import PALETTE
from workbench.viz.tokens import plot_tokens


def plot_grounding_vs_accuracy(final: pd.DataFrame, runs: Sequence[str], base: dict):
    """One point per (run, seed): grounding accuracy (share of stated facts that are true) against final
    accuracy, run means as large markers, the base model as a star."""
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for i, r in enumerate(runs):
        part = final[final["run"] == r]
        color = PALETTE[i % len(PALETTE)]
        ax.scatter(part["eval_grounding_accuracy"], part["eval_accuracy"], color=color, s=18, alpha=0.6)
        ax.scatter(part["eval_grounding_accuracy"].mean(), part["eval_accuracy"].mean(), color=color, s=90,
                   edgecolor="k", lw=0.6, label=r)
    ax.scatter([base.get("grounding_accuracy", np.nan)], [base.get("accuracy", np.nan)], marker="*", s=160, color="#333",
               label="base")
    ax.set(xlabel="grounding accuracy (stated facts that are true)", ylabel="held-out accuracy (greedy)",
           title="grounding vs accuracy (small: one seed; large: the mean)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_expert_weights(tokens: Sequence[str], prob: np.ndarray, gamma: float, title: str | None = None):
    """Top: the expert trajectory's tokens coloured by the shaped ratio's gradient weight γπ/(π+γ)² relative to
    the plain ratio's π (> 1: the shaping boosts the token); bottom: both weights against π."""
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(8, 4.6), gridspec_kw={"height_ratios": [1, 1.3]})
    shaped = gamma * prob / (prob + gamma) ** 2
    plot_tokens(list(tokens), np.log10(shaped / prob), ax=ax, label="log10 boost", title=title or
                "expert tokens: log10 of the shaped weight over the plain ratio's (blue: boosted, red: damped)")
    grid = np.logspace(-4, 0, 200)
    axc.plot(grid, gamma * grid / (grid + gamma) ** 2, label=f"shaped: γπ/(π+γ)², γ = {gamma:g}")
    axc.plot(grid, grid, ls="--", label="plain ratio: π")
    axc.scatter(prob, shaped, color=PALETTE[1], s=14, zorder=3, label="this trajectory's tokens")
    axc.set(xscale="log", yscale="log", xlabel="π_θ(expert token)", ylabel="gradient weight on ∇log π")
    axc.legend(fontsize=7)
    fig.tight_layout()
    return fig
