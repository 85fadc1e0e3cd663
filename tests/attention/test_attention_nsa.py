"""NSA-like branch: compression, compressed attention and gates against float64 loops."""

import math

import torch
from attn_helpers import qkv, small_cfg

from workbench.attention.nsa import NSABranch
from workbench.attention.sparse import sparse_attention


def _branch(seed=0):
    torch.manual_seed(seed)
    br = NSABranch(num_heads=4, head_dim=8, block_size=4).double()
    with torch.no_grad():
        for p in br.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return br


def test_compressed_attention_matches_loop():
    q, k, v = qkv(b=1, tq=7, tk=18)
    br = _branch()
    out = br.compressed_attention(q, k, v)
    pool_k, pool_v = br.key_pool.detach(), br.value_pool.detach()
    for h in range(4):
        for i in range(7):
            p = 11 + i  # absolute position
            blocks = [b for b in range(5) if (b + 1) * 4 - 1 <= p]
            expect = torch.zeros(8, dtype=torch.float64)
            if blocks:
                keys, vals = [], []
                for b in blocks:
                    pos = list(range(b * 4, min(18, b * 4 + 4)))
                    keys.append(sum(pool_k[j] * 4 * k[0, h // 2, t] for j, t in enumerate(pos)) / len(pos))
                    vals.append(sum(pool_v[j] * 4 * v[0, h // 2, t] for j, t in enumerate(pos)) / len(pos))
                logits = torch.stack([q[0, h, i] @ kc for kc in keys]) / math.sqrt(8)
                w = torch.softmax(logits, 0)
                expect = sum(w[n] * vals[n] for n in range(len(blocks)))
            assert torch.allclose(out[0, h, i], expect, atol=1e-12)


def test_gates_combine_and_start_at_one_and_zero():
    q, _, _ = qkv(b=1, tq=5)
    fresh = NSABranch(4, 8, 4).double()
    gs, gc = fresh.gates(q)
    assert torch.equal(gs, torch.ones_like(gs)) and torch.equal(gc, torch.zeros_like(gc))
    br = _branch(1)
    gs, gc = br.gates(q)
    for h in range(4):
        zs = q[0, h, 2] @ br.gate_weight[h, :, 0] + br.gate_bias[h, 0]
        zc = q[0, h, 2] @ br.gate_weight[h, :, 1] + br.gate_bias[h, 1]
        assert torch.allclose(gs[0, h, 2, 0], 2 * torch.sigmoid(zs))
        assert torch.allclose(gc[0, h, 2, 0], torch.tanh(zc))


def test_nsa_sparse_attention_mixes_both_branches():
    q, k, v = qkv(tq=40)
    br = _branch(2)
    out = sparse_attention(q, k, v, small_cfg(selector="nsa"), branch=br)
    plain = sparse_attention(q, k, v, small_cfg(selector="nsa"), branch=NSABranch(4, 8, 4).double())
    gs, gc = br.gates(q)
    o_cmp = br.compressed_attention(q, k, v)
    from workbench.attention.kernels import gather_block_sparse_attention

    o_sparse = gather_block_sparse_attention(q, k, v, out.selection)
    assert torch.allclose(out.output, gs * o_sparse + gc * o_cmp, atol=1e-12)
    assert not torch.allclose(out.output, plain.output)
