"""Zoo recipe `tiny-haystack`: a character-level Qwen2 trained *dense* to retrieve pass keys (PHSA notebook 09).

Training data are `tasks.haystack` passkey documents (prompt = punctuated filler + needle + question,
completion = the key and a full stop). The loss covers the needle, the question and the answer but not
the filler: the needle repeats its key ("The pass key is 68301. Remember it. 68301 is the pass key.")
so every document teaches copying twice, once at short range inside the needle and once at long range
from the question; unpredictable filler would only add noise to the loss.

Long contexts on a CPU budget: documents are short (`lengths`, a few hundred characters), and the
positions of the text after a random cut point are shifted by a random skip (PoSE, arXiv 2309.10400),
so the relative distances seen in training span up to `position_span` tokens and evaluating at 4k-16k
tokens stays within trained RoPE distances (`max_position_embeddings` = 32768).

`tiny-haystack-smoke` is the same recipe with a handful of steps, for CI smoke runs on a fresh clone.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

import torch
from transformers import Qwen2ForCausalLM

from workbench.models.recipes import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer
from workbench.models.zoo import register_recipe
from workbench.tasks import haystack
from workbench.train.sft import IGNORE_INDEX, SFTConfig, sft
from workbench.utils import seed_everything

TINY_HAYSTACK = dict(hidden=128, layers=2, heads=4, kv_heads=2, max_positions=32768, rope_theta=10000.0)


def haystack_batch(tokenizer, examples: Sequence[haystack.HaystackExample], label: str = "needles",
                   position_span: int = 0, rng: random.Random | None = None) -> dict:
    """Right-padded SFT batch of haystack examples (prompt + answer + ".").

    Args:
        label: which tokens carry the loss: "answer" (completion only), "needles" (needle sentences,
            question and completion) or "all" (every next token).
        position_span: > 0 adds PoSE `position_ids` [B, L]: positions after a random cut are shifted by a
            random skip so that the last position stays below `position_span`.

    Returns:
        dict with input_ids, attention_mask, labels [B, L] (−100 where no loss) and maybe position_ids.
    """
    if label not in ("answer", "needles", "all"):
        raise ValueError(f"label must be 'answer', 'needles' or 'all', got {label!r}")
    if not examples:
        raise ValueError("haystack_batch got no examples")
    rows, labelled = [], []
    for ex in examples:
        text = ex.prompt + ex.answer + "."
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        spans = [(len(ex.prompt), len(text))] if label != "all" else [(0, len(text))]
        if label == "needles":
            spans += [(ex.document.index(n), ex.document.index(n) + len(n)) for n in ex.needles]
            spans.append((len(ex.document), len(ex.prompt)))
        # a token carries the loss when its characters overlap a labelled span (BPE tokens may straddle)
        labelled.append([any(s < end and e > start for start, end in spans) for s, e in enc["offset_mapping"]])
        rows.append(enc["input_ids"])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE_INDEX)
    mask = torch.zeros_like(ids)
    for b, (row, lab) in enumerate(zip(rows, labelled)):
        n = len(row)
        ids[b, :n], mask[b, :n] = torch.tensor(row), 1
        keep = torch.tensor(lab, dtype=torch.bool)
        labels[b, :n] = torch.where(keep, ids[b, :n], torch.full_like(ids[b, :n], IGNORE_INDEX))
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if position_span > width:
        rng = rng or random.Random(0)
        pos = torch.arange(width).repeat(len(rows), 1)
        for b in range(len(rows)):
            cut = rng.randrange(1, width)
            pos[b, cut:] += rng.randrange(0, position_span - width + 1)
        out["position_ids"] = pos
    return out


def haystack_batches(tokenizer, batch_size: int, lengths: Sequence[int], seed: int, kinds: Sequence[str] = ("passkey",),
                     label: str = "needles", position_span: int = 0) -> Iterator[dict]:
    """Endless seeded batches; each batch has one length drawn from `lengths`, examples seeded from `seed`
    upward (the frozen eval split uses seeds 10000+, so training seeds < 10000 never overlap it)."""
    rng = random.Random(f"haystack-sft/{seed}")
    i = 0
    while True:
        length, kind = rng.choice(list(lengths)), rng.choice(list(kinds))
        exs = [haystack.make_example(kind, length, (seed * 7919 + i + j) % 10_000) for j in range(batch_size)]
        i += batch_size
        yield haystack_batch(tokenizer, exs, label, position_span, rng)


def build_tiny_haystack(seed: int, steps: int, batch_size: int, lengths: Sequence[int], position_span: int,
                        lr: float = 2e-3):
    """Build the tiny char-level Qwen2 and SFT it dense on passkey documents; returns (model, tokenizer, info)."""
    seed_everything(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), **TINY_HAYSTACK))
    model.config.pad_token_id, model.config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    batches = haystack_batches(tok, batch_size, lengths, seed, position_span=position_span)
    history = sft(model, batches, SFTConfig(steps=steps, lr=lr, warmup_steps=min(30, steps)),
                  desc="SFT tiny-haystack")
    acc = {}
    for length in (256, 1024):
        acc[f"passkey_teacher_forced_{length}"] = teacher_forced_accuracy(model, tok, haystack.generate(
            32, "passkey", length, seed=10_000))
    return model, tok, {"sft_steps": steps, "batch_size": batch_size, "lengths": list(lengths),
                        "position_span": position_span, "final_loss": history[-1]["loss"], **acc,
                        "parameters": sum(p.numel() for p in model.parameters()), "config": TINY_HAYSTACK}


@torch.no_grad()
def teacher_forced_accuracy(model, tokenizer, examples: Sequence[haystack.HaystackExample], batch_size: int = 8) -> float:
    """Fraction of examples whose answer + "." is the argmax at every answer position (= greedy exact match)."""
    model.eval()
    hits = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        batch = haystack_batch(tokenizer, chunk, label="answer")
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        pred, tgt = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        hits += int(((pred == tgt) | (tgt == IGNORE_INDEX)).all(-1).sum())
    return hits / max(1, len(examples))


@register_recipe("tiny-haystack", version="1")
def tiny_haystack(seed: int = 0):
    """Char-level Qwen2 (hidden 128, 2 layers) after dense SFT on 160-512-character passkey documents."""
    return build_tiny_haystack(seed, steps=600, batch_size=16, lengths=(160, 256, 384), position_span=16384)


@register_recipe("tiny-haystack-smoke", version="1")
def tiny_haystack_smoke(seed: int = 0):
    """The `tiny-haystack` recipe with 4 steps: a fast, untrained stand-in for CI smoke runs."""
    return build_tiny_haystack(seed, steps=4, batch_size=4, lengths=(160,), position_span=2048)
