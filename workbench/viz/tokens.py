"""Coloured-token rendering of any per-token statistic: self-contained HTML and a matplotlib twin.

    render_tokens(tokens, delta_logp, title="Δlog p")          # shows as HTML in a notebook
    render_token_table(tokens, {"Δlog p": d, "entropy": h})    # several statistics side by side
    plot_tokens(tokens, delta_logp)                            # a matplotlib Figure for papers

The colour scale is diverging (default matplotlib "RdBu") and symmetric around 0: a value v
maps to cmap(½ + ½·clip(v / m, −1, 1)) with m = max(|vmin|, |vmax|) (default max |value|), so 0 is
the neutral middle colour. The HTML uses inline styles only: no scripts, no CDN, no network.
Whitespace is made visible (space ·, tab →, newline ↵ followed by a line break); every token
has a tooltip with its index, its exact text and its value.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

VISIBLE = {" ": "·", "\t": "→", "\n": "↵", "\r": "␍"}


def visible_text(token: str) -> str:
    """The token with whitespace and control characters replaced by visible marks ('' -> '∅')."""
    if token == "":
        return "∅"
    return "".join(VISIBLE.get(c, c if c.isprintable() else repr(c)[1:-1]) for c in token)


def symmetric_limit(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> float:
    """m = max(|vmin|, |vmax|) when given, else max |finite value|; 1 when that is 0 or undefined."""
    given = [abs(v) for v in (vmin, vmax) if v is not None]
    finite = values[np.isfinite(values)]
    m = max(given) if given else (float(np.abs(finite).max()) if finite.size else 0.0)
    return m if m > 0 and math.isfinite(m) else 1.0


def value_colors(values: np.ndarray, limit: float, cmap: str = "RdBu") -> np.ndarray:
    """RGBA in [0, 1] for each value: cmap(½ + ½·clip(v / limit, −1, 1)); NaN -> transparent.

    Args:
        values: [N] floats.
    Returns:
        colors: [N, 4].
    """
    import matplotlib

    cm = matplotlib.colormaps[cmap]
    x = 0.5 + 0.5 * np.clip(np.nan_to_num(values / limit, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    colors = np.asarray(cm(x), dtype=float).reshape(-1, 4)
    colors[np.isnan(values)] = (1.0, 1.0, 1.0, 0.0)
    return colors


def _as_values(tokens: Sequence[str], values) -> tuple[list[str], np.ndarray]:
    tokens = [str(t) for t in tokens]
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size != len(tokens):
        raise ValueError(f"got {len(tokens)} tokens but {arr.size} values")
    return tokens, arr


def _text_color(rgba) -> str:
    r, g, b = rgba[:3]
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 or rgba[3] == 0 else "#fff"


def _css(rgba) -> str:
    if rgba[3] == 0:
        return "transparent"
    return "rgb({},{},{})".format(*(int(round(255 * c)) for c in rgba[:3]))


@dataclass
class TokenHeatmap:
    """Tokens coloured by one statistic. Displays as HTML in notebooks, as text elsewhere.

    Attributes: `tokens` [N] strings, `values` [N] floats, `limit` the symmetric scale m.
    """

    tokens: list[str]
    values: np.ndarray
    title: str | None = None
    label: str = "value"
    vmin: float | None = None
    vmax: float | None = None
    cmap: str = "RdBu"
    limit: float = field(init=False)

    def __post_init__(self):
        self.limit = symmetric_limit(self.values, self.vmin, self.vmax)

    def colors(self) -> np.ndarray:
        """[N, 4] RGBA of each token's background."""
        return value_colors(self.values, self.limit, self.cmap)

    def to_html(self) -> str:
        """Self-contained HTML (inline styles only)."""
        spans = []
        for i, (tok, val, rgba) in enumerate(zip(self.tokens, self.values, self.colors())):
            tip = html.escape(f"#{i} {tok!r}\n{self.label} = {val:.4g}", quote=True)
            text = html.escape(visible_text(tok))
            spans.append(f'<span title="{tip}" style="background:{_css(rgba)};color:{_text_color(rgba)};'
                         f'white-space:pre;padding:1px 1px;margin:0 1px 0 0;border-radius:2px">{text}</span>')
            if "\n" in tok:
                spans.append("<br>")
        head = (f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(self.title)}</div>'
                if self.title else "")
        return (f'<div style="font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;'
                f'max-width:100%">{head}<div>{"".join(spans)}</div>{self._legend_html()}</div>')

    def _legend_html(self) -> str:
        stops = np.linspace(-1.0, 1.0, 9)
        rgba = value_colors(stops * self.limit, self.limit, self.cmap)
        grad = ", ".join(f"{_css(c)} {int(100 * (s + 1) / 2)}%" for s, c in zip(stops, rgba))
        lab = html.escape(self.label)
        return (f'<div style="font-size:11px;margin-top:4px;color:#444">{lab}: {-self.limit:.3g} '
                f'<span style="display:inline-block;width:140px;height:9px;vertical-align:middle;'
                f'border:1px solid #bbb;background:linear-gradient(to right, {grad})"></span> '
                f'{self.limit:.3g} (0 = neutral)</div>')

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_text(self, width: int = 100) -> str:
        """Plain text: a header line, then `token[value]` items wrapped at `width` characters."""
        lines, line = [], ""
        for tok, val in zip(self.tokens, self.values):
            item = f"{visible_text(tok)}[{val:+.3g}]"
            if line and len(line) + 1 + len(item) > width:
                lines.append(line)
                line = item
            else:
                line = f"{line} {item}" if line else item
        if line:
            lines.append(line)
        head = f"TokenHeatmap{' ' + repr(self.title) if self.title else ''}: {len(self.tokens)} tokens, " \
               f"{self.label} scale ±{self.limit:.3g} ({self.cmap}, 0 = neutral)"
        return "\n".join([head, *lines])

    def __repr__(self) -> str:
        return self.to_text()


