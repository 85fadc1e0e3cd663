"""Tiny causal-LM architectures built from a transformers config (no weights from a hub).

    model = tiny_causal_lm(build_tokenizer(), hidden=256, layers=4)    # a randomly initialised Qwen2
"""

from __future__ import annotations

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def tiny_qwen2_config(vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4, kv_heads: int = 2,
                      max_positions: int = 512, **kw) -> Qwen2Config:
    """Config of a tiny Qwen2 causal LM (vocabulary rounded up to a multiple of 64)."""
    return Qwen2Config(
        vocab_size=(vocab_size + 63) // 64 * 64, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True, **kw,
    )


def tiny_causal_lm(tokenizer, seed: int | None = None, **config) -> Qwen2ForCausalLM:
    """A randomly initialised tiny Qwen2 (`tiny_qwen2_config(len(tokenizer), **config)`) whose model and
    generation configs know the tokenizer's PAD and EOS ids. `seed`: seeds torch's RNG first (None: the caller
    has seeded it)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tokenizer), **config))
    model.config.pad_token_id, model.config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    return model
