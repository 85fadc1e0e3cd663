"""Per-token log-probabilities (and entropies) of completions under a causal LM.

`selective_log_softmax` gathers log π(y_t) without materialising the full [B, T, V] log-softmax:

    log π(y_t) = z_{t, y_t} − logsumexp_v z_{t, v}          (naive twin: log_softmax(z).gather(y))
"""

from __future__ import annotations

import torch


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log-softmax of `logits` [..., V] at `index` [...], computed in float32 -> [...]."""
    logits = logits.float()
    return logits.gather(-1, index.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(z) − Σ softmax(z)·z over the last axis, float32. [..., V] -> [...]."""
    logits = logits.float()
    return torch.logsumexp(logits, -1) - (logits.softmax(-1) * logits).sum(-1)


def completion_logprobs(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    with_entropy: bool = False,
    temperature: float = 1.0,
    **model_inputs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Score completions: log π(y_t | prompt, y_<t) for every completion position.

    Args:
        prompt_ids, prompt_mask: [B, P] left-padded prompts.
        completion_ids, completion_mask: [B, T] right-padded completions.
        with_entropy: also return the entropy of each next-token distribution [B, T].
        temperature: logits are divided by it (match the sampling temperature for exact ratios).
        **model_inputs: extra inputs such as `pixel_values`, `image_grid_thw`; a vision-language
            model's `mm_token_type_ids` [B, P] (prompt only) is extended with zeros over the completion.

    Returns:
        (logp [B, T], entropy [B, T] or None); zeros where `completion_mask` is 0.
    """
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    attention_mask = torch.cat([prompt_mask, completion_mask], 1)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, **model_inputs)
    token_types = model_inputs.get("mm_token_type_ids")  # VLM modality ids cover the prompt: completion is text (0)
    if token_types is not None and token_types.size(1) == prompt_ids.size(1):
        kwargs["mm_token_type_ids"] = torch.cat([token_types, token_types.new_zeros(completion_ids.shape)], 1)
    if not model_inputs:  # text models: explicit positions make left padding exact
        kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    P, T = prompt_ids.size(1), completion_ids.size(1)
    logits = model(**kwargs, use_cache=False).logits[:, P - 1 : P + T - 1]
    if temperature != 1.0:
        logits = logits / temperature
    logp = selective_log_softmax(logits, completion_ids) * completion_mask
    ent = entropy_from_logits(logits.detach()) * completion_mask if with_entropy else None
    return logp, ent
