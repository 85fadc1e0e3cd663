"""FlexAttention path == gather path (eager flex always; compiled flex in the slow tier)."""

import pytest
import torch
from attn_helpers import qkv, small_cfg

from workbench.attention.blocks import selection_mask
from workbench.attention.flex import flex_available, flex_block_sparse_attention, selection_kv_blocks
from workbench.attention.kernels import gather_block_sparse_attention
from workbench.attention.selectors import select_blocks
from workbench.attention.sparse import sparse_attention

ok, why = flex_available()
pytestmark = pytest.mark.skipif(not ok, reason=why or "flex attention unavailable")


def test_kv_block_lists_cover_exactly_the_visible_blocks():
    q, k, _ = qkv(tq=23, tk=50)
    sel = select_blocks(q, k, small_cfg(query_tile=6))
    num, idx = selection_kv_blocks(sel)
    vis = selection_mask(sel)  # [B, Hkv, Tq, Tk]
    rows = torch.arange(23) + sel.q_offset
    for b in range(2):
        for h in range(2):
            for t in range(sel.n_tiles):
                listed = set(idx[b, h, t, : num[b, h, t]].tolist())
                in_tile = (rows // 6 - sel.first_tile) == t
                seen = vis[b, h, in_tile].any(0).nonzero().flatten() // 4
                assert set(seen.tolist()) <= listed  # every visible key's block is listed
                assert len(listed) == int(num[b, h, t])


@pytest.mark.parametrize("tq,tk,tile", [(37, 37, 8), (13, 50, 8), (1, 45, 8), (30, 30, 6)])
def test_eager_flex_equals_gather(tq, tk, tile):
    q, k, v = qkv(tq=tq, tk=tk, dtype=torch.float32)
    sel = select_blocks(q, k, small_cfg(query_tile=tile), punctuation_mask=torch.rand(2, tk) < 0.2)
    out = flex_block_sparse_attention(q, k, v, sel, compile=False)
    ref = gather_block_sparse_attention(q, k, v, sel)
    assert torch.allclose(out, ref, atol=1e-5)


def test_eager_flex_with_key_padding_equals_gather_on_real_rows():
    q, k, v = qkv(tq=30, dtype=torch.float32)
    real = torch.ones(2, 30, dtype=torch.bool)
    real[0, :5] = False
    sel = select_blocks(q, k, small_cfg(top_k=1), key_padding_mask=real)
    out = flex_block_sparse_attention(q, k, v, sel, key_padding_mask=real, compile=False)
    ref = gather_block_sparse_attention(q, k, v, sel, key_padding_mask=real)
    assert torch.allclose(out[:, :, 5:], ref[:, :, 5:], atol=1e-5)


def test_config_kernel_switch_selects_flex():
    q, k, v = qkv(tq=40, dtype=torch.float32)
    a = sparse_attention(q, k, v, small_cfg(kernel="flex"), compile_flex=False).output
    b = sparse_attention(q, k, v, small_cfg(kernel="gather")).output
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_compiled_flex_equals_gather():
    """Compiles flex_attention with inductor (tens of seconds on a 2-core CPU the first time)."""
    q, k, v = qkv(b=1, hq=4, hkv=2, tq=128, d=16, dtype=torch.float32)
    sel = select_blocks(q, k, small_cfg(block_size=16, window=32, initial=16, query_tile=32))
    try:
        out = flex_block_sparse_attention(q, k, v, sel, compile=True)
    except Exception as e:  # no C++ toolchain, unsupported CPU, ...
        pytest.skip(f"flex_attention does not compile here: {type(e).__name__}: {str(e)[:200]}")
    ref = gather_block_sparse_attention(q, k, v, sel)
    assert torch.allclose(out, ref, atol=1e-4)
