"""Attention heatmaps, selected-block maps and the explorer's static fallback."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from workbench.attention.config import SparseAttentionConfig  # noqa: E402
from workbench.attention.hf import LayerRecord  # noqa: E402
from workbench.attention.selectors import select_blocks  # noqa: E402
from workbench.viz.attention import (FUTURE, INITIAL, LOCAL, SELECTED, SKIPPED, attention_explorer,  # noqa: E402
                                     attention_probs, plot_attention_grid, plot_attention_map,
                                     plot_selected_blocks, selected_block_map)

CFG = SparseAttentionConfig(selector="phsa", block_size=4, top_k=1, window=4, initial=4, query_tile=8)


def _records(t=40):
    g = torch.Generator().manual_seed(0)
    punct = torch.rand(1, t, generator=g) < 0.2
    return [LayerRecord(i, torch.randn(1, 4, t, 8, generator=g), torch.randn(1, 2, t, 8, generator=g),
                        torch.randn(1, 2, t, 8, generator=g), 8 ** -0.5, punct, None) for i in range(2)]


def test_selected_block_map_codes():
    rec = _records()[0]
    sel = select_blocks(rec.q, rec.k, CFG, punctuation_mask=rec.punctuation_mask)
    codes = selected_block_map(sel)
    assert codes.shape == (5, 10)
    assert (codes[:, 0] == INITIAL).all()
    assert codes[0, 1] == LOCAL and (codes[0, 2:] == FUTURE).all()  # rows 0-7: blocks 0-1 only
    assert (codes[4, 7:] == LOCAL).all()  # rows 32-39: window from block 8 - 1
    assert sorted(codes[4, 1:7].tolist()) == [SKIPPED] * 5 + [SELECTED]  # top-1 among candidates 1..6
    for t in range(5):
        chosen = [i for i in sel.indices[0, 0, t].tolist() if i >= 0]
        assert sorted(np.flatnonzero(codes[t] == SELECTED).tolist()) == sorted(chosen)


def test_plots_render_with_punctuation_and_pooling():
    recs = _records(300)
    probs = attention_probs(recs[0].q, recs[0].k)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 4, 300), atol=1e-5)
    ax = plot_attention_map(probs[0, 0], punctuation=recs[0].punctuation_mask[0], max_pixels=64)
    assert ax.images[0].get_array().shape == (60, 60)  # 300 max-pooled by 5
    plt.close("all")
    sel = select_blocks(recs[0].q, recs[0].k, CFG)
    plot_selected_blocks(sel, punctuation=recs[0].punctuation_mask[0])
    fig = plot_attention_grid(recs)
    assert len(fig.axes) == 8
    plt.close("all")
    with pytest.raises(ValueError, match="non-empty"):
        plot_attention_map(np.zeros(5))


def test_explorer_static_fallback_is_a_figure():
    fig = attention_explorer(_records(), CFG, static=True)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) >= 2
    plt.close("all")
    with pytest.raises(ValueError, match="no attention records"):
        attention_explorer([], CFG)
