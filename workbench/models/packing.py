"""Padding-free packed scoring of group rollouts: one row per distinct prompt, its completions back to back.

For a group of G completions c_1 … c_G of one prompt p (lengths n_i), the packed row is

    [ p | c_1 | c_2 | … | c_G ]        length |p| + Σ n_i   (no padding inside; rows padded to the longest)

with position ids 0 … |p| − 1 on the prompt and |p| … |p| + n_i − 1 restarting on every completion, and a
block mask: query position i may read key j ≤ i when j is in the prompt or in i's own completion

    M[i, j] = (j ≤ i) ∧ (seg(j) = prompt ∨ seg(j) = seg(i)),

so every completion token sees exactly cat(p, c_i) — the logits equal the padded one-pass forward's. Against
the padded batch [G, |p| + max n_i] the prompt runs once instead of G times and no padding token runs at all;
against prefix sharing through a KV cache (`scoring.shared_prompt_logits`) it is one forward, so a DDP-wrapped
model can use it. The mask is a dense [R, 1, L, L] boolean one, which transformers' SDPA path takes as is
(verl's `use_remove_padding` does the same packing with flash-attention's varlen kernels on CUDA).

Cost: per-token work (embeddings, MLPs, norms, the LM head) falls to the real tokens, but dense masked
attention over a row of length L = |p| + Σ n_i costs L² ≈ G² n², G times the padded batch's G · n². It pays
where per-token work dominates (small models, short completions: the CPU presets) and not for long
completions of a large model, where a varlen kernel (not built here) would be needed; hence off by default
(`RLConfig.pack`).
"""

from __future__ import annotations

import torch


def packed_layout(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                  completion_mask: torch.Tensor) -> dict:
    """The packed rows of a batch and where each completion position's predicting state sits in them.

    Args:
        prompt_ids, prompt_mask: [B, P] left-padded prompts (rows of one group repeat the same prompt).
        completion_ids, completion_mask: [B, T] right-padded completions.

    Returns:
        {"input_ids" [R, L], "position_ids" [R, L], "attention_mask" [R, 1, L, L] bool, "row" [B] (packed row of
        each batch row), "index" [B, T] (the packed position whose output predicts completion token t: the last
        prompt token for t = 0, completion token t − 1 after; a valid position on padding)}. R = distinct prompts.
    """
    B, T = completion_ids.shape
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], 1)
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)
    P = prompt_ids.size(1)
    u_mask = unique[:, P:].bool()
    p_len = u_mask.sum(1)
    if bool((p_len == 0).any()):
        raise ValueError("a prompt has no real token (its prompt_mask is all 0): nothing to pack it behind")
    n = completion_mask.sum(1)
    # offset of each row's completion in its packed row: after its prompt and the earlier rows of its group
    # (rows sorted by group, groups in order 0 … R − 1: a row's offset is the exclusive cumsum of the sorted
    # lengths minus that of the groups before its own)
    order = torch.argsort(inverse, stable=True)
    totals = torch.zeros_like(p_len).index_add(0, inverse, n)  # [R] completion tokens per packed row
    before = torch.zeros(B, dtype=torch.long, device=n.device)
    before[order] = torch.cumsum(n[order], 0) - n[order] - (torch.cumsum(totals, 0) - totals)[inverse[order]]
    start = p_len[inverse] + before  # [B]
    lengths = p_len + totals  # [R]
    L = int(lengths.max())
    R = len(unique)
    dev = prompt_ids.device
    ids = torch.zeros(R, L, dtype=prompt_ids.dtype, device=dev)
    pos = torch.zeros(R, L, dtype=torch.long, device=dev)
    seg = torch.full((R, L), -1, dtype=torch.long, device=dev)  # -1 padding, 0 prompt, b + 1 batch row b
    cols = torch.arange(L, device=dev)
    prompt_cols = cols[None, :] < p_len[:, None]  # [R, L]
    # the prompt's real tokens, left-padding removed, at 0 … |p| − 1
    src = (P - p_len[:, None] + cols[None, :]).clamp(0, P - 1)  # prompt column of packed column c (< |p|)
    ids = torch.where(prompt_cols, unique[:, :P].gather(1, src), ids)
    pos[prompt_cols] = cols.expand(R, L)[prompt_cols]
    seg[prompt_cols] = 0
    t = torch.arange(T, device=dev)
    real = completion_mask.bool()
    rows_b, t_b = real.nonzero(as_tuple=True)
    at = start[rows_b] + t_b
    ids[inverse[rows_b], at] = completion_ids[rows_b, t_b]
    pos[inverse[rows_b], at] = p_len[inverse[rows_b]] + t_b
    seg[inverse[rows_b], at] = rows_b + 1
    index = torch.where(t[None, :] == 0, p_len[inverse][:, None] - 1, start[:, None] + t[None, :] - 1)
    index = torch.where(t[None, :] < n[:, None].clamp_min(1), index, (p_len[inverse] - 1)[:, None])
    causal = cols[None, :, None] >= cols[None, None, :]  # [1, L(query), L(key)]
    sq, sk = seg[:, :, None], seg[:, None, :]
    allowed = causal & (sk >= 0) & ((sk == 0) | (sk == sq))
    allowed |= (sq < 0) & (cols[None, None, :] == 0)  # padding queries read position 0: finite, never used
    return {"input_ids": ids, "position_ids": pos, "attention_mask": allowed[:, None], "row": inverse, "index": index}


def packed_prompt_logits(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                         completion_mask: torch.Tensor, field: str = "logits") -> torch.Tensor:
    """Next-token outputs at every completion position from one packed forward (`packed_layout`).

    Returns [B, T, V] logits (or [B, T, D] with `field="last_hidden_state"`, a decoder without its head): position t
    predicts completion token t, as `scoring.completion_logits` returns them; padding positions hold garbage."""
    lay = packed_layout(prompt_ids, prompt_mask, completion_ids, completion_mask)
    out = getattr(model(input_ids=lay["input_ids"], attention_mask=lay["attention_mask"],
                        position_ids=lay["position_ids"], use_cache=False), field)  # [R, L, ·]
    return out[lay["row"][:, None], lay["index"]]
