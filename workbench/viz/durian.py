"""Figures of notebook 04 (Durian, arXiv 2602.21743): visual entropy against accuracy and |A| on near-extreme
groups under GRPO and Durian (the training curves are `rl_runs.plot_curves_and_final`). Each returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.rl_runs import plot_band
from workbench.viz.style import PALETTE


def plot_entropy_vs_accuracy(frame: pd.DataFrame, slope: float, intercept: float, spearman: float, samples: int):
    """Scatter of per-image sampled accuracy (mean of `samples` answers) against visual entropy (nats), coloured
    by complexity level, with the least-squares line. `frame`: columns level, entropy, accuracy."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    jitter = np.random.default_rng(0).uniform(-0.015, 0.015, len(frame))  # 0/1-heavy accuracies overlap
    for i, (level, part) in enumerate(frame.groupby("level")):
        ax.scatter(part["entropy"], part["accuracy"] + jitter[part.index], s=14, alpha=0.7, color=PALETTE[i % len(PALETTE)],
                   label=f"complexity {level}")
    xs = np.linspace(frame["entropy"].min(), frame["entropy"].max(), 50)
    ax.plot(xs, intercept + slope * xs, color="#333", lw=1.2, label=f"fit: {slope:+.2f} per nat")
    trend = "falls" if slope < 0 else "does not fall"
    ax.set(xlabel="visual entropy H of the image's features (nats)", ylabel=f"accuracy (mean of {samples} samples)",
           ylim=(-0.05, 1.05), title=f"accuracy {trend} with visual entropy (Spearman ρ = {spearman:+.2f})")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_advantage_histograms(rows: pd.DataFrame, bins: int = 30):
    """|A| of every completion in a near-extreme group (1 or G−1 of G correct) under GRPO and Durian, computed
    on the same rollouts; left the odd one out and majority together, with each estimator's mean marked."""
    near = rows[rows["near_extreme"]]
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    if near.empty:
        ax.text(0.5, 0.5, "no near-extreme groups in the probe", ha="center", transform=ax.transAxes)
        return fig
    top = float(max(near["grpo"].abs().max(), near["durian"].abs().max()))
    edges = np.linspace(0, top * 1.02 + 1e-9, bins + 1)
    for col, name, color in (("grpo", "GRPO", PALETTE[0]), ("durian", "Durian", PALETTE[1])):
        vals = near[col].abs()
        ax.hist(vals, bins=edges, alpha=0.55, color=color, label=f"{name} (mean {vals.mean():.2f}, sd {vals.std():.2f})")
        ax.axvline(vals.mean(), color=color, lw=1.2, ls="--")
    ax.set(xlabel="|advantage| of a completion in a near-extreme group", ylabel="completions",
           title=f"|A| on near-extreme groups, same {near['batch'].nunique()} rollout batches")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_advantage_scale(near: pd.DataFrame, buckets: dict[int, pd.DataFrame], runs: list[str]):
    """Per RL step: left, mean |A| on near-extreme groups per run (`near`: seed bands with columns run, step,
    mean, lo, hi); right, Durian's pooled reward std in each perception bucket (`buckets`: {0 low, 1 middle,
    2 high visual entropy: seed bands})."""
    fig, (ax, axb) = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, r in enumerate(runs):
        plot_band(ax, near[near["run"] == r], PALETTE[i % len(PALETTE)], r)
    ax.set(xlabel="RL step", ylabel="mean |A|, near-extreme groups", title="advantage scale on near-extreme groups")
    ax.legend(fontsize=7)
    for k, band in buckets.items():
        plot_band(axb, band, PALETTE[k], ("low entropy", "middle", "high entropy")[k])
    axb.set(xlabel="RL step", ylabel="pooled reward std", title="Durian: the std each perception bucket divides by")
    axb.legend(fontsize=7)
    fig.tight_layout()
    return fig
