import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from workbench.viz.tokens import (plot_token_table, plot_tokens, render_token_table, render_tokens, value_colors,
                                  visible_text)


def rgb_of_spans(html_text):
    return [tuple(int(x) for x in m) for m in re.findall(r"background:rgb\((\d+),(\d+),(\d+)\)", html_text)]


def test_html_escapes_tokens_and_has_no_urls_or_scripts():
    tokens = ["<script>alert(1)</script>", "a & b", '"quoted"', " x", "\n", "\t"]
    out = render_tokens(tokens, [1.0, -1.0, 0.5, 0.0, 0.2, -0.2], title="<b>T & C</b>")._repr_html_()
    assert "<script" not in out and "&lt;script&gt;" in out
    assert "a &amp; b" in out and "&amp; C" in out and "<b>T" not in out
    assert not re.search(r"https?://", out)
    assert "·x" in out and "↵" in out and "<br>" in out and "→" in out
    for tip in re.findall(r'title="([^"]*)"', out):  # tooltips are attribute-safe
        assert "<" not in tip and ">" not in tip
    assert "= 0.5" in out  # the value is in the tooltip


def test_colour_scale_is_symmetric_and_neutral_at_zero():
    hm = render_tokens(["a", "b", "c", "d"], [-2.0, 0.0, 1.0, 2.0])
    assert hm.limit == 2.0
    rgba = hm.colors()
    r, g, b = rgba[1, :3]
    assert max(r, g, b) - min(r, g, b) < 0.02 and min(r, g, b) > 0.9  # 0 -> near-white grey
    # ±v are mirror images in a diverging map: red-ish for negative, blue-ish for positive (RdBu)
    assert rgba[0, 0] > rgba[0, 2] and rgba[3, 2] > rgba[3, 0]
    np.testing.assert_allclose(rgba[0, [0, 2]], rgba[3, [2, 0]], atol=0.12)
    # a lopsided range is made symmetric: vmin=-1, vmax=4 -> ±4
    assert render_tokens(["a"], [0.5], vmin=-1, vmax=4).limit == 4.0
    spans = rgb_of_spans(hm.to_html())
    assert spans[1] == tuple(int(round(255 * c)) for c in rgba[1, :3])


def test_degenerate_values_do_not_break():
    hm = render_tokens(["a", "b"], [0.0, float("nan")])
    assert hm.limit == 1.0 and hm.colors()[1, 3] == 0.0
    assert "transparent" in hm.to_html() and "nan" in hm.to_html()
    assert render_tokens([], []).to_text().startswith("TokenHeatmap")
    assert visible_text("") == "∅" and visible_text("\x00") == "\\x00"
    with pytest.raises(ValueError, match="3 tokens but 2 values"):
        render_tokens(["a", "b", "c"], [1, 2])
    with pytest.raises(ValueError, match="cmap"):
        render_tokens(["a"], [1], cmap="NoSuchMap")


def test_text_fallback_and_tensor_values():
    hm = render_tokens(list("abc"), torch.tensor([0.5, -0.25, 0.0]), title="demo", label="Δlog p")
    text = repr(hm)
    assert "demo" in text and "3 tokens" in text and "a[+0.5]" in text and "b[-0.25]" in text


def test_token_table_side_by_side():
    table = render_token_table(list("ab"), {"Δlog p": [0.1, -0.3], "entropy": [1.0, 2.0]}, title="roll 0",
                               limits={"entropy": 4.0})
    out = table._repr_html_()
    assert "display:flex" in out and out.count("linear-gradient") == 2
    assert [p.limit for p in table.panels] == [0.3, 4.0]
    assert "entropy" in repr(table)
    with pytest.raises(ValueError, match="empty"):
        render_token_table(["a"], {})


def test_matplotlib_twin_wraps_and_colours():
    tokens = [f"t{i}" for i in range(30)] + ["\n", "$x$", "end"]
    values = np.linspace(-1, 1, len(tokens))
    fig = plot_tokens(tokens, values, title="demo", line_width=20)
    ax = fig.axes[0]
    assert len(ax.patches) == len(tokens)
    ys = sorted({p.get_y() for p in ax.patches})
    assert len(ys) > 3  # wrapped onto several lines
    mid = ax.patches[len(tokens) // 2]
    np.testing.assert_allclose(mid.get_facecolor(), value_colors(values[[len(tokens) // 2]], 1.0)[0], atol=1e-6)
    assert len(fig.axes) == 2  # plus the colourbar
    fig2 = plot_token_table(tokens, {"a": values, "b": -values})
    assert len(fig2.axes) == 4
    import matplotlib.pyplot as plt
    plt.close("all")


def test_scale_follows_the_sign_of_the_statistic():
    from workbench.viz.tokens import color_scale

    signed = color_scale(np.array([-0.5, 0.2]))
    assert (signed.lo, signed.hi, signed.cmap, signed.diverging) == (-0.5, 0.5, "RdBu", True)
    entropy = render_tokens(["a", "b"], [0.0, 1.49], label="entropy")
    assert (entropy.scale.lo, entropy.scale.hi, entropy.cmap) == (0.0, 1.49, "Blues")
    assert "−1.49" not in entropy.to_html() and "-1.49" not in entropy.to_html() and "neutral" not in entropy.to_html()
    logp = render_tokens(["a", "b"], [-3.0, -0.1], label="log p")
    assert (logp.scale.lo, logp.scale.hi, logp.cmap) == (-3.0, 0.0, "Reds_r")
    # the most surprising token is darkest, a token at 0 would be white
    dark, light = logp.colors()
    assert dark[:3].sum() < light[:3].sum()
    assert "0 … 1.49 (Blues)" in entropy.to_text()


def test_far_end_keeps_a_sequential_scale_sequential():
    from workbench.viz.tokens import far_end

    assert far_end([-3.0, -0.1], 2.0) == {"vmin": -2.0}
    assert far_end([0.0, 1.0], 2.0) == {"vmax": 2.0} and far_end([-1.0, 1.0], 2.0) == {"vmax": 2.0}
    table = render_token_table(["a", "b"], {"logp": [-3.0, -0.1], "H": [0.1, 0.4]}, limits={"logp": 1.0, "H": 1.0})
    assert [(p.scale.lo, p.scale.hi) for p in table.panels] == [(-1.0, 0.0), (0.0, 1.0)]


def test_token_types_get_a_categorical_legend():
    from workbench.viz.image_attention import TOKEN_TYPES, render_token_types

    hm = render_token_types(["a", "b", "c", "d"], [0, 1, 2, 3])
    html_ = hm.to_html()
    assert all(name in html_ for name in TOKEN_TYPES) and "linear-gradient" not in html_
    assert "categories neither, perception, reasoning, both" in hm.to_text()
