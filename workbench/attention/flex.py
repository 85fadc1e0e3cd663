"""FlexAttention path: the same block-sparse pattern as a `BlockMask` (`BlockMask.from_kv_blocks`),
for compiled inference on CPU and training on GPU (PHSA, arXiv 2601.02819).

The BlockMask uses (query_tile x block_size) tiles: each tile row lists its initial, local and
selected key blocks; a mask_mod applies the exact per-token causal mask (and key padding) inside
them. Keys are zero-padded to a multiple of `block_size` and queries to whole tiles, because a
BlockMask needs sequence lengths that are multiples of its block sizes.

GPU note: Triton's flex kernels need the BlockMask block sizes to be multiples of their own tile
sizes; `kernel_options` here pick tiles that divide (query_tile, block_size) (so both must be
multiples of 16 on CUDA). This path was written device-agnostic but only run on CPU here.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.attention.blocks import BlockSelection, tile_local_start

_COMPILED = None


def flex_available() -> tuple[bool, str]:
    """(True, "") if `torch.nn.attention.flex_attention` imports, else (False, the reason)."""
    try:
        from torch.nn.attention.flex_attention import BlockMask, flex_attention  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the torch build
        return False, f"flex_attention is unavailable in torch {torch.__version__}: {e}"
    return True, ""


def _flex_fn(compile: bool):
    global _COMPILED
    from torch.nn.attention.flex_attention import flex_attention

    if not compile:
        return flex_attention
    if _COMPILED is None:
        _COMPILED = torch.compile(flex_attention, dynamic=False)
    return _COMPILED


def selection_kv_blocks(sel: BlockSelection, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Key blocks each query tile reads: initial, local and selected (disjoint), as BlockMask rows.

    Returns:
        kv_num_blocks [B, Hkv, n_tiles] int32 and kv_indices [B, Hkv, n_tiles, Nb] int32
        (valid entries first, ascending; the rest 0).
    """
    device = device or sel.indices.device
    bs, nt, nb = sel.block_size, sel.n_tiles, sel.n_blocks
    b, hkv, _, _ = sel.indices.shape
    start = tile_local_start(nt, sel.first_tile, sel.query_tile, bs, sel.initial_blocks, sel.window_blocks, device)
    tiles = torch.arange(sel.first_tile, sel.first_tile + nt, device=device)
    last_block = (torch.clamp((tiles + 1) * sel.query_tile, max=sel.kv_len) - 1) // bs
    span = int((last_block - start + 1).clamp_min(0).max().item())
    local = start[:, None] + torch.arange(span, device=device)
    local = torch.where(local <= last_block[:, None], local, torch.full_like(local, -1))
    init = torch.arange(sel.initial_blocks, device=device).expand(nt, -1)
    init = torch.where(init < nb, init, torch.full_like(init, -1))
    shared = torch.cat([init, local], 1)[None, None].expand(b, hkv, nt, -1)
    allb = torch.cat([shared, sel.indices.to(device)], -1)
    big = torch.iinfo(torch.int64).max
    ordered = torch.sort(torch.where(allb >= 0, allb, torch.full_like(allb, big)), -1).values
    count = (allb >= 0).sum(-1)
    ordered = torch.where(ordered == big, torch.zeros_like(ordered), ordered)
    # a BlockMask row has one column per key block (the transpose to q-blocks relies on it)
    ordered = F.pad(ordered, (0, nb - ordered.shape[-1])) if ordered.shape[-1] < nb else ordered[..., :nb]
    return count.to(torch.int32), ordered.to(torch.int32).contiguous()


def _kernel_options(device: torch.device, query_tile: int, block_size: int) -> dict | None:
    if device.type != "cuda":
        return None

    def tile(n: int) -> int:
        for t in (128, 64, 32, 16):
            if n % t == 0:
                return t
        raise ValueError(f"on CUDA, flex needs query_tile and block_size to be multiples of 16, got {n}")

    m, n = tile(query_tile), tile(block_size)
    small = min(m, n)
    return {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_M1": small, "BLOCK_N1": small, "BLOCK_M2": small, "BLOCK_N2": small}


def flex_block_sparse_attention(q: Tensor, k: Tensor, v: Tensor, sel: BlockSelection, *, scale: float | None = None,
                                key_padding_mask: Tensor | None = None, compile: bool = True) -> Tensor:
    """Block-sparse attention through FlexAttention; same result as `gather_block_sparse_attention`.

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D]; sel: selection for these shapes.
        scale: 1/√D by default; key_padding_mask: [B, Tk] bool, True = real token.
        compile: use `torch.compile(flex_attention)` (fused; first call compiles for tens of seconds
            on CPU); False runs flex's eager reference, which materialises the scores.

    Returns:
        O [B, Hq, Tq, D].
    """
    ok, why = flex_available()
    if not ok:
        raise RuntimeError(why)
    from torch.nn.attention.flex_attention import BlockMask

    b, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    qt, bs, nt = sel.query_tile, sel.block_size, sel.n_tiles
    if (tq, tk) != (sel.q_len, sel.kv_len):
        raise ValueError(f"selection is for q_len={sel.q_len}, kv_len={sel.kv_len}; got Tq={tq}, Tk={tk}")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    kv_pad = sel.n_blocks * bs - tk
    front = sel.q_offset - sel.first_tile * qt
    qp = F.pad(q, (0, 0, front, nt * qt - front - tq))
    kp, vp = F.pad(k, (0, 0, 0, kv_pad)), F.pad(v, (0, 0, 0, kv_pad))
    num, idx = selection_kv_blocks(sel, q.device)
    g = hq // hkv
    num, idx = num.repeat_interleave(g, 1), idx.repeat_interleave(g, 1)
    offset = sel.first_tile * qt
    real = None if key_padding_mask is None else F.pad(key_padding_mask.bool(), (0, kv_pad))

    # The block list alone is not enough: flex's eager (uncompiled) path evaluates mask_mod on every
    # (q, kv) pair, so the mask_mod must also say which blocks each tile row reads.
    cols = torch.arange(idx.shape[-1], device=q.device)
    table = torch.zeros(*idx.shape[:3], sel.n_blocks + 1, dtype=torch.bool, device=q.device)
    table.scatter_(-1, torch.where(cols < num[..., None], idx.long(), sel.n_blocks), True)
    table = table[..., : sel.n_blocks].contiguous()

    def mask_mod(bi, hi, q_idx, kv_idx):
        keep = (kv_idx <= q_idx + offset) & (kv_idx < tk) & table[bi, hi, q_idx // qt, kv_idx // bs]
        if real is not None:
            keep = keep & real[bi, kv_idx]
        return keep

    block_mask = BlockMask.from_kv_blocks(num, idx, BLOCK_SIZE=(qt, bs), mask_mod=mask_mod,
                                          seq_lengths=(nt * qt, sel.n_blocks * bs))
    with warnings.catch_warnings():  # the caller chose eager flex: no "use torch.compile" warning
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        out = _flex_fn(compile)(qp, kp, vp, block_mask=block_mask, scale=scale, enable_gqa=g > 1,
                                kernel_options=_kernel_options(q.device, qt, bs))
    return out[:, :, front:front + tq]
