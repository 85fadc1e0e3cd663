"""Tiny random Qwen2 models and a stub tokenizer for the analysis tests (a unique module name, not conftest)."""

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

VOCAB, PAD, EOS = 64, 0, 1


def tiny_qwen2(seed: int, eos_token_id: int = EOS) -> Qwen2ForCausalLM:
    """vocab 64, hidden 32, 2 layers; a wide init so next-token distributions are peaked and varied."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      initializer_range=0.2, tie_word_embeddings=False, bos_token_id=2,
                      eos_token_id=eos_token_id, pad_token_id=PAD)
    return Qwen2ForCausalLM(cfg).eval()


class StubTokenizer:
    """Ids -> space-separated numbers, dropping pad and EOS (as skip_special_tokens would)."""

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids if not (skip_special_tokens and i in (PAD, EOS)))
