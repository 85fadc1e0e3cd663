"""FIPO (arXiv 2603.19835), notebook 02: future-KL token weights against DAPO on the length-demanding
arithmetic setting. The method is the `fipo` preset of `workbench.rl.methods` (its weight is
`workbench.rl.weights.future_kl`); this module holds the notebook's experiment and its presets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from workbench.models.tokenizer import token_strings
from workbench.rl.advantages import compute_advantages
from workbench.rl.sources import generate_group
from workbench.rl.update import score_rollout
from workbench.rl.weights import WeightContext, compose_token_weights
from workbench.tasks.base import Task
from workbench.utils import seeded_generator


@dataclass
class FutureKLView:
    """Future-KL weights of one rollout between two policies (π_old samples, π_θ is the updated policy).

    Attributes (N completions, T tokens): tokens: per row, the completion's tokens (list of str);
    texts; rewards [N]; advantages [N]; mask [N, T]; delta [N, T] = log π_θ − log π_old;
    weights: {decay_rate: f [N, T]} from the registered `future_kl` weight.
    """

    tokens: list[list[str]]
    texts: list[str]
    rewards: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    delta: torch.Tensor
    weights: dict


@torch.no_grad()
def future_kl_view(old_policy, new_policy, tokenizer, task: Task, *, num_prompts: int = 8, num_generations: int = 8,
                   max_new_tokens: int = 64, decay_rates: Sequence[float] = (32.0,), seed: int = 0,
                   weight_kwargs: dict | None = None) -> FutureKLView:
    """Sample a rollout from `old_policy` and weigh its tokens with FIPO's future-KL (arXiv 2603.19835).

    Δ_t = log π_new(y_t) − log π_old(y_t); f_t = `future_kl` weight (registry) for each decay rate,
    with GRPO advantages of the rollout's exact-match rewards (the safety clamp needs their sign).

    Returns:
        a `FutureKLView`.
    """
    problems = task.sample(num_prompts, random.Random(f"future-kl-view/{seed}"))
    ro = generate_group(old_policy, tokenizer, task, problems, num_generations=num_generations,
                        max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, generator=seeded_generator(seed, 1))
    old_logp, _ = score_rollout(old_policy, ro, 64, 1.0, with_entropy=False)
    new_logp, _ = score_rollout(new_policy, ro, 64, 1.0, with_entropy=False)
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)  # [N, T]
    ctx = WeightContext(logp=new_logp, old_logp=old_logp, mask=ro.completion_mask, advantages=adv)
    weights = {d: compose_token_weights([("future_kl", {**(weight_kwargs or {}), "decay_rate": d})], ctx) for d in decay_rates}
    lengths = ro.completion_mask.sum(-1).tolist()
    tokens = [token_strings(tokenizer, ro.completion_ids[i, :n]) for i, n in enumerate(lengths)]
    delta = torch.where(ro.completion_mask.bool(), new_logp - old_logp, torch.zeros_like(new_logp))
    return FutureKLView(tokens=tokens, texts=ro.texts, rewards=ro.rewards, advantages=adv.sum(-1) / ro.completion_mask.sum(-1).clamp(min=1),
                        mask=ro.completion_mask, delta=delta, weights=weights)
