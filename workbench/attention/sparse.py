"""One call from (q, k, v, config) to sparse attention output: dense below `dense_below`, else
select blocks (registry) and run the chosen kernel; the NSA-like selector mixes in its compressed
branch. This is what the HF integration calls for every layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.attention.blocks import BlockSelection
from workbench.attention.config import SparseAttentionConfig
from workbench.attention.flex import flex_block_sparse_attention
from workbench.attention.kernels import gather_block_sparse_attention
from workbench.attention.selectors import select_blocks


@dataclass
class SparseOutput:
    """`output` [B, Hq, Tq, D]; `selection` (None when the call ran dense)."""

    output: Tensor
    selection: BlockSelection | None


def causal_sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
    """Dense causal attention through SDPA (queries are the last Tq of Tk positions).

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D]; key_padding_mask: [B, Tk] bool, True = real token.

    Returns:
        [B, Hq, Tq, D].
    """
    g = q.shape[1] // k.shape[1]
    if g > 1:
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    tq, tk = q.shape[2], k.shape[2]
    if key_padding_mask is None and tq == tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    pos = torch.arange(tq, device=q.device) + (tk - tq)
    mask = (torch.arange(tk, device=q.device)[None, :] <= pos[:, None])[None, None]
    if key_padding_mask is not None:
        mask = mask & key_padding_mask.bool()[:, None, None, :]
    mask = mask | ~mask.any(-1, keepdim=True)  # fully padded rows stay finite
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, cfg: SparseAttentionConfig | dict, *,
                     scale: float | None = None, punctuation_mask: Tensor | None = None,
                     key_padding_mask: Tensor | None = None, branch: Any = None,
                     compile_flex: bool = True) -> SparseOutput:
    """Causal block-sparse attention as configured (PHSA, arXiv 2601.02819, and baselines).

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D]; queries are the last Tq of Tk positions.
        cfg: `SparseAttentionConfig` (or its dict).
        scale: 1/√D by default.
        punctuation_mask: [B, Tk] bool, used by `phsa`.
        key_padding_mask: [B, Tk] bool, True = real token.
        branch: the layer's `NSABranch` (selector `nsa`).
        compile_flex: compile the FlexAttention kernel (`cfg.kernel == "flex"`).

    Returns:
        `SparseOutput(output [B, Hq, Tq, D], selection)`.
    """
    cfg = SparseAttentionConfig.from_dict(cfg)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if cfg.selector == "dense" or k.shape[2] < cfg.dense_below:
        return SparseOutput(causal_sdpa(q, k, v, scale, key_padding_mask), None)
    sel = select_blocks(q, k, cfg, scale=scale, punctuation_mask=punctuation_mask,
                        key_padding_mask=key_padding_mask, branch=branch)
    if cfg.kernel == "flex":
        out = flex_block_sparse_attention(q, k, v, sel, scale=scale, key_padding_mask=key_padding_mask,
                                          compile=compile_flex)
    else:
        out = gather_block_sparse_attention(q, k, v, sel, scale=scale, key_padding_mask=key_padding_mask)
    if cfg.selector == "nsa":
        o_cmp = branch.compressed_attention(q, k, v, scale, key_padding_mask)
        out = branch.combine(q, out, o_cmp)
    return SparseOutput(out, sel)
