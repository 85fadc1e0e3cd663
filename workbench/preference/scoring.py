"""Sequence log-probabilities log π(y | I, Q) = Σ_t log π(y_t | y_<t, I, Q) of answers, for preference losses.

    logps, tokens = vl_sequence_logps(model, processor, prompts, answers, images)   # [B], [B]
    logps, tokens = text_sequence_logps(model, tokenizer, chat_prompts, answers)    # text-only pairs
    logps, tokens = sequence_logps(model, batch)                                    # any collated SFT batch

The answer tokens are those `collate_sft` / `collate_vl_sft` label (prompt, image and padding tokens are −100).
With `chunk` (the default, 1024) only the answer positions' hidden states go through the LM head, `chunk` rows at
a time under activation checkpointing (`models.chunked.chunked_logprobs`): no [B, T, V] logits tensor exists in
the forward or the backward. `chunk=None` takes the full-logits path (`selective_log_softmax` on [B, T, V]).
"""

from __future__ import annotations

from typing import Sequence

import torch

from workbench.models.chunked import chunked_logprobs, split_lm
from workbench.models.scoring import selective_log_softmax
from workbench.models.vlm import format_vl_example
from workbench.train.batches import collate_vl_sft
from workbench.train.sft import collate_sft

IGNORE = -100


def sequence_logps(model, batch: dict, chunk: int | None = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ of answer-token log-probs [B] in float32 or wider, answer token counts [B]) of a collated batch with
    `labels`; runs with whatever grad mode the caller set. `chunk`: see the module docstring."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    labels = batch.pop("labels")
    target = labels[:, 1:]
    mask = target != IGNORE
    parts = split_lm(model) if chunk else None
    if parts is None:
        logits = model(**batch).logits[:, :-1]
        per_token = selective_log_softmax(logits, target.clamp(min=0))
        return (per_token * mask).sum(-1), mask.sum(-1)
    decoder, head = parts
    hidden = decoder(**batch).last_hidden_state[:, :-1]
    rows, cols = mask.nonzero(as_tuple=True)
    logp, _ = chunked_logprobs(hidden[rows, cols], head, target[rows, cols], chunk=chunk)
    return logp.new_zeros(target.shape[0]).index_add(0, rows, logp), mask.sum(-1)


def text_sequence_logps(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], chunk: int | None = 1024):
    """`sequence_logps` of (prompt, answer) text pairs: prompts already in the chat format, answers scored with
    a trailing EOS (the SFT format of `collate_sft`)."""
    eos = tokenizer.eos_token
    return sequence_logps(model, collate_sft(tokenizer, list(prompts), [a + eos for a in answers]), chunk)


def vl_sequence_logps(model, processor, prompts: Sequence[str], answers: Sequence[str], images: Sequence,
                      chunk: int | None = 1024):
    """`sequence_logps` of (question, answer, image) triples in the SFT format (`format_vl_example`: the processor's
    chat template, the answer ending in EOS, which is scored too)."""
    pairs = [format_vl_example(q, a, processor) for q, a in zip(prompts, answers)]
    return sequence_logps(model, collate_vl_sft(processor, [p for p, _ in pairs], [c for _, c in pairs], list(images)),
                          chunk)
