"""Information loss of many block selectors at many top-K values from one dense pass (PHSA, arXiv
2601.02819), on any causal LM. Sparse fine-tuning is `workbench.train.sparse`; NIAH accuracy is the one
evaluator on `tasks.haystack.niah_task()`; notebook 09's experiment is `workbench.experiments.phsa`.

    rows = information_loss_sweep(model, ids, cfg, ["moba", "infllm_v2", "phsa", "oracle"], [1, 2, 4, 8])

`information_loss_sweep` gives the same numbers as `metrics.information_loss_table` but runs the dense
model and the O(T²) oracle once per input instead of once per (selector, top-K): the oracle's
block attention mass A[t, b] (query tile t, key block b, summed over the tile's queries and the GQA
group) yields both the oracle top-K and every selector's attention-mass recall,

    recall = Σ_{t, b visible} A[t, b] / (B · Hq · Tq),

exact because every query of a tile sees the same blocks and A holds no mass on future keys.
"""

from __future__ import annotations


import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from workbench.attention.blocks import BlockSelection, candidate_blocks, n_query_tiles, num_blocks, sparsity, \
    tile_local_start
from workbench.attention.config import SparseAttentionConfig
from workbench.attention.hf import (IMPLEMENTATION, disable_sparse_attention, enable_sparse_attention,
                                    record_attention)
from workbench.attention.kernels import gather_block_sparse_attention
from workbench.attention.metrics import block_recall, delta_nll, next_token_kl, relative_output_error
from workbench.attention.selectors import select_blocks
from workbench.attention.sparse import causal_sdpa

LOSS_METRICS = ("relative_error", "mass_loss", "kl", "delta_nll")


