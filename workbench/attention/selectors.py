"""Block selectors (registry): each scores every key block for every query tile; `select_blocks`
keeps the top-K candidates. Scores are summed over the query heads of a GQA group, so all heads that
share a KV head share its blocks (what makes the kernels gather each block once).

A query tile is scored with its mean query q̄ (`query_tile=1` is per-token scoring as in the papers).

* `moba`      MoBA (arXiv 2502.13189): s_b = Σ_{h∈group} q̄_h · M_o(b) / √d, M_o = mean key of block b.
* `infllm_v2` InfLLM v2 (arXiv 2506.07900): s_b = Σ_{h∈group} softmax_b(q̄_h · M_o(b) / √d) over candidates.
* `phsa`      PHSA (arXiv 2601.02819): as `infllm_v2` with M = λ M_o + (1-λ) M_p, M_p the mean key at
              punctuation positions of b (M_p = M_o when b has none).
* `nsa`       NSA-like (arXiv 2502.11089): as `infllm_v2` with learned compressed block keys
              (`NSABranch.compress_keys`).
* `oracle`    true attention mass: s_b = Σ_{h∈group} Σ_{i∈tile} Σ_{k∈b} softmax_k(q_i·k/√d), causal keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from workbench.attention.blocks import BlockSelection, block_means, candidate_blocks, n_query_tiles, num_blocks
from workbench.registry import Registry

SELECTORS: Registry[Callable[..., Tensor]] = Registry("block selector")


@dataclass
class SelectorInputs:
    """Everything a selector may look at.

    Attributes:
        q: [B, Hq, Tq, D] queries; q_tiles: [B, Hq, n_tiles, D] mean query per tile.
        k: [B, Hkv, Tk, D] keys.
        candidates: [n_tiles, Nb] bool blocks a tile may select.
        scale: softmax scale (1/√d by default).
        punctuation_mask: [B, Tk] bool or None; key_padding_mask: [B, Tk] bool (True = real) or None.
        lam: PHSA fusion weight; block_size, query_tile, first_tile: geometry.
        branch: the layer's `NSABranch` (only `nsa` uses it).
    """

    q: Tensor
    q_tiles: Tensor
    k: Tensor
    candidates: Tensor
    scale: float
    punctuation_mask: Tensor | None
    key_padding_mask: Tensor | None
    lam: float
    block_size: int
    query_tile: int
    first_tile: int
    branch: Any = None


def _group_sum(x: Tensor, hkv: int) -> Tensor:
    """[B, Hq, ...] -> [B, Hkv, ...] summing the query heads of each GQA group."""
    b, hq = x.shape[:2]
    return x.view(b, hkv, hq // hkv, *x.shape[2:]).sum(2)


def _block_logits(inp: SelectorInputs, reps: Tensor) -> Tensor:
    """q̄_h · M_b · scale for every query head, tile and block: [B, Hq, n_tiles, Nb] (reps: [B, Hkv, Nb, D])."""
    b, hq, nt, d = inp.q_tiles.shape
    hkv = reps.shape[1]
    qg = inp.q_tiles.view(b, hkv, hq // hkv, nt, d)
    return torch.einsum("bhgtd,bhnd->bhgtn", qg, reps).reshape(b, hq, nt, reps.shape[2]).mul_(inp.scale)


def _softmax_over_candidates(logits: Tensor, candidates: Tensor) -> Tensor:
    """softmax over candidate blocks only; tiles with no candidate get zeros (never NaN). Overwrites `logits`."""
    probs = torch.softmax(logits.masked_fill_(~candidates, float("-inf")), dim=-1)
    return probs.masked_fill_(~candidates.any(-1, keepdim=True), 0.0)


def _key_weights(inp: SelectorInputs) -> Tensor | None:
    return None if inp.key_padding_mask is None else inp.key_padding_mask.to(inp.k.dtype)


@SELECTORS.register("moba")
def moba_scores(inp: SelectorInputs) -> Tensor:
    """MoBA gate (arXiv 2502.13189): raw q̄·M_o/√d summed over the GQA group. Returns [B, Hkv, n_tiles, Nb]."""
    reps, _ = block_means(inp.k, inp.block_size, _key_weights(inp))
    return _group_sum(_block_logits(inp, reps), inp.k.shape[1])


@SELECTORS.register("infllm_v2")
def infllm_v2_scores(inp: SelectorInputs) -> Tensor:
    """InfLLM v2 (arXiv 2506.07900): softmax over candidate blocks of q̄·M_o/√d, summed over the group."""
    reps, _ = block_means(inp.k, inp.block_size, _key_weights(inp))
    return _group_sum(_softmax_over_candidates(_block_logits(inp, reps), inp.candidates), inp.k.shape[1])


def phsa_block_keys(k: Tensor, block_size: int, punctuation_mask: Tensor | None, lam: float = 0.5,
                    key_padding_mask: Tensor | None = None) -> Tensor:
    """PHSA representative keys (arXiv 2601.02819): M = λ·M_o + (1-λ)·M_p.

    M_o(b) = mean of the keys of block b; M_p(b) = mean of the keys at punctuation positions of b,
    and M_p(b) = M_o(b) when b holds no punctuation (or no mask is given).

    Args:
        k: [B, Hkv, T, D]; punctuation_mask: [B, T] bool; key_padding_mask: [B, T] bool.

    Returns:
        [B, Hkv, Nb, D].
    """
    valid = None if key_padding_mask is None else key_padding_mask.to(k.dtype)
    mean_all, _ = block_means(k, block_size, valid)
    if punctuation_mask is None:
        return mean_all
    punct = punctuation_mask.to(k.dtype) * (1.0 if valid is None else valid)
    mean_punct, count = block_means(k, block_size, punct)
    mean_punct = torch.where(count[..., None] > 0, mean_punct, mean_all)
    return lam * mean_all + (1.0 - lam) * mean_punct


@SELECTORS.register("phsa")
def phsa_scores(inp: SelectorInputs) -> Tensor:
    """PHSA (arXiv 2601.02819): InfLLM-v2 scoring with the punctuation-fused key M (`phsa_block_keys`)."""
    reps = phsa_block_keys(inp.k, inp.block_size, inp.punctuation_mask, inp.lam, inp.key_padding_mask)
    return _group_sum(_softmax_over_candidates(_block_logits(inp, reps), inp.candidates), inp.k.shape[1])


@SELECTORS.register("nsa")
def nsa_scores(inp: SelectorInputs) -> Tensor:
    """NSA-like (arXiv 2502.11089): softmax over learned compressed block keys, summed over the group."""
    if inp.branch is None:
        raise ValueError("selector 'nsa' needs an NSABranch (pass branch=..., or enable_sparse_attention adds one)")
    reps = inp.branch.compress_keys(inp.k, _key_weights(inp))
    return _group_sum(_softmax_over_candidates(_block_logits(inp, reps), inp.candidates), inp.k.shape[1])


@SELECTORS.register("oracle")
def oracle_scores(inp: SelectorInputs, rows_per_chunk: int = 1024) -> Tensor:
    """True attention mass per block, summed over the queries of a tile and the heads of a group.

    s_b = Σ_{h∈group} Σ_{i∈tile} Σ_{k∈b, k<=p_i} softmax_k(q_i·k·scale). O(T²): for recall studies.
    """
    q, k = inp.q, inp.k
    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    nb, nt = num_blocks(tk, inp.block_size), inp.candidates.shape[0]
    q_offset = tk - tq
    kg = k.repeat_interleave(hq // hkv, dim=1)
    keys = torch.arange(tk, device=k.device)
    out = q.new_zeros(b, hq, nt, nb)
    for r0 in range(0, tq, rows_per_chunk):
        r1 = min(tq, r0 + rows_per_chunk)
        pos = torch.arange(r0, r1, device=q.device) + q_offset
        logits = torch.einsum("bhqd,bhkd->bhqk", q[:, :, r0:r1], kg) * inp.scale
        allowed = (keys[None, :] <= pos[:, None])[None, None]
        if inp.key_padding_mask is not None:
            allowed = allowed & inp.key_padding_mask[:, None, None, :].bool()
        probs = torch.nan_to_num(torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1), nan=0.0)
        mass = torch.zeros(b, hq, r1 - r0, nb, dtype=q.dtype, device=q.device)
        mass.index_add_(-1, keys // inp.block_size, probs)
        tile = pos // inp.query_tile - inp.first_tile
        out.index_add_(2, tile, mass)
    return _group_sum(out, hkv)


def tile_mean_queries(q: Tensor, kv_len: int, query_tile: int) -> Tensor:
    """Mean query of each query tile (rows outside [q_offset, kv_len) do not count).

    Args:
        q: [B, Hq, Tq, D], the last Tq of kv_len positions.

    Returns:
        [B, Hq, n_tiles, D].
    """
    b, h, tq, d = q.shape
    q_offset = kv_len - tq
    first = q_offset // query_tile
    nt = n_query_tiles(tq, kv_len, query_tile)
    front = q_offset - first * query_tile
    back = nt * query_tile - front - tq
    if not front and not back:
        return q.reshape(b, h, nt, query_tile, d).mean(3)
    padded = torch.nn.functional.pad(q, (0, 0, front, back)).view(b, h, nt, query_tile, d)
    rows = torch.arange(nt * query_tile, device=q.device).view(nt, query_tile)
    valid = ((rows >= front) & (rows < front + tq)).to(q.dtype)
    return (padded * valid[..., None]).sum(3) / valid.sum(-1)[:, None]


def select_blocks(q: Tensor, k: Tensor, cfg, *, scale: float | None = None, punctuation_mask: Tensor | None = None,
                  key_padding_mask: Tensor | None = None, branch: Any = None) -> BlockSelection:
    """Score blocks with `cfg.selector` and keep the top-K candidates per tile and KV head.

    No gradient flows through the choice (the paper's "no gradient through the selection").

    Args:
        q: [B, Hq, Tq, D]; k: [B, Hkv, Tk, D] with Tq <= Tk (queries are the last Tq positions).
        cfg: `SparseAttentionConfig`.
        scale: softmax scale, 1/√D by default.
        punctuation_mask: [B, Tk] bool (phsa); key_padding_mask: [B, Tk] bool, True = real token.
        branch: `NSABranch` for selector `nsa`.

    Returns:
        `BlockSelection` with indices [B, Hkv, n_tiles, min(K, Nb)].
    """
    if q.dim() != 4 or k.dim() != 4 or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must be [B, H, T, D] with equal B and D, got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads {q.shape[1]} must be a multiple of key heads {k.shape[1]}")
    tq, tk = q.shape[2], k.shape[2]
    bs, qt = cfg.block_size, cfg.query_tile
    nb, nt = num_blocks(tk, bs), n_query_tiles(tq, tk, qt)
    first = (tk - tq) // qt
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    with torch.no_grad():
        cand = candidate_blocks(nt, first, nb, qt, bs, cfg.initial_blocks, cfg.window_blocks, q.device)
        inp = SelectorInputs(q=q.detach(), q_tiles=tile_mean_queries(q.detach(), tk, qt), k=k.detach(),
                             candidates=cand, scale=scale, punctuation_mask=punctuation_mask,
                             key_padding_mask=key_padding_mask, lam=float(cfg.lam), block_size=bs,
                             query_tile=qt, first_tile=first, branch=branch)
        scores = SELECTORS.get(cfg.selector)(inp).float()
        kk = min(cfg.top_k, nb)
        scores = scores.masked_fill(~cand, float("-inf"))
        top, idx = torch.topk(scores, kk, dim=-1) if kk else (scores[..., :0], scores[..., :0].long())
        idx = torch.where(torch.isfinite(top), idx, torch.full_like(idx, -1))
        idx = torch.sort(idx, dim=-1).values
    return BlockSelection(indices=idx, block_size=bs, query_tile=qt, initial_blocks=cfg.initial_blocks,
                          window_blocks=cfg.window_blocks, q_len=tq, kv_len=tk)
