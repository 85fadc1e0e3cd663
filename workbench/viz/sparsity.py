"""Figures of block-sparse attention experiments (PHSA notebook 09, arXiv 2601.02819): information loss
against sparsity per selector, the blocks each selector reads, and NIAH accuracy after sparse fine-tuning.

    fig = plot_loss_vs_sparsity(rows, [2048, 4096], ["infllm_v2", "phsa"], "relative_error", min_sparsity=0.97)
    fig = plot_loss_measures(rows, 4096, ["infllm_v2", "phsa"])
    fig = plot_blocks_read(trace.records[-1], cfg, ["infllm_v2", "phsa", "oracle"], top_k=2)
    fig = plot_niah(per_selector, histories, steps=40, kind="passkey")

`rows` are the dicts of `attention.information_loss.information_loss_sweep` (selector, top_k, length,
sparsity and one number per loss metric).
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt

from workbench.attention import select_blocks
from workbench.attention.information_loss import LOSS_METRICS
from workbench.viz.attention import attention_probs, plot_attention_map, plot_selected_blocks
from workbench.viz.style import PALETTE

#: one colour per selector, the same in every figure (unknown names: `OTHER`)
SELECTOR_COLORS = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(["moba", "infllm_v2", "phsa", "oracle", "nsa"])}
OTHER = "#3B6FB6"
METRIC_LABELS = {"relative_error": "relative output error ‖O_d − O_s‖/‖O_d‖", "mass_loss": "attention mass lost",
                 "kl": "KL(p_dense ‖ p_sparse) (nats)", "delta_nll": "ΔNLL (nats)"}


def _curve(ax, rows: list[dict], length: int, name: str, metric: str) -> None:
    """One selector's (sparsity %, loss) curve at `length`, NaN points left out."""
    pts = sorted((r["sparsity"], r[metric]) for r in rows if r["length"] == length and r["selector"] == name
                 and not math.isnan(r[metric]))
    if pts:
        ax.plot([100 * s for s, _ in pts], [v for _, v in pts], "o-", ms=3, color=SELECTOR_COLORS.get(name), label=name)


def plot_loss_vs_sparsity(rows: list[dict], lengths: Sequence[int], selectors: Sequence[str], metric: str, *,
                          min_sparsity: float | None = None, title: str | None = None):
    """One panel per length: `metric` against sparsity (% of causal keys skipped) for each selector, a
    dashed line at `min_sparsity`. Returns the Figure."""
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 3.6), squeeze=False, sharey=True)
    for ax, length in zip(axes[0], lengths):
        for name in selectors:
            _curve(ax, rows, length, name, metric)
        if min_sparsity is not None:
            ax.axvline(100 * min_sparsity, color="#8C8C8C", ls="--", lw=0.8)
        ax.set_xlabel("sparsity (% of causal keys skipped)")
        ax.set_title(f"{length} tokens")
    axes[0, 0].set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[0, 0].legend()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_loss_measures(rows: list[dict], length: int, selectors: Sequence[str], metrics: Sequence[str] = LOSS_METRICS):
    """One panel per loss metric at `length`: loss against sparsity for each selector (the oracle has the
    per-layer measures only: its end-to-end KL / ΔNLL are NaN and left out). Returns the Figure."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name in selectors:
            _curve(ax, rows, length, name, metric)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[0, 0].legend()
    fig.suptitle(f"Four measures of information loss at {length} tokens (oracle: per-layer measures only)", fontsize=11)
    fig.tight_layout()
    return fig


def plot_blocks_read(record, cfg, selectors: Sequence[str], top_k: int, *, title: str | None = None):
    """The dense attention map of `record` (a `record_attention` layer record; first sequence, head 0, log
    scale) beside the blocks each selector reads at `top_k` under `cfg`'s geometry, punctuation marked.
    Returns the Figure."""
    punct = record.punctuation_mask[0].cpu().numpy() if record.punctuation_mask is not None else None
    fig, axes = plt.subplots(1, 1 + len(selectors), figsize=(5.5 * (1 + len(selectors)), 4.6), squeeze=False)
    plot_attention_map(attention_probs(record.q[:1], record.k[:1], record.scale)[0, 0], punctuation=punct, ax=axes[0, 0],
                       title=f"layer {record.layer_idx}, head 0: dense attention")
    for ax, name in zip(axes[0, 1:], selectors):
        sel = select_blocks(record.q[:1], record.k[:1], cfg.replace(selector=name, top_k=top_k), scale=record.scale,
                            punctuation_mask=None if record.punctuation_mask is None else record.punctuation_mask[:1])
        plot_selected_blocks(sel, punctuation=punct, ax=ax, title=f"{name}, top-{top_k}: blocks read")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_niah(per_selector: dict, histories: dict, *, steps: int, kind: str, title: str | None = None):
    """Left: NIAH exact match per attention type before (grey) and after sparse fine-tuning; right: the
    fine-tuning loss curves. `per_selector[name]` has "before" and "after"; `histories[name]` is a list of
    {"step", "loss"}. Returns the Figure."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(per_selector)
    x = range(len(names))
    a1.bar([i - 0.2 for i in x], [100 * per_selector[n]["before"] for n in names], 0.4, color="#C8C8C8",
           label="dense-trained, no fine-tuning")
    a1.bar([i + 0.2 for i in x], [100 * per_selector[n]["after"] for n in names], 0.4,
           color=[SELECTOR_COLORS.get(n, OTHER) for n in names], label=f"after {steps} sparse SFT steps")
    a1.set_xticks(list(x), names)
    a1.set_ylabel(f"{kind} exact match (%)")
    a1.set_ylim(0, 105)
    a1.legend(fontsize=8)
    for n in names:
        h = histories.get(n) or []
        if h:
            a2.plot([e["step"] for e in h], [e["loss"] for e in h], color=SELECTOR_COLORS.get(n, OTHER), label=n)
    a2.set_xlabel("fine-tuning step")
    a2.set_ylabel("SFT loss (nats / labelled token)")
    a2.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
