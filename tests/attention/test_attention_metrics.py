"""Information-loss metrics against naive float64 references, and on a tiny Qwen2 end to end."""

import math

import pytest
import torch
from attn_helpers import naive_visible, qkv, small_cfg, tiny_qwen2

from workbench.attention.blocks import BlockSelection
from workbench.attention.metrics import (attention_mass_recall, block_recall, delta_nll, layer_information_loss,
                                         model_information_loss, next_token_kl, relative_output_error)
from workbench.attention.selectors import select_blocks


def test_relative_output_error_matches_formula_and_handles_zero():
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    expect = math.sqrt(sum((x - y) ** 2 for x, y in zip(a.flatten().tolist(), b.flatten().tolist())))
    expect /= math.sqrt(sum(x * x for x in a.flatten().tolist()))
    assert relative_output_error(a, b).item() == pytest.approx(expect, rel=1e-12)
    zero = torch.zeros(2, 2)
    assert relative_output_error(zero, zero).item() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        relative_output_error(a, b[:2])


def test_attention_mass_recall_matches_loop():
    q, k, _ = qkv(b=1, hq=2, hkv=1, tq=21, d=4)
    sel = select_blocks(q, k, small_cfg(selector="moba", top_k=1))
    total = 0.0
    for h in range(2):
        for i in range(21):
            logits = torch.tensor([float(q[0, h, i] @ k[0, 0, j]) / 2.0 for j in range(i + 1)], dtype=torch.float64)
            p = torch.softmax(logits, 0)
            total += sum(float(p[j]) for j in range(i + 1) if naive_visible(sel, 0, 0, i, j))
    got = attention_mass_recall(q, k, sel, rows_per_chunk=5).item()
    assert got == pytest.approx(total / 42, rel=1e-12)
    full = select_blocks(q, k, small_cfg(top_k=1000))
    assert attention_mass_recall(q, k, full).item() == pytest.approx(1.0, abs=1e-12)


def test_block_recall_counts_oracle_hits():
    def sel(idx):
        return BlockSelection(torch.tensor(idx).view(1, 1, len(idx), -1), 4, 4, 1, 1, 8, 8)

    assert block_recall(sel([[1, 2], [-1, 3]]), sel([[2, 5], [-1, 3]])).item() == pytest.approx(2 / 3)
    assert block_recall(sel([[-1, -1]]), sel([[-1, -1]])).item() == 1.0  # nothing to recall


def test_next_token_kl_and_delta_nll_match_loops():
    g = torch.Generator().manual_seed(0)
    ld, ls = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    labels = torch.randint(0, 7, (2, 5), generator=g)
    labels[1, 3] = -100
    kl, n = 0.0, 0
    for b in range(2):
        for t in range(5):
            pd, ps = torch.softmax(ld[b, t].double(), 0), torch.softmax(ls[b, t].double(), 0)
            kl += float((pd * (pd.log() - ps.log())).sum())
            n += 1
    assert next_token_kl(ld, ls).item() == pytest.approx(kl / n, rel=1e-10)
    assert next_token_kl(ld, ld).item() == pytest.approx(0.0, abs=1e-12)
    nd = ns = 0.0
    cnt = 0
    for b in range(2):
        for t in range(4):
            y = int(labels[b, t + 1])
            if y == -100:
                continue
            nd -= float(torch.log_softmax(ld[b, t].double(), 0)[y])
            ns -= float(torch.log_softmax(ls[b, t].double(), 0)[y])
            cnt += 1
    assert delta_nll(ld, ls, labels).item() == pytest.approx((ns - nd) / cnt, rel=1e-10)
    assert delta_nll(ld, ls, torch.full_like(labels, -100)).item() == 0.0  # no targets: 0, not NaN


def test_layer_loss_is_lossless_with_all_blocks_and_lossy_at_high_sparsity():
    q, k, v = qkv(tq=48)
    full = layer_information_loss(q, k, v, small_cfg(top_k=1000))
    assert full.relative_error == pytest.approx(0.0, abs=1e-12)
    assert full.mass_recall == pytest.approx(1.0, abs=1e-12) and full.sparsity == 0.0
    sparse = layer_information_loss(q, k, v, small_cfg(top_k=1, selector="oracle"))
    assert sparse.relative_error > 0 and sparse.mass_recall < 1 and sparse.block_recall == 1.0
    assert 0 < sparse.sparsity < 1


def test_model_information_loss_on_tiny_qwen2_restores_the_model():
    model = tiny_qwen2(attn="sdpa")
    ids = torch.randint(0, 128, (1, 96), generator=torch.Generator().manual_seed(0))
    full = model_information_loss(model, ids, small_cfg(top_k=1000, block_size=8, window=16, initial=8,
                                                        query_tile=16))
    assert full.kl == pytest.approx(0.0, abs=1e-9) and full.delta_nll == pytest.approx(0.0, abs=1e-6)
    assert len(full.layers) == 2 and full.mean("mass_recall") == pytest.approx(1.0, abs=1e-6)
    loss = model_information_loss(model, ids, small_cfg(top_k=1, block_size=8, window=16, initial=8,
                                                        query_tile=16))
    assert loss.kl > 0 and loss.mean("relative_error") > 0
    assert model.config._attn_implementation == "sdpa"


def test_information_loss_table_rows():
    from workbench.attention.metrics import information_loss_table

    model = tiny_qwen2(attn="sdpa")
    ids = torch.randint(0, 128, (1, 64), generator=torch.Generator().manual_seed(1))
    cfg = small_cfg(block_size=8, window=16, initial=8, query_tile=16)
    rows = information_loss_table(model, ids, cfg, ["moba", "oracle"], [1, 2], per_layer=False)
    assert [(r["selector"], r["top_k"]) for r in rows] == [("moba", 1), ("moba", 2), ("oracle", 1), ("oracle", 2)]
    assert all(r["kl"] >= 0 for r in rows)
