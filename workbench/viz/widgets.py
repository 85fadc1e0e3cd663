"""An ipywidgets explorer of per-token statistics, with a static fallback.

    token_explorer(frame)   # frame from `workbench.analysis.token_stats.token_stats_frame`

Controls: which rollout (`seq_id`), which statistic (or all side by side), the colour range ±m
(or automatic). Without ipywidgets or a live kernel (plain Python, `static=True`) it returns
the static `render_token_table` of one rollout instead. Widget state does not survive headless
(papermill) runs, so a notebook should also save a static figure of what a reader must see.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from workbench.utils import headless
from workbench.viz.tokens import TokenTable, far_end, render_token_table, render_tokens

ALL = "(all side by side)"
NON_STATISTICS = {"seq_id", "position", "token_id", "token"}


def default_statistics(frame: pd.DataFrame) -> list[str]:
    """Numeric columns of a token table other than seq_id / position / token_id."""
    return [c for c in frame.columns if c not in NON_STATISTICS and pd.api.types.is_numeric_dtype(frame[c])]


def has_widget_frontend() -> bool:
    """True inside an IPython kernel with ipywidgets importable, unless the run is headless (`utils.headless()`:
    `workbench.run` and the notebook tests set it for papermill's kernels, which no browser renders)."""
    if headless():
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _rollout(frame: pd.DataFrame, seq_id, seq_col: str) -> pd.DataFrame:
    rows = frame[frame[seq_col] == seq_id]
    if "position" in rows:
        rows = rows.sort_values("position")
    return rows


def static_view(frame: pd.DataFrame, seq_id=None, statistics: Sequence[str] | None = None, *,
                seq_col: str = "seq_id", token_col: str = "token", cmap: str | None = None) -> TokenTable:
    """One rollout (default: the first) with every statistic side by side, as a `TokenTable`."""
    statistics = _check(frame, statistics, seq_col, token_col)
    seq_id = frame[seq_col].iloc[0] if seq_id is None else seq_id
    rows = _rollout(frame, seq_id, seq_col)
    if rows.empty:
        raise ValueError(f"no rows with {seq_col} == {seq_id!r}")
    return render_token_table(rows[token_col].tolist(), {s: rows[s].to_numpy() for s in statistics},
                              title=f"{seq_col} = {seq_id}", cmap=cmap)


class TokenExplorer:
    """The live explorer: `widget` (an ipywidgets VBox) plus its controls, re-rendered on change.

    Attributes: `rollout`, `statistic` (Dropdowns), `auto` (Checkbox), `limit` (FloatSlider for
    ±m), `output` (HTML), `widget` (the VBox displayed in a notebook).
    """

    def __init__(self, frame: pd.DataFrame, statistics: Sequence[str], seq_col: str, token_col: str, cmap: str):
        import ipywidgets as W

        self.frame, self.statistics, self.seq_col, self.token_col, self.cmap = frame, list(statistics), seq_col, \
            token_col, cmap
        seq_ids = list(pd.unique(frame[seq_col]))
        top = float(np.nanmax(np.abs(frame[self.statistics].to_numpy(dtype=float)))) if len(frame) else 1.0
        top = top if np.isfinite(top) and top > 0 else 1.0
        self.rollout = W.Dropdown(options=seq_ids, value=seq_ids[0], description="rollout")
        self.statistic = W.Dropdown(options=self.statistics + [ALL], value=self.statistics[0], description="statistic")
        self.auto = W.Checkbox(value=True, description="auto range")
        exp = float(np.log10(top))  # a log slider zooms four decades below the largest |value|
        self.limit = W.FloatLogSlider(value=top, base=10, min=exp - 4, max=exp, step=0.02, description="range",
                                      readout_format=".3g", disabled=True)
        self.output = W.HTML()
        for w in (self.rollout, self.statistic, self.auto, self.limit):
            w.observe(lambda change: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.rollout, self.statistic]), W.HBox([self.auto, self.limit]), self.output])
        self.update()

    def update(self) -> None:
        """Re-render the HTML from the current control values."""
        self.limit.disabled = self.auto.value
        rows = _rollout(self.frame, self.rollout.value, self.seq_col)
        tokens = rows[self.token_col].tolist()
        m = None if self.auto.value else self.limit.value
        if self.statistic.value == ALL:
            view = render_token_table(tokens, {s: rows[s].to_numpy() for s in self.statistics}, cmap=self.cmap,
                                      limits=None if m is None else dict.fromkeys(self.statistics, m))
        else:
            s = self.statistic.value
            view = render_tokens(tokens, rows[s].to_numpy(), title=f"{self.seq_col} = {self.rollout.value}", label=s,
                                 cmap=self.cmap, **far_end(rows[s].to_numpy(), m))
        self.output.value = view.to_html()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def token_explorer(frame: pd.DataFrame, *, statistics: Sequence[str] | None = None, static: bool | None = None,
                   seq_col: str = "seq_id", token_col: str = "token", cmap: str | None = None):
    """Explore a tidy per-token table: choose rollout, statistic and colour range.

    Args:
        frame: one row per token with `seq_col`, `token_col`, `position` (optional) and numeric
            statistic columns (as from `token_stats_frame`).
        statistics: columns offered (default: every numeric statistic column).
        static: True -> always the static view; False -> always widgets; None -> widgets only
            inside a kernel with ipywidgets.
    Returns:
        TokenExplorer (live) or TokenTable (static: the first rollout, all statistics).
    """
    statistics = _check(frame, statistics, seq_col, token_col)
    if static is None:
        static = not has_widget_frontend()
    if not static:
        try:
            return TokenExplorer(frame, statistics, seq_col, token_col, cmap)
        except ImportError:
            pass
    return static_view(frame, None, statistics, seq_col=seq_col, token_col=token_col, cmap=cmap)


def _check(frame: pd.DataFrame, statistics, seq_col: str, token_col: str) -> list[str]:
    if len(frame) == 0:
        raise ValueError("the token table is empty: nothing to show")
    for col in (seq_col, token_col):
        if col not in frame.columns:
            raise ValueError(f"the token table has no {col!r} column (columns: {', '.join(frame.columns)})")
    statistics = default_statistics(frame) if statistics is None else list(statistics)
    missing = [s for s in statistics if s not in frame.columns]
    if missing or not statistics:
        raise ValueError(f"statistics {missing or statistics!r} not among the numeric columns "
                         f"{default_statistics(frame)!r}")
    return statistics
