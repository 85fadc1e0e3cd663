"""Shared helpers for the sparse-attention tests: random q/k/v, naive float64 references, a tiny Qwen2."""

import math

import torch

from workbench.attention.config import SparseAttentionConfig


def qkv(b=2, hq=4, hkv=2, tq=37, tk=None, d=8, dtype=torch.float64, seed=0, grad=False):
    """Random q [b, hq, tq, d], k/v [b, hkv, tk, d]."""
    g = torch.Generator().manual_seed(seed)
    tk = tq if tk is None else tk
    q = torch.randn(b, hq, tq, d, generator=g, dtype=dtype)
    k = torch.randn(b, hkv, tk, d, generator=g, dtype=dtype)
    v = torch.randn(b, hkv, tk, d, generator=g, dtype=dtype)
    if grad:
        for x in (q, k, v):
            x.requires_grad_(True)
    return q, k, v


def small_cfg(**kw) -> SparseAttentionConfig:
    base = dict(selector="phsa", block_size=4, top_k=2, window=8, initial=4, query_tile=8)
    base.update(kw)
    return SparseAttentionConfig(**base)


def naive_visible(sel, b, h, i, key) -> bool:
    """The visibility rule of `SparseAttentionConfig`, written out for one (query row, key)."""
    p = sel.q_offset + i
    if key > p:
        return False
    kb = key // sel.block_size
    tile = p // sel.query_tile
    start = max(sel.initial_blocks, (tile * sel.query_tile) // sel.block_size - sel.window_blocks)
    chosen = set(sel.indices[b, h, tile - sel.first_tile].tolist())
    return kb < sel.initial_blocks or kb >= start or kb in chosen


def naive_attention(q, k, v, visible, scale=None):
    """Loop reference in float64: visible(b, hkv, i, key) -> bool. Rows with no visible key give 0."""
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = torch.zeros(b, hq, tq, v.shape[-1], dtype=torch.float64)
    for bi in range(b):
        for h in range(hq):
            for i in range(tq):
                keys = [j for j in range(tk) if visible(bi, h // g, i, j)]
                if not keys:
                    continue
                logits = torch.tensor([float(q[bi, h, i].double() @ k[bi, h // g, j].double()) * scale
                                       for j in keys], dtype=torch.float64)
                w = torch.softmax(logits, 0)
                out[bi, h, i] = sum(w[n] * v[bi, h // g, j].double() for n, j in enumerate(keys))
    return out


def tiny_qwen2(seed=0, vocab=128, attn="eager"):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    model = Qwen2ForCausalLM(cfg).eval()
    model.set_attn_implementation(attn)
    return model
