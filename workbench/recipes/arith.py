"""Zoo recipe `tiny-arith`: the base of the quickstart and of the Δlog p notebook.

`tiny-arith`: a character-level Qwen2 (hidden 256, 4 layers, ~2.5M parameters) after SFT on
two-step single-digit `arithmetic` problems, stopped early so held-out greedy accuracy is partial
(RL then has signal: groups with mixed rewards).
"""

from __future__ import annotations

import random


from workbench.evaluation import evaluate
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer, format_example
from workbench.models.zoo import register_recipe
from workbench.rl.tasks import arithmetic_task
from workbench.tasks import arithmetic
from workbench.train.batches import sft_batches
from workbench.train.sft import SFTConfig, collate_sft, sft
from workbench.utils import seed_everything

TINY_ARITH = dict(steps=2, digits=1)


def arithmetic_batches(tokenizer, batch_size: int, seed: int, exclude: set[str], **task):
    """Endless SFT batches of fresh problems (stream `sft/<seed>`), skipping any question in `exclude` (the eval split)."""
    rng = random.Random(f"sft/{seed}")

    def draw(n: int) -> list:
        probs = []
        while len(probs) < n:
            p = arithmetic.make_problem(rng, **task)
            if p.question not in exclude:
                probs.append(p)
        return [format_example(p.question, p.cot) for p in probs]

    return sft_batches(draw, lambda pairs: collate_sft(tokenizer, [a for a, _ in pairs], [b for _, b in pairs]), batch_size)


@register_recipe("tiny-arith", version="1")
def tiny_arith(seed: int = 0, sft_steps: int = 200, batch_size: int = 64):
    """Tiny char-level Qwen2 after `sft_steps` of SFT on 2-step single-digit arithmetic."""
    seed_everything(seed)
    tok = build_tokenizer()
    model = tiny_causal_lm(tok)
    held_out = arithmetic.load_eval_set()
    batches = arithmetic_batches(tok, batch_size, seed, {p.question for p in held_out}, **TINY_ARITH)
    history = sft(model, batches, SFTConfig(steps=sft_steps, lr=1e-3, warmup_steps=20), desc="SFT tiny-arith")
    acc = evaluate(model, tok, arithmetic_task(), held_out[:200], max_new_tokens=48).accuracy
    n_params = sum(p.numel() for p in model.parameters())
    return model, tok, {"sft_steps": sft_steps, "batch_size": batch_size, "final_loss": history[-1]["loss"],
                        "heldout_accuracy_200": acc, "parameters": n_params, "task": TINY_ARITH}