@dataclass
class TokenTable:
    """The same tokens coloured by several statistics, one panel each, side by side."""

    panels: list[TokenHeatmap]
    title: str | None = None

    def to_html(self) -> str:
        head = (f'<div style="font-weight:bold;margin-bottom:6px">{html.escape(self.title)}</div>'
                if self.title else "")
        cells = "".join(f'<div style="flex:1 1 320px;min-width:260px">{p.to_html()}</div>' for p in self.panels)
        return f'<div>{head}<div style="display:flex;flex-wrap:wrap;gap:18px">{cells}</div></div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_text(self, width: int = 100) -> str:
        """Each panel's `to_text`, one after the other."""
        parts = [f"TokenTable {self.title!r}" if self.title else "TokenTable"]
        return "\n".join(parts + [p.to_text(width) for p in self.panels])

    def __repr__(self) -> str:
        return self.to_text()


def render_tokens(tokens: Sequence[str], values, *, title: str | None = None, label: str | None = None,
                  vmin: float | None = None, vmax: float | None = None, cmap: str = "RdBu") -> TokenHeatmap:
    """Tokens coloured by `values` on a scale symmetric around 0 (see the module docstring).

    Args:
        tokens: [N] token strings (e.g. the `token` column of `token_stats_frame`).
        values: [N] numbers (list, numpy array or tensor); NaN is shown uncoloured.
        title: shown above the tokens; label: the statistic's name in tooltips and the legend
            (default: the title, else "value").
        vmin, vmax: the scale is ±max(|vmin|, |vmax|); default ±max |value|.
        cmap: a matplotlib diverging colormap name.
    Returns:
        TokenHeatmap (`_repr_html_` in notebooks, `to_text()` elsewhere).
    """
    tokens, arr = _as_values(tokens, values)
    _check_cmap(cmap)
    return TokenHeatmap(tokens, arr, title=title, label=label or title or "value", vmin=vmin, vmax=vmax, cmap=cmap)


def render_token_table(tokens: Sequence[str], statistics: Mapping[str, object], *, title: str | None = None,
                       limits: Mapping[str, float] | None = None, cmap: str = "RdBu") -> TokenTable:
    """Several statistics of the same tokens side by side, each on its own symmetric scale.

    Args:
        tokens: [N] token strings.
        statistics: name -> [N] values, e.g. {"Δlog p": frame.delta_logp, "entropy": frame.entropy_a}.
        limits: optional name -> scale m (±m) per statistic.
    Returns:
        TokenTable.
    """
    if not statistics:
        raise ValueError("statistics is empty: pass at least one name -> values")
    limits = limits or {}
    panels = [render_tokens(tokens, v, title=name, label=name, vmax=limits.get(name), cmap=cmap)
              for name, v in statistics.items()]
    return TokenTable(panels, title=title)


