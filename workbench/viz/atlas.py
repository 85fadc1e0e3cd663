"""Figures of the token atlas (notebook 11): agreement heatmaps, class bars, intervention curves, one response
rendered once per signal, and the composition bars."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.style import PALETTE
from workbench.viz.tokens import visible_text

CLASS_COLORS = {"digit": "#3B6FB6", "operator": "#D1495B", "=": "#EDAE49", "answer digit": "#2E933C",
                "visual fact": "#7D5BA6", "format": "#B0B0B0", "other": "#00798C"}


def _heatmap(ax, m: pd.DataFrame, title: str, vmin: float, cmap: str) -> None:
    im = ax.imshow(m.to_numpy(dtype=float), vmin=vmin, vmax=1.0, cmap=cmap)
    names = list(m.columns)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            v = m.iat[i, j]
            ax.text(j, i, "" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=5.5,
                    color="white" if abs(v) > 0.6 else "black")
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_agreement(rho: pd.DataFrame, jaccard: pd.DataFrame, q: float, pair: str = ""):
    """Spearman ρ (RdBu on [−1, 1]) and Jaccard of the top-q sets (Blues on [0, 1]) side by side. Returns the Figure."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    _heatmap(axes[0], rho, f"{pair} Spearman ρ between signals (over tokens)", -1.0, "RdBu")
    _heatmap(axes[1], jaccard, f"{pair} Jaccard of the top {q:.0%} token sets", 0.0, "Blues")
    fig.tight_layout()
    return fig


def plot_class_shares(shares: pd.DataFrame, q: float, pair: str = ""):
    """One horizontal stacked bar per signal (and `all tokens`): the share of its top-q set in each token class."""
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(shares) + 1.4))
    left = np.zeros(len(shares))
    for c in shares.columns:
        ax.barh(range(len(shares)), shares[c], left=left, color=CLASS_COLORS.get(c, "#444"), label=c)
        left += shares[c].to_numpy()
    ax.set_yticks(range(len(shares)), shares.index, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel=f"share of the signal's top {q:.0%} tokens")
    ax.set_title(f"{pair} where each signal's top tokens fall, by token class", fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    fig.tight_layout()
    return fig


def plot_intervention(summary: pd.DataFrame, ranking: pd.DataFrame, base_acc: float, rl_acc: float, top: int = 6):
    """Accuracy against the replaced fraction for the `top` best-ranked selectors and `random`: mean over prompt
    shards, band ± 1 SE over shards; base and RL accuracy dashed."""
    keep = [s for s in ranking.index if s != "random"][:top] + ["random"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, s in enumerate(keep):
        g = summary[summary["selector"] == s].groupby("budget")["accuracy"]
        m, n = g.mean(), g.count()
        se = (g.std(ddof=1) / np.sqrt(n)).fillna(0.0)
        color = "#8C8C8C" if s == "random" else PALETTE[i % (len(PALETTE) - 1)]
        ax.plot(m.index, m, marker="o", ms=3, color=color, label=f"{s} (AUC {ranking.loc[s, 'auc']:.3f})")
        ax.fill_between(m.index, m - se, m + se, color=color, alpha=0.07, lw=0)
    ax.axhline(base_acc, color="#555", ls=":", lw=1, label=f"base {base_acc:.0%}")
    ax.axhline(rl_acc, color="#555", ls="--", lw=1, label=f"RL {rl_acc:.0%}")
    ax.set(xlabel="fraction of the base's positions given the RL model's token", ylabel="greedy accuracy")
    ax.set_title("recovering the RL accuracy: which signal's tokens matter?\n(mean ± SE over prompt shards)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_signal_rows(tokens: Sequence[str], values: Mapping[str, np.ndarray], title: str = "", cmap: str = "Blues"):
    """One response drawn once per signal: a row of token cells per signal, each row on its own colour scale
    (its min → white, its max → dark; a signed row on a diverging scale with 0 white; a constant row is blank).
    Returns the Figure."""
    names = list(values)
    n = len(tokens)
    fig, ax = plt.subplots(figsize=(min(0.32 * n + 2.4, 22), 0.3 * len(names) + 1.0))
    for r, name in enumerate(names):
        v = np.asarray(values[name], dtype=float)
        lo, hi = np.nanmin(v), np.nanmax(v)
        signed = lo < 0 < hi  # a signed signal (Δlog p): diverging scale, 0 white, so "no change" reads as blank
        if signed:
            m = max(-lo, hi)
            cm, z, dark = plt.get_cmap("RdBu_r"), 0.5 + 0.5 * v / m, lambda x: abs(x - 0.5) > 0.33
        else:
            cm, z, dark = plt.get_cmap(cmap), (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v), lambda x: x > 0.65
        for t in range(n):
            face = "#F4F4F4" if hi <= lo else cm(z[t] if signed else 0.05 + 0.9 * z[t])
            ax.add_patch(plt.Rectangle((t, r), 1, 1, color=face, lw=0))
            ax.text(t + 0.5, r + 0.5, visible_text(tokens[t]), ha="center", va="center", fontsize=6,
                    color="white" if hi > lo and dark(z[t]) else "black")
    ax.set(xlim=(0, n), ylim=(len(names), 0))
    ax.set_yticks(np.arange(len(names)) + 0.5, names, fontsize=7)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or "one response, one row per signal (each row on its own scale)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_composition(final: pd.DataFrame, runs: Sequence[str], base: float):
    """Final held-out accuracy per run: bar at the seed mean, one dot per seed, the base dashed."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for i, r in enumerate(runs):
        vals = final.loc[final["run"] == r, "eval_accuracy"].astype(float)
        ax.bar(i, vals.mean(), 0.6, color=PALETTE[i % len(PALETTE)], alpha=0.8)
        ax.scatter(np.full(len(vals), i), vals, color="black", s=12, zorder=3)
    ax.axhline(base, color="#555", ls="--", lw=1, label=f"base {base:.0%}")
    ax.set_xticks(range(len(runs)), runs, fontsize=8)
    n = int(final.groupby("run").size().max())
    ax.set(ylabel="final greedy accuracy")
    ax.set_title(f"composing token weights on DAPO (bars: mean, dots: {n} seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_jaccard_curves(curves: pd.DataFrame, reference: str, pair: str = ""):
    """J_q(reference, s) against q for every other signal s (`agreement.jaccard_curves`), with the overlap two
    independent random sets of share q would have, q / (2 − q), dotted. Returns the Figure."""
    c = curves[(curves["a"] == reference) | (curves["b"] == reference)].copy()
    c["other"] = np.where(c["a"] == reference, c["b"], c["a"])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (name, g) in enumerate(c.groupby("other", sort=False)):
        ax.plot(g["q"], g["jaccard"], marker="o", ms=3, color=PALETTE[i % len(PALETTE)],
                ls="-" if i < len(PALETTE) else "--", label=name)
    q = np.linspace(max(c["q"].min(), 1e-3), c["q"].max(), 50)
    ax.plot(q, q / (2 - q), ":", color="#555", label="two random sets")
    ax.set(xlabel="q (top fraction of tokens)", ylabel=f"Jaccard with {reference}", ylim=(0, 1.02))
    ax.set_title(f"{pair} overlap of each signal's top-q tokens with {reference}'s", fontsize=9)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    return fig
