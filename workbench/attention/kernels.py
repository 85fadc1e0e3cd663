"""Attention kernels: a dense reference and a gather-based block-sparse attention with its own backward.

Gather kernel (the CPU training path of PHSA, arXiv 2601.02819): for each query tile, gather the
union of its keys - initial tokens, local region, its top-K blocks (disjoint by construction) - into
a small [S, D] panel (`workbench.attention.panels`) and run SDPA on [query_tile, S] with an exact
per-token causal mask. Work and memory are O(T · S) instead of O(T²): S = initial + window +
query_tile + K·block_size. The backward (`_GatherSparseAttention`) keeps nothing from the forward
but q, k, v: per chunk of tiles it re-gathers the panels, recomputes P and scatters dK, dV back with
one `index_add_`, so forward + backward never hold more than the inputs, their gradients and one
chunk's working set - less than dense SDPA, which keeps GQA-expanded K, V and their gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.attention.blocks import BlockSelection
from workbench.attention.panels import (TilePlan, first_regular_tile, general_panel, put_tile_rows, regular_index,
                                        regular_panel, tile_key_index, tile_rows)


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4:
        raise ValueError(f"q, k, v must be [B, H, T, D] with k.shape == v.shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads {q.shape[1]} must be a multiple of key heads {k.shape[1]}")
    if q.shape[2] > k.shape[2]:
        raise ValueError(f"more queries ({q.shape[2]}) than keys ({k.shape[2]})")


def dense_attention(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None = None, causal: bool = True,
                    scale: float | None = None, return_probs: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Materialised softmax attention (the reference): O = softmax(q kᵀ·scale + log mask) v.

    Queries are the last Tq of Tk positions (causal: key k visible to row i iff k <= Tk - Tq + i).
    Fully masked rows output 0, never NaN.

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D] (GQA: Hq a multiple of Hkv).
        mask: bool, broadcastable to [B, Hkv, Tq, Tk] (per KV head) or [B, Hq, Tq, Tk]; True = visible.
        causal: also apply the causal mask.
        scale: 1/√D by default.
        return_probs: also return the attention probabilities [B, Hq, Tq, Tk].

    Returns:
        O [B, Hq, Tq, D] (and probs).
    """
    _check_qkv(q, k, v)
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    kk, vv = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    logits = torch.einsum("bhqd,bhkd->bhqk", q, kk) * scale
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device)[None, None]
    if causal:
        pos = torch.arange(tq, device=q.device) + (tk - tq)
        allowed = allowed & (torch.arange(tk, device=q.device)[None, :] <= pos[:, None])
    if mask is not None:
        mask = mask.bool()
        if mask.dim() == 4 and mask.shape[1] == hkv and hkv != hq:
            mask = mask.repeat_interleave(g, 1)
        allowed = allowed & mask
    probs = torch.nan_to_num(torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1), nan=0.0)
    out = torch.einsum("bhqk,bhkd->bhqd", probs, vv)
    return (out, probs) if return_probs else out


