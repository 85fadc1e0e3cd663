"""Hugging Face integration: sparse attention as a transformers attention implementation.

`enable_sparse_attention(model, cfg, tokenizer)` registers `"workbench_sparse"` with
`transformers.AttentionInterface` (and a padding-only mask builder with `AttentionMaskInterface`),
stores the config as `model.config.sparse_attention` (a plain dict: edit it to switch selector,
top-K, window, ... between calls) and switches the model to it. Any decoder that dispatches through
`ALL_ATTENTION_FUNCTIONS` (Qwen2, Qwen3, Llama, ...) then runs block-sparse attention, dense below
`dense_below` key positions as InfLLM v2 does (arXiv 2506.07900, PHSA arXiv 2601.02819).

PHSA needs punctuation positions: a forward pre-hook turns `input_ids` into a `punctuation_mask`
kwarg (kept across decoding steps of a KV cache), which transformers forwards to every attention call.

Limits, stated: causal full-attention layers only (sliding-window layers are refused); the mask
passed to attention carries key padding only (packed sequences are not supported); with a KV cache
the queries are the last positions of the cache (dynamic caches, not static ones); attention
dropout is not applied in sparse mode.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from workbench.attention.config import SparseAttentionConfig
from workbench.attention.nsa import NSABranch
from workbench.attention.punctuation import punctuation_mask, punctuation_token_ids
from workbench.attention.sparse import sparse_attention

IMPLEMENTATION = "workbench_sparse"
_RECORDS: list | None = None  # set by `record_attention`


@dataclass
class LayerRecord:
    """Inputs of one attention call, detached: q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D], masks [B, Tk]."""

    layer_idx: int
    q: Tensor
    k: Tensor
    v: Tensor
    scale: float
    punctuation_mask: Tensor | None
    key_padding_mask: Tensor | None


def key_padding_only_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
                          mask_function=None, attention_mask: Tensor | None = None, **kwargs) -> Tensor | None:
    """Mask builder for `AttentionMaskInterface`: the 2-D key padding mask [B, kv_length] (None when no padding).

    Causality and sparsity are applied inside the attention function, so no [B, 1, Tq, Tk] mask is built.
    """
    if attention_mask is None:
        return None
    mask = attention_mask[:, kv_offset:kv_offset + kv_length].bool()
    return None if bool(mask.all()) else mask


def register_sparse_attention() -> str:
    """Register the attention function and its mask builder with transformers (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(IMPLEMENTATION, sparse_attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, key_padding_only_mask)
    return IMPLEMENTATION


def _key_padding(attention_mask: Tensor | None, kv_len: int) -> Tensor | None:
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4:  # a prepared mask: the last query row sees every real key
        row = attention_mask[:, 0, -1, :]
        mask = row if row.dtype == torch.bool else row == 0
    else:
        mask = attention_mask.bool()
    mask = mask[:, -kv_len:]
    return None if bool(mask.all()) else mask


def sparse_attention_forward(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                             attention_mask: Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                             is_causal: bool | None = None, **kwargs: Any) -> tuple[Tensor, None]:
    """The registered attention function: q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D] -> ([B, Tq, Hq, D], None).

    Reads `module.config.sparse_attention` (a `SparseAttentionConfig` dict) and the optional
    `punctuation_mask` kwarg [B, Tk]; records its inputs inside `record_attention`.
    """
    cfg = SparseAttentionConfig.from_dict(getattr(module.config, "sparse_attention", None) or {})
    tk = key.shape[2]
    kpm = _key_padding(attention_mask, tk)
    punct = kwargs.get("punctuation_mask")
    if punct is not None:
        punct = punct[:, -tk:] if punct.shape[1] >= tk else None
    if _RECORDS is not None:
        _RECORDS.append(LayerRecord(int(getattr(module, "layer_idx", len(_RECORDS))), query.detach(), key.detach(),
                                    value.detach(), scaling if scaling is not None else query.shape[-1] ** -0.5,
                                    punct, kpm))
    if dropout and module.training:
        warnings.warn("workbench_sparse ignores attention dropout", stacklevel=2)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if not causal:
        g = query.shape[1] // key.shape[1]
        k, v = key.repeat_interleave(g, 1), value.repeat_interleave(g, 1)
        mask = None if kpm is None else kpm[:, None, None, :]
        out = torch.nn.functional.scaled_dot_product_attention(query, k, v, attn_mask=mask, scale=scaling)
    else:
        out = sparse_attention(query, key, value, cfg, scale=scaling, punctuation_mask=punct, key_padding_mask=kpm,
                               branch=getattr(module, "nsa_branch", None)).output
    return out.transpose(1, 2).contiguous(), None


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Modules that call the attention interface (they have `layer_idx` and `head_dim` and a config)."""
    return [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "head_dim")
            and hasattr(m, "config") and (hasattr(m, "q_proj") or hasattr(m, "qkv_proj"))]


def _punctuation_pre_hook(model: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Add `punctuation_mask` [B, past + T] to the forward kwargs, extending it across cached decoding steps."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    cfg = getattr(model.config, "sparse_attention", None) or {}
    if ids is None or not isinstance(ids, Tensor) or "punctuation_mask" in kwargs or not cfg.get("punctuation_ids"):
        return None
    current = punctuation_mask(ids, cfg["punctuation_ids"])
    cache = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers ≥ 5.2x passes `cache`, earlier `past_key_values`
    past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
    prev = getattr(model, "_workbench_punctuation", None)
    if past:
        if prev is not None and prev.shape[0] == ids.shape[0] and prev.shape[1] == past:
            current = torch.cat([prev.to(current.device), current], 1)
        else:  # history unknown: treat it as punctuation-free
            current = torch.nn.functional.pad(current, (past, 0))
    model._workbench_punctuation = current
    kwargs["punctuation_mask"] = current
    return args, kwargs


def enable_sparse_attention(model: nn.Module, cfg: SparseAttentionConfig | dict | None = None, tokenizer=None,
                            **overrides: Any) -> SparseAttentionConfig:
    """Switch a transformers model to block-sparse attention.

    Args:
        model: a `PreTrainedModel` whose attention dispatches through `AttentionInterface`.
        cfg: the config (defaults to `SparseAttentionConfig()`); `overrides` replace fields.
        tokenizer: if given and the config has no punctuation ids, they come from
            `punctuation_token_ids(tokenizer)`.

    Returns:
        The config in force (also stored as the dict `model.config.sparse_attention`).
    """
    cfg = SparseAttentionConfig.from_dict(cfg or {}) if not isinstance(cfg, SparseAttentionConfig) else cfg
    if overrides:
        cfg = cfg.replace(**overrides)
    if tokenizer is not None and not cfg.punctuation_ids:
        cfg = cfg.replace(punctuation_ids=tuple(punctuation_token_ids(tokenizer)))
    layer_types = getattr(model.config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types) or getattr(model.config, "use_sliding_window", False):
        raise ValueError(f"sparse attention supports full causal attention layers only; model has {set(layer_types)}")
    modules = _attention_modules(model)
    if not modules:
        raise ValueError(f"found no attention modules in {type(model).__name__} to make sparse")
    register_sparse_attention()
    model.config.sparse_attention = cfg.to_dict()
    if cfg.selector == "nsa":
        for m in modules:
            if not hasattr(m, "nsa_branch"):
                heads = m.config.num_attention_heads
                p = next(m.parameters())
                m.nsa_branch = NSABranch(heads, m.head_dim, cfg.block_size).to(p.device, p.dtype)
    model.set_attn_implementation(IMPLEMENTATION)
    if not getattr(model, "_workbench_punct_hook", None):
        model._workbench_punct_hook = model.register_forward_pre_hook(_punctuation_pre_hook, with_kwargs=True)
    return cfg


def disable_sparse_attention(model: nn.Module, implementation: str = "sdpa") -> None:
    """Switch back to a dense implementation (`sdpa` or `eager`) and remove the punctuation hook."""
    model.set_attn_implementation(implementation)
    hook = getattr(model, "_workbench_punct_hook", None)
    if hook is not None:
        hook.remove()
        model._workbench_punct_hook = None


@contextlib.contextmanager
def record_attention() -> Iterator[list[LayerRecord]]:
    """Collect a `LayerRecord` from every `workbench_sparse` attention call in the block (e.g. with
    selector `dense`, to study what each selector would lose on the dense model's own q, k, v)."""
    global _RECORDS
    previous, _RECORDS = _RECORDS, []
    try:
        yield _RECORDS
    finally:
        _RECORDS = previous
