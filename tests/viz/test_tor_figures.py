"""Notebook 03's ablation figure: subplot titles that do not run into each other."""

import matplotlib
import pandas as pd

matplotlib.use("Agg")

from workbench.viz.tor import plot_ablation  # noqa: E402


def test_ablation_titles_do_not_overlap():
    rows = [{"method": m, "variant": v, "seed": s, "acc": 0.5 + 0.01 * s, "perc": 0.4, "share": 0.2}
            for m in ("grpo", "dapo") for v in ("full", "perception-only", "reasoning-only", "ToR") for s in range(5)]
    panels = [("acc", "held-out accuracy (greedy)", 0.5), ("perc", "perception accuracy", 0.4),
              ("share", "top answer share", 0.2)]
    fig = plot_ablation(pd.DataFrame(rows), ["grpo", "dapo"], ["full", "perception-only", "reasoning-only", "ToR"], panels)
    fig.canvas.draw()
    boxes = [ax.title.get_window_extent() for ax in fig.axes]
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]
