"""Token-replacement interventions: which positions must take model B's token? (arXiv 2603.22117)

Model A is the base model, model B the RL model. Procedure, per batch of prompts:

1. **Record** (one lockstep decode): decode greedily with A. At every step i, with the context
   being A's own prefix, both models give next-token distributions p_A, p_B; record
   y_A = argmax p_A, y_B = argmax p_B and the selector statistics
       delta_logp = log p_B(y_B) − log p_A(y_B)      (the spec: Δlog p at the RL token)
       entropy    = H(p_A)                            (the decoding model's uncertainty)
       kl         = KL(p_B ‖ p_A),   js = JS(p_A, p_B).
   Positions i < L (L = A's length up to and including EOS) are the candidates.
2. **Select**: a selector scores the candidates; within each sequence the top
   k = round(budget · L) positions (highest score first, ties broken by a seeded permutation)
   are chosen. `random` scores uniformly at random. budget = 1 chooses *every* step index,
   including any beyond L.
3. **Replay** (a second lockstep decode): decode again; at step i take argmax p_B if i was
   chosen, else argmax p_A — both computed on the replayed context, which may drift from the
   recorded one after the first replacement. budget 0 is A's greedy decode, budget 1 is B's.

`replacement_curve` runs this for every selector × budget × seed and scores each text with the
caller's `score_fn(prompt_index, text) -> float`; identical selections are replayed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
import torch

from workbench.analysis.extrapolation import DecodeOutput, resolve_special_ids, lockstep_decode
from workbench.analysis.token_stats import entropy_from_logits, js_from_logits, kl_from_logits, selective_log_softmax
from workbench.registry import Registry

TOKEN_SELECTORS = Registry("token selector")  # which tokens to replace; attention.SELECTORS picks KV blocks
DEFAULT_BUDGETS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


@dataclass
class StepRecord:
    """Pass-1 record of a greedy decode with model A. Every tensor is [B, N] (N ≤ max_new_tokens).

    `decode`: A's greedy decode; `valid`: step i < A's length; `tokens_a`/`tokens_b`: each model's
    argmax at each step; `delta_logp`, `entropy`, `kl`, `js`: as in the module docstring.
    """

    decode: DecodeOutput
    valid: torch.Tensor
    tokens_a: torch.Tensor
    tokens_b: torch.Tensor
    delta_logp: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor
    js: torch.Tensor
    prompt_mask: torch.Tensor | None = None  # [B, P] the prompts' attention mask (decode.sequences[:, :P] are the ids)


@dataclass
class ReplacementCurve:
    """`per_prompt`: one row per (selector, budget, seed, prompt_index) with score, n_positions
    (A's length L), n_selected, n_changed (chosen steps where B's token differed from A's);
    `summary`: per (selector, budget, seed) the mean score `accuracy` and the fractions
    `selected_frac` = Σ n_selected / Σ L and `changed_frac` = Σ n_changed / Σ L."""

    per_prompt: pd.DataFrame
    summary: pd.DataFrame


@TOKEN_SELECTORS.register("delta_logp")
def _select_delta_logp(record: StepRecord, generator: torch.Generator) -> torch.Tensor:
    """Largest log p_B(y_B) − log p_A(y_B) first."""
    return record.delta_logp


@TOKEN_SELECTORS.register("entropy")
def _select_entropy(record: StepRecord, generator: torch.Generator) -> torch.Tensor:
    """Largest entropy of model A first."""
    return record.entropy


@TOKEN_SELECTORS.register("kl")
def _select_kl(record: StepRecord, generator: torch.Generator) -> torch.Tensor:
    """Largest KL(p_B ‖ p_A) first."""
    return record.kl


@TOKEN_SELECTORS.register("js")
def _select_js(record: StepRecord, generator: torch.Generator) -> torch.Tensor:
    """Largest JS(p_A, p_B) first."""
    return record.js


@TOKEN_SELECTORS.register("random")
def _select_random(record: StepRecord, generator: torch.Generator) -> torch.Tensor:
    """Uniform random scores (seeded)."""
    return torch.rand(record.valid.shape, generator=generator).to(record.valid.device)


def record_steps(model_a, model_b, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int, eos_token_id: int | Sequence[int] | None = None,
                 pad_token_id: int | None = None) -> StepRecord:
    """Pass 1: greedy decode with A, recording both models' argmax and the selector statistics.

    Args:
        model_a, model_b: HF causal LMs sharing a vocabulary (A = base, B = RL).
        input_ids, attention_mask: [B, P] left-padded prompts.
    Returns:
        StepRecord with [B, N] tensors.
    """
    eos_token_id, pad_token_id = resolve_special_ids(model_a, eos_token_id, pad_token_id)
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in ("tokens_a", "tokens_b", "delta_logp", "entropy", "kl", "js")}

    def choose(step, logits, finished):
        la, lb = logits
        ya, yb = la.argmax(-1), lb.argmax(-1)
        rec["tokens_a"].append(ya)
        rec["tokens_b"].append(yb)
        rec["delta_logp"].append(selective_log_softmax(lb, yb) - selective_log_softmax(la, yb))
        rec["entropy"].append(entropy_from_logits(la))
        rec["kl"].append(kl_from_logits(lb, la))
        rec["js"].append(js_from_logits(la, lb))
        return ya

    out = lockstep_decode([model_a, model_b], input_ids, attention_mask, choose, max_new_tokens=max_new_tokens,
                          eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    N = out.new_tokens.size(1)
    stacked = {k: torch.stack(v, 1) if v else out.new_tokens.new_zeros((input_ids.size(0), 0)).float()
               for k, v in rec.items()}
    valid = torch.arange(N, device=out.lengths.device)[None, :] < out.lengths[:, None]
    prompt_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    return StepRecord(decode=out, valid=valid, prompt_mask=prompt_mask, **stacked)


def select_positions(scores: torch.Tensor, valid: torch.Tensor, budget: float,
                     generator: torch.Generator | None = None, max_new_tokens: int | None = None) -> torch.Tensor:
    """Choose the top round(budget · L) valid positions of each row by score.

    Args:
        scores: [B, N] higher = replace first (NaN ranks last).
        valid: [B, N] bool, candidate positions; L = valid.sum(1).
        budget: fraction in [0, 1]; 1 chooses every step of a `max_new_tokens`-wide window.
        generator: seeds the permutation that breaks ties.
        max_new_tokens: width of the all-chosen mask at budget 1 (default N).
    Returns:
        chosen: [B, N] bool ([B, max_new_tokens] at budget 1).
    """
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be a fraction in [0, 1], got {budget!r}")
    B, N = scores.shape
    if budget == 1.0:
        return torch.ones(B, max(N, max_new_tokens or 0), dtype=torch.bool, device=valid.device)
    k = torch.floor(budget * valid.sum(1).double() + 0.5).long()
    perm = (torch.randperm(N, generator=generator).to(scores.device) if generator is not None
            else torch.arange(N, device=scores.device))
    s = torch.nan_to_num(scores.double(), nan=-torch.inf).masked_fill(~valid, -torch.inf)[:, perm]
    order = perm[torch.argsort(s, dim=1, descending=True, stable=True)]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(N, device=order.device).expand(B, N).contiguous())
    return (rank < k[:, None]) & valid


def replay(model_a, model_b, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, chosen: torch.Tensor, *,
           max_new_tokens: int, eos_token_id: int | Sequence[int] | None = None,
           pad_token_id: int | None = None) -> tuple[DecodeOutput, torch.Tensor]:
    """Pass 2: greedy decode taking B's argmax at chosen steps and A's elsewhere.

    Args:
        input_ids, attention_mask: [B, P] left-padded prompts.
        chosen: [B, M] bool; steps ≥ M take A's token.
    Returns:
        (decode, changed): changed [B, N] bool — a chosen step where B's token differed from A's.
    """
    eos_token_id, pad_token_id = resolve_special_ids(model_a, eos_token_id, pad_token_id)
    changed: list[torch.Tensor] = []

    def choose(step, logits, finished):
        ya, yb = logits[0].argmax(-1), logits[1].argmax(-1)
        take_b = chosen[:, step].to(ya.device) if step < chosen.size(1) else torch.zeros_like(finished)
        changed.append(take_b & (ya != yb) & ~finished)
        return torch.where(take_b, yb, ya)

    out = lockstep_decode([model_a, model_b], input_ids, attention_mask, choose, max_new_tokens=max_new_tokens,
                          eos_token_id=eos_token_id, pad_token_id=pad_token_id)
    return out, (torch.stack(changed, 1) if changed else out.new_tokens.bool())


def replacement_curve(model_a, model_b, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, *,
                      tokenizer, score_fn: Callable[[int, str], float], budgets: Sequence[float] = DEFAULT_BUDGETS,
                      selectors: Sequence[str] = ("delta_logp", "entropy", "kl", "js", "random"),
                      seeds: Sequence[int] = (0, 1, 2), max_new_tokens: int = 64,
                      eos_token_id: int | Sequence[int] | None = None, pad_token_id: int | None = None,
                      batch_size: int = 32) -> ReplacementCurve:
    """Score of A-decodes-with-B-tokens vs budget, per selector and seed (arXiv 2603.22117).

    The procedure (record, select, replay) is in the module docstring.

    Args:
        model_a, model_b: base and RL causal LMs.
        input_ids, attention_mask: [N, P] left-padded prompts; prompt_index = row.
        tokenizer: object with `decode(ids, skip_special_tokens=True)`, or a callable ids -> str.
        score_fn: (prompt_index, generated text) -> score (e.g. 1.0 if correct).
        budgets: fractions in [0, 1]; seeds: ints.
        selectors: names in `TOKEN_SELECTORS`, or (name, fn) pairs with fn(record, generator) -> scores [B, N]
            (a signal computed elsewhere, e.g. the token atlas's).
    Returns:
        ReplacementCurve.
    """
    if len(seeds) == 0 or len(budgets) == 0 or len(selectors) == 0:
        raise ValueError("budgets, selectors and seeds must each be non-empty")
    fns = dict(s if isinstance(s, tuple) else (s, TOKEN_SELECTORS.get(s)) for s in selectors)
    for b in budgets:
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"budget must be a fraction in [0, 1], got {b!r}")
    decode_text = _text_decoder(tokenizer)
    rows = []
    for start in range(0, input_ids.size(0), batch_size):
        ids = input_ids[start:start + batch_size]
        mask = None if attention_mask is None else attention_mask[start:start + batch_size]
        kw = dict(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id)
        record = record_steps(model_a, model_b, ids, mask, **kw)
        n_pos = record.valid.sum(1)
        cache: dict[tuple, tuple] = {}

        def run(chosen):
            key = (tuple(chosen.shape), chosen.cpu().numpy().tobytes())
            if key not in cache:
                out, changed = replay(model_a, model_b, ids, mask, chosen, **kw)
                texts = [decode_text(out.new_tokens[b, :out.lengths[b]].tolist()) for b in range(ids.size(0))]
                scores = [float(score_fn(start + b, t)) for b, t in enumerate(texts)]
                cache[key] = (scores, changed.sum(1).tolist())
            return cache[key]

        for seed in seeds:
            for name, fn in fns.items():
                scores = fn(record, torch.Generator().manual_seed(int(seed) * 1_000_003 + start))
                for budget in budgets:
                    chosen = select_positions(scores, record.valid, float(budget),
                                              torch.Generator().manual_seed(int(seed)), max_new_tokens)
                    sc, n_changed = run(chosen)
                    n_sel = chosen.sum(1) if budget < 1 else n_pos
                    for b in range(ids.size(0)):
                        rows.append({"selector": name, "budget": float(budget), "seed": int(seed),
                                     "prompt_index": start + b, "score": sc[b], "n_positions": int(n_pos[b]),
                                     "n_selected": int(n_sel[b]), "n_changed": int(n_changed[b])})
    per_prompt = pd.DataFrame(rows)
    g = per_prompt.groupby(["selector", "budget", "seed"], sort=False)
    total = g["n_positions"].sum().clip(lower=1)
    summary = pd.DataFrame({"accuracy": g["score"].mean(), "selected_frac": g["n_selected"].sum() / total,
                            "changed_frac": g["n_changed"].sum() / total}).reset_index()
    return ReplacementCurve(per_prompt=per_prompt, summary=summary)


def budget_to_reach(summary: pd.DataFrame, target: float, tol: float = 1e-9) -> pd.Series:
    """Smallest budget at which a selector's seed-mean accuracy reaches `target` (NaN if never).

    Args:
        summary: `ReplacementCurve.summary`.
        target: accuracy to reach, e.g. the RL model's greedy accuracy.
    Returns:
        Series indexed by selector.
    """
    mean = summary.groupby(["selector", "budget"])["accuracy"].mean().reset_index()
    hit = mean[mean["accuracy"] >= target - tol]
    reach = hit.groupby("selector")["budget"].min()
    return reach.reindex(mean["selector"].unique())


def _text_decoder(tokenizer) -> Callable[[list[int]], str]:
    if hasattr(tokenizer, "decode"):
        return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
    if callable(tokenizer):
        return tokenizer
    raise ValueError(f"tokenizer must have .decode or be a callable ids -> str, got {type(tokenizer).__name__}")
