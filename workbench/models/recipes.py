"""Zoo recipes: tiny models built from configs and trained by the project's own code.

`tiny-arith`: a character-level Qwen2 (hidden 256, 4 layers, ~2.5M parameters) after SFT on
two-step single-digit `arithmetic` problems, stopped early so held-out greedy accuracy is partial
(RL then has signal: groups with mixed rewards).
"""

from __future__ import annotations

import random

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from workbench.models.tokenizer import build_tokenizer, format_example
from workbench.models.zoo import register_recipe
from workbench.tasks import arithmetic
from workbench.train.sft import SFTConfig, collate_sft, sft
from workbench.utils import seed_everything

TINY_ARITH = dict(steps=2, digits=1)


def tiny_qwen2_config(vocab_size: int, hidden: int = 256, layers: int = 4, heads: int = 4, kv_heads: int = 2,
                      max_positions: int = 512, **kw) -> Qwen2Config:
    """Config of a tiny Qwen2 causal LM (vocabulary rounded up to a multiple of 64)."""
    return Qwen2Config(
        vocab_size=(vocab_size + 63) // 64 * 64, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True, **kw,
    )


def arithmetic_batches(tokenizer, batch_size: int, seed: int, exclude: set[str], **task):
    """Endless SFT batches of fresh problems, skipping any question in `exclude` (the eval split)."""
    rng = random.Random(f"sft/{seed}")
    while True:
        probs = []
        while len(probs) < batch_size:
            p = arithmetic.make_problem(rng, **task)
            if p.question not in exclude:
                probs.append(p)
        pairs = [format_example(p.question, p.cot) for p in probs]
        yield collate_sft(tokenizer, [a for a, _ in pairs], [b for _, b in pairs])


@register_recipe("tiny-arith", version="1")
def tiny_arith(seed: int = 0, sft_steps: int = 200, batch_size: int = 64):
    """Tiny char-level Qwen2 after `sft_steps` of SFT on 2-step single-digit arithmetic."""
    from workbench.evaluation import evaluate

    seed_everything(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok)))
    model.config.pad_token_id, model.config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    held_out = arithmetic.load_eval_set()
    batches = arithmetic_batches(tok, batch_size, seed, {p.question for p in held_out}, **TINY_ARITH)
    history = sft(model, batches, SFTConfig(steps=sft_steps, lr=1e-3, warmup_steps=20), desc="SFT tiny-arith")
    acc = evaluate(model, tok, held_out[:200], arithmetic.reward, max_new_tokens=48, progress=False).accuracy
    n_params = sum(p.numel() for p in model.parameters())
    return model, tok, {"sft_steps": sft_steps, "batch_size": batch_size, "final_loss": history[-1]["loss"],
                        "heldout_accuracy_200": acc, "parameters": n_params, "task": TINY_ARITH}

from workbench.models import vlm  # noqa: E402,F401  (registers the tiny-shapes-vl recipe)
from workbench.models import recipes_haystack  # noqa: E402,F401  (registers tiny-haystack, tiny-haystack-smoke)
from workbench.models import recipes_long  # noqa: E402,F401  (registers tiny-arith-long)
