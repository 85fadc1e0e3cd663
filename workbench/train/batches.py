"""SFT batches: one endless builder over a seeded example stream, and the collates it feeds.

    batches = sft_batches(draw, collate)      # draw(n) -> n examples (owns its RNG); collate(examples) -> batch
    sft(model, batches, SFTConfig(steps=200))

A collate turns examples into a right-padded batch dict (`input_ids`, `attention_mask`, `labels` with
−100 where no loss): `sft.collate_sft` for (prompt, completion) strings, `collate_vl_sft` for prompts
with images, `collate_video_sft` for prompts with a video, `collate_haystack` for long haystack documents
(loss on the needles and the answer).
"""

from __future__ import annotations

import random
import re
from typing import Callable, Iterator, Sequence

import torch

from workbench.models.vlm import encode_vl_prompts
from workbench.train.sft import IGNORE_INDEX


def sft_batches(draw: Callable[[int], Sequence], collate: Callable[[Sequence], dict], batch_size: int) -> Iterator[dict]:
    """Endless batches `collate(draw(batch_size))`; `draw` is called once per batch and owns the stream's
    state (its RNG or counter), so the same seed gives the same batches.

    Raises ValueError for a batch size below 1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    while True:
        yield collate(draw(batch_size))


def _prompt_masked(encode, prompts: Sequence[str], completions: Sequence[str]) -> dict:
    """`encode(texts)` of prompt + completion (right-padded) plus `labels` [B, L]: `input_ids` on completion tokens,
    −100 on prompt, visual and padding tokens (prompt lengths from `encode(prompts)`)."""
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    batch = encode([p + c for p, c in zip(prompts, completions)])
    prompt_lens = encode(list(prompts))["attention_mask"].sum(1)
    positions = torch.arange(batch["input_ids"].size(1))[None]
    keep = (positions >= prompt_lens[:, None]) & batch["attention_mask"].bool()
    batch["labels"] = batch["input_ids"].masked_fill(~keep, -100)
    return batch


def collate_vl_sft(processor, prompts: Sequence[str], completions: Sequence[str], images: Sequence) -> dict:
    """Right-padded SFT batch with images: `encode_vl_prompts` of prompt + completion, plus `labels`
    [B, L] equal to `input_ids` on completion tokens and −100 on prompt, image and padding tokens."""
    return _prompt_masked(lambda texts: encode_vl_prompts(processor, texts, images, padding_side="right"),
                          prompts, completions)


def collate_video_sft(processor, prompts: Sequence[str], completions: Sequence[str], videos: Sequence,
                      repeat_frames: int = 1) -> dict:
    """Right-padded SFT batch with one video per row (`models.video.encode_video_prompts` of prompt + completion),
    plus `labels` [B, L] equal to `input_ids` on the assistant's tokens and −100 on prompt, frame and padding
    tokens (REACT's stage-1 masked loss)."""
    from workbench.models.video import encode_video_prompts

    return _prompt_masked(lambda texts: encode_video_prompts(processor, texts, videos, padding_side="right",
                                                             repeat_frames=repeat_frames), prompts, completions)


def collate_haystack(tokenizer, examples: Sequence, label: str = "needles",
                   position_span: int = 0, rng: random.Random | None = None) -> dict:
    """Right-padded SFT batch of haystack examples (`tasks.haystack.HaystackExample`: prompt + answer + ".").

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
        raise ValueError("collate_haystack got no examples")
    rows, labelled = [], []
    for ex in examples:
        text = ex.prompt + ex.answer + "."
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        spans = [(len(ex.prompt), len(text))] if label != "all" else [(0, len(text))]
        unpredictable = []
        if label == "needles":
            spans += [(ex.document.index(n), ex.document.index(n) + len(n)) for n in ex.needles]
            spans.append((len(ex.document), len(ex.prompt)))
            unpredictable = _first_numbers(ex)
        # a token carries the loss when its characters overlap a labelled span (BPE tokens may straddle)
        # and not a random number's first appearance
        labelled.append([any(s < end and e > start for start, end in spans)
                         and not any(s < end and e > start for start, end in unpredictable)
                         for s, e in enc["offset_mapping"]])
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


def _first_numbers(ex) -> list[tuple[int, int]]:
    """Character spans of each number's first appearance in the document (random, so not predictable)."""
    spans, seen = [], set()
    for m in re.finditer(r"\d+", ex.document):
        if m.group() not in seen:
            seen.add(m.group())
            spans.append(m.span())
    return spans


def haystack_input_ids(tokenizer, length: int, seeds: Sequence[int], kind: str = "passkey") -> tuple[torch.Tensor, torch.Tensor]:
    """Haystack documents with their answers, as exactly `length` tokens each, and their labels.

    Each text is prompt + answer + "." (`collate_haystack`); its first tokens are dropped to reach `length`
    (the needle sits at depth >= 5%, the question and answer at the end stay). Documents are made in
    characters, one token each for the char-level tokenizer; for BPE tokenizers the text is grown until it
    has enough tokens.

    Returns:
        input_ids [len(seeds), length] and labels [len(seeds), length]: the token ids on the needle(s),
        the question and the answer (each number's first appearance excluded), −100 elsewhere.
    """
    from workbench.tasks import haystack

    ids, labels = [], []
    for seed in seeds:
        chars = length
        while True:
            batch = collate_haystack(tokenizer, [haystack.make_example(kind, chars, seed)], label="needles")
            n = batch["input_ids"].shape[1]
            if n >= length:
                ids.append(batch["input_ids"][0, n - length:])
                labels.append(batch["labels"][0, n - length:])
                break
            chars = int(chars * 1.1 * length / max(1, n)) + 16
    return torch.stack(ids), torch.stack(labels)
