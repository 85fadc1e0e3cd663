"""Figures of notebook 07 (Causal-HalBench, arXiv 2511.10268): original / counterfactual pairs with the biased
models' answers, the hallucination metrics against the co-occurrence strength ρ, and POPE's three splits.
Each function returns a Figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from workbench.tasks.shapes.render import render
from workbench.viz.style import PALETTE

METRIC_TITLES = {"cac": "CAC: target still 'seen'", "nac": "NAC: absent object made seen",
                 "chr": "CHR: inserted object denied", "cpr": "CPR: pair right on both",
                 "chair_i": "CHAIR_i of captions", "unbiased_accuracy": "accuracy on unbiased originals"}


def _mark(x) -> str:
    return "?" if math.isnan(x) else ("right" if x >= 0.5 else "wrong")


def plot_pairs(examples: list[dict]):
    """One row per counterfactual pair: the original and its counterfactual, titled with the target question and,
    per model, whether it answered the original (yes expected) and the counterfactual (no expected) right.
    `examples`: `experiments.causal_halbench.example_pairs` output."""
    n = max(1, len(examples))
    fig, axes = plt.subplots(n, 2, figsize=(6.4, 3.0 * n), squeeze=False)
    for row, ex in zip(axes, examples):
        cf = ex["cf"]
        lines = [f"{lab}: orig {_mark(a['target_origin'])}, cf {_mark(a['target_inpainted'])}"
                 for lab, a in ex["answers"].items()]
        row[0].imshow(render(ex["original"]).image)
        row[0].set_title(f"{cf.original_id}: is there a {cf.target}? (yes)\ncontext: {cf.context}", fontsize=8)
        row[1].imshow(render(cf.scene).image)
        row[1].set_title(f"{cf.id}: {cf.target} -> {cf.inserted} (no)\n" + "\n".join(lines), fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if not examples:
        axes[0, 0].text(0.5, 0.5, "no counterfactual pair of a biased kind", ha="center", transform=axes[0, 0].transAxes)
    fig.tight_layout()
    return fig


def plot_metrics_vs_rho(bands: pd.DataFrame, summary: pd.DataFrame, metrics=tuple(METRIC_TITLES)):
    """Each metric against ρ: mean over seeds with its 95 % CI (bars) and every seed's value (dots).
    `bands`: `Sweep.bands` output; `summary`: `Sweep.summary` (one row per model)."""
    metrics = [m for m in metrics if m in set(bands["metric"])]
    cols = 3
    rows = max(1, -(-len(metrics) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        b = bands[bands["metric"] == m].sort_values("rho")
        ax.errorbar(b["rho"], b["mean"], yerr=b["half"], color=PALETTE[0], marker="o", capsize=3, lw=1.4)
        ax.scatter(summary["rho"], summary[m], s=10, color="#777", alpha=0.7, zorder=3)
        ax.axhline(0.0, color="#bbb", lw=0.8)
        ax.set(title=METRIC_TITLES.get(m, m), xlabel="co-occurrence strength ρ")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("hallucination against the training co-occurrence (mean ± 95 % CI over seeds; dots: seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_pope(bands: pd.DataFrame, splits=("random", "popular", "adversarial")):
    """POPE accuracy and yes-ratio of each split against ρ (mean ± 95 % CI over seeds)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for i, split in enumerate(splits):
        for ax, key in ((a1, "accuracy"), (a2, "yes_ratio")):
            b = bands[bands["metric"] == f"pope_{split}_{key}"].sort_values("rho")
            if not b.empty:
                ax.errorbar(b["rho"], b["mean"], yerr=b["half"], marker="o", capsize=3, color=PALETTE[i], label=split)
    a1.set(title="POPE accuracy", xlabel="co-occurrence strength ρ")
    a2.set(title="POPE yes-ratio", xlabel="co-occurrence strength ρ")
    a2.axhline(0.5, color="#bbb", lw=0.8)
    a1.legend(fontsize=7)
    fig.tight_layout()
    return fig
