"""Plots of RL runs from plain data (trainer histories, accuracies, seed bands): no training code here.

- `plot_training_run`: batch reward per step and the held-out accuracy curve of one run (notebook 00);
- `plot_sharpening`: greedy / pass@1 / pass@k bars before and after RL, and the pass@k curves (notebook 00;
  RLVR sharpens the base, Yue et al., arXiv 2504.13837);
- `plot_band`: one seed band (mean line, min–max shade) from a `seed_bands`-style frame
  (columns step, mean, lo, hi), the building block of the multi-seed comparisons (notebooks 01, 02);
- `plot_curves_and_final`: held-out curves per run and final accuracy per seed joined across runs, so a
  paired difference reads as a slope (notebooks 04, 05).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.viz.style import PALETTE


def plot_training_run(history: Sequence[Mapping], curve_base: float, curve_n: int, method: str, *,
                      before: float, after: float, n: int):
    """Left: the mean batch reward per RL step; right: held-out greedy accuracy on one evaluation set — the
    base on it at step 0 (`curve_base`) and every history entry with `eval_accuracy` (all on the same
    `curve_n` problems) — with the run's `before` / `after` on the notebook's `n` problems as separate markers.

    Args:
        history: one dict per step with `step`, `reward_mean` and (on evaluation steps) `eval_accuracy`.
        curve_base, curve_n: the base's greedy accuracy on the curve's problems and how many there are.
        before, after, n: greedy accuracy of the base and of the final policy on the notebook's `n` problems
            (the title is computed from them).
    Returns:
        the Figure.
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot([h["step"] for h in history], [h.get("reward_mean", float("nan")) for h in history], lw=1, alpha=0.6,
             label="batch reward")
    ax1.set(xlabel="RL step", ylabel="mean reward (exact match)", title="Training reward")
    curve = [(h["step"], h["eval_accuracy"]) for h in history if "eval_accuracy" in h]
    ax2.plot([0] + [s for s, _ in curve], [curve_base] + [a for _, a in curve], marker="o", label=f"{curve_n} problems")
    last = history[-1]["step"] if history else 0
    ax2.plot([0, last], [before, after], ls="none", marker="s", mfc="none", color=PALETTE[3], label=f"{n} problems")
    ax2.legend(fontsize=7)
    ax2.set(xlabel="RL step", ylabel="held-out greedy accuracy", ylim=(0, 1),
            title=f"{method}: {before:.1%} → {after:.1%} on {n} held-out ({100 * (after - before):+.1f} pts)")
    fig.tight_layout()
    return fig


def sharpening_title(base, rl, method: str) -> str:
    """What the bars show, computed from them: greedy and pass@k_max (the largest k both measured) before →
    after, and the word for it — *sharpened* (greedy up, pass@k_max not up), *widened* (both up) or *greedy
    fell*."""
    kmax = max(base.pass_at_k)
    dg, dk = 100 * (rl.accuracy - base.accuracy), 100 * (rl.pass_at_k[kmax] - base.pass_at_k[kmax])
    word = "greedy fell" if dg < 0 else "sharpened" if dk <= 0 else "widened" if dg > 0 else "greedy unchanged"
    return f"{method} {word}: greedy {dg:+.1f} pts, pass@{kmax} {dk:+.1f} pts"


def plot_sharpening(base, rl, *, method: str, pass_k: int, temperature: float):
    """Left: greedy accuracy, pass@1 and pass@`pass_k` of the base and the RL model (bars labelled with the
    change in points, title from `sharpening_title`); right: pass@k over every k both measured (log k axis),
    greedy accuracy dotted.

    Args:
        base, rl: evaluation results with `.accuracy`, `.n` and `.pass_at_k` ({k: value}, same k for both).
    Returns:
        the Figure.
    """
    ks = list(base.pass_at_k)
    names = ["greedy", f"pass@1 (T={temperature})", f"pass@{pass_k}"]
    before = [base.accuracy, base.pass_at_k[1], base.pass_at_k[pass_k]]
    after = [rl.accuracy, rl.pass_at_k[1], rl.pass_at_k[pass_k]]
    fig, (ax, axk) = plt.subplots(1, 2, figsize=(10, 3.4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], before, width=0.4, label="base")
    ax.bar([x + 0.2 for x in xs], after, width=0.4, label=method)
    for x, (b, a) in enumerate(zip(before, after)):
        ax.annotate(f"{100 * (a - b):+.1f} pts", (x + 0.2, a), ha="center", va="bottom", fontsize=8)
    ax.set(xticks=list(xs), xticklabels=names, ylim=(0, 1), ylabel=f"held-out accuracy ({base.n} problems)",
           title=sharpening_title(base, rl, method))
    ax.legend()
    for name, e in (("base", base), (method, rl)):
        axk.plot(ks, [e.pass_at_k[k] for k in ks], marker="o", label=f"{name} pass@k")
        axk.axhline(e.accuracy, ls=":", lw=1, color=axk.lines[-1].get_color(), label=f"{name} greedy")
    axk.set(xscale="log", xticks=ks, xticklabels=[str(k) for k in ks], ylim=(0, 1), xlabel=f"k (T={temperature})",
            ylabel="pass@k", title="pass@k before and after RL")
    axk.minorticks_off()
    axk.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_band(ax, band: pd.DataFrame, color, label: str, *, alpha: float = 0.2, marker_below: int = 12):
    """The seed mean of one run as a line (markers when it has fewer than `marker_below` points) and its
    min–max over seeds as a shade of opacity `alpha`. `band`: columns step, mean, lo, hi (one row per step)."""
    ax.plot(band["step"], band["mean"], color=color, marker="o" if len(band) < marker_below else None, ms=3, label=label)
    ax.fill_between(band["step"], band["lo"], band["hi"], color=color, alpha=alpha, lw=0)
    return ax


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