def _check_cmap(cmap: str) -> None:
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap {cmap!r} is not a matplotlib colormap (try 'RdBu', 'coolwarm', 'PuOr')")


def plot_tokens(tokens: Sequence[str], values, ax=None, *, title: str | None = None, label: str | None = None,
                vmin: float | None = None, vmax: float | None = None, cmap: str = "RdBu", line_width: int = 60,
                fontsize: float | None = None, colorbar: bool = True):
    """Matplotlib twin of `render_tokens`: tokens wrapped into lines of coloured boxes, with a colourbar.

    Boxes are laid out in character units (monospace), wrapping after `line_width` characters and
    after newline tokens; the font is sized so that `line_width` characters fill the axes.

    Args:
        tokens, values, title, vmin, vmax, cmap: as in `render_tokens`.
        label: colourbar label (default: the title, else "value").
        ax: draw into this Axes (a new figure sized to the text when None).
        fontsize: points (default: fitted to the axes width, at most 11).
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    label = label or title or "value"
    hm = render_tokens(tokens, values, title=title, label=label, vmin=vmin, vmax=vmax, cmap=cmap)
    boxes, n_lines = _layout(hm.tokens, line_width)
    if ax is None:
        size = fontsize or 10.0
        fig, ax = plt.subplots(figsize=(max(3.0, line_width * CHAR_EM * size / 72.0 + 0.5),
                                        0.9 + n_lines * LINE_EM * size / 72.0 + (0.6 if colorbar else 0.0)))
    fig = ax.figure
    if fontsize is None:  # one character = one data unit across the axes
        width_in = ax.get_position().width * fig.get_figwidth()
        fontsize = min(11.0, width_in * 72.0 / ((line_width + 0.4) * CHAR_EM))
    for (bx, by, w, text), rgba in zip(boxes, hm.colors()):
        ax.add_patch(Rectangle((bx, by + 0.08), w, 0.84, facecolor=rgba, edgecolor="none"))
        ax.text(bx + w / 2, by + 0.5, text, ha="center", va="center", family="monospace", fontsize=fontsize,
                color=_text_color(rgba), parse_math=False)
    ax.set_xlim(-0.2, line_width + 0.2)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    if title:
        ax.set_title(title, loc="left", fontsize=fontsize + 1)
    if colorbar:
        sm = ScalarMappable(Normalize(-hm.limit, hm.limit), cmap=cmap)
        fig.colorbar(sm, ax=ax, orientation="horizontal", fraction=0.5 / max(n_lines + 2, 3), pad=0.04,
                     shrink=0.5, label=label)
    return fig


CHAR_EM, LINE_EM = 0.62, 2.0  # monospace glyph width and line pitch, in font sizes


def _layout(tokens: list[str], line_width: int) -> tuple[list[tuple[float, int, float, str]], int]:
    """(x, line, width, text) per token in character units, and the number of lines."""
    boxes, x, y = [], 0.0, 0
    for tok in tokens:
        text = visible_text(tok)
        w = len(text) + 0.3
        if x > 0 and x + w > line_width:
            x, y = 0.0, y + 1
        boxes.append((x, y, w, text))
        x += w + 0.15
        if "\n" in tok:
            x, y = 0.0, y + 1
    return boxes, y + 1


def plot_token_table(tokens: Sequence[str], statistics: Mapping[str, object], *, title: str | None = None,
                     limits: Mapping[str, float] | None = None, cmap: str = "RdBu", line_width: int = 40,
                     fontsize: float = 9.0):
    """Matplotlib twin of `render_token_table`: one `plot_tokens` panel per statistic, side by side.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not statistics:
        raise ValueError("statistics is empty: pass at least one name -> values")
    limits = limits or {}
    _, n_lines = _layout([str(t) for t in tokens], line_width)
    panel_w = line_width * CHAR_EM * fontsize / 72.0 + 0.5
    fig, axes = plt.subplots(1, len(statistics), squeeze=False,
                             figsize=(len(statistics) * panel_w, 1.5 + n_lines * LINE_EM * fontsize / 72.0))
    for ax, (name, v) in zip(axes[0], statistics.items()):
        plot_tokens(tokens, v, ax=ax, title=name, label=name, vmax=limits.get(name), cmap=cmap,
                    line_width=line_width)
    if title:
        fig.suptitle(title, y=1.0, va="bottom", fontsize=fontsize + 3)
    return fig
