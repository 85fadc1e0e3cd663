"""Advantage estimators: one scalar reward per completion -> a per-token advantage.

Every estimator is a registered function ``fn(rewards, group_ids, mask, **kwargs)`` returning
``[N]`` (one advantage per completion, broadcast over its tokens) or ``[N, T]`` (dense, per token);
``compute_advantages`` broadcasts, masks and checks the result. A group is the set of completions
sampled for one prompt; groups may have unequal sizes (after DAPO filtering) and their ids need not
be contiguous or sorted.

Degenerate input has a documented safe answer, never NaN: a group whose rewards are all equal, or a
group of one completion, has advantage exactly 0 for every estimator.

An estimator that declares a ``ctx`` keyword receives an `AdvantageContext`: the rollout's extras
(per-prompt features such as visual entropy, per-token signals), per-completion sequence
log-likelihoods Σ_t log π_old(y_t), the problems and the run's config — what difficulty-aware
estimators (Durian, arXiv 2602.21743) need. Mark it `@needs_sequence_logp` and the trainer scores
log π_old before the advantages so that `ctx.sequence_logp` is filled.

Example::

    adv = compute_advantages("grpo", rewards, group_ids, completion_mask)   # [N, T]
    adv = compute_advantages("my_estimator", rewards, group_ids, mask, ctx=AdvantageContext(...))
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from workbench.registry import Registry

ADVANTAGES = Registry("advantage estimator")

#: Largest |reward| the estimators take: its square times a batch stays far inside float32.
MAX_ABS_REWARD = 1e15

#: Added to the group std in `grpo`, the value TRL's GRPOTrainer uses (so the two agree exactly).
GRPO_STD_EPS = 1e-4


@dataclass
class GroupStats:
    """Per-group reward statistics (G groups, N completions).

    Attributes:
        group_ids: [G] the distinct group ids, sorted.
        index: [N] long, position of each completion's group in `group_ids`.
        count: [G] number of completions per group.
        mean: [G] group mean reward.
        std: [G] group std with Bessel's correction (divide by n - 1, as TRL's ``nanstd``); 0 for a
            group of one.
        zero_std_mask: [N] bool, True where the completion's group has all-equal rewards (exact
            equality, groups of one included): such groups carry no GRPO signal (DAPO drops them).
    """

    group_ids: Tensor
    index: Tensor
    count: Tensor
    mean: Tensor
    std: Tensor
    zero_std_mask: Tensor

    @property
    def frac_zero_std_groups(self) -> float:
        """Fraction of groups (not completions) whose rewards are all equal; 0.0 when there are none."""
        if self.count.numel() == 0:
            return 0.0
        zero_groups = torch.zeros_like(self.count, dtype=torch.bool).index_fill_(0, self.index[self.zero_std_mask], True)
        return zero_groups.float().mean().item()


def _check_rewards(rewards: Tensor, group_ids: Tensor) -> None:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if group_ids.shape != rewards.shape:
        raise ValueError(f"group_ids must have the shape of rewards {tuple(rewards.shape)}, got {tuple(group_ids.shape)}")
    if group_ids.dtype.is_floating_point or group_ids.dtype == torch.bool:
        raise ValueError(f"group_ids must be an integer tensor, got dtype {group_ids.dtype}")
    if not rewards.dtype.is_floating_point:
        raise ValueError(f"rewards must be a floating tensor, got dtype {rewards.dtype}")
    bad = ~torch.isfinite(rewards)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"rewards must be finite, got {rewards[i].item()} at index {i}")
    big = rewards.abs() > MAX_ABS_REWARD
    if big.any():  # squares of larger rewards overflow float32 group statistics (inf std, NaN weights downstream)
        i = int(big.nonzero()[0])
        raise ValueError(f"rewards must lie within ±{MAX_ABS_REWARD:g} (rescale the reward), got {rewards[i].item():g} at index {i}")


def group_stats(rewards: Tensor, group_ids: Tensor) -> GroupStats:
    """Per-group mean / std of rewards and which completions sit in an all-equal group.

    Args:
        rewards: [N] float, one scalar reward per completion.
        group_ids: [N] long, the prompt (group) of each completion; any integers, any order.

    Returns:
        A `GroupStats`: mean_g = Σ_{i∈g} r_i / n_g, std_g = sqrt(Σ_{i∈g} (r_i − mean_g)² / (n_g − 1))
        (0 when n_g = 1), zero_std_mask_i = [max_{j∈g} r_j == min_{j∈g} r_j].
    """
    _check_rewards(rewards, group_ids)
    uniq, index = torch.unique(group_ids, sorted=True, return_inverse=True)
    n_groups = uniq.numel()
    count = torch.bincount(index, minlength=n_groups)
    sums = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device).index_add_(0, index, rewards)
    mean = sums / count.clamp(min=1).to(rewards.dtype)
    sq = (rewards - mean[index]) ** 2
    ss = torch.zeros_like(sums).index_add_(0, index, sq)
    var = torch.where(count > 1, ss / (count - 1).clamp(min=1).to(rewards.dtype), torch.zeros_like(ss))
    std = var.sqrt()
    gmax = torch.full_like(sums, -torch.inf).scatter_reduce_(0, index, rewards, reduce="amax")
    gmin = torch.full_like(sums, torch.inf).scatter_reduce_(0, index, rewards, reduce="amin")
    zero_std_mask = (gmax == gmin)[index]
    return GroupStats(group_ids=uniq, index=index, count=count, mean=mean, std=std, zero_std_mask=zero_std_mask)


def group_first_rows(group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """(first [S]: the first row of each of the S groups in sorted-id order, index [N]: each row's group
    position), for per-prompt features repeated over a group's rows."""
    uniq, index = torch.unique(group_ids, sorted=True, return_inverse=True)
    rows = torch.arange(group_ids.numel(), device=group_ids.device)
    first = torch.full((uniq.numel(),), group_ids.numel(), dtype=torch.long, device=group_ids.device)
    return first.scatter_reduce_(0, index, rows, "amin"), index


