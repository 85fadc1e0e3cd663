"""Chunked log-probs: log π(y_t) and the entropy of each scored position without a [B × T × V] logits tensor.

A causal LM's scores are logits z = h W^T (+ b) over the vocabulary V, for hidden states h [N, D] of the N
positions that are scored. `chunked_logprobs` runs the LM head on `chunk` rows at a time,

    log π(y_n) = z_{n, y_n} − logsumexp_v z_{n, v},        H_n = logsumexp_v z_{n, v} − Σ_v p_{n, v} z_{n, v}

and wraps each chunk in activation checkpointing, so the backward pass recomputes a chunk's logits instead of
keeping them: peak memory holds one [chunk, V] block (and its softmax in the backward) instead of [N, V] logits,
their float32 upcast and their softmax. Only the positions that are scored go through the head at all (answer
tokens of a preference pair, unpadded completion tokens of a rollout), which also saves the head's MACs on
prompt and padding positions. Same numbers as the full-logits path (tests: values and gradients, float64).

`split_lm(model)` finds the decoder and the head of a transformers causal LM (or image-text-to-text model, or a
PEFT wrapper of one); None where the model applies something after the head (logit soft-capping, a scale) that
this path would skip — the caller then uses full logits.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def _chunk_scores(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, y: torch.Tensor,
                  temperature: float, with_entropy: bool):
    z = torch.nn.functional.linear(h, weight, bias)
    z = z if z.dtype == torch.float64 else z.float()
    if temperature != 1.0:
        z = z / temperature
    lse = torch.logsumexp(z, -1)
    logp = z.gather(-1, y[:, None]).squeeze(-1) - lse
    if not with_entropy:
        return logp, None
    with torch.no_grad():  # entropy is a diagnostic: no gradient flows through it (as in the full path)
        p = torch.softmax(z.detach(), -1)
        ent = lse.detach() - (p * z.detach()).sum(-1)
    return logp, ent


def chunked_logprobs(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor, *, chunk: int = 1024,
                     temperature: float = 1.0, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log π(targets) [N], entropy [N] or None) for hidden states [N, D] through `head` (an `nn.Linear`),
    `chunk` rows at a time (module docstring). float32 results (float64 for float64 inputs)."""
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"hidden must be [N, D] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    weight, bias = head.weight, getattr(head, "bias", None)
    logps, ents = [], []
    grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    for lo in range(0, hidden.shape[0], chunk):
        h, y = hidden[lo:lo + chunk], targets[lo:lo + chunk]
        if grad:
            lp, ent = checkpoint(_chunk_scores, h, weight, bias, y, temperature, with_entropy, use_reentrant=False)
        else:
            lp, ent = _chunk_scores(h, weight, bias, y, temperature, with_entropy)
        logps.append(lp)
        ents.append(ent)
    if not logps:  # no scored position: an empty result still on the graph, so a loss over it can backward
        empty = hidden.sum(-1).to(torch.float64 if hidden.dtype == torch.float64 else torch.float32)
        return empty, (empty.detach() if with_entropy else None)
    return torch.cat(logps), (torch.cat(ents) if with_entropy else None)


def split_lm(model) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder returning `last_hidden_state`, LM head) of `model`, or None where the chunked path does not apply."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(inner, "config", None)
    text_cfg = getattr(cfg, "text_config", None) or cfg
    for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(text_cfg, name, None) not in (None, 1, 1.0):
            return None
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    decoder = getattr(inner, getattr(inner, "base_model_prefix", "model"), None)
    if not isinstance(head, torch.nn.Linear) or not isinstance(decoder, torch.nn.Module) or decoder is inner:
        return None
    return decoder, head
