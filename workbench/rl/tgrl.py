"""TGRL (arXiv 2603.26126): expert trajectories mixed into GRPO groups, filtered, and learnt with a shaped ratio.

The paper's text gives only its abstract; this is a reconstruction on the pattern of LUFFY's mixed-policy
GRPO (arXiv 2504.14945), with these pieces, each a registry entry:

- rollout source `expert_mix`: of each group's G completions, G − k are sampled from the policy and k are
  expert trajectories (`Task.reference`: ShapeWorld's scene-graph oracle, optionally fallible, or a
  stronger model's greedy answer, cached per prompt); their tokens are marked in
  `extras["off_policy"]` [N, T] (1.0 on expert tokens);
- rollout filter `expert_filter`: an expert row is kept only if `Task.expert_ok` held for it (right answer
  and every stated fact true in the scene graph; `extras["expert_ok"]`, set by the source); the trainer
  logs the dropped count as `rows_dropped`;
- advantage `mixed_grpo`: the group z-score over the mixed group (`stats="mixed"`), or with the group's
  mean and std from its on-policy rows only (`stats="on_policy"`); `scale=False` is Dr. GRPO's (no std);
- the loss (`losses.policy_loss(off_policy=...)`): on expert tokens the ratio is replaced by the shaped,
  unclipped f(π_θ) = π_θ / (π_θ + γ), γ = `RLConfig.off_policy_gamma`; on-policy tokens keep the clipped
  surrogate.

    cfg = RLConfig.for_method("dapo", rollout_source=("expert_mix", {"k": 1, "error_rate": 0.3}),
                              rollout_filters=["expert_filter"], advantage="mixed_grpo")
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

from workbench.rl.advantages import ADVANTAGES, GRPO_STD_EPS, AdvantageContext, group_stats
from workbench.rl.filters import ROLLOUT_FILTERS
from workbench.rl.rollout import Rollout, cat_rollouts, pad_token_id
from workbench.rl.rewards import score_completions
from workbench.rl.sources import ROLLOUT_SOURCES, SourceContext, generate_group

_EXPERT_MODELS: dict[str, tuple] = {}  # zoo name / path -> (model, processor, {problem id: text})


def expert_texts(ctx: SourceContext, problems: list, expert: str, error_rate: float, rng: random.Random) -> list[str]:
    """One expert response per problem: `expert="oracle"` asks `Task.reference` (with `error_rate`); any other
    value is a zoo name or checkpoint path whose greedy answer is generated once per problem and cached."""
    if expert == "oracle":
        if ctx.task.reference is None:
            raise ValueError(f"task {ctx.task.name!r} has no reference (oracle) responses; pass an expert model instead")
        return [ctx.task.reference(p, rng, error_rate) for p in problems]
    if error_rate:
        raise ValueError(f"error_rate applies to the oracle expert only, got {error_rate} with expert {expert!r}")
    if expert not in _EXPERT_MODELS:
        from workbench.models.zoo import load_model

        model, proc = load_model(expert, device=str(next(ctx.model.parameters()).device))
        _EXPERT_MODELS[expert] = (model.eval(), proc, {})
    model, proc, cache = _EXPERT_MODELS[expert]
    todo = [p for p in problems if _key(p) not in cache]
    if todo:
        ro = generate_group(model, proc, ctx.task, todo, num_generations=1, max_new_tokens=ctx.max_new_tokens,
                            temperature=1.0, top_p=1.0, generator=None, greedy=True)
        cache.update({_key(p): t for p, t in zip(todo, ro.texts)})
    return [cache[_key(p)] for p in problems]


def _key(problem):
    return getattr(problem, "id", None) or repr(problem)


def expert_rows(ctx: SourceContext, like: Rollout, problems: list, texts: list[str], first_group_id: int) -> Rollout:
    """A Rollout of one expert response per problem, its prompts copied from the first row of each problem's
    group in `like` (same prompt ids, mask and images), completions tokenised with the policy's tokenizer
    and ended by its EOS; `extras["off_policy"]` is 1.0 on every completion token."""
    tok = getattr(ctx.tokenizer, "tokenizer", ctx.tokenizer)
    G = len(like) // len(problems)
    first = torch.arange(len(problems)) * G
    full = [tok(t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in texts]
    ids = [f[: ctx.max_new_tokens] for f in full]
    T = max(len(i) for i in ids)
    pad = pad_token_id(ctx.tokenizer)
    comp = torch.full((len(ids), T), pad, dtype=torch.long)
    mask = torch.zeros(len(ids), T, dtype=torch.long)
    for r, row in enumerate(ids):
        comp[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    group_ids = torch.arange(first_group_id, first_group_id + len(problems))
    rewards, parts = score_completions(ctx.task.rewards, texts, problems, group_ids)
    check = ctx.task.expert_ok or ctx.task.is_correct
    ok = torch.tensor([float(bool(check(t, p))) for t, p in zip(texts, problems)])
    truncated = torch.tensor([len(f) > ctx.max_new_tokens for f in full])
    return Rollout(like.prompt_ids[first], like.prompt_mask[first], comp, mask, truncated, rewards, parts, group_ids,
                   list(texts), list(problems), [like.row_inputs[i] for i in first.tolist()] if like.row_inputs else None,
                   extras={"off_policy": mask.float(), "expert_ok": ok})


@ROLLOUT_SOURCES.register("expert_mix")
def expert_mix(ctx: SourceContext, problems: list, first_group_id: int, *, k: int = 1, expert: str = "oracle",
               error_rate: float = 0.0) -> Rollout:
    """Per problem, G − k completions sampled from the policy and k expert responses (`expert_texts`), rows
    group-major (a group's expert rows last). Expert tokens are marked in `extras["off_policy"]` [N, T] and
    `extras["expert_ok"]` [N] says whether an expert row passes `Task.expert_ok` (1.0 on policy rows);
    rewards are scored for every row, so the group statistics see the mixed group. The oracle's errors draw
    from `ctx.rng`."""
    G = ctx.num_generations
    if not 0 <= k < G:
        raise ValueError(f"expert_mix needs 0 <= k < G = {G} expert rows per group, got k = {k}")
    on = generate_group(ctx.model, ctx.tokenizer, ctx.task, problems, num_generations=G - k,
                        max_new_tokens=ctx.max_new_tokens, temperature=ctx.temperature, top_p=ctx.top_p,
                        generator=ctx.generator, first_group_id=first_group_id)
    on.extras.update(off_policy=torch.zeros(on.completion_mask.shape), expert_ok=torch.ones(len(on)))
    if k == 0:
        return on
    parts = [on]
    for _ in range(k):
        parts.append(expert_rows(ctx, on, problems, expert_texts(ctx, problems, expert, error_rate, ctx.rng or random.Random(0)),
                                 first_group_id))
    mixed = cat_rollouts(parts, pad_token_id(ctx.tokenizer))
    return mixed.select(torch.sort(mixed.group_ids, stable=True).indices)


def is_off_policy_row(rollout_or_mask) -> Tensor:
    """[N] bool: rows with any off-policy token (`extras["off_policy"]` [N, T], or that mask itself)."""
    mask = rollout_or_mask.extras.get("off_policy") if isinstance(rollout_or_mask, Rollout) else rollout_or_mask
    if mask is None:
        n = len(rollout_or_mask) if isinstance(rollout_or_mask, Rollout) else 0
        return torch.zeros(n, dtype=torch.bool)
    return mask.bool().any(-1) if mask.dim() == 2 else mask.bool()


@ROLLOUT_FILTERS.register("expert_filter")
def expert_filter(rollout: Rollout, num_generations: int) -> Tensor:
    """TGRL trajectory filtering: keep every on-policy row, and an expert row only if `extras["expert_ok"]`
    (set by `expert_mix` from `Task.expert_ok`: right answer and every stated fact true) is 1. A rollout
    without expert rows keeps everything. The rows dropped are logged by the trainer as `rows_dropped`."""
    ok = rollout.extras.get("expert_ok")
    if ok is None:
        return torch.ones(len(rollout), dtype=torch.bool)
    return ~is_off_policy_row(rollout) | (ok > 0.5)


@ADVANTAGES.register("mixed_grpo")
def mixed_grpo_advantages(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *, ctx: AdvantageContext,
                          stats: str = "mixed", scale: bool = True, eps: float = GRPO_STD_EPS) -> Tensor:
    """Group advantages of a mixed (expert + policy) group: a_i = (r_i − μ_g) / (σ_g + eps), with (μ_g, σ_g)
    over all of the group's rows (`stats="mixed"`, LUFFY's choice) or over its on-policy rows only
    (`stats="on_policy"`; a group with fewer than two on-policy rows falls back to all its rows). `scale=False`
    drops the division (Dr. GRPO). A group whose rewards are all equal gets 0.

    Returns:
        [N] advantages.
    """
    if stats not in ("mixed", "on_policy"):
        raise ValueError(f"mixed_grpo stats must be 'mixed' or 'on_policy', got {stats!r}")
    off = is_off_policy_row(ctx.extras.get("off_policy", torch.zeros(len(rewards), 0)))
    if off.numel() != rewards.numel():
        raise ValueError(f"extras['off_policy'] covers {off.numel()} rows, the rewards {rewards.numel()}")
    st = group_stats(rewards, group_ids)
    mean, std = st.mean[st.index], st.std[st.index]
    if stats == "on_policy" and off.any():
        on = group_stats(rewards[~off], group_ids[~off])
        pos = torch.searchsorted(on.group_ids, group_ids.contiguous()).clamp(max=max(on.group_ids.numel() - 1, 0))
        has = (on.group_ids.numel() > 0) & (on.group_ids[pos] == group_ids) & (on.count[pos] >= 2)
        mean = torch.where(has, on.mean[pos], mean)
        std = torch.where(has, on.std[pos], std)
    adv = rewards - mean
    if scale:
        adv = adv / (std + eps)
    return torch.where(st.zero_std_mask, torch.zeros_like(adv), adv)
