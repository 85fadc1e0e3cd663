"""The one-pass information-loss sweep equals the per-config metrics; block-mass recall equals the loop."""

import pytest
import torch
from attn_helpers import qkv, small_cfg, tiny_qwen2

from workbench.tasks import haystack

from workbench.attention.information_loss import (block_attention_mass, config_sparsity, information_loss_sweep,
                                                  mass_recall_from_blocks, relative_reduction, topk_selection)
from workbench.evaluation import evaluate
from workbench.train.batches import haystack_input_ids
from workbench.train.sparse import sparse_finetune
from workbench.attention.metrics import attention_mass_recall, information_loss_table
from workbench.attention.selectors import select_blocks


@pytest.mark.parametrize("tq,tk,query_tile", [(37, 37, 8), (37, 37, 4), (5, 29, 8)])
def test_block_mass_recall_and_oracle_match_the_direct_computation(tq, tk, query_tile):
    q, k, _ = qkv(b=2, hq=4, hkv=2, tq=tq, tk=tk, dtype=torch.float32)
    for top_k in (1, 2):
        cfg = small_cfg(selector="phsa", top_k=top_k, query_tile=query_tile)
        mass = block_attention_mass(q, k, cfg)
        assert mass.sum().item() == pytest.approx(2 * 4 * tq, rel=1e-5)  # every query row sums to 1
        oracle = select_blocks(q, k, cfg.replace(selector="oracle"))
        assert torch.equal(topk_selection(mass, cfg, tq, tk).indices, oracle.indices)
        sel = select_blocks(q, k, cfg)
        assert mass_recall_from_blocks(mass, sel, 4) == pytest.approx(attention_mass_recall(q, k, sel).item(), abs=1e-6)


def test_sweep_equals_information_loss_table_on_a_tiny_qwen2():
    model = tiny_qwen2(seed=1)
    ids = torch.randint(0, 128, (1, 70), generator=torch.Generator().manual_seed(0))
    cfg = small_cfg(punctuation_ids=(3, 7, 11, 19))
    selectors, top_ks = ["phsa", "oracle"], [3]
    rows = information_loss_sweep(model, ids, cfg, selectors, top_ks, skip_end_to_end=())
    ref = information_loss_table(model, ids, cfg, selectors, top_ks)
    assert model.config._attn_implementation == "eager"  # restored
    got = {(r["selector"], r["top_k"]): r for r in rows}
    for r in ref:
        g = got[(r["selector"], r["top_k"])]
        for key in ("sparsity", "relative_error", "mass_recall", "block_recall", "kl", "delta_nll"):
            assert g[key] == pytest.approx(r[key], rel=1e-4, abs=1e-6), (r["selector"], r["top_k"], key)
    assert got[("oracle", 3)]["block_recall"] == 1.0 and got[("phsa", 3)]["block_recall"] < 1.0


def test_config_sparsity_matches_a_real_selection_and_input_ids_have_the_length():
    from workbench.attention.blocks import sparsity
    from workbench.models.tokenizer import build_tokenizer

    q, k, _ = qkv(b=1, hq=2, hkv=1, tq=75, dtype=torch.float32)
    for top_k in (1, 2, 50):
        cfg = small_cfg(selector="moba", top_k=top_k)
        assert config_sparsity(cfg, 75) == pytest.approx(sparsity(select_blocks(q, k, cfg)), abs=1e-12)
    tok = build_tokenizer()
    ids, labels = haystack_input_ids(tok, 200, [0, 1])
    assert ids.shape == labels.shape == (2, 200)
    ex = haystack.make_example("passkey", 200, 1)
    assert tok.decode(ids[1]) == (ex.prompt + ex.answer + ".")[-200:]
    assert tok.decode(labels[1, -6:]) == ex.answer + "." and (labels[1, :-6] == -100).sum() > 100


