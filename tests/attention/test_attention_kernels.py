"""Kernels: dense reference vs a loop and SDPA; gather kernel vs dense with the same explicit mask;
all blocks selected == dense (forward and gradients); causality; odd lengths; padding; bad input."""

import pytest
import torch
import torch.nn.functional as F
from attn_helpers import naive_attention, naive_visible, qkv, small_cfg

from workbench.attention.blocks import selection_mask
from workbench.attention.panels import first_regular_tile
from workbench.attention.kernels import dense_attention, gather_block_sparse_attention
from workbench.attention.selectors import select_blocks
from workbench.attention.sparse import sparse_attention


def test_dense_reference_matches_loop_and_sdpa():
    q, k, v = qkv(b=1, tq=5, tk=9)
    out = dense_attention(q, k, v)
    ref = naive_attention(q, k, v, lambda b, h, i, j: j <= 4 + i)
    assert torch.allclose(out, ref, atol=1e-12)
    q, k, v = qkv(tq=33)
    sdpa = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True)
    assert torch.allclose(dense_attention(q, k, v), sdpa, atol=1e-12)


@pytest.mark.parametrize("tq,tk,tile", [(37, 37, 8), (13, 50, 8), (1, 45, 8), (30, 30, 6), (64, 64, 8), (5, 5, 8)])
@pytest.mark.parametrize("name", ["moba", "phsa", "oracle"])
def test_gather_equals_dense_with_the_same_explicit_mask(tq, tk, tile, name):
    q, k, v = qkv(tq=tq, tk=tk)
    sel = select_blocks(q, k, small_cfg(selector=name, query_tile=tile), punctuation_mask=torch.rand(2, tk) < 0.2)
    out = gather_block_sparse_attention(q, k, v, sel)
    ref = dense_attention(q, k, v, mask=selection_mask(sel))
    assert torch.allclose(out, ref, atol=1e-12)


def test_gather_matches_naive_loop_on_the_fast_path():
    q, k, v = qkv(b=1, tq=40)
    sel = select_blocks(q, k, small_cfg(selector="moba"))
    assert first_regular_tile(sel) < sel.n_tiles  # some tiles take the shared-mask fast path
    out = gather_block_sparse_attention(q, k, v, sel)
    ref = naive_attention(q, k, v, lambda b, h, i, j: naive_visible(sel, b, h, i, j))
    assert torch.allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("tq,tk", [(43, 43), (7, 29), (64, 64)])
def test_all_blocks_selected_equals_dense_forward_and_gradients(tq, tk):
    q, k, v = qkv(tq=tq, tk=tk, dtype=torch.float32, grad=True)
    cfg = small_cfg(top_k=1000)
    out = sparse_attention(q, k, v, cfg).output
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    q2, k2, v2 = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
    ref = F.scaled_dot_product_attention(q2, k2.repeat_interleave(2, 1), v2.repeat_interleave(2, 1),
                                         is_causal=tq == tk) if tq == tk else dense_attention(q2, k2, v2)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q2, k2, v2))
    assert torch.allclose(out, ref, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-5)


def test_gradients_match_dense_with_explicit_mask_at_high_sparsity():
    q, k, v = qkv(tq=50, grad=True)
    sel = select_blocks(q, k, small_cfg(top_k=1))
    out = gather_block_sparse_attention(q, k, v, sel)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    ref = dense_attention(q, k, v, mask=selection_mask(sel))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-10)


@pytest.mark.parametrize("padded", [False, True])
def test_recomputed_chunks_give_the_same_values_and_gradients(padded):
    q, k, v = qkv(tq=64, grad=True)
    sel = select_blocks(q, k, small_cfg(top_k=1))
    real = torch.ones(2, 64, dtype=torch.bool)
    real[1, :5] = False
    kw = dict(key_padding_mask=real if padded else None, max_panel_elems=1)  # one tile per chunk: many chunks
    runs = []
    for recompute in (False, True):
        out = gather_block_sparse_attention(q, k, v, sel, recompute=recompute, **kw)
        runs.append((out, torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum(), (q, k, v))))
    assert torch.equal(runs[0][0], runs[1][0])
    for g, r in zip(runs[0][1], runs[1][1]):
        assert torch.allclose(g, r, atol=1e-12, rtol=0)


