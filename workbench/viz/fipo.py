"""Figures of the FIPO notebook (arXiv 2603.19835, notebook 02), from plain DataFrames, dicts and arrays.

- `plot_length_vs_accuracy`: the base's sampled accuracy by operations left to do in the head;
- `plot_method_bands`: held-out accuracy, held-out length and rollout length per step, seed bands per run;
- `plot_future_kl_heatmap`: Δ_t = log π_θ − log π_old and f_t over the positions of a few rollouts;
- `plot_decay_sweep`: accuracy and length per decay rate against DAPO and FIPO without its weight, and the
  spread of f_t on one rollout per decay rate.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.rl_runs import plot_band
from workbench.viz.style import PALETTE


def plot_length_vs_accuracy(by_length: pd.DataFrame, acc_full: float, acc_stopped: float):
    """Bars of accuracy per group (index 1 = full chain, 2, 3 = 3+ operations in the head), labelled with the
    group's share of responses. `by_length`: columns share, accuracy."""
    fig, ax = plt.subplots(figsize=(5, 3))
    labels = [("full chain" if i == 1 else f"{i}{'+' if i == 3 else ''} in head") for i in by_length.index]
    ax.bar(labels, by_length["accuracy"], color=PALETTE[0])
    for x, (share, acc) in enumerate(zip(by_length["share"], by_length["accuracy"])):
        ax.text(x, acc + 0.01, f"{share:.0%} of\nresponses", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="held-out accuracy (sampled)", xlabel="operations left to do in the head",
           ylim=(0, max(0.1, float(by_length["accuracy"].max()) * 1.35)),
           title=f"Base: full chains right {acc_full:.0%}, early stops {acc_stopped:.0%}")
    return fig


def plot_method_bands(bands: Mapping[str, pd.DataFrame], runs: Sequence[str], *, accuracy: dict, how: str,
                      n_seeds: int, steps: int):
    """Three panels of seed bands per run: `bands["eval_accuracy"]`, `bands["eval_length"]` and
    `bands["response_length_smooth"]` (each a `seed_bands` frame with a `run` column).

    Args:
        runs: run labels in plotting order (colours follow `PALETTE`).
        accuracy: `compare_final` of eval_accuracy with keys "FIPO" and "DAPO" (for the title).
        how: how accuracy was measured ("greedy", "mean of 2 samples").
    """
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for run, color in zip(runs, PALETTE):
        for ax, metric in zip(axes, ("eval_accuracy", "eval_length", "response_length_smooth")):
            b = bands[metric]
            plot_band(ax, b[b["run"] == run], color, run)
    axes[0].set(xlabel="RL step", ylabel=f"held-out accuracy ({how})",
                title=f"Accuracy: FIPO {accuracy['FIPO']:.1%} vs DAPO {accuracy['DAPO']:.1%}")
    axes[1].set(xlabel="RL step", ylabel="held-out response length (tokens)", title="Held-out response length")
    axes[2].set(xlabel="RL step", ylabel="training response length (tokens)", title="Rollout response length (5-step mean)")
    axes[0].legend()
    fig.suptitle(f"DAPO vs FIPO, {n_seeds} seed(s), {steps} steps (bands: min–max over seeds)", y=1.03)
    fig.tight_layout()
    return fig


def plot_future_kl_heatmap(delta: np.ndarray, f: np.ndarray, valid: np.ndarray, rewards: Sequence[float], *, step: int,
                           share_moved: float):
    """Δ_t (symmetric colour scale) and f_t (0.8 … 1.2) of R rollouts over T positions, padding masked.

    Args:
        delta, f, valid: [R, T] arrays (rows already sorted, e.g. by Σ|f_t − 1|); rewards: [R] for the row labels.
        step: the snapshot step; share_moved: fraction of all tokens with |f_t − 1| > 0.01 (for the title).
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, values, name, lim in [(axes[0], delta, "Δ_t = log π_θ − log π_old", None), (axes[1], f, "f_t", (0.8, 1.2))]:
        data = np.ma.masked_where(~valid, values)
        if lim is None:
            m = float(np.abs(data).max()) or 1.0
            lim = (-m, m)
        im = ax.imshow(data, aspect="auto", cmap="RdBu", vmin=lim[0], vmax=lim[1], interpolation="nearest")
        fig.colorbar(im, ax=ax, label=name)
        ax.set(xlabel="response token position", title=name)
        ax.grid(False)
    axes[0].set_ylabel("response (sorted by Σ|f_t − 1|)")
    axes[0].set_yticks(range(len(rewards)), [f"r={float(r):.0f}" for r in rewards], fontsize=7)
    fig.suptitle(f"Future-KL weights of {len(rewards)} rollouts at step {step}: "
                 f"{share_moved:.0%} of all tokens have |f_t − 1| > 0.01", y=1.02)
    fig.tight_layout()
    return fig


def plot_decay_sweep(table: pd.DataFrame, dapo: Mapping, no_weight: Mapping, values: Mapping[float, np.ndarray],
                     spread: Mapping[float, float], *, how: str, steps: int, seed: int):
    """Left / middle: held-out accuracy and length per decay rate (log axis), DAPO dashed, FIPO's loss without f_t
    dotted; right: boxes of f_t on the snapshot rollout per decay rate.

    Args:
        table: one row per decay rate with eval_accuracy and eval_length; dapo, no_weight: the same two numbers.
        values: {decay_rate: f_t on the valid tokens}; spread: {decay_rate: mean |f_t − 1|}.
    """
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.3))
    ax1.plot(table["decay_rate"], table["eval_accuracy"], marker="o", color=PALETTE[1], label="FIPO")
    ax1.axhline(dapo["eval_accuracy"], color=PALETTE[0], ls="--", label="DAPO")
    ax1.axhline(no_weight["eval_accuracy"], color=PALETTE[2], ls=":", label="FIPO loss, f_t ≡ 1")
    ax1.set(xscale="log", xlabel="decay_rate (tokens, log scale)", ylabel=f"held-out accuracy ({how})",
            title=f"Accuracy after {steps} steps (seed {seed})")
    ax1.legend()
    ax2.plot(table["decay_rate"], table["eval_length"], marker="o", color=PALETTE[1])
    ax2.axhline(dapo["eval_length"], color=PALETTE[0], ls="--")
    ax2.axhline(no_weight["eval_length"], color=PALETTE[2], ls=":")
    ax2.set(xscale="log", xlabel="decay_rate (tokens, log scale)", ylabel="held-out response length (tokens)",
            title="Response length")
    taus = sorted(values)
    ax3.boxplot([values[t] for t in taus], tick_labels=[f"{t:g}" for t in taus], showfliers=False)
    ax3.set(xlabel="decay_rate (tokens)", ylabel="f_t on the snapshot rollout",
            title=f"mean |f_t − 1|: {spread[taus[0]]:.3f} (τ={taus[0]:g}) → {spread[taus[-1]]:.3f} (τ={taus[-1]:g})")
    for ax in (ax1, ax2):
        ax.set_xticks(list(table["decay_rate"]), [f"{t:g}" for t in table["decay_rate"]])
        ax.minorticks_off()
    fig.tight_layout()
    return fig
