"""One figure style for every notebook, and `save_figure` (PNG + PDF under `figures/<notebook>/`)."""

from __future__ import annotations

import os

import matplotlib

from workbench.utils import repo_root

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "font.size": 10,
    "axes.titlesize": 11, "axes.labelsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.25, "legend.frameon": False,
}
PALETTE = ["#3B6FB6", "#D1495B", "#2E933C", "#EDAE49", "#7D5BA6", "#00798C", "#8C8C8C"]


def use_style() -> None:
    """Apply the workbench style to matplotlib (idempotent)."""
    matplotlib.rcParams.update(STYLE)
    matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=PALETTE)


def figures_dir(notebook: str, tag: str | None = None) -> str:
    """`$WORKBENCH_FIGURES/<notebook>` (default `<repo>/figures/<notebook>`) for the default (`cpu`) run, and
    `…/figures/_<tag>/<notebook>` for any other (`tag` default: `workbench.notebook.figure_tag()`: the preset
    or the sweep member), so a smoke run or a sweep never overwrites the figures REPORT.md links. Created."""
    from workbench.notebook import figure_tag

    tag = tag if tag is not None else figure_tag()
    root = os.environ.get("WORKBENCH_FIGURES") or os.path.join(repo_root(), "figures")
    path = os.path.join(root, f"_{tag}", notebook) if tag else os.path.join(root, notebook)
    os.makedirs(path, exist_ok=True)
    return path


def save_figure(fig, notebook: str, name: str) -> str:
    """Save `fig` as `<name>.png` and `<name>.pdf` in `figures_dir(notebook)`; returns the PNG path."""
    folder = figures_dir(notebook)
    png = os.path.join(folder, f"{name}.png")
    fig.savefig(png)
    fig.savefig(os.path.join(folder, f"{name}.pdf"))
    return png