@dataclass
class AdvantageContext:
    """What a context-aware advantage estimator may look at (N completions, T tokens).

    Attributes:
        extras: the rollout's named tensors: [N] per completion (per-prompt features repeated over the
            group, e.g. ``"visual_entropy"``) or [N, T] per token.
        sequence_logp: [N] Σ_t log π_old(y_t) over each completion's tokens, or None when the rollout was
            not scored before the advantages (mark the estimator `@needs_sequence_logp`).
        problems: the N problems (a group's rows share one).
        config: the run's `RLConfig` (or None).
        metrics: filled by the estimator with scalar diagnostics (e.g. per-bucket scales); the trainer
            logs them with the step's metrics.
    """

    extras: dict[str, Tensor] = field(default_factory=dict)
    sequence_logp: Tensor | None = None
    problems: list = field(default_factory=list)
    config: Any = None
    metrics: dict[str, float] = field(default_factory=dict)

    def require(self, name: str, estimator: str) -> Tensor:
        """`sequence_logp` or the extras entry `name`, or a ValueError naming it and the estimator that needs it."""
        value = self.sequence_logp if name == "sequence_logp" else self.extras.get(name)
        if value is None:
            where = "AdvantageContext.sequence_logp" if name == "sequence_logp" else f"AdvantageContext.extras[{name!r}]"
            raise ValueError(f"advantage estimator {estimator!r} needs {where}, which this rollout does not provide")
        return value


def needs_sequence_logp(fn):
    """Mark an estimator that reads `ctx.sequence_logp`: the trainer then scores log π_old before the advantages."""
    fn.needs_sequence_logp = True
    return fn


def estimator_needs_sequence_logp(name: str) -> bool:
    """Whether the registered estimator `name` is marked `needs_sequence_logp`."""
    return bool(getattr(ADVANTAGES.get(name), "needs_sequence_logp", False))


def near_extreme_groups(success: Tensor, group_ids: Tensor) -> Tensor:
    """[N] bool: rows whose group (n_g ≥ 3 completions) has exactly 1 or n_g − 1 successes — where GRPO's
    per-group std is smallest for a mixed group and |A| of the odd one out is largest (≈ √n_g)."""
    st = group_stats(success.to(torch.float64), group_ids)
    k = (st.mean * st.count)[st.index].round()
    n = st.count[st.index]
    return (n >= 3) & ((k == 1) | (k == n - 1))


def advantage_diagnostics(advantages: Tensor, success: Tensor, group_ids: Tensor) -> dict[str, float]:
    """Scale of per-completion advantages [N] overall and on near-extreme groups (`near_extreme_groups` of the
    binary `success` [N]): `adv_abs_mean`, `adv_abs_near_extreme_mean` / `_max` (0.0 when there are none)
    and `frac_near_extreme_rows`."""
    a = advantages.detach().abs().to(torch.float64)
    ne = near_extreme_groups(success, group_ids)
    return {"adv_abs_mean": float(a.mean()) if a.numel() else 0.0,
            "adv_abs_near_extreme_mean": float(a[ne].mean()) if ne.any() else 0.0,
            "adv_abs_near_extreme_max": float(a[ne].max()) if ne.any() else 0.0,
            "frac_near_extreme_rows": float(ne.float().mean()) if ne.numel() else 0.0}


