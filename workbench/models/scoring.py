"""Per-token log-probabilities (and entropies) of completions under a causal LM.

`selective_log_softmax` gathers log π(y_t) without materialising the full [B, T, V] log-softmax:

    log π(y_t) = z_{t, y_t} − logsumexp_v z_{t, v}          (naive twin: log_softmax(z).gather(y))
"""

from __future__ import annotations

import torch

from workbench.models.chunked import chunked_logprobs, split_lm
from workbench.models.packing import packed_prompt_logits


#: transformers ≥ 5.2x names the KV cache `cache` (argument and output field) and deprecates `past_key_values`
#: (removed in 5.40); earlier releases know only `past_key_values`. Everything here passes the name this
#: transformers wants, so no version prints a deprecation warning and none breaks.
def _new_cache_api() -> bool:
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" in getattr(CausalLMOutputWithPast, "__dataclass_fields__", {})


CACHE_KWARG = "cache" if _new_cache_api() else "past_key_values"


def with_cache(cache) -> dict:
    """`{CACHE_KWARG: cache}` for a model call (empty when `cache` is None)."""
    return {CACHE_KWARG: cache} if cache is not None else {}


def output_cache(out):
    """The KV cache a model call returned (`out.cache`, or `out.past_key_values` on older transformers)."""
    cache = getattr(out, "cache", None) if CACHE_KWARG == "cache" else None
    return cache if cache is not None else getattr(out, "past_key_values", None)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids for a (left- or right-)padded batch: `cumsum(mask) − 1`, 0 on pads.

    Args:
        attention_mask: [B, T] 1 for real tokens, 0 for padding.
    Returns:
        position_ids: [B, T] long, the index of each real token within its own sequence.
    """
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def modality_ids(input_ids: torch.Tensor, image_token_id: int | None, video_token_id: int | None = None) -> torch.Tensor | None:
    """Qwen2-VL-style modality ids of `input_ids` [B, L]: 1 on image tokens, 2 on video tokens, 0 on
    text; None when there is no image token id (a text LM)."""
    if image_token_id is None:
        return None
    types = (input_ids == image_token_id).long()
    if video_token_id is not None:
        types = types + 2 * (input_ids == video_token_id).long()
    return types


def vision_token_types(model, input_ids: torch.Tensor) -> torch.Tensor | None:
    """`modality_ids` of `input_ids` [B, L] with the model config's `image_token_id` / `video_token_id`,
    as a Qwen2-VL-style model needs them for its M-RoPE positions. None for a text LM.

    Computing them from the ids (instead of carrying a [B, P] tensor with the prompt) keeps them right
    after prompts are re-padded or completions appended."""
    cfg = getattr(model, "config", None)
    return modality_ids(input_ids, getattr(cfg, "image_token_id", None), getattr(cfg, "video_token_id", None))


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[index] without materialising the full log-softmax.

    Computes `logits.gather(-1, index) − logsumexp(logits, -1)`; the naive twin is
    `torch.log_softmax(logits, -1).gather(-1, index[..., None]).squeeze(-1)`, which allocates a
    second [..., V] tensor. Upcasts to float32 (keeps float64).

    Args:
        logits: [..., V].
        index: [...] long, the token whose log-prob is wanted.
    Returns:
        logp: [...] float32 (or float64).
    """
    logits = _upcast(logits)
    taken = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return taken - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy H(p) = −Σ_v p(v) log p(v) of p = softmax(logits), with 0·log 0 = 0. [..., V] -> [...] nats."""
    logp = torch.log_softmax(_upcast(logits), dim=-1)
    return -_xlogy_exp(logp, logp).sum(-1)


def _upcast(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _xlogy_exp(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p · y with p = exp(logp), and 0 where p = 0 (so −inf·0 never becomes NaN)."""
    p = logp.exp()
    return torch.where(p > 0, p * y, torch.zeros_like(p))


