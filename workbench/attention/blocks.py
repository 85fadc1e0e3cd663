"""Block geometry shared by selectors, kernels and metrics: the `BlockSelection` record, which
blocks are candidates for a query tile, the explicit token mask a selection stands for, sparsity.

Positions are absolute: with a KV cache, queries are the last `q_len` of `kv_len` positions, so
query row i sits at position `q_offset + i`, `q_offset = kv_len - q_len`. Query tiles are aligned to
absolute positions (tile a covers positions [a·query_tile, (a+1)·query_tile)); only the tiles that
contain a query are stored, starting at `first_tile = q_offset // query_tile`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class BlockSelection:
    """Selected key blocks per query tile and KV head.

    Attributes:
        indices: [B, Hkv, n_tiles, K] long block ids, sorted ascending, -1 = empty slot.
        block_size, query_tile, initial_blocks, window_blocks: geometry (see `SparseAttentionConfig`).
        q_len, kv_len: query rows and key positions covered.
    """

    indices: Tensor
    block_size: int
    query_tile: int
    initial_blocks: int
    window_blocks: int
    q_len: int
    kv_len: int

    @property
    def q_offset(self) -> int:
        return self.kv_len - self.q_len

    @property
    def first_tile(self) -> int:
        return self.q_offset // self.query_tile

    @property
    def n_tiles(self) -> int:
        return n_query_tiles(self.q_len, self.kv_len, self.query_tile)

    @property
    def n_blocks(self) -> int:
        return num_blocks(self.kv_len, self.block_size)


def num_blocks(length: int, block_size: int) -> int:
    """ceil(length / block_size): the last block may be partial."""
    return -(-length // block_size)


def n_query_tiles(q_len: int, kv_len: int, query_tile: int) -> int:
    """Number of query tiles that contain at least one of the last `q_len` of `kv_len` positions."""
    if q_len < 1 or q_len > kv_len:
        raise ValueError(f"need 1 <= q_len <= kv_len, got q_len={q_len}, kv_len={kv_len}")
    return (kv_len - 1) // query_tile - (kv_len - q_len) // query_tile + 1


def tile_local_start(n_tiles: int, first_tile: int, query_tile: int, block_size: int, initial_blocks: int,
                     window_blocks: int, device: torch.device | None = None) -> Tensor:
    """First block of each tile's local region: max(initial_blocks, tile_first_block - window_blocks).

    Returns:
        [n_tiles] long. Blocks below it (and at or above `initial_blocks`) are selection candidates.
    """
    tiles = torch.arange(first_tile, first_tile + n_tiles, device=device)
    first_block = (tiles * query_tile) // block_size
    return torch.clamp(first_block - window_blocks, min=initial_blocks)


def candidate_blocks(n_tiles: int, first_tile: int, n_blocks: int, query_tile: int, block_size: int,
                     initial_blocks: int, window_blocks: int, device: torch.device | None = None) -> Tensor:
    """Which blocks a tile may select: initial_blocks <= b < local_start(tile).

    Candidates end before the tile's first position, so they are fully causal for every query in it.

    Returns:
        [n_tiles, n_blocks] bool.
    """
    start = tile_local_start(n_tiles, first_tile, query_tile, block_size, initial_blocks, window_blocks, device)
    b = torch.arange(n_blocks, device=device)
    return (b[None, :] >= initial_blocks) & (b[None, :] < start[:, None])


def block_means(x: Tensor, block_size: int, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Weighted mean of `x` over each block of positions.

    M_b = Σ_{t∈b} w_t x_t / Σ_{t∈b} w_t (the last block may be partial; padding has weight 0).

    Args:
        x: [B, H, T, D].
        weights: [B, T] or [B, H, T] non-negative, or None for all ones.

    Returns:
        means [B, H, Nb, D] (zeros where a block's weight is 0) and weight sums [B, H or 1, Nb].
    """
    bsz, heads, length, dim = x.shape
    nb = num_blocks(length, block_size)
    pad = nb * block_size - length
    xb = (torch.nn.functional.pad(x, (0, 0, 0, pad)) if pad else x).reshape(bsz, heads, nb, block_size, dim)
    if weights is None:
        if not pad:
            return xb.mean(3), x.new_full((bsz, 1, nb), float(block_size))
        weights = x.new_ones(bsz, 1, length)
    elif weights.dim() == 2:
        weights = weights[:, None, :]
    w = torch.nn.functional.pad(weights.to(x.dtype), (0, pad)).reshape(bsz, weights.shape[1], nb, 1, block_size)
    wsum = w.sum(-1).squeeze(-1)  # [B, H or 1, Nb]
    sums = (w @ xb).squeeze(-2)  # [B, H, Nb, D]: one pass, no [B, H, T, D] product materialised
    return sums / wsum.clamp_min(1e-12)[..., None], wsum


