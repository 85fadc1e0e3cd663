"""Notebook 08's figures draw from hand-made inputs (no model)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.tasks.video import load_bench  # noqa: E402
from workbench.viz.react import plot_frame_strips, plot_sampling, plot_sft_vs_grpo  # noqa: E402


def test_frame_strips_mark_distorted_and_chosen_frames():
    specs = [p.worse for p in load_bench(2)]
    scores = np.zeros((2, 16))
    scores[0, 8:10] = 3
    fig = plot_frame_strips(specs, scores, [(8, 9, 10, 11), (0, 2)])
    assert len(fig.axes) == 2 * 2 * 8
    titles = [ax.get_title() for ax in fig.axes[:8]]
    assert titles[4] == "8•" and titles[0] == "0"
    red = [ax for ax in fig.axes[:8] if ax.spines["top"].get_linewidth() > 2]
    assert len(red) == sum(any(t in specs[0].distortion.frames for t in (f, f + 1)) for f in range(0, 16, 2))


def test_summary_figures():
    rows = [{"model": m, "seed": s, "method": meth, "pairwise_accuracy": 0.6, "spearman": 0.3,
             "attribution_accuracy": 0.4, "frame_recall": r, "frames_per_clip": f}
            for m, s in (("SFT", None), ("SFT + GRPO", 0), ("SFT + GRPO", 1))
            for meth, r, f in (("uniform", 0.3, 8), ("dynamic", 0.5, 16))]
    summary = pd.DataFrame(rows)
    assert plot_sft_vs_grpo(summary).axes and plot_sampling(summary).axes
