"""Attention for one-token decode steps on the CPU: `decode_attention(model)`.

A decode step has one query per row. transformers' `sdpa` path packs the query heads of a GQA group
into query rows (q [B, H_kv, g, D]) and calls `scaled_dot_product_attention`, whose CPU flash kernel
is built for long query blocks: for the `tiny-arith` rollout shape (512 rows, 4 heads over 2 KV heads,
~40 keys) it takes ≈3.3 ms a layer, against ≈1.5 ms for the two plain matmuls it amounts to

    s = (q_g · Kᵀ) · scale + mask        q_g [B, H_kv, g, D], K [B, H_kv, L, D]  ->  s [B, H_kv, g, L]
    o = softmax(s) · V                                                               ->  o [B, H_kv, g, D]

Inside `decode_attention(model)` the model's `sdpa` attention is swapped for `decode_attention_forward`,
which computes exactly that for one-query calls and hands every other call (the prefill, anything
with gradients) back to transformers' `sdpa_attention_forward` with the same mask. Numbers agree with
SDPA to float rounding (tested); the sampling loop (`generation._decode_loop`) uses it on the CPU.
"""

from __future__ import annotations

import contextlib

import torch

IMPLEMENTATION = "workbench_decode"


def decode_attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             **kwargs) -> tuple[torch.Tensor, None]:
    """q [B, H_q, T_q, D], k/v [B, H_kv, L, D], mask (sdpa's: bool [B, 1, T_q, L], True = attend, or None)
    -> ([B, T_q, H_q, D], None). The grouped matmul path for T_q = 1 without gradients; SDPA otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    B, Hq, Tq, D = query.shape
    Hkv = key.size(1)
    if Tq != 1 or dropout or torch.is_grad_enabled() or Hq % Hkv or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    scale = scaling if scaling is not None else D ** -0.5
    q = query.reshape(B, Hkv, Hq // Hkv, D)
    scores = torch.matmul(q, key.transpose(-1, -2)) * scale  # [B, H_kv, g, L]
    if attention_mask is not None:
        row = attention_mask[:, :, -1:, -key.size(2):]  # [B, 1, 1, L]: the one query's keys
        scores = scores.masked_fill(~row, float("-inf")) if row.dtype == torch.bool else scores + row
    out = torch.matmul(scores.softmax(-1), value)  # [B, H_kv, g, D]
    return out.reshape(B, Hq, 1, D).transpose(1, 2), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, decode_attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


@contextlib.contextmanager
def decode_attention(model):
    """Within the block, a model on the CPU whose attention is `sdpa` runs one-query steps through
    `decode_attention_forward` (the implementation is restored on exit). Other models are left as they are."""
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    on_cpu = next(model.parameters()).device.type == "cpu"
    if current != "sdpa" or not on_cpu or not hasattr(model, "set_attn_implementation"):
        yield model
        return
    _register()
    model.set_attn_implementation(IMPLEMENTATION)
    try:
        yield model
    finally:
        model.set_attn_implementation(current)
