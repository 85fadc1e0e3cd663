"""The chunked-log-probs lever (RLConfig.logits_chunk) leaves the RL run unchanged: same metrics and weights."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden"))
from fingerprints import digit_task, tiny_lm  # noqa: E402


def _run(chunk: int, method: str):
    from workbench.rl import RLConfig, train

    model, tok = tiny_lm(0)
    cfg = RLConfig.for_method(method, num_prompts=4, num_generations=4, max_new_tokens=8, micro_batch_size=8, lr=1e-2,
                              progress=False, steps=2, eval_every=2, eval_n=4, logits_chunk=chunk)
    res = train(model, tok, digit_task(), cfg)
    return res, torch.cat([p.detach().flatten() for p in res.model.parameters()])


@pytest.mark.parametrize("method", ["grpo", "dapo"])
def test_logits_chunk_leaves_training_unchanged(method):
    full, w_full = _run(0, method)
    part, w_part = _run(3, method)
    assert torch.allclose(w_full, w_part, atol=1e-5, rtol=1e-4)
    for a, b in zip(full.history, part.history):
        assert a.get("reward_mean") == pytest.approx(b.get("reward_mean"), abs=1e-6)


def test_auto_logits_chunk_follows_the_vocabulary():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from workbench.rl import RLConfig
    from workbench.rl.config import AUTO_CHUNK_VOCAB, AUTO_LOGITS_CHUNK, resolve_logits_chunk

    def lm(vocab):
        return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=1))

    assert RLConfig().logits_chunk is None  # auto
    assert resolve_logits_chunk(RLConfig(), lm(128)).logits_chunk == 0
    assert resolve_logits_chunk(RLConfig(), lm(AUTO_CHUNK_VOCAB)).logits_chunk == AUTO_LOGITS_CHUNK
    assert resolve_logits_chunk(RLConfig(logits_chunk=0), lm(AUTO_CHUNK_VOCAB)).logits_chunk == 0  # explicit wins
    with pytest.raises(ValueError, match="logits_chunk must be an integer >= 0, got -1"):
        RLConfig(logits_chunk=-1).validate()