def compute_advantages(name: str, rewards: Tensor, group_ids: Tensor, mask: Tensor, *,
                       ctx: AdvantageContext | None = None, **kwargs) -> Tensor:
    """Run the registered estimator `name` and spread its output over each completion's tokens.

    Args:
        name: a key of `ADVANTAGES` (``grpo``, ``dr_grpo``, ``rloo``, ...).
        rewards: [N] float, one reward per completion.
        group_ids: [N] long, the group (prompt) of each completion.
        mask: [N, T] completion mask (bool or 0/1); a row of zeros is an empty completion.
        ctx: an `AdvantageContext`, passed to estimators that declare a ``ctx`` parameter.
        **kwargs: passed to the estimator.

    Returns:
        advantages: [N, T] in the dtype of `rewards`, A_{i,t} = a_i (or the estimator's dense value)
        where mask is 1 and exactly 0 where mask is 0.
    """
    fn = ADVANTAGES.get(name)
    if mask.dim() != 2 or mask.shape[0] != rewards.shape[0]:
        raise ValueError(f"mask must be [N, T] with N = {rewards.shape[0]} rows, got shape {tuple(mask.shape)}")
    if "ctx" in inspect.signature(fn).parameters:
        kwargs["ctx"] = ctx if ctx is not None else AdvantageContext()
    adv = fn(rewards, group_ids, mask, **kwargs)
    if adv.dim() == 1:
        adv = adv[:, None].expand(mask.shape)
    if adv.shape != mask.shape:
        raise ValueError(f"advantage estimator {name!r} returned shape {tuple(adv.shape)}, expected {tuple(mask.shape)}")
    return torch.where(mask.bool(), adv, torch.zeros_like(adv))


@ADVANTAGES.register("grpo")
def grpo_advantages(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None, *, eps: float = GRPO_STD_EPS) -> Tensor:
    """GRPO group z-score (DeepSeekMath, arXiv 2402.03300): a_i = (r_i − mean_g) / (std_g + eps).

    std_g uses Bessel's correction and eps = 1e-4 is added to it, exactly as TRL's GRPOTrainer
    (``scale_rewards="group"``), so a group whose rewards differ by tiny amounts gets a bounded, not a
    huge, advantage. An all-equal group and a group of one get exactly 0 (TRL: ≈0 and NaN→0).

    Args:
        rewards: [N]; group_ids: [N]; mask: unused (per-sequence estimator).
        eps: added to the group std.

    Returns:
        [N] advantages.
    """
    st = group_stats(rewards, group_ids)
    adv = (rewards - st.mean[st.index]) / (st.std[st.index] + eps)
    return torch.where(st.zero_std_mask, torch.zeros_like(adv), adv)


@ADVANTAGES.register("dr_grpo")
def dr_grpo_advantages(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None) -> Tensor:
    """Dr. GRPO (arXiv 2503.20783): a_i = r_i − mean_g, no division by the group std.

    Dividing by std up-weights prompts that are nearly always (or never) solved; Dr. GRPO removes
    that question-difficulty bias. All-equal groups and groups of one give exactly 0.

    Returns:
        [N] advantages.
    """
    st = group_stats(rewards, group_ids)
    adv = rewards - st.mean[st.index]
    return torch.where(st.zero_std_mask, torch.zeros_like(adv), adv)


@ADVANTAGES.register("rloo")
def rloo_advantages(rewards: Tensor, group_ids: Tensor, mask: Tensor | None = None) -> Tensor:
    """REINFORCE leave-one-out (Ahmadian et al., arXiv 2402.14740): a_i = r_i − mean_{j∈g, j≠i} r_j.

    Equivalently a_i = n_g / (n_g − 1) · (r_i − mean_g). The baseline excludes the sample itself,
    so the estimate is unbiased. A group of one has no baseline and gets 0; all-equal groups get 0.

    Returns:
        [N] advantages.
    """
    st = group_stats(rewards, group_ids)
    n = st.count[st.index].to(rewards.dtype)
    adv = (rewards - st.mean[st.index]) * n / (n - 1).clamp(min=1)
    return torch.where(st.zero_std_mask, torch.zeros_like(adv), adv)
