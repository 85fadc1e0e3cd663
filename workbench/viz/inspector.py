"""The token inspector: pick a token of a response and see its top-k alternatives under two models, with
Δlog p, entropy and its weight under every registered token-weight method (numbers: `rl.inspect.inspect_tokens`).

    token_inspector(insp)               # JupyterLab: a token picker that redraws the view; headless: a static view
    plot_token_inspection(insp, t)      # the figure twin: top-k bars of both models at position t

The picker lists every position as `t: 'token'`; the view shows the two top-k tables side by side (the sampled
token in bold), then log π, Δlog p, entropy and the weights at t. Headless runs (`workbench.run`) and plain Python
get the view of the most-changed token (largest |Δlog p|) as HTML instead of a widget a saved notebook cannot keep.
"""

from __future__ import annotations

import html

import numpy as np

from workbench.viz.style import PALETTE
from workbench.viz.tokens import visible_text
from workbench.viz.widgets import has_widget_frontend


def most_changed(insp) -> int:
    """The position with the largest |Δlog p| (the first on ties)."""
    return int(np.nanargmax(np.abs(insp.delta_logp)))


def token_facts(insp, t: int) -> str:
    """One line of numbers at position t: log π under both models, Δlog p, entropies and every weight."""
    a, b = insp.names
    ws = ", ".join(f"{n} {w[t]:.3g}" for n, w in insp.weights.items())
    return (f"t={t} {visible_text(insp.tokens[t])!r}: log π {a} {insp.logp[0, t]:.3f}, {b} {insp.logp[1, t]:.3f}; "
            f"Δlog p {insp.delta_logp[t]:+.3f}; entropy {a} {insp.entropy[0, t]:.3f}, {b} {insp.entropy[1, t]:.3f}"
            + (f"; weights: {ws}" if ws else ""))


def plot_token_inspection(insp, t: int | None = None):
    """Two panels of horizontal bars, the top-k alternatives at position `t` (default `most_changed`) under
    each model with their probabilities; the sampled token's bar is drawn dark. Returns the Figure."""
    import matplotlib.pyplot as plt

    t = most_changed(insp) if t is None else t
    insp.table(t)  # checks t
    k = insp.top_probs.shape[2]
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 0.9 + 0.32 * k), sharex=True)
    for i, ax in enumerate(axes):
        toks = [visible_text(s) for s in insp.top_tokens[i][t]]
        probs = insp.top_probs[i, t]
        colors = [PALETTE[i] if s != insp.tokens[t] else "#222" for s in insp.top_tokens[i][t]]
        ax.barh(range(k), probs, color=colors)
        ax.set_yticks(range(k), toks, family="monospace")
        ax.invert_yaxis()
        for y, p in enumerate(probs):
            ax.text(p, y, f" {p:.2f}", va="center", fontsize=7)
        ax.set(xlim=(0, 1.1), xlabel="probability",
               title=f"{insp.names[i]}: log π(y_t) {insp.logp[i, t]:.2f}, H {insp.entropy[i, t]:.2f}")
    fig.suptitle(f"token {t} {visible_text(insp.tokens[t])!r} (dark bar): Δlog p {insp.delta_logp[t]:+.2f}", fontsize=10)
    fig.tight_layout()
    return fig


def inspection_html(insp, t: int) -> str:
    """The view at position t as self-contained HTML: both top-k tables side by side and the numbers line."""
    tables = []
    for i, name in enumerate(insp.names):
        rows = "".join(
            f"<tr><td style='font-family:monospace;{'font-weight:bold' if s == insp.tokens[t] else ''}'>"
            f"{html.escape(visible_text(s))}</td><td style='text-align:right'>{p:.3f}</td></tr>"
            for s, p in zip(insp.top_tokens[i][t], insp.top_probs[i, t]))
        tables.append(f"<table style='margin-right:24px'><tr><th>{html.escape(name)}</th><th>p</th></tr>{rows}</table>")
    return (f"<div style='display:flex'>{''.join(tables)}</div>"
            f"<div style='font-size:12px;margin-top:6px'>{html.escape(token_facts(insp, t))}</div>")


class TokenInspector:
    """The live inspector: a token picker and an HTML view that follows it (`widget` is the ipywidgets box)."""

    def __init__(self, insp):
        import ipywidgets as W

        self.insp = insp
        options = [(f"{t}: {visible_text(s)!r}", t) for t, s in enumerate(insp.tokens)]
        self.picker = W.Dropdown(options=options, value=most_changed(insp), description="token")
        self.output = W.HTML()
        self.picker.observe(lambda change: self.update(), names="value")
        self.widget = W.VBox([self.picker, self.output])
        self.update()

    def update(self) -> None:
        self.output.value = inspection_html(self.insp, self.picker.value)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


class StaticInspection:
    """The view at one position as HTML (`_repr_html_`) and text: what a saved notebook keeps of the inspector."""

    def __init__(self, insp, t: int):
        self.insp, self.t = insp, t

    def _repr_html_(self) -> str:
        return inspection_html(self.insp, self.t)

    def __repr__(self) -> str:
        return token_facts(self.insp, self.t)


def token_inspector(insp, *, static: bool | None = None):
    """A `TokenInspector` in a live kernel with ipywidgets, else (or with `static=True`) a `StaticInspection` of the
    most-changed token (its top-k tables as HTML; `plot_token_inspection` draws the same as a figure)."""
    if static is None:
        static = not has_widget_frontend()
    return StaticInspection(insp, most_changed(insp)) if static else TokenInspector(insp)
