"""Figures of the Δlog p notebook (arXiv 2603.22117, notebook 01), from plain DataFrames and Series.

- `plot_kind_panels`: share of Σ Δlog p and mean |Δlog p| per token kind, side by side;
- `plot_replacement_curves`: accuracy vs replacement budget per selector (± s.e. over seeds), and vs the
  fraction of tokens that actually changed;
- `plot_lambda_sweep`: greedy accuracy vs extrapolation strength λ with binomial error bars;
- `plot_reweighting`: DAPO ± low_prob training curves (seed bands) and final accuracies per seed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.distributions import plot_token_kinds
from workbench.viz.rl_runs import plot_band


def plot_kind_panels(frame: pd.DataFrame, kinds: pd.DataFrame, column: str = "delta_logp", kind: str = "kind"):
    """Left: each kind's share of Σ|`column`|; right: its mean |`column`| per token.
    `kinds`: `token_kind_summary(frame, column, kind=kind)` (for the title)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    plot_token_kinds(frame, column, kind=kind, ax=ax1)
    plot_token_kinds(frame, column, kind=kind, metric="mean_abs", ax=ax2,
                     title=f"per token, '{kinds['mean_abs'].idxmax()}' tokens move most")
    fig.tight_layout()
    return fig


def _budget(value) -> str:
    """A reach budget for a title or legend: NaN (not reached before budget 1) reads "never"."""
    return "never" if pd.isna(value) else f"{value:.2f}"


def plot_replacement_curves(summary: pd.DataFrame, reach: pd.Series, base_acc: float, rl_acc: float, n_seeds: int):
    """Left: seed-mean accuracy vs budget per selector, band ± standard error of the mean over seeds (disjoint
    prompt shards); right: the same runs vs the fraction of positions whose token changed.

    Args:
        summary: one row per (selector, budget, seed) with accuracy and changed_frac.
        reach: budget each selector needs to reach `rl_acc` (legend and title).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for name, g in summary.groupby("selector", sort=False):
        agg = g.groupby("budget").agg(mean=("accuracy", "mean"), sem=("accuracy", "sem"), changed=("changed_frac", "mean"))
        band = agg["sem"].fillna(0.0)
        label = name if rl_acc <= base_acc else f"{name} (reach {_budget(reach[name])})"
        line, = axes[0].plot(agg.index, agg["mean"], marker="o", ms=3, label=label)
        axes[0].fill_between(agg.index, agg["mean"] - band, agg["mean"] + band, color=line.get_color(), alpha=0.12, lw=0)
        axes[1].plot(agg["changed"], agg["mean"], marker="o", ms=3, color=line.get_color(), label=name)
    for ax in axes:
        ax.axhline(rl_acc, color="k", ls="--", lw=0.8, label=f"RL model {rl_acc:.0%}")
        ax.axhline(base_acc, color="grey", ls=":", lw=0.8, label=f"base model {base_acc:.0%}")
    axes[0].set(xlabel="budget: fraction of base-decode positions given the RL token",
                ylabel=f"held-out greedy accuracy (band: ± s.e. over {n_seeds} seeds)",
                title=(f"RL model ({rl_acc:.0%}) not above the base ({base_acc:.0%}): no gap to close"
                       if rl_acc <= base_acc else
                       f"Δlog p reaches RL accuracy at budget {_budget(reach['delta_logp'])} "
                       f"(entropy {_budget(reach['entropy'])}, KL {_budget(reach['kl'])})"))
    axes[1].set(xlabel="fraction of positions whose token actually changed", title="Same runs vs tokens changed")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_lambda_sweep(accuracy: pd.Series, se: pd.Series, gain: dict, n: int):
    """Accuracy per λ (index) with error bars `se`; dashed: λ = 0 (the RL model). `gain`: `best_lambda_gain`."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.errorbar(accuracy.index, accuracy.values, yerr=se.values, marker="o", capsize=3)
    ax.axhline(gain["ref_accuracy"], color="k", ls="--", lw=0.8, label=f"λ = 0 (RL model) {gain['ref_accuracy']:.1%}")
    ax.set(xlabel="extrapolation strength λ", ylabel=f"held-out greedy accuracy (n = {n})",
           title=f"Best λ = {gain['best_lam']:g}: {gain['gain'] * 100:+.1f} points over the RL model")
    ax.legend(fontsize=8)
    return fig


def plot_reweighting(bands: pd.DataFrame, runs: pd.DataFrame, final: pd.DataFrame, *, alpha: float, eval_n: int):
    """Left: held-out accuracy per step, seed mean and min–max band per variant; right: each seed's final
    accuracy per variant with the mean ± std over seeds.

    Args:
        bands: `seed_bands(curves, "eval_accuracy", by="variant")`; runs: one row per (variant, seed) with
            final_accuracy; final: per variant mean / std / count of final_accuracy (index: variant).
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    for i, (name, band) in enumerate(bands.groupby("variant", sort=False)):
        n_seeds = int(band["n"].max())
        color = f"C{i}"
        plot_band(ax1, band, color, f"{name} (mean of {n_seeds} seeds)", alpha=0.15, marker_below=10**9)
        acc = runs.loc[runs["variant"] == name, "final_accuracy"]
        ax2.scatter(np.full(len(acc), i), acc, color=color, alpha=0.6)
        ax2.errorbar(i, acc.mean(), yerr=acc.std() if len(acc) > 1 else 0, color=color, marker="_", ms=20, capsize=4)
    ax1.set(xlabel="DAPO step", ylabel=f"held-out greedy accuracy (n = {eval_n})",
            title=f"Training curves, α = {alpha} (band: min–max over seeds)")
    ax1.legend(fontsize=8)
    ax2.set_xticks(range(len(final)), list(final.index))
    ax2.set(ylabel="final held-out accuracy", xlim=(-0.5, len(final) - 0.5),
            title=f"low_prob {final.loc['dapo + low_prob', 'mean']:.1%} vs {final.loc['dapo', 'mean']:.1%}")
    fig.tight_layout()
    return fig