def selection_mask(sel: BlockSelection, key_padding_mask: Tensor | None = None, rows: slice | None = None) -> Tensor:
    """The explicit token mask a selection stands for (the reference every kernel must match).

    visible(p, k) = k <= p and (block(k) < initial_blocks or block(k) >= local_start(tile(p))
                                or block(k) in indices[tile(p)]) [and key_padding_mask[k]].

    Args:
        sel: the selection.
        key_padding_mask: [B, kv_len] bool, True = real token.
        rows: optional slice of query rows (to bound memory at long lengths).

    Returns:
        [B, Hkv, n_rows, kv_len] bool.
    """
    dev = sel.indices.device
    bsz, hkv, n_tiles, _ = sel.indices.shape
    rows = rows or slice(0, sel.q_len)
    pos = torch.arange(sel.q_len, device=dev)[rows] + sel.q_offset  # [R]
    tile = pos // sel.query_tile - sel.first_tile  # [R] relative tile
    keys = torch.arange(sel.kv_len, device=dev)
    kblock = keys // sel.block_size
    start = tile_local_start(n_tiles, sel.first_tile, sel.query_tile, sel.block_size, sel.initial_blocks,
                             sel.window_blocks, dev)[tile]  # [R]
    always = (kblock[None, :] < sel.initial_blocks) | (kblock[None, :] >= start[:, None])  # [R, Tk]
    chosen = torch.zeros(bsz, hkv, n_tiles, sel.n_blocks + 1, dtype=torch.bool, device=dev)
    idx = sel.indices.clamp_min(-1) % (sel.n_blocks + 1)  # -1 -> the extra dump column
    chosen.scatter_(-1, idx, True)
    chosen = chosen[..., : sel.n_blocks]
    picked = chosen[:, :, tile][..., kblock]  # [B, Hkv, R, Tk]
    mask = (always[None, None] | picked) & (keys[None, :] <= pos[:, None])[None, None]
    if key_padding_mask is not None:
        mask = mask & key_padding_mask[:, None, None, :].bool()
    return mask


def visible_counts(sel: BlockSelection) -> tuple[Tensor, Tensor]:
    """Visible and causal key counts per query, without building the token mask.

    Returns:
        visible [B, Hkv, q_len] and causal [q_len] (= p + 1), both long.
    """
    dev = sel.indices.device
    pos = torch.arange(sel.q_len, device=dev) + sel.q_offset
    tile = pos // sel.query_tile - sel.first_tile
    start = tile_local_start(sel.n_tiles, sel.first_tile, sel.query_tile, sel.block_size, sel.initial_blocks,
                             sel.window_blocks, dev)[tile]
    initial = torch.clamp(pos + 1, max=sel.initial_blocks * sel.block_size)
    local = torch.clamp(pos + 1 - start * sel.block_size, min=0)
    selected = (sel.indices >= 0).sum(-1)[:, :, tile] * sel.block_size  # candidates are complete past blocks
    return initial + local + selected, pos + 1


def sparsity(sel: BlockSelection) -> float:
    """1 - Σ visible / Σ causal keys over all queries and KV heads (0 = dense causal attention)."""
    visible, causal = visible_counts(sel)
    return float(1.0 - visible.double().sum() / (causal.double().sum() * visible.shape[0] * visible.shape[1]))
