"""Zoo recipe `tiny-haystack`: a character-level Qwen2 trained *dense* to retrieve pass keys (PHSA notebook 09).

Training data are `tasks.haystack` passkey documents (prompt = punctuated filler + needle + question,
completion = the key and a full stop). The loss covers the needle, the question and the answer, but not
the filler (unpredictable prose) nor the first appearance of each number (a random key cannot be
predicted; its later copies can). The needle repeats its key ("The pass key is 68301. Remember it.
68301 is the pass key."), so every document teaches copying twice, at short range inside the needle
and at long range from the question. Masking the unpredictable first key was what let the copy circuit
form within a few hundred steps in our runs.

Long contexts on a CPU budget: documents are short (at most 1024 characters), and the positions of the
text after a random cut point are shifted by a random skip (PoSE, arXiv 2309.10400), so the relative
distances seen in training span up to 16k tokens (`max_position_embeddings` = 32768). Without the
shifts the model keyed on the needle's distance and failed beyond 160 characters; with them it still
fails beyond ~4k characters dense, because the needle's attention is diluted by thousands of filler
tokens (an oracle-selected top-2 sparse attention retrieves it at 8k: see notebook 09).

`tiny-haystack-smoke` is the same recipe cut to 4 steps, for CI smoke runs on a fresh clone (seconds).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

import torch
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer
from workbench.models.zoo import register_recipe
from workbench.tasks import haystack
from workbench.train.batches import collate_haystack, sft_batches
from workbench.train.sft import IGNORE_INDEX, SFTConfig, sft
from workbench.utils import seed_everything

TINY_HAYSTACK = dict(hidden=128, layers=2, heads=4, kv_heads=2, max_positions=32768, rope_theta=10000.0)


def haystack_batches(tokenizer, batch_size: int, lengths: Sequence[int], seed: int, kinds: Sequence[str] = ("passkey",),
                     label: str = "needles", position_span: int = 0) -> Iterator[dict]:
    """Endless seeded batches; each batch has one length drawn from `lengths`, examples seeded from `seed`
    upward (the frozen eval split uses seeds 10000+, so training seeds < 10000 never overlap it). One RNG
    draws each batch's length and kind, then its PoSE shifts (`train.batches.collate_haystack`)."""
    rng = random.Random(f"haystack-sft/{seed}")
    drawn = [0]

    def draw(n: int) -> list:
        length, kind = rng.choice(list(lengths)), rng.choice(list(kinds))
        i, drawn[0] = drawn[0], drawn[0] + n
        return [haystack.make_example(kind, length, (seed * 7919 + i + j) % 10_000) for j in range(n)]

    return sft_batches(draw, lambda exs: collate_haystack(tokenizer, exs, label, position_span, rng), batch_size)


@dataclass(frozen=True)
class Phase:
    """One SFT phase: `steps` of `batch_size` documents with lengths drawn from `lengths`, PoSE positions
    spanning `position_span` tokens, cosine learning rate from `lr`."""

    steps: int
    batch_size: int
    lengths: tuple[int, ...]
    position_span: int
    lr: float
    warmup: int


# Phase 1 forms the copy circuit on short documents (the needle sits a few dozen characters back, and PoSE
# shifts stop it from keying on that distance); phase 2 teaches it to ignore hundreds of filler tokens.
# Measured (seed 0, 1 thread): 1.00 / 1.00 / 0.94 / 0.88 / 0.50 / 0.00 greedy passkey exact match at
# 160 / 512 / 1024 / 2048 / 4096 / 8192 characters; the oracle top-2 sparse model does better at 4k-8k.
TINY_HAYSTACK_PHASES = (Phase(800, 32, (112, 128, 160), 16384, 2e-3, 30),
                        Phase(400, 8, (160, 256, 512, 768, 1024), 16384, 1e-3, 10))


def build_tiny_haystack(seed: int, phases: Sequence[Phase], eval_lengths: Sequence[int] = (512, 2048), n_eval: int = 16):
    """Build the tiny char-level Qwen2 and SFT it dense on passkey documents, phase by phase.

    Returns:
        (model, tokenizer, info) with the loss after each phase and teacher-forced passkey accuracy on
        `n_eval` held-out documents at each of `eval_lengths`.
    """
    seed_everything(seed)
    tok = build_tokenizer()
    model = tiny_causal_lm(tok, **TINY_HAYSTACK)
    losses = []
    for i, ph in enumerate(phases):
        batches = haystack_batches(tok, ph.batch_size, ph.lengths, seed * 100 + i, position_span=ph.position_span)
        history = sft(model, batches, SFTConfig(steps=ph.steps, lr=ph.lr, warmup_steps=min(ph.warmup, ph.steps)),
                      desc=f"SFT tiny-haystack phase {i + 1}")
        losses.append(history[-1]["loss"])
    acc = {f"passkey_teacher_forced_{n}": teacher_forced_accuracy(model, tok, haystack.generate(
        n_eval, "passkey", n, seed=10_000)) for n in eval_lengths}
    return model, tok, {"phases": [asdict(ph) for ph in phases], "final_loss_per_phase": losses, **acc,
                        "parameters": sum(p.numel() for p in model.parameters()), "config": TINY_HAYSTACK}


@torch.no_grad()
def teacher_forced_accuracy(model, tokenizer, examples: Sequence[haystack.HaystackExample], batch_size: int = 8) -> float:
    """Fraction of examples whose answer + "." is the argmax at every answer position (= greedy exact match)."""
    model.eval()
    hits = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        batch = collate_haystack(tokenizer, chunk, label="answer")
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        pred, tgt = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        hits += int(((pred == tgt) | (tgt == IGNORE_INDEX)).all(-1).sum())
    return hits / max(1, len(examples))


@register_recipe("tiny-haystack", version="1")
def tiny_haystack(seed: int = 0):
    """Char-level Qwen2 (hidden 128, 2 layers, 0.3M parameters) after two phases of dense passkey SFT."""
    return build_tiny_haystack(seed, TINY_HAYSTACK_PHASES)


@register_recipe("tiny-haystack-smoke", version="1")
def tiny_haystack_smoke(seed: int = 0):
    """The `tiny-haystack` recipe cut to 4 steps: a fast, untrained stand-in for CI smoke runs."""
    return build_tiny_haystack(seed, (Phase(4, 4, (160,), 2048, 2e-3, 2),), eval_lengths=(256,), n_eval=4)
