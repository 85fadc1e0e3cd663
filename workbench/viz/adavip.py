"""Figures of notebook 06 (AdaViP, arXiv 2504.15619): a vision pair with the captions each method writes, the
hallucination and recall of every method, and the vision share of AdaViP's gradient over training."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from workbench.viz.style import PALETTE


def plot_vision_pair(pair, captions: dict[str, str]):
    """I_w and I_l of one preference pair, with y_w / y_l and each method's caption of I_w underneath."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.6, 3.0))
    a.imshow(pair.image)
    a.set_title("I_w (chosen image)", fontsize=8)
    if pair.rejected_image is not None:
        b.imshow(pair.rejected_image)
        b.set_title(f"I_l: object #{pair.removed} filled with background", fontsize=8)
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    lines = [f"y_w: {pair.chosen}", f"y_l: {pair.rejected}  (hallucinated: {pair.hallucinated})", ""]
    lines += [f"{m}: {c}" for m, c in captions.items()]
    fig.text(0.02, -0.02, "\n".join(lines), fontsize=7, va="top", family="monospace")
    fig.tight_layout()
    return fig


def plot_hallucination(captions: pd.DataFrame, methods: list[str]):
    """CHAIR_s (captions with a hallucination), CHAIR_i (hallucinated mentions / mentions) and recall per method:
    bars are the mean over seeds, dots the seeds. `captions`: `Runs.captions`."""
    per_seed = captions.groupby(["method", "seed"]).apply(
        lambda g: pd.Series({"CHAIR_s": g["any_hallucination"].mean(),
                             "CHAIR_i": g["hallucinated"].sum() / max(1, g["mentions"].sum()),
                             "recall": g["recall"].mean()}), include_groups=False).reset_index()
    order = ["base"] + list(methods)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.2))
    for ax, key in zip(axes, ("CHAIR_s", "CHAIR_i", "recall")):
        for i, m in enumerate(order):
            vals = per_seed.loc[per_seed["method"] == m, key]
            ax.bar(i, vals.mean(), color=PALETTE[i % len(PALETTE)], alpha=0.8)
            ax.scatter([i] * len(vals), vals, s=10, color="#333", zorder=3)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=30, ha="right", fontsize=7)
        ax.set_title(key + (" (lower is better)" if key != "recall" else " (higher is better)"), fontsize=9)
    fig.tight_layout()
    return fig


def plot_vision_share(history: pd.DataFrame, method: str = "AdaViP"):
    """AdaViP's vision share σ(m_l − m_v) of the gradient per step (mean over the batch), one line per seed, and
    the two margins: the harder negative (smaller margin) takes the larger share."""
    h = history[history["method"] == method]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 3.0))
    if h.empty or "vision_share" not in h:
        a.text(0.5, 0.5, f"no {method} run", ha="center", transform=a.transAxes)
        return fig
    for i, (seed, g) in enumerate(h.groupby("seed")):
        a.plot(g["step"], g["vision_share"], color=PALETTE[i % len(PALETTE)], label=f"seed {seed}")
        b.plot(g["step"], g["rewards/margins"], color=PALETTE[i % len(PALETTE)], ls="-", label=f"m_l seed {seed}")
        b.plot(g["step"], g["rewards/vision_margins"], color=PALETTE[i % len(PALETTE)], ls="--", label=f"m_v seed {seed}")
    a.axhline(0.5, color="#bbb", lw=0.8)
    a.set(title="vision share of AdaViP's gradient", xlabel="step", ylim=(0, 1))
    b.set(title="margins: language (solid), vision (dashed)", xlabel="step")
    a.legend(fontsize=7)
    fig.tight_layout()
    return fig