def test_sweep_kl_and_delta_nll_use_the_labelled_positions():
    from workbench.attention.metrics import delta_nll, next_token_kl

    model = tiny_qwen2(seed=3)
    ids = torch.randint(0, 128, (1, 50), generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(ids, -100)
    labels[:, 30:40] = ids[:, 30:40]
    cfg = small_cfg(selector="infllm_v2", top_k=1)
    row = information_loss_sweep(model, ids, cfg, ["infllm_v2"], [1], labels=labels)[0]
    from workbench.attention.hf import enable_sparse_attention
    with torch.no_grad():
        enable_sparse_attention(model, cfg.replace(selector="dense"))
        dense = model(input_ids=ids).logits
        enable_sparse_attention(model, cfg)
        sparse = model(input_ids=ids).logits
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 29:39] = True  # logits at t predict the labelled token t + 1
    assert row["kl"] == pytest.approx(float(next_token_kl(dense, sparse, mask)), rel=1e-5)
    assert row["delta_nll"] == pytest.approx(float(delta_nll(dense, sparse, labels)), rel=1e-5, abs=1e-7)


def test_relative_reduction_picks_the_setting_nearest_the_sparsity_floor():
    rows = [{"selector": s, "length": 64, "top_k": k, "sparsity": sp, "relative_error": e}
            for s, k, sp, e in [("infllm_v2", 1, 0.98, 0.5), ("infllm_v2", 2, 0.975, 0.4), ("infllm_v2", 4, 0.96, 0.3),
                                ("phsa", 1, 0.98, 0.45), ("phsa", 2, 0.975, 0.3), ("phsa", 4, 0.96, 0.1)]]
    out = relative_reduction(rows, "relative_error", "phsa", "infllm_v2", 0.97)
    assert out["top_k"] == 2 and out["reduction_pct"] == pytest.approx(25.0)
    with pytest.raises(ValueError, match="reaches sparsity 0.99"):
        relative_reduction(rows, "relative_error", "phsa", "infllm_v2", 0.99)
    with pytest.raises(ValueError, match="metric 'nope' is unknown"):
        relative_reduction(rows, "nope", "phsa", "infllm_v2", 0.97)


def test_sparse_finetune_changes_a_copy_and_niah_scores_it():
    from workbench.models.tokenizer import build_tokenizer

    tok = build_tokenizer()
    model = tiny_qwen2(seed=2)
    before = [p.clone() for p in model.parameters()]
    ids = torch.randint(0, 100, (2, 48), generator=torch.Generator().manual_seed(0))
    batches = iter([{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}] * 2)
    from workbench.train.sft import SFTConfig

    tuned, hist = sparse_finetune(model, small_cfg(selector="nsa"), batches, SFTConfig(steps=2, warmup_steps=1,
                                                                                      log_every=1))
    assert len(hist) == 2 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert tuned.config._attn_implementation == "workbench_sparse"
    assert any(not torch.equal(a, b) for a, b in zip(before, tuned.parameters()))
    exs = haystack.generate(2, "passkey", 160, seed=0)
    res = evaluate(tuned, tok, haystack.niah_task("passkey", 160), exs, batch_size=2,
                   max_new_tokens=haystack.answer_token_budget(tok, exs))
    assert res.accuracy == 0.0 and len(res.completions) == 2  # an untrained model does not find the key


def test_niah_floor_names_the_references_that_retrieve():
    """A NIAH comparison at the floor says so, and names the dense / oracle copies' accuracy when they ran."""
    from workbench.experiments.phsa import floor_reason
    from workbench.experiments.phsa_niah import NIAH

    per = {"dense": {"after": 0.55}, "oracle": {"after": 1.0}, "phsa": {"after": 0.0}, "infllm_v2": {"after": 0.0}}
    niah = NIAH(per, {}, {}, [], 0.94, 4096, 2, "passkey", 40)
    reason = floor_reason(niah)
    assert reason.startswith("neither phsa nor infllm_v2 retrieves") and "dense 55%" in reason and "oracle 100%" in reason
    bare = floor_reason(NIAH({"phsa": {"after": 0.0}, "infllm_v2": {"after": 0.0}}, {}, {}, [], 0.5, 256, 2, "passkey", 1))
    assert bare.endswith("nothing compared")
