"""Selectors and block geometry against naive float64 loops."""

import math

import pytest
import torch
from attn_helpers import naive_visible, qkv, small_cfg

from workbench.attention.blocks import block_means, candidate_blocks, selection_mask, sparsity, visible_counts
from workbench.attention.config import SparseAttentionConfig
from workbench.attention.nsa import NSABranch
from workbench.attention.selectors import SELECTORS, SelectorInputs, phsa_block_keys, select_blocks, tile_mean_queries


def test_block_means_match_loop_with_partial_last_block():
    x = torch.randn(2, 3, 11, 5, dtype=torch.float64)
    w = (torch.rand(2, 11) > 0.4).double()
    means, wsum = block_means(x, 4, w)
    for b in range(2):
        for h in range(3):
            for blk in range(3):
                pos = [t for t in range(blk * 4, min(11, blk * 4 + 4)) if w[b, t] > 0]
                expect = sum((x[b, h, t] for t in pos), torch.zeros(5, dtype=torch.float64))
                expect = expect / len(pos) if pos else expect
                assert torch.allclose(means[b, h, blk], expect)
                assert wsum[b, 0, blk] == len(pos)


def test_phsa_key_is_lambda_mix_and_falls_back_to_mean_without_punctuation():
    _, k, _ = qkv(b=1, hkv=2, tq=12, d=3)
    punct = torch.zeros(1, 12, dtype=torch.bool)
    punct[0, [1, 3]] = True  # block 0 has two punctuation tokens; blocks 1, 2 have none
    m = phsa_block_keys(k, 4, punct, lam=0.3)
    for h in range(2):
        mo = k[0, h, 0:4].mean(0)
        mp = (k[0, h, 1] + k[0, h, 3]) / 2
        assert torch.allclose(m[0, h, 0], 0.3 * mo + 0.7 * mp)
        for blk in (1, 2):
            assert torch.allclose(m[0, h, blk], k[0, h, blk * 4:blk * 4 + 4].mean(0))
    assert torch.allclose(phsa_block_keys(k, 4, None), block_means(k, 4)[0])