def test_a_query_never_sees_a_later_key():
    q, k, v = qkv(b=1, tq=41, grad=True)
    sel = select_blocks(q, k, small_cfg(top_k=1000))
    out = gather_block_sparse_attention(q, k, v, sel)
    for i in (0, 7, 8, 23, 40):
        gk, gv = torch.autograd.grad(out[:, :, i].sum(), (k, v), retain_graph=True)
        assert not gk[:, :, i + 1:].any()
        assert not gv[:, :, i + 1:].any()
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, 30:], v2[:, :, 30:] = 1e3, -1e3  # changing the future leaves the past unchanged
    out2 = gather_block_sparse_attention(q, k2, v2, select_blocks(q, k2, small_cfg(top_k=1000)))
    assert torch.allclose(out[:, :, :30], out2[:, :, :30], atol=1e-12)


def test_key_padding_mask_is_respected():
    q, k, v = qkv(tq=30)
    real = torch.ones(2, 30, dtype=torch.bool)
    real[0, :7] = False  # left padding in sequence 0
    sel = select_blocks(q, k, small_cfg(top_k=1), key_padding_mask=real)
    out = gather_block_sparse_attention(q, k, v, sel, key_padding_mask=real)
    ref = dense_attention(q, k, v, mask=selection_mask(sel, real))
    assert torch.allclose(out[:, :, 7:], ref[:, :, 7:], atol=1e-12)
    assert torch.allclose(out[1], ref[1], atol=1e-12)
    assert torch.isfinite(out).all()  # fully padded rows stay finite


def test_dense_below_length_and_dense_selector_run_sdpa():
    q, k, v = qkv(tq=20)
    dense = dense_attention(q, k, v)
    res = sparse_attention(q, k, v, small_cfg(top_k=0, dense_below=21))
    assert res.selection is None and torch.allclose(res.output, dense, atol=1e-12)
    res = sparse_attention(q, k, v, small_cfg(top_k=0, dense_below=20))
    assert res.selection is not None and not torch.allclose(res.output, dense, atol=1e-3)
    assert torch.allclose(sparse_attention(q, k, v, small_cfg(selector="dense")).output, dense, atol=1e-12)


def test_bad_shapes_fail_with_one_sentence():
    q, k, v = qkv(tq=10)
    with pytest.raises(ValueError, match="multiple of key heads"):
        dense_attention(q[:, :3], k, v)
    with pytest.raises(ValueError, match="more queries"):
        dense_attention(q, k[:, :, :5], v[:, :, :5])
    sel = select_blocks(q, k, small_cfg())
    with pytest.raises(ValueError, match="selection is for"):
        gather_block_sparse_attention(q[:, :, 1:], k[:, :, 1:], v[:, :, 1:], sel)


@pytest.mark.parametrize("tq,tk,padded", [(50, 50, False), (21, 45, False), (33, 61, True), (64, 64, True)])
def test_own_backward_matches_dense_gradients_in_float64(tq, tk, padded):
    """The recomputing backward (re-gathered panels, index_add_ scatter), one tile per chunk, against autograd
    through the dense reference with the same mask: general and regular tiles, a KV-cache offset, padding."""
    q, k, v = qkv(tq=tq, tk=tk, grad=True)
    real = torch.ones(2, tk, dtype=torch.bool)
    if padded:
        real[1, :6] = False
    mask = real if padded else None
    sel = select_blocks(q, k, small_cfg(top_k=2), key_padding_mask=mask)
    if not padded:
        assert first_regular_tile(sel) < sel.n_tiles  # the regular path is exercised
    w = torch.linspace(-1, 1, q.numel(), dtype=q.dtype).view_as(q).clone()
    if padded:  # query rows whose every visible key is padding: the kernel attends uniformly, dense gives 0
        w[1, :, :max(0, 6 - (tk - tq))] = 0
    out = gather_block_sparse_attention(q, k, v, sel, key_padding_mask=mask, max_panel_elems=1)
    grads = torch.autograd.grad((out * w).sum(), (q, k, v))
    ref = dense_attention(q, k, v, mask=selection_mask(sel, mask))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-10, rtol=0)