def block_attention_mass(q: Tensor, k: Tensor, cfg: SparseAttentionConfig, *, scale: float | None = None,
                         key_padding_mask: Tensor | None = None, rows_per_chunk: int = 512) -> Tensor:
    """Dense attention mass per (query tile, key block), summed over the tile's queries and GQA group.

    A[b, h, t, n] = Σ_{g∈group(h)} Σ_{i∈tile t} Σ_{key∈block n, key<=p_i} softmax(q_i·k·scale)_key

    The same numbers as the `oracle` selector's scores, computed chunk by chunk over only the causal
    keys of each chunk and pooled per block before the tile sum (several times faster at 8k+ tokens).

    Args:
        q: [B, Hq, Tq, D]; k: [B, Hkv, Tk, D]; cfg: geometry (block_size, query_tile).
        key_padding_mask: [B, Tk] bool, True = real token.

    Returns:
        [B, Hkv, n_tiles, Nb] float32 (the rows of a tile sum to its query count times the group size).
    """
    b, hq, tq, d = q.shape
    hkv, tk, bs, qt = k.shape[1], k.shape[2], cfg.block_size, cfg.query_tile
    g, nb, nt = hq // hkv, num_blocks(tk, bs), n_query_tiles(tq, tk, qt)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    offset, first = tk - tq, (tk - tq) // qt
    out = torch.zeros(b, hkv, nt, nb, dtype=torch.float32, device=q.device)
    qg = (q.detach().float() * scale).reshape(b, hkv, g, tq, d)
    kf = k.detach().float()
    with torch.no_grad():
        for r0 in range(0, tq, rows_per_chunk):
            r1 = min(tq, r0 + rows_per_chunk)
            pos = torch.arange(r0, r1, device=q.device) + offset
            n_keys = min(tk, -(-(offset + r1) // bs) * bs)  # causal keys of the chunk, whole blocks
            logits = torch.matmul(qg[:, :, :, r0:r1], kf[:, :, None, :n_keys].transpose(-1, -2))
            diag = offset + r0  # keys before it are causal for every row of the chunk
            future = torch.arange(diag, n_keys, device=q.device)[None, :] > pos[:, None]
            logits[..., diag:].masked_fill_(future, float("-inf"))
            if key_padding_mask is not None:
                logits.masked_fill_(~key_padding_mask[:, None, None, None, :n_keys].bool(), float("-inf"))
            probs = torch.softmax(logits, -1)
            if key_padding_mask is not None:
                probs = torch.nan_to_num(probs, nan=0.0)  # rows with no real key
            pad = num_blocks(n_keys, bs) * bs - n_keys
            if pad:
                probs = torch.nn.functional.pad(probs, (0, pad))
            mass = probs.sum(2).view(b, hkv, r1 - r0, -1, bs).sum(-1)  # [B, Hkv, R, nbk]
            out[..., : mass.shape[-1]].index_add_(2, pos // qt - first, mass)
    return out


def _candidates(sel_like: SparseAttentionConfig, tq: int, tk: int, device) -> Tensor:
    qt, bs = sel_like.query_tile, sel_like.block_size
    return candidate_blocks(n_query_tiles(tq, tk, qt), (tk - tq) // qt, num_blocks(tk, bs), qt, bs,
                            sel_like.initial_blocks, sel_like.window_blocks, device)


def topk_selection(scores: Tensor, cfg: SparseAttentionConfig, q_len: int, kv_len: int) -> BlockSelection:
    """Keep the top-K candidate blocks of `scores` [B, Hkv, n_tiles, Nb] (as `select_blocks` does)."""
    cand = _candidates(cfg, q_len, kv_len, scores.device)
    kk = min(cfg.top_k, scores.shape[-1])
    masked = scores.float().masked_fill(~cand, float("-inf"))
    top, idx = torch.topk(masked, kk, dim=-1) if kk else (masked[..., :0], masked[..., :0].long())
    idx = torch.sort(torch.where(torch.isfinite(top), idx, torch.full_like(idx, -1)), dim=-1).values
    return BlockSelection(indices=idx, block_size=cfg.block_size, query_tile=cfg.query_tile,
                          initial_blocks=cfg.initial_blocks, window_blocks=cfg.window_blocks, q_len=q_len,
                          kv_len=kv_len)


def mass_recall_from_blocks(mass: Tensor, sel: BlockSelection, n_query_heads: int) -> float:
    """Attention-mass recall of `sel` from the block mass A of `block_attention_mass`.

    recall = Σ_{t, n visible} A[t, n] / (B · Hq · Tq); visible = initial blocks, blocks from the
    tile's local start on, and the selected blocks (equals `metrics.attention_mass_recall` without padding).
    """
    b, hkv, nt, nb = mass.shape
    start = tile_local_start(nt, sel.first_tile, sel.query_tile, sel.block_size, sel.initial_blocks,
                             sel.window_blocks, mass.device)
    blocks = torch.arange(nb, device=mass.device)
    always = (blocks[None, :] < sel.initial_blocks) | (blocks[None, :] >= start[:, None])  # [nt, Nb]
    chosen = torch.zeros(b, hkv, nt, nb + 1, dtype=torch.bool, device=mass.device)
    chosen.scatter_(-1, sel.indices % (nb + 1), True)  # -1 -> the dump column
    visible = always[None, None] | chosen[..., :nb]
    return float((mass.double() * visible).sum() / (b * n_query_heads * sel.q_len))


@dataclass
class DenseTrace:
    """One dense pass: logits [B, T, V], per-layer records (q, k, v), dense outputs and block masses."""

    logits: Tensor
    records: list
    outputs: list[Tensor] = field(default_factory=list)
    masses: list[Tensor] = field(default_factory=list)


def _restore(model, impl: str, sparse_cfg) -> None:
    if sparse_cfg is not None:
        model.config.sparse_attention = sparse_cfg
    if impl != IMPLEMENTATION:
        disable_sparse_attention(model, impl)


@torch.no_grad()
def dense_trace(model, input_ids: Tensor, cfg: SparseAttentionConfig) -> DenseTrace:
    """Run `model` dense on input_ids [B, T], recording every layer; compute dense outputs and block masses."""
    impl, saved = model.config._attn_implementation, getattr(model.config, "sparse_attention", None)
    try:
        enable_sparse_attention(model, cfg.replace(selector="dense"))
        with record_attention() as records:
            logits = model(input_ids=input_ids).logits.float()
    finally:
        _restore(model, impl, saved)
    trace = DenseTrace(logits, list(records))
    for rec in trace.records:
        trace.outputs.append(causal_sdpa(rec.q, rec.k, rec.v, rec.scale))
        trace.masses.append(block_attention_mass(rec.q, rec.k, cfg, scale=rec.scale))
    return trace


@torch.no_grad()
def information_loss_sweep(model, input_ids: Tensor, cfg: SparseAttentionConfig | dict, selectors: Sequence[str],
                           top_ks: Sequence[int], *, trace: DenseTrace | None = None,
                           skip_end_to_end: Sequence[str] = ("oracle",), labels: Tensor | None = None) -> list[dict]:
    """Information loss of every (selector, top-K) against the dense model (PHSA, arXiv 2601.02819).

    Per layer, on the dense model's own q, k, v: relative output error ‖O_d − O_s‖/‖O_d‖, attention-mass
    recall and block recall against the oracle top-K; end to end: KL(p_dense ‖ p_sparse) of the
    next-token distributions and ΔNLL = NLL_sparse − NLL_dense of the next tokens, at every position or,
    with `labels`, at the positions whose next token is labelled (e.g. needle, question and answer).

    Args:
        model: a causal LM using `AttentionInterface` (attention switched back afterwards).
        input_ids: [B, T], no padding. cfg: geometry and punctuation ids (selector/top_k are swept).
        trace: a `dense_trace` of the same input, to reuse.
        skip_end_to_end: selectors whose sparse model pass is skipped (kl, delta_nll = NaN): the oracle
            costs O(T²) per layer inside the model.
        labels: [B, T] next-token targets (−100 = skip) for ΔNLL; KL averages over logits[:, t] with
            labels[:, t + 1] != −100. None: the input itself, every position.

    Returns:
        One dict per (selector, top_k): selector, top_k, length, sparsity, relative_error, mass_recall,
        mass_loss (= 1 − mass_recall), block_recall (means over layers), relative_error_per_layer, kl, delta_nll.
    """
    cfg = SparseAttentionConfig.from_dict(cfg)
    if not selectors or not top_ks or any(k < 1 for k in top_ks):
        raise ValueError(f"need at least one selector and top_ks >= 1, got {list(selectors)} and {list(top_ks)}")
    trace = trace or dense_trace(model, input_ids, cfg)
    targets = input_ids if labels is None else labels
    kl_mask = None
    if labels is not None:
        kl_mask = torch.nn.functional.pad(labels[:, 1:] != -100, (0, 1), value=False)
    tq = input_ids.shape[1]
    impl, saved = model.config._attn_implementation, getattr(model.config, "sparse_attention", None)
    rows = []
    try:
        for top_k in top_ks:
            kcfg = cfg.replace(top_k=int(top_k))
            oracles = [topk_selection(m, kcfg, tq, tq) for m in trace.masses]
            for name in selectors:
                scfg = kcfg.replace(selector=name)
                logits = None
                if name not in skip_end_to_end:
                    enable_sparse_attention(model, scfg)
                    logits = model(input_ids=input_ids).logits.float()
                errs, recalls, brecalls, sps = [], [], [], []
                for rec, o_dense, mass, oracle in zip(trace.records, trace.outputs, trace.masses, oracles):
                    branch = _branch(model, rec.layer_idx) if name == "nsa" else None
                    sel = oracle if name == "oracle" else select_blocks(
                        rec.q, rec.k, scfg, scale=rec.scale, punctuation_mask=rec.punctuation_mask, branch=branch)
                    o_sparse = gather_block_sparse_attention(rec.q, rec.k, rec.v, sel, scale=rec.scale)
                    if branch is not None:
                        o_sparse = branch.combine(rec.q, o_sparse,
                                                  branch.compressed_attention(rec.q, rec.k, rec.v, rec.scale))
                    errs.append(float(relative_output_error(o_dense, o_sparse)))
                    recalls.append(mass_recall_from_blocks(mass, sel, rec.q.shape[1]))
                    brecalls.append(float(block_recall(sel, oracle)))
                    sps.append(sparsity(sel))
                n = len(errs)
                rows.append({"selector": name, "top_k": int(top_k), "length": tq, "sparsity": sum(sps) / n,
                             "relative_error": sum(errs) / n, "mass_recall": sum(recalls) / n,
                             "mass_loss": 1.0 - sum(recalls) / n, "block_recall": sum(brecalls) / n,
                             "relative_error_per_layer": errs,
                             "kl": float("nan") if logits is None else float(next_token_kl(trace.logits, logits, kl_mask)),
                             "delta_nll": float("nan") if logits is None
                             else float(delta_nll(trace.logits, logits, targets))})
    finally:
        _restore(model, impl, saved)
    return rows


def _branch(model, layer_idx: int):
    from workbench.attention.hf import _attention_modules

    return next((getattr(m, "nsa_branch", None) for m in _attention_modules(model) if m.layer_idx == layer_idx), None)


def config_sparsity(cfg: SparseAttentionConfig | dict, length: int) -> float:
    """Sparsity of `cfg` on a `length`-token causal input when every tile fills its top-K slots (any selector
    does when it has enough candidates, so this is the sparsity every selector runs at)."""
    cfg = SparseAttentionConfig.from_dict(cfg)
    cand = _candidates(cfg, length, length, None)
    kk = min(cfg.top_k, cand.shape[1])
    first = torch.where(cand, -torch.arange(cand.shape[1], dtype=torch.float32), float("-inf"))  # earliest first
    top, idx = torch.topk(first, kk, dim=-1) if kk else (first[:, :0], first[:, :0].long())
    idx = torch.where(torch.isfinite(top), idx, torch.full_like(idx, -1))[None, None]
    return sparsity(BlockSelection(idx, cfg.block_size, cfg.query_tile, cfg.initial_blocks, cfg.window_blocks,
                                   length, length))


def relative_reduction(rows: list[dict], metric: str, better: str, baseline: str, min_sparsity: float) -> dict:
    """How much less `better` loses than `baseline` at the sparsest-but-closest setting ≥ min_sparsity.

    Picks, per length, the top-K whose (shared) sparsity is ≥ min_sparsity and closest to it, then
    reduction % = 100 · (L_baseline − L_better) / L_baseline on `metric` (one of `LOSS_METRICS`).

    Returns:
        {"length", "top_k", "sparsity", "baseline", "better", "reduction_pct"} at the longest length that
        reaches min_sparsity; raises ValueError if none does.
    """
    if metric not in LOSS_METRICS:
        raise ValueError(f"metric {metric!r} is unknown; known: {', '.join(LOSS_METRICS)}")
    pick = {(r["length"], r["top_k"]): r for r in rows if r["selector"] == baseline}
    ok = [(length, k) for (length, k), r in pick.items() if r["sparsity"] >= min_sparsity]
    if not ok:
        best = max((r["sparsity"] for r in pick.values()), default=float("nan"))
        raise ValueError(f"no {baseline} setting reaches sparsity {min_sparsity}; the highest is {best:.4f}")
    length = max(length for length, _ in ok)
    top_k = min((k for ln, k in ok if ln == length), key=lambda k: pick[(length, k)]["sparsity"])
    base = pick[(length, top_k)][metric]
    other = next(r for r in rows if r["selector"] == better and r["length"] == length and r["top_k"] == top_k)[metric]
    pct = 100.0 * (base - other) / base if base > 0 else 0.0
    return {"length": length, "top_k": top_k, "sparsity": pick[(length, top_k)]["sparsity"], "baseline": base,
            "better": other, "reduction_pct": pct}
