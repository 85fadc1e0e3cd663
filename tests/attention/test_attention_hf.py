"""transformers integration on a tiny random Qwen2: sparse with all blocks == eager/sdpa logits, the
config switch, padding, generation with a KV cache, punctuation plumbing, NSA branch, recording."""

import pytest
import torch
from attn_helpers import tiny_qwen2

from workbench.attention.config import SparseAttentionConfig
from workbench.attention.hf import (IMPLEMENTATION, disable_sparse_attention, enable_sparse_attention,
                                    record_attention)
from workbench.attention.nsa import NSABranch

SMALL = dict(block_size=8, window=16, initial=8, query_tile=16)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 128, (2, 150), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("peer", ["eager", "sdpa"])
def test_all_blocks_selected_matches_dense_logits(peer, ids):
    model = tiny_qwen2(attn=peer)
    with torch.no_grad():
        ref = model(ids).logits
        cfg = enable_sparse_attention(model, selector="phsa", top_k=1000, punctuation_ids=[1, 2], **SMALL)
        assert model.config._attn_implementation == IMPLEMENTATION
        assert model.config.sparse_attention == cfg.to_dict()
        out = model(ids).logits
    assert torch.allclose(out, ref, atol=1e-5)


def test_config_dict_switches_top_k_and_dense_below(ids):
    model = tiny_qwen2()
    with torch.no_grad():
        ref = model(ids).logits
        enable_sparse_attention(model, selector="infllm_v2", top_k=1, **SMALL)
        sparse = model(ids).logits
        assert not torch.allclose(sparse, ref, atol=1e-3)
        model.config.sparse_attention["dense_below"] = 151  # InfLLM-v2-style short-context switch
        assert torch.allclose(model(ids).logits, ref, atol=1e-5)
        model.config.sparse_attention["dense_below"] = 0
        model.config.sparse_attention["top_k"] = 1000
        assert torch.allclose(model(ids).logits, ref, atol=1e-5)
        disable_sparse_attention(model, "eager")
        assert model.config._attn_implementation == "eager"


def test_left_padding_matches_eager_on_real_tokens(ids):
    model = tiny_qwen2()
    mask = torch.ones_like(ids)
    mask[0, :37] = 0
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        enable_sparse_attention(model, selector="moba", top_k=1000, **SMALL)
        out = model(ids, attention_mask=mask).logits
    assert torch.allclose(out[0, 37:], ref[0, 37:], atol=1e-5)
    assert torch.allclose(out[1], ref[1], atol=1e-5)


def test_greedy_generation_with_kv_cache_matches_dense(ids):
    model = tiny_qwen2()
    prompt = ids[:1, :70]
    with torch.no_grad():
        ref = model.generate(prompt, max_new_tokens=8, do_sample=False)
        enable_sparse_attention(model, selector="phsa", top_k=1000, punctuation_ids=[3, 4], **SMALL)
        out = model.generate(prompt, max_new_tokens=8, do_sample=False)
        assert model._workbench_punctuation.shape == (1, 77)  # the mask grew across decoding steps
    assert torch.equal(out, ref)


def test_punctuation_mask_reaches_every_layer_and_changes_phsa_selection(ids):
    model = tiny_qwen2()
    punct = [5, 6, 7, 8, 9, 10]
    enable_sparse_attention(model, selector="phsa", top_k=1, lam=0.0, punctuation_ids=punct, **SMALL)
    with torch.no_grad(), record_attention() as records:
        with_punct = model(ids).logits
    assert len(records) == 2
    expect = torch.isin(ids, torch.tensor(punct))
    assert all(torch.equal(r.punctuation_mask, expect) for r in records)
    model.config.sparse_attention["punctuation_ids"] = []  # no punctuation: M falls back to the mean key
    with torch.no_grad():
        mean_only = model(ids).logits
    model.config.sparse_attention["selector"] = "infllm_v2"
    with torch.no_grad():
        infllm = model(ids).logits
    assert torch.allclose(mean_only, infllm, atol=1e-6)
    assert not torch.allclose(with_punct, infllm, atol=1e-4)


def test_nsa_branch_starts_as_plain_sparse_attention_and_trains(ids):
    model = tiny_qwen2()
    enable_sparse_attention(model, selector="infllm_v2", top_k=2, **SMALL)
    with torch.no_grad():
        ref = model(ids).logits
    enable_sparse_attention(model, selector="nsa", top_k=2, **SMALL)
    branches = [m for m in model.modules() if isinstance(m, NSABranch)]
    assert len(branches) == 2
    out = model(ids, labels=ids)
    assert torch.allclose(out.logits, ref, atol=1e-5)  # gates start at (1, 0), pools at the mean
    out.loss.backward()
    assert all(b.gate_weight.grad is not None and b.gate_weight.grad.abs().sum() > 0 for b in branches)
    assert "model.layers.0.self_attn.nsa_branch.key_pool" in model.state_dict()


def test_sparse_training_step_has_gradients(ids):
    model = tiny_qwen2().train()
    enable_sparse_attention(model, SparseAttentionConfig(selector="phsa", top_k=1, **SMALL))
    loss = model(ids[:, :64], labels=ids[:, :64]).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.model.layers[0].self_attn.parameters())


def test_sliding_window_models_are_refused():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True, sliding_window=16,
                      max_window_layers=0)
    with pytest.raises(ValueError, match="full causal attention layers only"):
        enable_sparse_attention(Qwen2ForCausalLM(cfg))
