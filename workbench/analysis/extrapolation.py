"""Test-time extrapolation along Δlog p (arXiv 2603.22117), and lockstep decoding of two models.

At every decoding step, with ℓ_RL = log π_RL(·|ctx) and ℓ_base = log π_base(·|ctx):

    log π̃(·|ctx) = log_softmax( ℓ_RL + λ (ℓ_RL − ℓ_base) )

λ = 0 is the RL model itself, λ > 0 pushes further along the direction RL training moved the
policy. (The paper gives no code; this formula is our reconstruction of its description.)

Both models decode in lockstep, each with its own KV cache, so a step costs one incremental
forward per model. Two interfaces:

- `extrapolated_generate(rl, base, ids, mask, lam=0.5, max_new_tokens=64)` — a lean decode loop;
- `ExtrapolationLogitsProcessor(base, lam, attention_mask=mask)` passed to
  `rl.generate(..., logits_processor=[proc])`, holding the base model and its cache.

`lockstep_decode` is the shared primitive (also used by `workbench.analysis.replacement`): any
number of models advance on the same tokens, and a `choose` callback picks each next token.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import LogitsProcessor

from workbench.analysis.token_stats import position_ids_from_mask
from workbench.models.scoring import output_cache, with_cache

NEG_FLOOR = -1e4  # stands in for log 0 of the base model, so λ·(ℓ_RL − ℓ_base) stays finite

ChooseFn = Callable[[int, list, torch.Tensor], torch.Tensor]


@dataclass
class DecodeOutput:
    """Result of a lockstep decode.

    Shapes: `sequences`: [B, P + N] prompt then generated tokens; `new_tokens`: [B, N] (N ≤
    max_new_tokens, `pad_token_id` after a row's EOS); `lengths`: [B] generated tokens up to and
    including EOS.
    """

    sequences: torch.Tensor
    new_tokens: torch.Tensor
    lengths: torch.Tensor


def extrapolate_logprobs(logits_rl: torch.Tensor, logits_base: torch.Tensor, lam: float) -> torch.Tensor:
    """log π̃ = log_softmax(ℓ_RL + λ (ℓ_RL − ℓ_base)), ℓ = log_softmax(logits), in float32.

    Tokens the RL model forbids (ℓ_RL = −inf) stay forbidden; a base log-prob of −inf is floored
    at −1e4. At λ = 0 the result is exactly ℓ_RL.

    Args:
        logits_rl, logits_base: [..., V].
        lam: extrapolation strength λ (0 = RL model).
    Returns:
        log-probs: [..., V], normalised.
    """
    lp_rl = torch.log_softmax(logits_rl.float(), dim=-1)
    if lam == 0:
        return lp_rl
    lp_base = torch.log_softmax(logits_base.float(), dim=-1).clamp_min(NEG_FLOOR)
    mixed = torch.where(torch.isneginf(lp_rl), lp_rl, lp_rl + lam * (lp_rl - lp_base.to(lp_rl.device)))
    return torch.log_softmax(mixed, dim=-1)


def extrapolated_argmax(logits_rl: torch.Tensor, logits_base: torch.Tensor, lam: float) -> torch.Tensor:
    """Greedy token of log π̃ without normalising: argmax_v log π̃_v = argmax_v [(1 + λ) z_RL,v − λ z_base,v].

    The log-partition terms of log_softmax are constant along v, so they drop out of the argmax; this
    saves three log-softmaxes over the vocabulary per step. Exact whenever both rows are finite; rows
    with −inf logits (masked tokens) fall back to `extrapolate_logprobs`, whose flooring rules apply.

    Args:
        logits_rl, logits_base: [B, V].
    Returns:
        tokens: [B] long.
    """
    if lam == 0:
        return logits_rl.argmax(-1)
    finite = torch.isfinite(logits_rl).all(-1) & torch.isfinite(logits_base).all(-1)
    scores = (1.0 + lam) * logits_rl.float() - lam * logits_base.float().to(logits_rl.device)
    tokens = scores.argmax(-1)
    if not bool(finite.all()):
        slow = extrapolate_logprobs(logits_rl[~finite], logits_base[~finite], lam).argmax(-1)
        tokens[~finite] = slow
    return tokens


def pick_token(logprobs: torch.Tensor, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Greedy (`temperature == 0`) or sample from softmax(logprobs / temperature).

    Args:
        logprobs: [B, V].
        generator: seeded generator on the same device as `logprobs` (sampling only).
    Returns:
        tokens: [B] long.
    """
    if temperature == 0:
        return logprobs.argmax(-1)
    probs = torch.softmax(logprobs / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def lockstep_decode(models: Sequence, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                    choose: ChooseFn, *, max_new_tokens: int, eos_token_id: int | Sequence[int] | None,
                    pad_token_id: int) -> DecodeOutput:
    """Decode with several causal LMs on the same tokens, each with its own KV cache.

    Step i: every model gives next-token logits [B, V] for the shared context; `choose(i, logits,
    finished)` returns the next tokens [B]; rows already finished get `pad_token_id`; all models
    consume the chosen tokens. Stops after `max_new_tokens` or when every row has emitted EOS.

    Args:
        models: HF causal LMs sharing a vocabulary.
        input_ids, attention_mask: [B, P] left-padded prompts (mask all ones when None).
        choose: callback (step, [logits [B, V] per model], finished [B] bool) -> tokens [B].
        eos_token_id: id or ids ending a row (None: always `max_new_tokens` tokens).
    Returns:
        DecodeOutput.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if not bool(attention_mask[:, -1].bool().all()):
        raise ValueError("prompts must be left-padded: attention_mask[:, -1] has zeros")
    device = input_ids.device
    eos = torch.tensor([] if eos_token_id is None else
                       ([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)),
                       dtype=torch.long, device=device)
    mask = attention_mask.long()
    position_ids = position_ids_from_mask(mask)
    caches, logits = [], []
    for m in models:
        kw = {"logits_to_keep": 1} if _accepts(m, "logits_to_keep") else {}
        out = m(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=True, **kw)
        caches.append(output_cache(out))
        logits.append(out.logits[:, -1])
    next_pos = position_ids[:, -1:] + 1
    finished = torch.zeros(input_ids.size(0), dtype=torch.bool, device=device)
    lengths = torch.zeros(input_ids.size(0), dtype=torch.long, device=device)
    tokens = []
    for step in range(max_new_tokens):
        tok = choose(step, logits, finished).to(device)
        tok = torch.where(finished, torch.full_like(tok, pad_token_id), tok)
        tokens.append(tok)
        lengths += (~finished).long()
        finished = finished | torch.isin(tok, eos)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
        for j, m in enumerate(models):
            out = m(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                    use_cache=True, **with_cache(caches[j]))
            caches[j] = output_cache(out)
            logits[j] = out.logits[:, -1]
        next_pos = next_pos + 1
    new = torch.stack(tokens, 1) if tokens else input_ids.new_zeros((input_ids.size(0), 0))
    return DecodeOutput(sequences=torch.cat([input_ids, new], 1), new_tokens=new, lengths=lengths)


def extrapolated_generate(rl_model, base_model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          *, lam: float, max_new_tokens: int, temperature: float = 0.0,
                          generator: torch.Generator | None = None, eos_token_id: int | Sequence[int] | None = None,
                          pad_token_id: int | None = None) -> DecodeOutput:
    """Decode from log π̃ = log_softmax(ℓ_RL + λ (ℓ_RL − ℓ_base)), models in lockstep (arXiv 2603.22117).

    λ = 0 reproduces `rl_model.generate(do_sample=False)` token for token.

    Args:
        rl_model, base_model: HF causal LMs sharing a vocabulary.
        input_ids, attention_mask: [B, P] left-padded prompts.
        lam: extrapolation strength λ (≥ 0 extrapolates, < 0 interpolates toward the base).
        temperature: 0 for greedy, else sample from softmax(log π̃ / temperature) with `generator`.
        eos_token_id, pad_token_id: default to the RL model's generation config.
    Returns:
        DecodeOutput with `new_tokens` [B, N].
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    eos_token_id, pad_token_id = resolve_special_ids(rl_model, eos_token_id, pad_token_id)

    def choose(step, logits, finished):
        if temperature == 0:
            return extrapolated_argmax(logits[0], logits[1], lam)
        return pick_token(extrapolate_logprobs(logits[0], logits[1], lam), temperature, generator)

    return lockstep_decode([rl_model, base_model], input_ids, attention_mask, choose,
                           max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)


class ExtrapolationLogitsProcessor(LogitsProcessor):
    """`LogitsProcessor` turning the RL model's scores into log π̃ (see the module docstring).

    Holds the base model and its own KV cache: the first call prefills the base model on the
    prompt, each later call feeds it the one token just appended. Use one instance per
    `generate` call (or call `reset`), with greedy or sampling decoding and one sequence per
    prompt (no beams). `generate` applies temperature after custom processors, so temperature
    acts on log π̃ as in `extrapolated_generate`.

    Args:
        base_model: HF causal LM sharing the RL model's vocabulary.
        lam: extrapolation strength λ.
        attention_mask: [B, P] the prompt mask given to `generate` (all ones when None).
    """

    def __init__(self, base_model, lam: float, attention_mask: torch.Tensor | None = None):
        self.base_model = base_model
        self.lam = float(lam)
        self.reset(attention_mask)

    def reset(self, attention_mask: torch.Tensor | None = None) -> None:
        """Forget the cache before decoding new prompts with mask `attention_mask` [B, P]."""
        self._prompt_mask = attention_mask
        self._mask = self._cache = self._next_pos = None
        self._seen = 0

    @torch.inference_mode()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """input_ids: [B, L] the context so far; scores: [B, V] RL logits -> [B, V] log π̃."""
        if self._cache is None:
            mask = torch.ones_like(input_ids) if self._prompt_mask is None else self._prompt_mask.to(input_ids.device)
            if mask.shape != input_ids.shape:
                raise ValueError(f"attention_mask has shape {tuple(mask.shape)} "
                                 f"but the prompt is {tuple(input_ids.shape)}")
            self._mask = mask.long()
            pos = position_ids_from_mask(self._mask)
            kw = {"logits_to_keep": 1} if _accepts(self.base_model, "logits_to_keep") else {}
            out = self.base_model(input_ids=input_ids, attention_mask=self._mask, position_ids=pos, use_cache=True,
                                  **kw)
            self._next_pos = pos[:, -1:] + 1
        else:
            if input_ids.size(1) != self._seen + 1:
                raise ValueError(f"the context grew from {self._seen} to {input_ids.size(1)} tokens; "
                                 "use a fresh ExtrapolationLogitsProcessor (or reset()) for each generate call")
            self._mask = torch.cat([self._mask, self._mask.new_ones(self._mask.size(0), 1)], 1)
            out = self.base_model(input_ids=input_ids[:, -1:], attention_mask=self._mask, position_ids=self._next_pos,
                                  use_cache=True, **with_cache(self._cache))
            self._next_pos = self._next_pos + 1
        self._cache, self._seen = output_cache(out), input_ids.size(1)
        return extrapolate_logprobs(scores, out.logits[:, -1], self.lam)


def _accepts(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def resolve_special_ids(model, eos_token_id=None, pad_token_id=None) -> tuple:
    """(eos, pad): explicit values win, else the model's generation config; pad falls back to eos, then 0."""
    gen = getattr(model, "generation_config", None)
    if eos_token_id is None and gen is not None:
        eos_token_id = gen.eos_token_id
    if pad_token_id is None:
        pad_token_id = getattr(gen, "pad_token_id", None)
    if pad_token_id is None:
        pad_token_id = eos_token_id if isinstance(eos_token_id, int) else (eos_token_id or [0])[0]
    return eos_token_id, pad_token_id
