"""Attention kernels: a dense reference and a gather-based block-sparse attention (forward and
backward on any device, through autograd and SDPA's own backward).

Gather kernel (the CPU training path of PHSA, arXiv 2601.02819): for each query tile, gather the
union of its keys - initial tokens, local region, its top-K blocks (disjoint by construction) - into
a small [S, D] panel and run SDPA on [query_tile, S] with an exact per-token causal mask. Work and
memory are O(T · S) instead of O(T²): S = initial + window + query_tile + block_size + K·block_size.
When query_tile is a multiple of block_size and there is no padding, every tile past the first few
has the same panel layout, so one shared mask serves them all and the local keys are a strided view
(`_regular_tiles`); the first tiles and padded batches take the general per-head-mask path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from workbench.attention.blocks import BlockSelection, tile_local_start


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


def _tile_key_index(sel: BlockSelection, device: torch.device) -> Tensor:
    """Absolute key position of every panel slot: [B, Hkv, n_tiles, S] long, -1 = empty slot.

    Slots: initial tokens [0, initial) | local region [start·bs, start·bs + L) | K selected blocks.
    """
    bs, nt, tk = sel.block_size, sel.n_tiles, sel.kv_len
    bsz, hkv = sel.indices.shape[:2]
    start = tile_local_start(nt, sel.first_tile, sel.query_tile, bs, sel.initial_blocks, sel.window_blocks,
                             device) * bs  # [nt] first local key
    tiles = torch.arange(sel.first_tile, sel.first_tile + nt, device=device)
    last = torch.clamp((tiles + 1) * sel.query_tile, max=tk) - 1  # last query position of each tile
    span = int((last - start + 1).clamp_min(0).max().item())
    init = torch.arange(sel.initial_blocks * bs, device=device).expand(nt, -1)
    local = start[:, None] + torch.arange(span, device=device)[None, :]
    local = torch.where(local <= last[:, None], local, torch.full_like(local, -1))
    init = torch.where(init < tk, init, torch.full_like(init, -1))
    shared = torch.cat([init, local], 1)[None, None].expand(bsz, hkv, nt, -1)
    blocks = sel.indices[..., None] * bs + torch.arange(bs, device=device)  # [B, Hkv, nt, K, bs]
    blocks = torch.where(sel.indices[..., None] >= 0, blocks, torch.full_like(blocks, -1)).flatten(-2)
    return torch.cat([shared, blocks], -1)


def _masked_tiles(qtiles: Tensor, kflat: Tensor, vflat: Tensor, keypos: Tensor, qpos: Tensor, base: Tensor,
                  tk: int, scale: float, key_padding_mask: Tensor | None) -> Tensor:
    """General path for a run of tiles: per-(batch, head) panels and masks.

    qtiles: [B, Hkv, c, G, qt, D]; keypos: [B, Hkv, c, S]; qpos: [c, qt]. Returns [B, Hkv, c, G, qt, D].
    """
    b, hkv, c, g, qt, d = qtiles.shape
    s = keypos.shape[-1]
    flat = (base + keypos.clamp_min(0)).reshape(-1)
    kt = kflat.index_select(0, flat).view(b * hkv * c, 1, s, d)
    vt = vflat.index_select(0, flat).view(b * hkv * c, 1, s, d)
    ok = (keypos[..., None, :] >= 0) & (keypos[..., None, :] <= qpos[:, :, None])  # [B, Hkv, c, qt, S]
    if key_padding_mask is not None:
        real = key_padding_mask.bool().gather(1, keypos.clamp_min(0).view(b, -1)).view_as(keypos)
        ok = ok & real[..., None, :]
    ok = ok | ~ok.any(-1, keepdim=True)  # no all-masked rows: padded queries stay finite
    mask = ok[:, :, :, None].expand(b, hkv, c, g, qt, s).reshape(b * hkv * c, 1, g * qt, s)
    o = F.scaled_dot_product_attention(qtiles.reshape(b * hkv * c, 1, g * qt, d), kt, vt, attn_mask=mask, scale=scale)
    return o.view(b, hkv, c, g, qt, d)


def _regular_tiles(qtiles: Tensor, padded: tuple[Tensor, Tensor], blocks: tuple[Tensor, Tensor], sel: BlockSelection,
                   t0: int, t1: int, scale: float) -> Tensor:
    """Fast path for tiles whose panel slots are all valid (query_tile % block_size == 0, no padding).

    Panel of tile a = [initial I | K selected blocks | local keys [a·qt - W, a·qt + qt)]: the same
    layout for every tile, so one [G·qt, S] mask (lower-right causal on the local part) serves all,
    and the local part is a strided window (`unfold`) rather than a gather.

    padded: k, v as [B, Hkv, W + n_tiles·qt (+first_tile·qt), D] with W zeros in front;
    blocks: k, v as [B·Hkv·Nb, bs·D] rows. Returns [B, Hkv, c, G, qt, D].
    """
    b, hkv, c, g, qt, d = qtiles.shape
    bs = sel.block_size
    init, win = sel.initial_blocks * bs, sel.window_blocks * bs
    a0 = sel.first_tile + t0  # absolute tile
    rows = (torch.arange(b * hkv, device=qtiles.device) * sel.n_blocks).view(b, hkv, 1, 1) + sel.indices[:, :, t0:t1]
    rows = rows.reshape(-1)

    def panel(xp: Tensor, xb: Tensor) -> Tensor:
        local = xp[:, :, a0 * qt:(a0 + c) * qt + win].unfold(2, win + qt, qt).transpose(-1, -2)
        picked = xb.index_select(0, rows).view(b, hkv, c, -1, d)
        parts = [xp[:, :, None, win:win + init].expand(b, hkv, c, init, d)] if init else []
        return torch.cat(parts + [picked, local], 3).reshape(b * hkv * c, 1, -1, d)

    kt, vt = panel(padded[0], blocks[0]), panel(padded[1], blocks[1])
    s = kt.shape[2]
    r = torch.arange(qt, device=kt.device)
    j = torch.arange(win + qt, device=kt.device)
    local_ok = j[None, :] <= win + r[:, None]  # lower-right causal
    mask = torch.cat([torch.ones(qt, s - win - qt, dtype=torch.bool, device=kt.device), local_ok], 1).repeat(g, 1)
    o = F.scaled_dot_product_attention(qtiles.reshape(b * hkv * c, 1, g * qt, d), kt, vt, attn_mask=mask, scale=scale)
    return o.view(b, hkv, c, g, qt, d)


def _first_regular_tile(sel: BlockSelection) -> int:
    """Smallest relative tile a0 such that every tile >= a0 has all panel slots valid."""
    tiles = torch.arange(sel.first_tile, sel.first_tile + sel.n_tiles, device=sel.indices.device)
    start = tiles * sel.query_tile
    good = start - sel.window_blocks * sel.block_size >= sel.initial_blocks * sel.block_size
    good &= (sel.indices >= 0).flatten(0, 1).all(0).all(-1)
    bad = (~good).nonzero()
    return 0 if bad.numel() == 0 else int(bad.max().item()) + 1


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
        max_panel_elems: tiles are processed in chunks of about this many score entries (None: 2²⁴ without a
            gradient, where larger chunks run faster; 2²¹ with one, where a chunk's working set is the peak).
        recompute: run each chunk under activation checkpointing, so autograd keeps only the chunk's inputs and
            output and the backward recomputes its gathered K/V, scores and probabilities: the peak memory of
            forward + backward is one chunk's working set above the output, instead of every chunk's (None: on
            whenever a gradient will be taken). Same values and gradients.

    Returns:
        O [B, Hq, Tq, D], differentiable in q, k, v.
    """
    _check_qkv(q, k, v)
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    g, qt, nt = hq // hkv, sel.query_tile, sel.n_tiles
    if (tq, tk) != (sel.q_len, sel.kv_len) or sel.indices.shape[:3] != (b, hkv, nt):
        raise ValueError(f"selection is for q_len={sel.q_len}, kv_len={sel.kv_len}, indices "
                         f"{tuple(sel.indices.shape)}; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    front = sel.q_offset - sel.first_tile * qt
    back_q = nt * qt - front - tq
    qpad = F.pad(q, (0, 0, front, back_q)) if front or back_q else q  # F.pad copies even when it pads nothing
    qtiles = qpad.view(b, hkv, g, nt, qt, d).transpose(2, 3)  # [B, Hkv, nt, G, qt, D]
    fast = key_padding_mask is None and qt % sel.block_size == 0
    a0 = _first_regular_tile(sel) if fast else nt
    keypos = _tile_key_index(sel, q.device)[:, :, :a0] if a0 else None  # [B, Hkv, a0, S]
    s = keypos.shape[-1] if a0 else (sel.initial_blocks + sel.window_blocks + sel.indices.shape[-1]) * sel.block_size
    s += 0 if a0 else qt
    qpos = (torch.arange(nt * qt, device=q.device) + sel.first_tile * qt).view(nt, qt)
    base = (torch.arange(b * hkv, device=q.device) * tk).view(b, hkv, 1, 1)
    kflat, vflat = k.reshape(b * hkv * tk, d), v.reshape(b * hkv * tk, d)
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    recompute = grad if recompute is None else recompute
    if max_panel_elems is None:
        max_panel_elems = 1 << (21 if grad else 24)
    chunk = max(1, max_panel_elems // max(1, b * hkv * g * qt * s))
    run = (lambda fn, *args: checkpoint(fn, *args, use_reentrant=False)) if recompute else (lambda fn, *args: fn(*args))  # noqa: E731
    outs = []
    for t0 in range(0, a0, chunk):
        t1 = min(a0, t0 + chunk)
        outs.append(run(_masked_tiles, qtiles[:, :, t0:t1], kflat, vflat, keypos[:, :, t0:t1], qpos[t0:t1], base, tk,
                        scale, key_padding_mask))
    if a0 < nt:
        win, nb, bs = sel.window_blocks * sel.block_size, sel.n_blocks, sel.block_size
        back = (sel.first_tile + nt) * qt - tk
        padded = (F.pad(k, (0, 0, win, back)), F.pad(v, (0, 0, win, back)))
        blocks = tuple((F.pad(x, (0, 0, 0, nb * bs - tk)) if nb * bs > tk else x).reshape(b * hkv * nb, bs * d) for x in (k, v))
    for t0 in range(a0, nt, chunk):
        t1 = min(nt, t0 + chunk)
        outs.append(run(_regular_tiles, qtiles[:, :, t0:t1], padded, blocks, sel, t0, t1, scale))
    out = torch.cat(outs, 2).transpose(2, 3).reshape(b, hq, nt * qt, d)
    return out[:, :, front:front + tq]
