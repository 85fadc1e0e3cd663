"""Key panels of the gather kernel: for a run of query tiles, the keys each tile may see, gathered into
a small [S, D] panel per (batch, KV head, tile), with its visibility mask and, for the backward, the
flat key row each panel slot came from (so panel gradients scatter back with one `index_add_`).

Panel of a tile (PHSA's union, arXiv 2601.02819): initial tokens | local region | its top-K blocks.
`TilePlan` fixes the geometry once per call; `general_panel` serves any tile (per-head masks,
padding); `regular_panel` the tiles whose slots are all valid: one shared mask, and every slot's key row
from `regular_index`, built once per call, so a chunk's panel is one `index_select` of k and one of v.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.attention.blocks import BlockSelection, tile_local_start


@dataclass
class TilePlan:
    """Geometry of one kernel call.

    Attributes:
        sel: the selection; b, hkv, g, d, tq, tk: batch, KV heads, group size, head dim, query and key lengths.
        front: padded query rows before the first query (tiles are aligned to absolute positions).
        a0: first tile (relative) of the regular run: tiles [0, a0) take `general_panel`, [a0, n_tiles) `regular_panel`.
        keypos: [B, Hkv, a0, S] absolute key position per panel slot of the general tiles (-1 = empty), or None.
        chunk: tiles per chunk; key_padding_mask: [B, Tk] bool or None; scale: softmax scale.
    """

    sel: BlockSelection
    b: int
    hkv: int
    g: int
    d: int
    tq: int
    tk: int
    front: int
    a0: int
    keypos: Tensor | None
    chunk: int
    key_padding_mask: Tensor | None
    scale: float

    def chunks(self) -> list[tuple[int, int]]:
        """[t0, t1) tile ranges: general tiles first, then regular ones; no range straddles a0."""
        nt = self.sel.n_tiles
        out = [(t0, min(self.a0, t0 + self.chunk)) for t0 in range(0, self.a0, self.chunk)]
        return out + [(t0, min(nt, t0 + self.chunk)) for t0 in range(self.a0, nt, self.chunk)]


def tile_key_index(sel: BlockSelection, device: torch.device) -> Tensor:
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


def first_regular_tile(sel: BlockSelection) -> int:
    """Smallest relative tile a0 such that every tile >= a0 has all panel slots valid."""
    tiles = torch.arange(sel.first_tile, sel.first_tile + sel.n_tiles, device=sel.indices.device)
    start = tiles * sel.query_tile
    good = start - sel.window_blocks * sel.block_size >= sel.initial_blocks * sel.block_size
    good &= (sel.indices >= 0).flatten(0, 1).all(0).all(-1)
    bad = (~good).nonzero()
    return 0 if bad.numel() == 0 else int(bad.max().item()) + 1


def tile_rows(x: Tensor, plan: TilePlan, t0: int, t1: int) -> Tensor:
    """Rows of tiles [t0, t1) of a [B, Hq, Tq, D] tensor as [B·Hkv·c, G·qt, D] (zeros outside [0, Tq))."""
    qt, c = plan.sel.query_tile, t1 - t0
    lo, hi = t0 * qt - plan.front, t1 * qt - plan.front
    part = x[:, :, max(lo, 0):min(hi, plan.tq)]
    if lo < 0 or hi > plan.tq:
        part = F.pad(part, (0, 0, max(0, -lo), max(0, hi - plan.tq)))
    part = part.reshape(plan.b, plan.hkv, plan.g, c, qt, plan.d).transpose(2, 3)
    return part.reshape(plan.b * plan.hkv * c, plan.g * qt, plan.d)


def put_tile_rows(dst: Tensor, rows: Tensor, plan: TilePlan, t0: int, t1: int) -> None:
    """Inverse of `tile_rows`: write [B·Hkv·c, G·qt, D] rows of tiles [t0, t1) into dst [B, Hq, Tq, D]."""
    qt, c = plan.sel.query_tile, t1 - t0
    lo, hi = t0 * qt - plan.front, t1 * qt - plan.front
    r = rows.view(plan.b, plan.hkv, c, plan.g, qt, plan.d).transpose(2, 3).reshape(plan.b, -1, c * qt, plan.d)
    dst[:, :, max(lo, 0):min(hi, plan.tq)] = r[:, :, max(0, -lo):c * qt - max(0, hi - plan.tq)]


def general_panel(kflat: Tensor, vflat: Tensor, plan: TilePlan, t0: int, t1: int
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-(batch, head, tile) panels and masks for tiles [t0, t1) of the general run.

    kflat, vflat: [B·Hkv·Tk, D]. Returns kt, vt [n, S, D], mask [n, G·qt, S] bool (True = visible; rows with
    no visible key see their whole panel, so padded queries stay finite), flat [n·S] key rows; n = B·Hkv·c.
    """
    b, hkv, g, d, tk = plan.b, plan.hkv, plan.g, plan.d, plan.tk
    qt, c = plan.sel.query_tile, t1 - t0
    keypos = plan.keypos[:, :, t0:t1]
    s = keypos.shape[-1]
    base = (torch.arange(b * hkv, device=kflat.device) * tk).view(b, hkv, 1, 1)
    flat = (base + keypos.clamp_min(0)).reshape(-1)
    kt, vt = kflat.index_select(0, flat).view(-1, s, d), vflat.index_select(0, flat).view(-1, s, d)
    qpos = torch.arange(t0, t1, device=kflat.device)[:, None] * qt + torch.arange(qt, device=kflat.device)
    qpos = qpos + plan.sel.first_tile * qt
    ok = (keypos[..., None, :] >= 0) & (keypos[..., None, :] <= qpos[:, :, None])  # [B, Hkv, c, qt, S]
    if plan.key_padding_mask is not None:
        real = plan.key_padding_mask.bool().gather(1, keypos.clamp_min(0).view(b, -1)).view_as(keypos)
        ok = ok & real[..., None, :]
    ok = ok | ~ok.any(-1, keepdim=True)
    mask = ok[:, :, :, None].expand(b, hkv, c, g, qt, s).reshape(b * hkv * c, g * qt, s)
    return kt, vt, mask, flat


