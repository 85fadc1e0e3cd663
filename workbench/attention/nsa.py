"""NSA-like trainable branch (after Native Sparse Attention, arXiv 2502.11089).

Simplifications, stated: the compression φ is a learned weighted sum over the positions of a block
(initialised to the mean, shared across heads) rather than an MLP with position embeddings; the
selected and sliding-window branches are one attention over their union (our block-sparse kernel),
so there are two gates, not three:

    O = g_sparse(q) · O_sparse + g_cmp(q) · O_cmp,
    g_sparse = 2·σ(W_s q + b_s),  g_cmp = tanh(W_c q + b_c)   (W, b = 0 at init => g = (1, 0)),

so a dense-trained checkpoint starts out exactly as plain block-sparse attention and training
learns how much of the compressed branch to mix in. O_cmp attends over compressed blocks that are
complete at the query's position (block end <= p); rows with none get O_cmp = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from workbench.attention.blocks import num_blocks


class NSABranch(nn.Module):
    """Compressed keys/values and output gates for one attention layer.

    Args:
        num_heads: query heads Hq; head_dim: D; block_size: tokens per compressed block.
    """

    def __init__(self, num_heads: int, head_dim: int, block_size: int):
        super().__init__()
        self.block_size = block_size
        self.key_pool = nn.Parameter(torch.full((block_size,), 1.0 / block_size))
        self.value_pool = nn.Parameter(torch.full((block_size,), 1.0 / block_size))
        self.gate_weight = nn.Parameter(torch.zeros(num_heads, head_dim, 2))
        self.gate_bias = nn.Parameter(torch.zeros(num_heads, 2))

    def _compress(self, x: Tensor, pool: Tensor, weights: Tensor | None) -> Tensor:
        """φ(x)_b = bs · Σ_j pool_j w_{b,j} x_{b,j} / Σ_j w_{b,j} (the masked mean when pool_j = 1/bs).

        x: [B, H, T, D]; weights: [B, T] padding weights or None. Returns [B, H, Nb, D].
        """
        b, h, t, d = x.shape
        bs = self.block_size
        nb = num_blocks(t, bs)
        pad = nb * bs - t
        w = x.new_ones(b, t) if weights is None else weights.to(x.dtype)
        xw = nn.functional.pad(x * w[:, None, :, None], (0, 0, 0, pad)).view(b, h, nb, bs, d)
        wp = nn.functional.pad(w, (0, pad)).view(b, 1, nb, bs)
        coef = pool.to(x.dtype).view(1, 1, 1, bs) * bs / wp.sum(-1, keepdim=True).clamp_min(1e-12)
        return torch.einsum("bhnjd,bhnj->bhnd", xw, coef.expand(b, 1, nb, bs))

    def compress_keys(self, k: Tensor, weights: Tensor | None = None) -> Tensor:
        """Compressed block keys [B, Hkv, Nb, D] (mean-pooled at init)."""
        return self._compress(k, self.key_pool, weights)

    def compress_values(self, v: Tensor, weights: Tensor | None = None) -> Tensor:
        """Compressed block values [B, Hkv, Nb, D]."""
        return self._compress(v, self.value_pool, weights)

    def gates(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """(g_sparse, g_cmp), each [B, Hq, Tq, 1], from q: [B, Hq, Tq, D]."""
        z = torch.einsum("bhtd,hdg->bhtg", q, self.gate_weight.to(q.dtype)) + self.gate_bias.to(q.dtype)[None, :, None]
        return 2.0 * torch.sigmoid(z[..., :1]), torch.tanh(z[..., 1:])

    def compressed_attention(self, q: Tensor, k: Tensor, v: Tensor, scale: float | None = None,
                             key_padding_mask: Tensor | None = None) -> Tensor:
        """O_cmp: each query attends over the compressed blocks complete at its position.

        Args:
            q: [B, Hq, Tq, D] (last Tq of Tk positions); k, v: [B, Hkv, Tk, D].

        Returns:
            [B, Hq, Tq, D].
        """
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        w = None if key_padding_mask is None else key_padding_mask
        kc, vc = self.compress_keys(k, w), self.compress_values(v, w)
        g = q.shape[1] // k.shape[1]
        kc, vc = kc.repeat_interleave(g, 1), vc.repeat_interleave(g, 1)
        tq, tk = q.shape[2], k.shape[2]
        pos = torch.arange(tq, device=q.device) + (tk - tq)
        block_end = (torch.arange(kc.shape[2], device=q.device) + 1) * self.block_size - 1
        allowed = block_end[None, :] <= pos[:, None]
        logits = torch.einsum("bhqd,bhnd->bhqn", q, kc) * scale
        probs = torch.nan_to_num(torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1), nan=0.0)
        return torch.einsum("bhqn,bhnd->bhqd", probs, vc)

    def combine(self, q: Tensor, o_sparse: Tensor, o_cmp: Tensor) -> Tensor:
        """O = g_sparse·O_sparse + g_cmp·O_cmp; all [B, Hq, Tq, D]."""
        g_sparse, g_cmp = self.gates(q)
        return g_sparse * o_sparse + g_cmp * o_cmp
