"""Coloured-token rendering of any per-token statistic: self-contained HTML and a matplotlib twin.

    render_tokens(tokens, delta_logp, title="Δlog p")          # shows as HTML in a notebook
    render_token_table(tokens, {"Δlog p": d, "entropy": h})    # several statistics side by side
    plot_tokens(tokens, delta_logp)                            # a matplotlib Figure for papers

The colour scale follows the sign of the statistic (`color_scale`): a signed statistic (Δlog p, an
advantage) gets a diverging map ("RdBu") symmetric around 0, v -> cmap(½ + ½·clip(v / m, −1, 1)) with
m = max(|vmin|, |vmax|) (default max |value|), so 0 is the neutral middle colour; a non-negative one
(entropy, |Δ|) a sequential map from 0 ("Blues"); a non-positive one (log-probs) a sequential map ending
at 0 ("Reds_r", the most negative darkest). Categories (token types) get a legend of swatches instead of a
colour bar. The HTML uses inline styles only: no scripts, no CDN, no network.
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
    """RGBA in [0, 1] for each value on the diverging scale ±`limit`: cmap(½ + ½·clip(v / limit, −1, 1));
    NaN -> transparent.

    Args:
        values: [N] floats.
    Returns:
        colors: [N, 4].
    """
    return ColorScale(-limit, limit, cmap).colors(values)


DIVERGING, NONNEGATIVE, NONPOSITIVE = "RdBu", "Blues", "Reds_r"  # default maps by the sign of the data


@dataclass(frozen=True)
class ColorScale:
    """A value range [lo, hi] drawn with matplotlib colormap `cmap`: v -> cmap(clip((v − lo) / (hi − lo), 0, 1)).
    `diverging` when lo < 0 < hi (then lo = −hi and 0 is the middle colour)."""

    lo: float
    hi: float
    cmap: str

    @property
    def diverging(self) -> bool:
        return self.lo < 0 < self.hi

    @property
    def limit(self) -> float:
        """max(|lo|, |hi|): the half-width of a diverging scale."""
        return max(abs(self.lo), abs(self.hi))

    def colors(self, values: np.ndarray) -> np.ndarray:
        """[N] floats -> [N, 4] RGBA; NaN -> transparent, ±inf -> the ends."""
        import matplotlib

        values = np.asarray(values, dtype=float).reshape(-1)
        x = np.nan_to_num((values - self.lo) / (self.hi - self.lo), nan=0.0, posinf=1.0, neginf=0.0)
        colors = np.asarray(matplotlib.colormaps[self.cmap](np.clip(x, 0.0, 1.0)), dtype=float).reshape(-1, 4)
        colors[np.isnan(values)] = (1.0, 1.0, 1.0, 0.0)
        return colors

    def describe(self) -> str:
        """`±0.5 (RdBu, 0 = neutral)` or `0 … 2.3 (Blues)`."""
        if self.diverging:
            return f"±{self.limit:.3g} ({self.cmap}, 0 = neutral)"
        return f"{self.lo:.3g} … {self.hi:.3g} ({self.cmap})"


def color_scale(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                cmap: str | None = None) -> ColorScale:
    """The scale of `values` (see the module docstring): diverging ±m when the data (or the given vmin / vmax)
    take both signs, else sequential over [0, max] or [min, 0]; `cmap` None picks the map by that sign.
    A degenerate range (all zero, all NaN) becomes ±1 or [0, 1]."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 0.0)
    if lo < 0 < hi:
        m = symmetric_limit(finite, vmin, vmax)
        return ColorScale(-m, m, cmap or DIVERGING)
    if hi > 0 or lo == hi == 0:
        return ColorScale(0.0, hi if hi > 0 else 1.0, cmap or NONNEGATIVE)
    return ColorScale(lo, 0.0, cmap or NONPOSITIVE)