def regular_index(plan: TilePlan) -> tuple[Tensor, Tensor]:
    """Flat key rows and the shared mask of the regular run (tiles [a0, n_tiles); all slots valid:
    query_tile % block_size == 0, no padding).

    Panel of tile a = [initial I | K selected blocks | local keys [a·qt - W, a·qt + qt)]: the same layout
    for every tile, so one [G·qt, S] mask (lower-right causal on the local part) serves all. Positions past
    Tk (the last tile's tail, seen by no real query) clamp to Tk - 1.

    Returns:
        flat [B, Hkv, n_tiles - a0, S] long rows of k.reshape(-1, D); mask [1, G·qt, S] bool.
    """
    sel, b, hkv = plan.sel, plan.b, plan.hkv
    bs, qt, dev = sel.block_size, sel.query_tile, sel.indices.device
    init, win = sel.initial_blocks * bs, sel.window_blocks * bs
    idx = sel.indices[:, :, plan.a0:]
    c = idx.shape[2]
    picked = (idx[..., None] * bs + torch.arange(bs, device=dev)).flatten(-2)  # [B, Hkv, c, K·bs]
    a = sel.first_tile + plan.a0
    local = (torch.arange(a, a + c, device=dev) * qt - win)[:, None] + torch.arange(win + qt, device=dev)
    shared = [torch.arange(init, device=dev).expand(b, hkv, c, init)] if init else []
    pos = torch.cat(shared + [picked, local.expand(b, hkv, c, -1)], -1)
    base = (torch.arange(b * hkv, device=dev) * plan.tk).view(b, hkv, 1, 1)
    flat = base + pos.clamp(0, plan.tk - 1)
    s = flat.shape[-1]
    r = torch.arange(qt, device=dev)
    local_ok = torch.arange(win + qt, device=dev)[None, :] <= win + r[:, None]  # lower-right causal
    mask = torch.cat([torch.ones(qt, s - win - qt, dtype=torch.bool, device=dev), local_ok], 1).repeat(plan.g, 1)
    return flat, mask[None]


def regular_panel(kflat: Tensor, vflat: Tensor, plan: TilePlan, flat: Tensor, mask: Tensor, t0: int, t1: int
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Panels of tiles [t0, t1) of the regular run: one gather each of k and v by `regular_index`'s rows.

    Returns kt, vt [n, S, D], mask [1, G·qt, S], flat [n·S].
    """
    rows = flat[:, :, t0 - plan.a0:t1 - plan.a0].reshape(-1)
    s = flat.shape[-1]
    return kflat.index_select(0, rows).view(-1, s, plan.d), vflat.index_select(0, rows).view(-1, s, plan.d), mask, rows
