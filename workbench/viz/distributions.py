"""Distribution plots of per-token statistics (arXiv 2603.22117, Δlog p analysis).

- `plot_stat_histogram`: histogram of one statistic with a log y axis (Δlog p: heavy mass at 0,
  sparse tails), optionally one outline per group;
- `rank_correlation` / `plot_rank_correlation`: Spearman correlation between statistics,
  computed as the Pearson correlation of ranks (average ranks for ties), shown on a diverging
  scale centred at 0;
- `token_kind_summary` / `plot_token_kinds`: which kinds of token (digit, operator, …) carry a
  statistic's mass.

Every function takes a tidy per-token DataFrame (`token_stats_frame`) and returns a Figure or
a DataFrame; colours follow the token heatmaps (`tokens.color_scale`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from workbench.viz.widgets import default_statistics

OPERATORS = set("+-*/=×÷^%<>()")


def classify_token(token: str) -> str:
    """Coarse kind of a token: special, newline, space, digit, operator, letter, punctuation or other."""
    t = str(token)
    if t.startswith("<|") and t.endswith("|>"):
        return "special"
    if "\n" in t:
        return "newline"
    s = t.strip()
    if s == "":
        return "space"
    if s.isdigit():
        return "digit"
    if all(c in OPERATORS for c in s):
        return "operator"
    if s.isalpha():
        return "letter"
    if all(not c.isalnum() for c in s):
        return "punctuation"
    return "other"


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        raise ValueError(f"no column {column!r} in the token table (columns: {', '.join(frame.columns)})")
    return frame[column].to_numpy(dtype=float)


def plot_stat_histogram(frame: pd.DataFrame, column: str, *, by: str | None = None, bins: int = 61,
                        log_y: bool = True, ax=None, title: str | None = None, xlabel: str | None = None):
    """Histogram of `frame[column]` (NaN/inf dropped), bins symmetric around 0 when values are signed.

    Args:
        column: e.g. "delta_logp".
        by: optional column to split on (one step outline per group, plus the total).
        bins: number of bins (odd keeps a bin centred on 0).
        log_y: log-scaled counts (empty bins are simply not drawn).
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    values = _column(frame, column)
    keep = np.isfinite(values)
    if not keep.any():
        raise ValueError(f"column {column!r} has no finite values to plot")
    lo, hi = values[keep].min(), values[keep].max()
    if lo < 0 < hi or lo == hi:
        m = max(abs(lo), abs(hi)) or 1.0
        edges = np.linspace(-m, m, bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    fig, ax = (plt.subplots(figsize=(6, 3.6)) if ax is None else (ax.figure, ax))
    ax.hist(values[keep], bins=edges, color="#4a7fb5", alpha=0.85, label="all tokens")
    if by is not None:
        groups = frame.loc[keep, by]
        for name in pd.unique(groups):
            ax.hist(values[keep][groups.to_numpy() == name], bins=edges, histtype="step", linewidth=1.3,
                    label=str(name))
        ax.legend(fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.axvline(0.0, color="#888", linewidth=0.8, linestyle=":")
    ax.set_xlabel(xlabel or column)
    ax.set_ylabel("tokens (count, log scale)" if log_y else "tokens (count)")
    share0 = float(np.mean(np.abs(values[keep]) < 1e-3))
    ax.set_title(title or f"{column}: {share0:.0%} of {keep.sum()} tokens within ±0.001")
    return fig


def rank_correlation(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Spearman ρ between statistics: Pearson correlation of average ranks, over rows finite in all columns.

    Args:
        columns: statistics to correlate (default: every numeric statistic column).
    Returns:
        [C, C] DataFrame (NaN where a column is constant).
    """
    columns = default_statistics(frame) if columns is None else list(columns)
    data = pd.DataFrame({c: _column(frame, c) for c in columns})
    data = data[np.isfinite(data.to_numpy()).all(axis=1)]
    if len(data) < 2:
        raise ValueError(f"need at least 2 rows finite in every column of {columns!r}, got {len(data)}")
    return data.rank(method="average").corr(method="pearson")


def plot_rank_correlation(frame: pd.DataFrame, columns: Sequence[str] | None = None, *, ax=None,
                          title: str | None = None):
    """Heatmap of `rank_correlation` with the value in each cell; RdBu scale fixed to [−1, 1].

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    corr = rank_correlation(frame, columns)
    n = len(corr)
    fig, ax = (plt.subplots(figsize=(1.0 + 0.85 * n, 0.6 + 0.75 * n)) if ax is None else (ax.figure, ax))
    im = ax.imshow(corr.to_numpy(), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xticks(range(n), corr.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), corr.index)
    for i in range(n):
        for j in range(n):
            v = corr.iat[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="#fff" if abs(v) > 0.6 else "#000")
    fig.colorbar(im, ax=ax, label="Spearman ρ")
    ax.set_title(title or "Rank correlation between token statistics")
    return fig


def token_kind_summary(frame: pd.DataFrame, column: str, *, kind: str | Callable[[str], str] = classify_token,
                       token_col: str = "token") -> pd.DataFrame:
    """Per token kind: count, mean, mean |value| and share of Σ|value| (the statistic's mass).

    Args:
        column: the statistic, e.g. "delta_logp".
        kind: a column of `frame` naming each token's kind, or a function token -> kind.
    Returns:
        DataFrame indexed by kind, sorted by `mass_share` (descending).
    """
    values = _column(frame, column)
    kinds = frame[kind].astype(str) if isinstance(kind, str) else frame[token_col].map(kind)
    data = pd.DataFrame({"kind": kinds.to_numpy(), "v": values})
    data = data[np.isfinite(data["v"])]
    data["abs"] = data["v"].abs()
    g = data.groupby("kind")
    total = data["abs"].sum()
    out = pd.DataFrame({"count": g.size(), "mean": g["v"].mean(), "mean_abs": g["abs"].mean(),
                        "mass_share": g["abs"].sum() / total if total > 0 else 0.0})
    return out.sort_values("mass_share", ascending=False)


def plot_token_kinds(frame: pd.DataFrame, column: str, *, kind: str | Callable[[str], str] = classify_token,
                     metric: str = "mass_share", token_col: str = "token", ax=None, title: str | None = None):
    """Bars of `token_kind_summary(...)[metric]` per kind, each bar coloured by the kind's mean on the scale
    `tokens.color_scale` picks (RdBu centred at 0 for a signed column, sequential otherwise), with its colourbar.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from workbench.viz.tokens import color_scale

    summary = token_kind_summary(frame, column, kind=kind, token_col=token_col)
    if metric not in summary.columns:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(summary.columns)}")
    summary = summary.sort_values(metric, ascending=False)
    means = summary["mean"].to_numpy(dtype=float)
    scale = color_scale(means)
    colors = scale.colors(means)
    fig, ax = (plt.subplots(figsize=(1.2 + 0.7 * len(summary), 3.4)) if ax is None else (ax.figure, ax))
    ax.bar(summary.index.astype(str), summary[metric], color=colors, edgecolor="#555", linewidth=0.6)
    for x, (n, v) in enumerate(zip(summary["count"], summary[metric])):
        ax.text(x, v, f"n={n}", ha="center", va="bottom", fontsize=7)
    labels = {"mass_share": f"share of Σ|{column}|", "mean_abs": f"mean |{column}|", "mean": f"mean {column}",
              "count": "tokens"}
    ax.set_ylabel(labels.get(metric, metric))
    if len(summary) > 5:
        ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("token kind")
    ax.figure.colorbar(ScalarMappable(Normalize(scale.lo, scale.hi), cmap=scale.cmap), ax=ax, label=f"bar colour: mean {column}")
    top = summary.index[0] if len(summary) else "–"
    ax.set_title(title or f"'{top}' tokens have the largest {labels.get(metric, metric)}")
    return fig
