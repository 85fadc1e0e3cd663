"""Punctuation token ids for PHSA (arXiv 2601.02819), from any Hugging Face tokenizer.

PHSA uses punctuation tokens as semantic-boundary anchors. With a character-level vocabulary a
punctuation token is one character; with BPE vocabularies (Qwen, Llama) many tokens merge
punctuation with spaces or newlines (".\\n", "),", "Ġ."), so we decode every id and keep those
whose text, stripped of whitespace, is non-empty and made only of punctuation characters
(`mode="only"`), or that contain any punctuation character (`mode="contains"`).
"""

from __future__ import annotations

import unicodedata

import torch
from torch import Tensor

# Sentence and clause boundaries, ASCII and full-width (CJK) forms.
DEFAULT_PUNCTUATION = ".,;:!?。，；：！？、"


def punctuation_token_ids(tokenizer, chars: str = DEFAULT_PUNCTUATION, mode: str = "only") -> list[int]:
    """Ids of the tokens that are (or contain) punctuation.

    Args:
        tokenizer: any HF tokenizer (`convert_ids_to_tokens` + `convert_tokens_to_string`).
        chars: the punctuation characters.
        mode: "only" - the stripped token text is made only of punctuation characters (Unicode
            category P*, e.g. quotes and brackets next to a full stop: ".\\"", ")."), at least one of
            them in `chars`; "contains" - the token text contains a character of `chars`.

    Returns:
        Sorted token ids (special tokens excluded).
    """
    if mode not in ("only", "contains"):
        raise ValueError(f"mode must be 'only' or 'contains', got {mode!r}")
    if not chars:
        raise ValueError("chars must name at least one punctuation character")
    wanted = set(chars)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    size = len(tokenizer)
    ids = []
    for i in range(size):
        if i in special:
            continue
        tok = tokenizer.convert_ids_to_tokens(i)
        if tok is None:
            continue
        text = tokenizer.convert_tokens_to_string([tok]).strip()
        if not text or not (set(text) & wanted):
            continue
        if mode == "contains" or all(unicodedata.category(c).startswith("P") for c in text):
            ids.append(i)
    return sorted(ids)


def punctuation_mask(input_ids: Tensor, punctuation_ids: list[int] | tuple[int, ...] | Tensor) -> Tensor:
    """Which positions hold a punctuation token.

    Args:
        input_ids: [B, T] long; punctuation_ids: the ids (e.g. from `punctuation_token_ids`).

    Returns:
        [B, T] bool.
    """
    ids = torch.as_tensor(list(punctuation_ids) if not isinstance(punctuation_ids, Tensor) else punctuation_ids,
                          dtype=input_ids.dtype, device=input_ids.device)
    if ids.numel() == 0:
        return torch.zeros_like(input_ids, dtype=torch.bool)
    return torch.isin(input_ids, ids)
