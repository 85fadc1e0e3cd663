"""Sparse fine-tuning (PHSA's extreme-sparsity-adaptive training, arXiv 2601.02819, simplified).

    tuned, history = sparse_finetune(model, cfg.replace(selector="phsa"), batches, SFTConfig(steps=40))
"""

from __future__ import annotations

import copy
from typing import Iterator

from workbench.attention.config import SparseAttentionConfig
from workbench.attention.hf import enable_sparse_attention
from workbench.train.sft import SFTConfig, sft


def sparse_finetune(model, cfg: SparseAttentionConfig | dict, batches: Iterator[dict], sft_config=None, *,
                    tokenizer=None, desc: str | None = None):
    """PHSA's extreme-sparsity-adaptive training, simplified: SFT a copy of `model` with sparse attention
    on, at the configuration (selector, top-K, window) used at inference; no gradient through the choice.

    Args:
        model: the dense-trained causal LM (left untouched). cfg: the inference configuration.
        batches: dicts from `collate_sft`-style builders (input_ids, attention_mask, labels).
        sft_config: `SFTConfig` (steps, lr, ...). tokenizer: for punctuation ids when cfg has none.

    Returns:
        (the fine-tuned copy with sparse attention enabled, SFT history).
    """
    cfg = SparseAttentionConfig.from_dict(cfg)
    tuned = copy.deepcopy(model)
    enable_sparse_attention(tuned, cfg, tokenizer)
    history = sft(tuned, batches, sft_config or SFTConfig(steps=20), desc=desc or f"sparse SFT {cfg.selector}")
    return tuned, history
