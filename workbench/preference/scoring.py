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
from workbench.models.scoring import completion_logprobs, selective_log_softmax
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
        logits = model(**batch, use_cache=False).logits[:, :-1]
        per_token = selective_log_softmax(logits, target.clamp(min=0))
        return (per_token * mask).sum(-1), mask.sum(-1)
    decoder, head = parts
    hidden = decoder(**batch, use_cache=False).last_hidden_state[:, :-1]
    rows, cols = mask.nonzero(as_tuple=True)
    logp, _ = chunked_logprobs(hidden[rows, cols], head, target[rows, cols], chunk=chunk)
    return logp.new_zeros(target.shape[0]).index_add(0, rows, logp), mask.sum(-1)


def text_sequence_logps(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], chunk: int | None = 1024,
                        packed: bool = False):
    """`sequence_logps` of (prompt, answer) text pairs: prompts already in the chat format, answers scored with
    a trailing EOS (the SFT format of `collate_sft`). `packed`: `packed_sequence_logps` instead (a pair's
    chosen and rejected answers behind one copy of its prompt, no padding)."""
    eos = tokenizer.eos_token
    batch = collate_sft(tokenizer, list(prompts), [a + eos for a in answers])
    return packed_sequence_logps(model, batch, chunk) if packed else sequence_logps(model, batch, chunk)


def packed_sequence_logps(model, batch: dict, chunk: int | None = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """`sequence_logps` through the padding-free packed forward (`models.packing`): the batch's rows are split into
    left-padded prompts (the unlabelled real tokens) and right-padded answers (the labelled ones), and rows with the
    same prompt share one packed row. Same values up to float rounding (a test checks them in float64)."""
    device = next(model.parameters()).device
    ids, mask, labels = batch["input_ids"], batch["attention_mask"].bool(), batch["labels"]
    answer = labels != IGNORE
    p_len, a_len = (mask & ~answer).sum(1), answer.sum(1)
    B, P, T = len(ids), int(p_len.max()), max(int(a_len.max()), 1)
    prompt_ids, prompt_mask = ids.new_zeros(B, P), ids.new_zeros(B, P)
    completion_ids, completion_mask = ids.new_zeros(B, T), ids.new_zeros(B, T)
    for i in range(B):  # collate_sft rows: prompt tokens, then answer tokens, then padding
        p, a = int(p_len[i]), int(a_len[i])
        prompt_ids[i, P - p:], prompt_mask[i, P - p:] = ids[i, :p], 1
        completion_ids[i, :a], completion_mask[i, :a] = ids[i, p:p + a], 1
    logp, _ = completion_logprobs(model, prompt_ids.to(device), prompt_mask.to(device), completion_ids.to(device),
                                  completion_mask.to(device), chunk=chunk, packed=True)
    return logp.sum(-1), completion_mask.sum(-1).to(device)


def vl_sequence_logps(model, processor, prompts: Sequence[str], answers: Sequence[str], images: Sequence,
                      chunk: int | None = 1024):
    """`sequence_logps` of (question, answer, image) triples in the SFT format (`format_vl_example`: the processor's
    chat template, the answer ending in EOS, which is scored too)."""
    pairs = [format_vl_example(q, a, processor) for q, a in zip(prompts, answers)]
    return sequence_logps(model, collate_vl_sft(processor, [p for p, _ in pairs], [c for _, c in pairs], list(images)),
                          chunk)