def completion_logprobs(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    with_entropy: bool = False,
    temperature: float = 1.0,
    share_prompts: bool = False,
    chunk: int | None = None,
    packed: bool = False,
    **model_inputs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Score completions: log π(y_t | prompt, y_<t) for every completion position.

    Args:
        prompt_ids, prompt_mask: [B, P] left-padded prompts.
        completion_ids, completion_mask: [B, T] right-padded completions.
        with_entropy: also return the entropy of each next-token distribution [B, T].
        temperature: logits are divided by it (match the sampling temperature for exact ratios).
        share_prompts: run each distinct prompt once and let its completions attend to its KV cache
            (`shared_prompt_logits`; the G rows of a GRPO group share one prompt). Same numbers up to
            float rounding, gradients included; ignored with extra model inputs (images).
        chunk: score through `models.chunked`: only unpadded completion positions go through the LM head,
            `chunk` rows at a time under activation checkpointing, so no [B, T, V] logits exist (None: full logits;
            also where `chunked.split_lm` finds no separable head, e.g. a DDP wrapper).
        packed: one padding-free forward, each distinct prompt once with its completions back to back under a
            block mask (`models.packing`; one forward, so DDP-safe, unlike `share_prompts`); takes precedence
            over `share_prompts`; ignored with extra model inputs (images).
        **model_inputs: extra inputs such as `pixel_values`, `image_grid_thw`; a vision-language
            model's `mm_token_type_ids` [B, P] (prompt only) is extended with zeros over the completion.

    Returns:
        (logp [B, T], entropy [B, T] or None); zeros where `completion_mask` is 0.
    """
    parts = split_lm(model) if chunk else None
    net, field = (parts[0], "last_hidden_state") if parts else (model, "logits")
    finish = ((lambda h: _score_hidden(h, parts[1], completion_ids, completion_mask, temperature, with_entropy, chunk))
              if parts else (lambda z: _score_logits(z, completion_ids, completion_mask, temperature, with_entropy)))
    if packed and not model_inputs:
        return finish(packed_prompt_logits(net, prompt_ids, prompt_mask, completion_ids, completion_mask, field))
    if share_prompts and not model_inputs and not _checkpointing(model):
        states = shared_prompt_logits(net, prompt_ids, prompt_mask, completion_ids, completion_mask, field)
        if states is not None:  # else no prompt repeats (or no cache): the one-pass forward below
            return finish(states)
    return finish(completion_logits(net, prompt_ids, prompt_mask, completion_ids, completion_mask, field=field,
                                    vision_model=model, **model_inputs))


def completion_logits(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                      completion_mask: torch.Tensor, *, field: str = "logits", vision_model=None,
                      **model_inputs) -> torch.Tensor:
    """Next-token logits at every completion position, one forward of cat(prompt, completion).

    Args:
        prompt_ids, prompt_mask: [B, P] left-padded prompts; completion_ids, completion_mask: [B, T] right-padded.
        field: the output read (`logits`, or `last_hidden_state` for a decoder without its head).
        vision_model: the model whose config names the image / video token ids (default `model`).
        **model_inputs: `pixel_values`, `image_grid_thw`, ... as in `completion_logprobs`.
    Returns:
        [B, T, V] (or [B, T, D]): position t predicts completion token t (padding positions hold garbage).
    """
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    attention_mask = torch.cat([prompt_mask, completion_mask], 1)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, **model_inputs)
    token_types = model_inputs.get("mm_token_type_ids")  # VLM modality ids cover the prompt: completion is text (0)
    if token_types is not None and token_types.size(1) == prompt_ids.size(1):
        kwargs["mm_token_type_ids"] = torch.cat([token_types, token_types.new_zeros(completion_ids.shape)], 1)
    elif token_types is None and ("image_grid_thw" in model_inputs or "video_grid_thw" in model_inputs):  # images or videos but no modality ids: read them off the ids
        kwargs["mm_token_type_ids"] = vision_token_types(vision_model if vision_model is not None else model, input_ids)
    if not model_inputs:  # text models: explicit positions make left padding exact
        kwargs["position_ids"] = position_ids_from_mask(attention_mask)
    P, T = prompt_ids.size(1), completion_ids.size(1)
    return getattr(model(**kwargs, use_cache=False), field)[:, P - 1 : P + T - 1]


def _checkpointing(model) -> bool:
    """Whether HF activation checkpointing is on in train mode (it then refuses to return a KV cache)."""
    if not model.training:
        return False
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # the newer name first
        try:
            return bool(getattr(model, name))
        except AttributeError:
            continue
    return False


def shared_prompt_logits(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                         completion_mask: torch.Tensor, field: str = "logits") -> torch.Tensor | None:
    """Next-token logits at every completion position, each distinct prompt run through the model once.

    Prefix sharing for group rollouts (Prefix Grouper, arXiv 2506.05433): the U distinct rows of
    (prompt_ids, prompt_mask) are run with a KV cache, the cache is gathered back to the B rows
    (`index_select`, differentiable, so each prompt's gradient is the sum over its rows) and the
    completions run on top of it. Work on prompt tokens drops from B·P to U·P (G-fold for a GRPO
    batch); the logits equal the one-pass `model(cat(prompt, completion))` up to float rounding.

    Args:
        prompt_ids, prompt_mask: [B, P] left-padded prompts (rows may repeat).
        completion_ids, completion_mask: [B, T] right-padded completions.
        field: the output read, `logits`, or `last_hidden_state` when `model` is a decoder without its head
            (`models.chunked`: then [B, T, D] hidden states come back).
    Returns:
        logits [B, T, V]: position t predicts completion token t; None when no prompt repeats (nothing
        to share) or the model returned no cache (HF turns it off under activation checkpointing):
        use the one-pass forward then.
    """
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], 1)
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)
    if unique.size(0) == key.size(0):
        return None
    P = prompt_ids.size(1)
    u_ids, u_mask = unique[:, :P], unique[:, P:].to(prompt_mask.dtype)
    u_pos = position_ids_from_mask(u_mask)
    keep = {"logits_to_keep": 1} if field == "logits" else {}  # only the last prompt position's logits are needed
    try:
        out = model(input_ids=u_ids, attention_mask=u_mask, position_ids=u_pos, use_cache=True, **keep)
    except TypeError:  # a model without `logits_to_keep`
        out = model(input_ids=u_ids, attention_mask=u_mask, position_ids=u_pos, use_cache=True)
    first = getattr(out, field)[:, -1].index_select(0, inverse)  # the last prompt position predicts completion token 0
    past = output_cache(out)
    if past is None:
        return None
    past.batch_select_indices(inverse)
    T = completion_ids.size(1)
    if T <= 1:
        return first[:, None, :][:, :T]
    attention_mask = torch.cat([prompt_mask, completion_mask], 1)
    positions = (u_pos[:, -1:] + 1).index_select(0, inverse) + torch.arange(T - 1, device=prompt_ids.device)
    rest = getattr(model(input_ids=completion_ids[:, :-1], attention_mask=attention_mask[:, :-1], position_ids=positions,
                         use_cache=True, **with_cache(past)), field)
    return torch.cat([first[:, None, :], rest], 1)


def _score_hidden(hidden: torch.Tensor, head, completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                  temperature: float, with_entropy: bool, chunk: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`_score_logits` from hidden states [B, T, D]: the unpadded positions through `head` in chunks, scattered back
    into [B, T] (zeros on padding)."""
    rows, cols = completion_mask.bool().nonzero(as_tuple=True)
    lp, ent = chunked_logprobs(hidden[rows, cols], head, completion_ids[rows, cols], chunk=chunk,
                               temperature=temperature, with_entropy=with_entropy)
    logp = torch.zeros(completion_ids.shape, dtype=lp.dtype, device=lp.device).index_put((rows, cols), lp)
    if not with_entropy:
        return logp, None
    return logp, torch.zeros(completion_ids.shape, dtype=ent.dtype, device=ent.device).index_put((rows, cols), ent)


def _score_logits(logits: torch.Tensor, completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                  temperature: float, with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log π(y_t) [B, T], entropy [B, T] or None) from next-token logits [B, T, V], zero on padding."""
    logits = _upcast(logits)  # bf16 logits (autocast) are divided and normalised in float32
    if temperature != 1.0:
        logits = logits / temperature
    logp = selective_log_softmax(logits, completion_ids) * completion_mask
    ent = entropy_from_logits(logits.detach()) * completion_mask if with_entropy else None
    return logp, ent