def _inputs(q, k, cfg, punct=None):
    tk = k.shape[2]
    nt = -(-tk // cfg.query_tile)
    cand = candidate_blocks(nt, 0, -(-tk // cfg.block_size), cfg.query_tile, cfg.block_size, cfg.initial_blocks,
                            cfg.window_blocks)
    return SelectorInputs(q=q, q_tiles=tile_mean_queries(q, tk, cfg.query_tile), k=k, candidates=cand,
                          scale=1 / math.sqrt(q.shape[-1]), punctuation_mask=punct, key_padding_mask=None,
                          lam=cfg.lam, block_size=cfg.block_size, query_tile=cfg.query_tile, first_tile=0)


@pytest.mark.parametrize("name", ["moba", "infllm_v2", "phsa"])
def test_mean_key_scores_match_loop(name):
    q, k, _ = qkv(b=1, hq=4, hkv=2, tq=20, d=4)
    cfg = small_cfg(selector=name)
    punct = torch.rand(1, 20, generator=torch.Generator().manual_seed(1)) < 0.3
    inp = _inputs(q, k, cfg, punct)
    scores = SELECTORS.get(name)(inp)
    reps = phsa_block_keys(k, 4, punct, 0.5) if name == "phsa" else block_means(k, 4)[0]
    for h in range(2):
        for t in range(inp.candidates.shape[0]):
            rows = range(t * 8, min(20, t * 8 + 8))
            cands = [blk for blk in range(5) if inp.candidates[t, blk]]
            total = torch.zeros(5, dtype=torch.float64)
            for hq in (2 * h, 2 * h + 1):
                qbar = sum(q[0, hq, i] for i in rows) / len(rows)
                logits = torch.tensor([float(qbar @ reps[0, h, blk]) / 2.0 for blk in range(5)],
                                      dtype=torch.float64)
                if name == "moba":
                    total += logits
                elif cands:
                    p = torch.softmax(logits[cands], 0)
                    total[cands] += p
            for blk in cands:
                assert scores[0, h, t, blk].item() == pytest.approx(total[blk].item(), abs=1e-9)


def test_oracle_scores_are_true_attention_mass_per_block():
    q, k, _ = qkv(b=1, hq=2, hkv=1, tq=13, d=4)
    cfg = small_cfg(selector="oracle")
    scores = SELECTORS.get("oracle")(_inputs(q, k, cfg))
    expect = torch.zeros(2, 4, dtype=torch.float64)  # tiles x blocks
    for h in range(2):
        for i in range(13):
            logits = torch.tensor([float(q[0, h, i] @ k[0, 0, j]) / 2.0 for j in range(i + 1)],
                                  dtype=torch.float64)
            p = torch.softmax(logits, 0)
            for j in range(i + 1):
                expect[i // 8, j // 4] += p[j]
    assert torch.allclose(scores[0, 0], expect, atol=1e-12)


@pytest.mark.parametrize("name", ["moba", "infllm_v2", "phsa", "oracle"])
def test_selection_only_picks_candidates_and_respects_budget(name):
    q, k, _ = qkv(tq=29, tk=45)
    cfg = small_cfg(selector=name, top_k=3)
    sel = select_blocks(q, k, cfg, punctuation_mask=torch.rand(2, 45) < 0.2)
    assert sel.indices.shape == (2, 2, sel.n_tiles, 3)
    cand = candidate_blocks(sel.n_tiles, sel.first_tile, sel.n_blocks, 8, 4, 1, 2)
    for b in range(2):
        for h in range(2):
            for t in range(sel.n_tiles):
                chosen = [i for i in sel.indices[b, h, t].tolist() if i >= 0]
                assert len(chosen) == min(3, int(cand[t].sum()))
                assert len(set(chosen)) == len(chosen)
                assert all(cand[t, i] for i in chosen)


def test_oracle_selection_is_the_true_top_k():
    q, k, _ = qkv(b=1, hq=1, hkv=1, tq=40, d=4, seed=3)
    cfg = small_cfg(selector="oracle", top_k=2, query_tile=8)
    sel = select_blocks(q, k, cfg)
    last = sel.n_tiles - 1  # tile of rows 32..39, candidates blocks 1..5
    mass = torch.zeros(10, dtype=torch.float64)
    for i in range(32, 40):
        logits = torch.tensor([float(q[0, 0, i] @ k[0, 0, j]) / 2.0 for j in range(i + 1)], dtype=torch.float64)
        p = torch.softmax(logits, 0)
        for j in range(i + 1):
            mass[j // 4] += p[j]
    expect = sorted(torch.topk(mass[1:6], 2).indices.add(1).tolist())
    assert sel.indices[0, 0, last].tolist() == expect


def test_selection_mask_matches_naive_rule_and_sparsity_counts():
    q, k, _ = qkv(tq=23, tk=50)
    sel = select_blocks(q, k, small_cfg(selector="moba", query_tile=6))
    mask = selection_mask(sel)
    for b in range(2):
        for h in range(2):
            for i in range(23):
                for j in range(50):
                    assert bool(mask[b, h, i, j]) == naive_visible(sel, b, h, i, j)
    visible, causal = visible_counts(sel)
    assert torch.equal(visible, mask.sum(-1))
    assert sparsity(sel) == pytest.approx(1 - mask.sum().item() / (4 * causal.sum().item()))


def test_no_gradient_flows_through_the_choice():
    q, k, _ = qkv(grad=True, dtype=torch.float32)
    sel = select_blocks(q, k, small_cfg())
    assert not sel.indices.requires_grad


def test_nsa_selector_needs_a_branch_and_at_init_equals_infllm_v2():
    q, k, _ = qkv(tq=30)
    with pytest.raises(ValueError, match="NSABranch"):
        select_blocks(q, k, small_cfg(selector="nsa"))
    branch = NSABranch(4, 8, 4).double()
    a = select_blocks(q, k, small_cfg(selector="nsa"), branch=branch)
    b = select_blocks(q, k, small_cfg(selector="infllm_v2"))
    assert torch.equal(a.indices, b.indices)


def test_config_rejects_bad_values_with_one_sentence():
    with pytest.raises(ValueError, match="window=10 must be a multiple of block_size=4"):
        SparseAttentionConfig(block_size=4, window=10)
    with pytest.raises(ValueError, match="selector 'bogus' is unknown"):
        SparseAttentionConfig(selector="bogus")
    with pytest.raises(ValueError, match="top_k must be a non-negative int"):
        SparseAttentionConfig(top_k=-1)
    with pytest.raises(ValueError, match="lam must be in"):
        SparseAttentionConfig(lam=1.5)
    with pytest.raises(ValueError, match="unknown sparse attention option"):
        SparseAttentionConfig.from_dict({"topk": 3})
    cfg = SparseAttentionConfig(punctuation_ids=[3, 1])
    assert SparseAttentionConfig.from_dict(cfg.to_dict()) == cfg


def test_top_k_zero_and_empty_candidates_give_no_selection():
    q, k, _ = qkv(tq=9)
    sel = select_blocks(q, k, small_cfg(top_k=0))
    assert sel.indices.shape[-1] == 0
    sel = select_blocks(q, k, small_cfg(top_k=2, window=64))  # the window covers everything
    assert bool((sel.indices == -1).all())
