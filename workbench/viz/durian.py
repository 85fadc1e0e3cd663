"""Figures of notebook 04 (Durian, arXiv 2602.21743): visual entropy against accuracy, |A| on near-extreme
groups under GRPO and Durian, training curves and final accuracy per seed. Each returns a Figure."""

from __future__ import annotations

from typing import Sequence

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


def plot_curves_and_final(bands: pd.DataFrame, final: pd.DataFrame, runs: Sequence[str], base_accuracy: float):
    """Left: held-out greedy accuracy per step, mean and min–max over seeds per run. Right: final accuracy per
    seed (dots joined by seed across runs, so a paired difference reads as a slope) with the run means."""
    fig, (ax, axf) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, r in enumerate(runs):
        plot_band(ax, bands[bands["run"] == r], PALETTE[i % len(PALETTE)], r)
    ax.axhline(base_accuracy, color="#555", lw=1, ls="--", label="base")
    ax.set(xlabel="RL step", ylabel="held-out accuracy (greedy)", title="training curves (mean, min–max over seeds)")
    ax.legend(fontsize=7)
    wide = final.pivot_table(index="seed", columns="run", values="eval_accuracy").reindex(columns=list(runs))
    xs = np.arange(len(runs))
    for seed, row in wide.iterrows():
        axf.plot(xs, row.values, color="#999", lw=0.8, marker="o", ms=4)
    axf.scatter(xs, wide.mean().values, color=[PALETTE[i % len(PALETTE)] for i in xs], s=60, zorder=3, label="mean")
    axf.axhline(base_accuracy, color="#555", lw=1, ls="--")
    axf.set_xticks(xs, [r.replace(" ", "\n", 1) for r in runs], fontsize=8)
    axf.set(ylabel="final held-out accuracy", title=f"final accuracy per seed ({len(wide)} seeds, lines join a seed)")
    fig.tight_layout()
    return fig