def far_end(values, m: float | None) -> dict:
    """The `vmin` / `vmax` argument that sets a scale's far end to `m` (> 0): `vmin=−m` for non-positive data
    (log-probs), else `vmax=m` (±m for signed data); {} when `m` is None."""
    if m is None:
        return {}
    arr = np.asarray(values.detach().float().cpu().numpy() if hasattr(values, "detach") else values, dtype=float)
    finite = arr[np.isfinite(arr)]
    return {"vmin": -abs(m)} if finite.size and finite.max() <= 0 < -finite.min() else {"vmax": abs(m)}


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

    Attributes: `tokens` [N] strings, `values` [N] floats, `scale` the `ColorScale` (`limit` its
    max |end|), `categories` ((name, colour) per category) when the values encode categories: the legend
    then shows swatches instead of a colour bar.
    """

    tokens: list[str]
    values: np.ndarray
    title: str | None = None
    label: str = "value"
    vmin: float | None = None
    vmax: float | None = None
    cmap: str | None = None
    categories: tuple[tuple[str, str], ...] | None = None
    scale: ColorScale = field(init=False)

    def __post_init__(self):
        self.scale = color_scale(self.values, self.vmin, self.vmax, self.cmap)
        self.cmap = self.scale.cmap

    @property
    def limit(self) -> float:
        return self.scale.limit

    def colors(self) -> np.ndarray:
        """[N, 4] RGBA of each token's background."""
        return self.scale.colors(self.values)

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
        lab = html.escape(self.label)
        if self.categories:
            swatches = " ".join(f'<span style="display:inline-block;width:10px;height:10px;vertical-align:middle;'
                                f'border:1px solid #999;background:{html.escape(c)}"></span> {html.escape(n)}'
                                for n, c in self.categories)
            return f'<div style="font-size:11px;margin-top:4px;color:#444">{lab}: {swatches}</div>'
        sc = self.scale
        stops = np.linspace(sc.lo, sc.hi, 9)
        grad = ", ".join(f"{_css(c)} {int(100 * i / 8)}%" for i, c in enumerate(sc.colors(stops)))
        return (f'<div style="font-size:11px;margin-top:4px;color:#444">{lab}: {sc.lo:.3g} '
                f'<span style="display:inline-block;width:140px;height:9px;vertical-align:middle;'
                f'border:1px solid #bbb;background:linear-gradient(to right, {grad})"></span> '
                f'{sc.hi:.3g}{" (0 = neutral)" if sc.diverging else ""}</div>')

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
        what = ("categories " + ", ".join(n for n, _ in self.categories)) if self.categories else \
            f"scale {self.scale.describe()}"
        head = f"TokenHeatmap{' ' + repr(self.title) if self.title else ''}: {len(self.tokens)} tokens, {self.label} {what}"
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
                  vmin: float | None = None, vmax: float | None = None, cmap: str | None = None,
                  categories: Sequence[tuple[str, str]] | None = None) -> TokenHeatmap:
    """Tokens coloured by `values` on the scale `color_scale` picks (see the module docstring).

    Args:
        tokens: [N] token strings (e.g. the `token` column of `token_stats_frame`).
        values: [N] numbers (list, numpy array or tensor); NaN is shown uncoloured.
        title: shown above the tokens; label: the statistic's name in tooltips and the legend
            (default: the title, else "value").
        vmin, vmax: ends of the scale (a diverging one is ±max(|vmin|, |vmax|)); default from the data.
        cmap: a matplotlib colormap name; None = by the sign of the data (RdBu, Blues or Reds_r).
        categories: (name, colour) per category when `values` encode categories (legend of swatches).
    Returns:
        TokenHeatmap (`_repr_html_` in notebooks, `to_text()` elsewhere).
    """
    tokens, arr = _as_values(tokens, values)
    if cmap is not None:
        _check_cmap(cmap)
    return TokenHeatmap(tokens, arr, title=title, label=label or title or "value", vmin=vmin, vmax=vmax, cmap=cmap,
                        categories=tuple(categories) if categories else None)


def render_token_table(tokens: Sequence[str], statistics: Mapping[str, object], *, title: str | None = None,
                       limits: Mapping[str, float] | None = None, cmap: str | None = None) -> TokenTable:
    """Several statistics of the same tokens side by side, each on its own scale (`color_scale`).

    Args:
        tokens: [N] token strings.
        statistics: name -> [N] values, e.g. {"Δlog p": frame.delta_logp, "entropy": frame.entropy_a}.
        limits: optional name -> the scale's far end per statistic (±m for a signed one).
    Returns:
        TokenTable.
    """
    if not statistics:
        raise ValueError("statistics is empty: pass at least one name -> values")
    limits = limits or {}
    panels = [render_tokens(tokens, v, title=name, label=name, cmap=cmap, **far_end(v, limits.get(name)))
              for name, v in statistics.items()]
    return TokenTable(panels, title=title)


def _check_cmap(cmap: str) -> None:
    import matplotlib

    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap {cmap!r} is not a matplotlib colormap (try 'RdBu', 'coolwarm', 'PuOr')")


def plot_tokens(tokens: Sequence[str], values, ax=None, *, title: str | None = None, label: str | None = None,
                vmin: float | None = None, vmax: float | None = None, cmap: str | None = None, line_width: int = 60,
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
        sm = ScalarMappable(Normalize(hm.scale.lo, hm.scale.hi), cmap=hm.scale.cmap)
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
                     limits: Mapping[str, float] | None = None, cmap: str | None = None, line_width: int = 40,
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
        plot_tokens(tokens, v, ax=ax, title=name, label=name, cmap=cmap, **far_end(v, limits.get(name)),
                    line_width=line_width)
    if title:
        fig.suptitle(title, y=1.0, va="bottom", fontsize=fontsize + 3)
    return fig