def _plan(q: Tensor, k: Tensor, sel: BlockSelection, scale: float, key_padding_mask: Tensor | None,
          max_panel_elems: int) -> TilePlan:
    """This call's `TilePlan`: where the regular run starts, the general tiles' slot positions, tiles per chunk."""
    b, hq, tq, d = q.shape
    hkv, tk, qt, nt = k.shape[1], k.shape[2], sel.query_tile, sel.n_tiles
    fast = key_padding_mask is None and qt % sel.block_size == 0
    a0 = first_regular_tile(sel) if fast else nt
    keypos = tile_key_index(sel, q.device)[:, :, :a0] if a0 else None  # [B, Hkv, a0, S]
    s = keypos.shape[-1] if a0 else (sel.initial_blocks + sel.window_blocks + sel.indices.shape[-1]) * sel.block_size + qt
    chunk = max(1, max_panel_elems // max(1, b * hq * qt * s))
    return TilePlan(sel=sel, b=b, hkv=hkv, g=hq // hkv, d=d, tq=tq, tk=tk, front=sel.q_offset - sel.first_tile * qt,
                    a0=a0, keypos=keypos, chunk=chunk, key_padding_mask=key_padding_mask, scale=scale)


def _panels(k: Tensor, v: Tensor, plan: TilePlan):
    """A function (t0, t1) -> (kt, vt, mask, flat) for this call's chunks (see `workbench.attention.panels`)."""
    kflat, vflat = k.reshape(-1, plan.d), v.reshape(-1, plan.d)
    regular = regular_index(plan) if plan.a0 < plan.sel.n_tiles else None

    def get(t0: int, t1: int):
        if t0 < plan.a0:
            return general_panel(kflat, vflat, plan, t0, t1)
        return regular_panel(kflat, vflat, plan, *regular, t0, t1)
    return get


def _sparse_forward(q: Tensor, k: Tensor, v: Tensor, plan: TilePlan) -> Tensor:
    """O [B, Hq, Tq, D]: SDPA on each chunk's panels, written into one preallocated output."""
    sel, b, hkv, g, d = plan.sel, plan.b, plan.hkv, plan.g, plan.d
    qt, nt = sel.query_tile, sel.n_tiles
    out = q.new_empty(b, hkv, g, nt * qt, d)
    panels = _panels(k, v, plan)
    for t0, t1 in plan.chunks():
        kt, vt, mask, _ = panels(t0, t1)
        qc = tile_rows(q, plan, t0, t1)
        o = F.scaled_dot_product_attention(qc[:, None], kt[:, None], vt[:, None], attn_mask=mask[:, None], scale=plan.scale)
        out.view(b, hkv, g, nt, qt, d)[:, :, :, t0:t1].copy_(o.view(b, hkv, t1 - t0, g, qt, d).transpose(2, 3))
    return out.view(b, hkv * g, nt * qt, d)[:, :, plan.front:plan.front + plan.tq]


def _panel_grads(qc: Tensor, kt: Tensor, vt: Tensor, mask: Tensor, do: Tensor, scale: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of O = softmax(q ktᵀ·scale | mask) vt for one chunk, recomputing P from the panel.

    qc, do: [n, M, D]; kt, vt: [n, S, D]; mask: [n or 1, M, S]. With dP = dO vtᵀ and
    dS = P ⊙ (dP - rowsum(P ⊙ dP)): dq = dS kt·scale, dkt = dSᵀ q·scale, dvt = Pᵀ dO.
    """
    p = torch.bmm(qc, kt.transpose(1, 2)).mul_(scale)
    p = torch.softmax(p.masked_fill_(~mask, float("-inf")), -1)
    dv = torch.bmm(p.transpose(1, 2), do)
    dp = torch.bmm(do, vt.transpose(1, 2))
    dp.sub_((p * dp).sum(-1, keepdim=True)).mul_(p).mul_(scale)  # dS·scale
    return torch.bmm(dp, kt), torch.bmm(dp.transpose(1, 2), qc), dv


class _GatherSparseAttention(torch.autograd.Function):
    """Forward: panels + SDPA per chunk, nothing kept but q, k, v. Backward: per chunk, re-gather the panels,
    recompute P and scatter the panel gradients into dk, dv with one `index_add_` each: peak memory is the
    inputs, their gradients and one chunk's working set."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, plan: TilePlan) -> Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.plan = plan
        return _sparse_forward(q, k, v, plan)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do: Tensor):
        q, k, v = ctx.saved_tensors
        plan = ctx.plan
        dq = torch.zeros_like(q)
        dk, dv = k.new_zeros(k.numel() // plan.d, plan.d), v.new_zeros(v.numel() // plan.d, plan.d)
        panels = _panels(k, v, plan)
        for t0, t1 in plan.chunks():
            kt, vt, mask, flat = panels(t0, t1)
            gq, gk, gv = _panel_grads(tile_rows(q, plan, t0, t1), kt, vt, mask, tile_rows(do, plan, t0, t1), plan.scale)
            put_tile_rows(dq, gq, plan, t0, t1)
            dk.index_add_(0, flat, gk.reshape(-1, plan.d))
            dv.index_add_(0, flat, gv.reshape(-1, plan.d))
        return dq, dk.view_as(k), dv.view_as(v), None


def gather_block_sparse_attention(q: Tensor, k: Tensor, v: Tensor, sel: BlockSelection, *,
                                  scale: float | None = None, key_padding_mask: Tensor | None = None,
                                  max_panel_elems: int | None = None, recompute: bool | None = None) -> Tensor:
    """Block-sparse attention over the keys a selection makes visible, by gathering per query tile.

    Equals `dense_attention(q, k, v, mask=selection_mask(sel, key_padding_mask))` (rows left with no
    visible key - only possible with padding - attend uniformly to their panel instead of NaN).

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D]; sel: selection for these shapes.
        scale: 1/√D by default.
        key_padding_mask: [B, Tk] bool, True = real token.
        max_panel_elems: tiles are processed in chunks of about this many score entries (None: 2²⁰ without a
            gradient, where larger chunks run faster; 2¹⁸ with one, where a chunk's working set is the peak).
        recompute: with a gradient, run through `_GatherSparseAttention`, whose backward re-gathers each chunk's
            panels and recomputes its probabilities, so forward + backward keep nothing but q, k, v, their
            gradients and one chunk's working set (None: on). False: plain autograd through every chunk (a
            reference: it keeps every chunk's panels). Same values and gradients.

    Returns:
        O [B, Hq, Tq, D], differentiable in q, k, v.
    """
    _check_qkv(q, k, v)
    b, hq, tq, d = q.shape
    hkv, tk, nt = k.shape[1], k.shape[2], sel.n_tiles
    if (tq, tk) != (sel.q_len, sel.kv_len) or sel.indices.shape[:3] != (b, hkv, nt):
        raise ValueError(f"selection is for q_len={sel.q_len}, kv_len={sel.kv_len}, indices "
                         f"{tuple(sel.indices.shape)}; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if max_panel_elems is None:
        max_panel_elems = 1 << (18 if grad else 20)
    plan = _plan(q, k, sel, scale, key_padding_mask, max_panel_elems)
    if grad and (recompute is None or recompute):
        return _GatherSparseAttention.apply(q, k, v, plan)
    return _sparse_forward(q, k, v, plan)
