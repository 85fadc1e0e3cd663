"""Zoo recipe `tiny-arith-long`: the base of the length-demanding arithmetic setting (FIPO, notebook 02).

A character-level Qwen2 (hidden 128, 4 layers, ~0.6M parameters; smaller than `tiny-arith` so the
multi-seed RL comparison fits a CPU budget) SFT'd from scratch on 2–5-operation problems of
`workbench.tasks.arithmetic_long` (values in [−9, 9]) written as chains of rewrites, where each example
stops early — jumps to `answer: N` — before each line with probability `stop_prob`. The base thus
writes the full chain most of the time, stops early some of the time, and is right more often when
it writes more: partial held-out accuracy on 4–5 operations, with response length as a lever.

    model, tok = load_model("tiny-arith-long")      # trained on first use (~3 CPU-minutes), then cached
"""

from __future__ import annotations

import random

from workbench.evaluation import evaluate
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer, format_example
from workbench.models.zoo import register_recipe
from workbench.rl.tasks import long_arithmetic_task
from workbench.tasks.arithmetic_long import long_eval_set, sample_long_problems, shortcut_cot
from workbench.train.batches import sft_batches
from workbench.train.sft import SFTConfig, collate_sft, sft
from workbench.utils import seed_everything

#: the SFT data of `tiny-arith-long` (the RL task and held-out split use the same max_abs and ops)
TINY_ARITH_LONG = dict(steps=(2, 5), max_abs=9, ops="+-*", stop_prob=0.1)


def long_sft_batches(tokenizer, batch_size: int, seed: int, exclude: frozenset, steps=(2, 5), max_abs: int = 9,
                     ops: str = "+-*", stop_prob: float = 0.1):
    """Endless SFT batches of fresh bounded problems with early-stopping chains (`shortcut_cot`)."""
    rng = random.Random(f"sft-long/{seed}")

    def draw(n: int) -> list:
        problems = sample_long_problems(n, rng, steps, max_abs=max_abs, ops=ops, exclude=exclude)
        return [format_example(p.question, shortcut_cot(p, rng, stop_prob)) for p in problems]

    return sft_batches(draw, lambda pairs: collate_sft(tokenizer, [a for a, _ in pairs], [b for _, b in pairs]), batch_size)


@register_recipe("tiny-arith-long", version="1")
def tiny_arith_long(seed: int = 0, sft_steps: int = 500, batch_size: int = 64, hidden: int = 128, layers: int = 4,
                    eval_n: int = 200):
    """Tiny char-level Qwen2 after `sft_steps` of SFT on the length-demanding arithmetic setting."""
    seed_everything(seed)
    tok = build_tokenizer()
    model = tiny_causal_lm(tok, hidden=hidden, layers=layers)
    spec = {k: v for k, v in TINY_ARITH_LONG.items() if k != "steps"}
    exclude = frozenset(p.question for p in long_eval_set(max_abs=spec["max_abs"], ops=spec["ops"]))
    batches = long_sft_batches(tok, batch_size, seed, exclude, steps=TINY_ARITH_LONG["steps"], **spec)
    history = sft(model, batches, SFTConfig(steps=sft_steps, lr=3e-3, warmup_steps=20), desc="SFT tiny-arith-long")
    task = long_arithmetic_task(max_abs=spec["max_abs"], ops=spec["ops"])
    ev = evaluate(model, tok, task, task.eval_problems(eval_n), max_new_tokens=64)
    return model, tok, {"sft_steps": sft_steps, "batch_size": batch_size, "final_loss": history[-1]["loss"],
                        "heldout_accuracy": ev.accuracy, "heldout_length": ev.length, "heldout_n": eval_n,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "task": {**TINY_ARITH_LONG, "steps": list(TINY_ARITH_LONG["steps"])}}


@register_recipe("tiny-arith-long-smoke", version="1")
def tiny_arith_long_smoke(seed: int = 0):
    """The `tiny-arith-long` recipe with 10 SFT steps: a fast, nearly untrained stand-in for CI smoke runs."""
    return tiny_arith_long(seed, sft_steps=10, batch_size=16, eval_n=16)
