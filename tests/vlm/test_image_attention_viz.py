"""Patch-heatmap overlay and token-type rendering."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from workbench.viz.image_attention import (TOKEN_TYPE_COLORS, plot_image_attention, plot_token_types,  # noqa: E402
                                           render_token_types, token_type_values, upsample_heatmap)


def test_upsample_matches_a_loop():
    grid = np.arange(12, dtype=float).reshape(3, 4)
    up = upsample_heatmap(grid, 7, 9)
    for y in range(7):
        for x in range(9):
            assert up[y, x] == grid[y * 3 // 7, x * 4 // 9]
    np.testing.assert_array_equal(upsample_heatmap(torch.ones(4, 4), 112, 112), np.ones((112, 112)))
    with pytest.raises(ValueError, match="rows, cols"):
        upsample_heatmap(np.ones(4), 8, 8)


def test_overlay_figure():
    import matplotlib.pyplot as plt

    image = np.zeros((112, 112, 3), np.uint8)
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0
    fig = plot_image_attention(image, heat, title="token '3'")
    ax = fig.axes[0]
    assert len(ax.images) == 2 and ax.get_title() == "token '3'"
    shown = ax.images[1].get_array()
    assert shown.shape == (112, 112) and shown[28:56, 56:84].min() == 1.0 and shown[:28].max() == 0.0
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        plot_image_attention(np.zeros((8, 8)), heat)


def test_token_types_render_in_their_colours():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    labels = torch.tensor([0, 1, 2, 3, -1])
    values = token_type_values(labels)
    assert values[:4].tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1]) and np.isnan(values[4])
    hm = render_token_types(["a", "b", "c", "d", "e"], labels, title="types")
    colours = [to_hex(c[:3]) for c in hm.colors()[:4]]
    assert colours == [c.lower() for c in TOKEN_TYPE_COLORS]
    assert hm.colors()[4][3] == 0  # padding is transparent
    assert "types" in hm.to_html()
    fig = plot_token_types(["a", "b", "c", "d"], [0, 1, 2, 3])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["neither", "perception", "reasoning", "both"]
    plt.close(fig)
    with pytest.raises(ValueError, match="-1..3"):
        token_type_values([4])
