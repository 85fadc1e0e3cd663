"""Durian: difficulty-aware group normalisation (arXiv 2602.21743), an `ADVANTAGES` entry.

GRPO divides each group's centred rewards by the group's own std, so a near-extreme group (1 or G−1
of G correct) gets |A| ≈ √G for its odd one out whatever the prompt. Durian keeps the prompt's own
group mean as the baseline but takes the std from a *difficulty bucket* of prompts:

    perception buckets  by the batch quantiles of visual entropy H_s:  H ≤ τ0.25 | middle | H ≥ τ0.75
    reasoning buckets   by b batch-quantile buckets of L(Q_s) = mean_i Σ_t log π_old(o_{s,i,t})
    A_a(s, i)           = (r_{s,i} − mean_G(r_s)) / (std(R_a) + eps)      R_a: every reward of a's prompts
    A                   = α_o · A_GRPO + α_p · A_perc + α_r · A_reas     (α = 0.4 / 0.3 / 0.3)

std(R_a) is unbiased (n − 1) over all rewards of the bucket's prompts. Safe answers, never NaN: a
bucket whose rewards are all equal (std 0) has r − mean_G = 0 for every row in it, and gives 0; a
bucket holding one completion gives 0; empty buckets are never indexed; with fewer prompts than
buckets every prompt may sit alone in its bucket, and its A_a is then its GRPO advantage (eps aside).
All-equal groups get 0 in every term, as under GRPO.

    cfg = RLConfig.for_method("grpo", advantage=("durian", {"reasoning_buckets": 12}))
    task = shapes_task(proc, visual_entropy=True, format_weight=0.1, answer_weight=0.9)   # the paper's reward

The visual entropy comes from the task's annotate hook (`extras["visual_entropy"]`, [N], one value per
prompt repeated over its group; `workbench.analysis.visual_entropy`); the sequence log-likelihoods from
the log π_old the rollout is scored with (`@needs_sequence_logp`, no extra forward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.rl.advantages import (ADVANTAGES, GRPO_STD_EPS, AdvantageContext, group_first_rows, group_stats, grpo_advantages,
                                     needs_sequence_logp)


def quantile_buckets(values: Tensor, levels: Tensor) -> Tensor:
    """Bucket index of each value among the batch quantiles `levels` (increasing, in (0, 1)): bucket k holds
    values in (q_{k−1}, q_k] with q = torch.quantile(values, levels) (linear interpolation), the last bucket
    the values above q_last. values [S] -> [S] long in [0, len(levels)]."""
    if values.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    edges = torch.quantile(values.to(torch.float64), levels.to(torch.float64))
    return torch.searchsorted(edges, values.to(torch.float64).contiguous(), right=False)


def perception_buckets(entropy: Tensor, low: float = 0.25, high: float = 0.75) -> Tensor:
    """Durian's three perception buckets of prompts by visual entropy [S]: 0 where H ≤ τ_low, 2 where
    H ≥ τ_high, 1 otherwise (τ = batch quantiles). [S] long."""
    h = entropy.to(torch.float64)
    lo, hi = torch.quantile(h, torch.tensor([low, high], dtype=torch.float64))
    return torch.where(h <= lo, 0, torch.where(h >= hi, 2, 1)).long()


def confidence_buckets(confidence: Tensor, b: int) -> Tensor:
    """b batch-quantile buckets of prompts by L(Q_s) [S] (mean sequence log-likelihood): [S] long in [0, b)."""
    if b < 1:
        raise ValueError(f"reasoning_buckets must be >= 1, got {b}")
    levels = torch.arange(1, b, dtype=torch.float64) / b
    return quantile_buckets(confidence, levels)


def bucket_normalised(rewards: Tensor, group_ids: Tensor, bucket_of_row: Tensor, eps: float = GRPO_STD_EPS) -> Tensor:
    """A_a(s, i) = (r_{s,i} − mean_G(r_s)) / (std(R_{a(s)}) + eps), std unbiased over every reward of the rows
    in bucket a (a bucket is a union of whole groups). rewards, group_ids, bucket_of_row: [N] -> [N].
    A bucket of one row, or whose rewards are all equal, gives 0."""
    st = group_stats(rewards, group_ids)
    centred = rewards - st.mean[st.index]
    bs = group_stats(rewards, bucket_of_row)  # the bucket's pooled mean/std over all its rewards
    adv = centred / (bs.std[bs.index] + eps)
    return torch.where(st.zero_std_mask | bs.zero_std_mask, torch.zeros_like(adv), adv)


def per_prompt(values: Tensor, group_ids: Tensor, reduce: str = "mean") -> tuple[Tensor, Tensor]:
    """(per-group value [S] float64, index [N] of each row's group): the mean of the group's rows, or with
    `reduce="first"` the value of its first row (a per-prompt feature repeated over the group)."""
    st = group_stats(torch.zeros(values.shape, dtype=torch.float64), group_ids)
    v = values.to(torch.float64)
    if reduce == "mean":
        sums = torch.zeros(st.group_ids.numel(), dtype=torch.float64).index_add_(0, st.index, v)
        return sums / st.count.to(torch.float64), st.index
    if reduce == "first":
        first, index = group_first_rows(group_ids)
        return v[first], index
    raise ValueError(f"reduce must be 'mean' or 'first', got {reduce!r}")


@ADVANTAGES.register("durian")
@needs_sequence_logp
def durian_advantages(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *, ctx: AdvantageContext,
                      alphas: tuple[float, float, float] = (0.4, 0.3, 0.3), reasoning_buckets: int = 12,
                      perception_quantiles: tuple[float, float] = (0.25, 0.75), perception: bool = True,
                      reasoning: bool = True, eps: float = GRPO_STD_EPS) -> Tensor:
    """Durian's combined advantage (module docstring): α_o · A_GRPO + α_p · A_perc + α_r · A_reas.

    Args:
        rewards: [N]; group_ids: [N]; mask: unused (per-sequence estimator).
        ctx: `extras["visual_entropy"]` [N] (per prompt, repeated) when `perception`; `sequence_logp`
            [N] when `reasoning`.
        alphas: (α_o, α_p, α_r); a term switched off by `perception=False` / `reasoning=False` (the
            ablations) has its weight moved onto the GRPO term, so the weights still sum as given.
        reasoning_buckets: b, the number of reasoning buckets (the paper: 12–16).
        perception_quantiles: (τ_low, τ_high) of the three perception buckets.

    Returns:
        [N] advantages. Per-bucket scales are written to `ctx.metrics` (`durian/perc_std_k`,
        `durian/reas_std_mean`) for the step's log.
    """
    a_o, a_p, a_r = (float(a) for a in alphas)
    adv = grpo_advantages(rewards, group_ids, eps=eps)
    out = torch.zeros_like(rewards)
    if perception:
        h, index = per_prompt(ctx.require("visual_entropy", "durian"), group_ids, reduce="first")
        pb = perception_buckets(h, *perception_quantiles)[index]
        out = out + a_p * bucket_normalised(rewards, group_ids, pb, eps).to(rewards.dtype)
        bs = group_stats(rewards, pb)
        for k, s in zip(bs.group_ids.tolist(), bs.std.tolist()):
            ctx.metrics[f"durian/perc_std_{k}"] = s
    else:
        a_o += a_p
    if reasoning:
        conf, index = per_prompt(ctx.require("sequence_logp", "durian"), group_ids, reduce="mean")
        rb = confidence_buckets(conf, reasoning_buckets)[index]
        out = out + a_r * bucket_normalised(rewards, group_ids, rb, eps).to(rewards.dtype)
        ctx.metrics["durian/reas_std_mean"] = float(group_stats(rewards, rb).std.mean())
    else:
        a_o += a_r
    return out + a_o * adv
