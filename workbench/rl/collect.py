"""One step's rollout: sample from the configured source, shape, filter, refill (`collect_rollout`).

    cfg = CollectConfig(num_prompts=16, num_generations=8, max_new_tokens=48, filters=["dapo_dynamic"])
    rollout, stats = collect_rollout(policy, tokenizer, task, cfg, generator=g, rng=rng)

Each round draws prompts (GRESO-style with a `PromptHistory`), asks the rollout source for G scored
completions each (`workbench.rl.sources`), adds DAPO's overlong shaping, then keeps the rows every
rollout filter keeps (`workbench.rl.filters`). With filters configured, rounds repeat until
`num_prompts` groups are kept or `max_sampling_rounds` have run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

import torch

from workbench.rl.advantages import group_stats
from workbench.rl.filters import apply_filters
from workbench.rl.rewards import overlong_penalty
from workbench.rl.rollout import Rollout, cat_rollouts, pad_token_id
from workbench.rl.sources import ROLLOUT_SOURCES, SourceContext, parse_spec
from workbench.tasks.base import Task


@dataclass
class CollectConfig:
    """How one step's rollout is collected (the sampling half of `RLConfig`; `from_rl` builds it).

    Attributes:
        num_prompts: groups to keep (this process's share). num_generations: G completions per prompt.
        max_new_tokens, temperature, top_p: sampling.
        source: rollout source name or (name, kwargs) (`ROLLOUT_SOURCES`; "policy" = on-policy sampling).
        filters: rollout filter specs (`ROLLOUT_FILTERS`, e.g. ["dapo_dynamic"]); none = one round, all kept.
        max_sampling_rounds: cap on rounds with filters. refill_headroom: a refill samples
            missing / keep-rate × this many prompts.
        overlong_buffer, overlong_factor: DAPO's soft overlong penalty (buffer 0 = off).
        mask_truncated: zero the completion mask of completions that hit `max_new_tokens`.
        explore: GRESO's keep probability base (used only with a `prompt_history`).
    """

    num_prompts: int
    num_generations: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    source: object = "policy"
    filters: list = field(default_factory=list)
    max_sampling_rounds: int = 4
    refill_headroom: float = 1.5
    overlong_buffer: int = 0
    overlong_factor: float = 1.0
    mask_truncated: bool = False
    explore: float = 1.0

    def __post_init__(self):
        if self.refill_headroom < 1:
            raise ValueError(f"refill_headroom must be >= 1, got {self.refill_headroom}")
        ROLLOUT_SOURCES.get(parse_spec(self.source)[0])  # unknown source -> one-sentence KeyError

    @classmethod
    def from_rl(cls, cfg, world: int = 1) -> "CollectConfig":
        """The sampling settings of an `RLConfig` for one of `world` processes (DAPO's `dynamic_sampling`
        adds the `dapo_dynamic` filter)."""
        filters = list(cfg.rollout_filters)
        if cfg.dynamic_sampling and "dapo_dynamic" not in filters:
            filters.append("dapo_dynamic")
        return cls(num_prompts=cfg.num_prompts // world, num_generations=cfg.num_generations,
                   max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                   source=cfg.rollout_source, filters=filters, max_sampling_rounds=cfg.max_sampling_rounds,
                   refill_headroom=cfg.refill_headroom, overlong_buffer=cfg.overlong_buffer,
                   overlong_factor=cfg.overlong_factor, mask_truncated=cfg.mask_truncated, explore=cfg.explore)


@dataclass
class SamplingStats:
    """What sampling and filtering did in one step."""

    rounds: int = 0
    groups_sampled: int = 0
    groups_dropped: int = 0
    rows_dropped: int = 0  # rows the filters removed (whole dropped groups and single rows, e.g. TGRL's expert filter)
    frac_zero_std_groups: float = 0.0
    completion_tokens: int = 0
    rows_sampled: int = 0  # completions sampled over every round, kept or dropped
    reward_sum: float = 0.0  # their total (shaped) reward and total length: a skipped step still reports both
    length_sum: int = 0
    prompt_outcomes: list = field(default_factory=list)  # (prompt, group had all-equal rewards) per group, with a prompt history


def refill_size(need: int, kept: int, sampled: int, headroom: float, cap: int) -> int:
    """Prompts to sample in a dynamic-sampling round, so that one round usually suffices.

        n = ⌈need / q̂ · headroom⌉,   q̂ = (kept + 1) / (sampled + 2)   (a keep rate, Laplace-smoothed)

    clipped to [need, cap]. With headroom 1 the expected number kept is `need`, so a further round
    is needed about half the time; 1.5 makes that rare. Groups beyond `need` are discarded unseen by
    the update (verl's DAPO recipe likewise over-samples a fixed generation batch and trims).
    The first round of a step uses the previous step's counts with headroom 1 (`prior_keep`), a refill
    the step's own counts so far with `refill_headroom`."""
    rate = (kept + 1) / (sampled + 2)
    return int(min(max(math.ceil(need / rate * headroom), need), max(cap, need)))


def shape_rewards(ro: Rollout, cfg: CollectConfig) -> Rollout:
    """DAPO's overlong shaping (arXiv 2503.14476): the soft penalty as reward part "overlong", and with
    `mask_truncated` no loss on completions that hit the cap (they neither help nor hurt)."""
    if cfg.overlong_buffer > 0:
        pen = overlong_penalty(ro.lengths, cfg.max_new_tokens, cfg.overlong_buffer, cfg.overlong_factor)
        ro.reward_parts["overlong"] = pen
        ro.rewards = ro.rewards + pen
    if cfg.mask_truncated:
        ro.completion_mask = ro.completion_mask * (~ro.truncated)[:, None].long()
    return ro


def collect_rollout(model, tokenizer, task: Task, cfg: CollectConfig, *, generator: torch.Generator,
                    rng: random.Random, prior_keep: tuple[int, int] | None = None,
                    prompt_history=None) -> tuple[Rollout, SamplingStats]:
    """Sample, score, shape and filter one step's rollout.

    With filters (DAPO's `dapo_dynamic`: groups whose final rewards are all equal carry no gradient under
    GRPO-style advantages), dropped groups are replaced by new prompts until `cfg.num_prompts` groups are
    kept or `cfg.max_sampling_rounds` rounds have run (then the step proceeds with what it has; the count
    is logged). A refill round samples `refill_size(...)` prompts — the missing groups divided by the keep
    rate seen so far, times `refill_headroom` (at most 2 × num_prompts) — and the surplus is dropped, so a
    step rarely needs a third round. `prior_keep` = (groups kept, groups sampled) of the previous step sizes
    the first round the same way with headroom 1, so a steady keep rate q costs about num_prompts / q groups
    in one round plus, about half the time, a small top-up. Without it (first step, or no filters) the first
    round is `num_prompts`.
    `prompt_history` (a `selective.PromptHistory`; None = off) draws the prompts GRESO-style (arXiv
    2506.02177): a prompt whose last z groups had all-equal rewards is sampled with probability explore^z.
    Every sampled group's outcome is then returned in `stats.prompt_outcomes` (the caller updates the history).
    """
    name, kwargs = parse_spec(cfg.source)
    source = ROLLOUT_SOURCES.get(name)
    ctx = SourceContext(model, tokenizer, task, cfg.num_generations, cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                        generator, rng)
    refill = bool(cfg.filters)
    stats = SamplingStats()
    kept: list[Rollout] = []
    n_kept, next_gid, need = 0, 0, cfg.num_prompts
    while True:
        stats.rounds += 1
        if stats.rounds == 1:
            want = refill_size(need, *prior_keep, 1.0, 2 * need) if (refill and prior_keep) else need
        else:
            want = refill_size(need - n_kept, n_kept, stats.groups_sampled, cfg.refill_headroom, 2 * need)
        problems = prompt_history.draw(task, want, rng, cfg.explore) if prompt_history is not None else task.sample(want, rng)
        ro = source(ctx, problems, next_gid, **kwargs)
        next_gid += len(problems)
        stats.groups_sampled += len(problems)
        stats.completion_tokens += int(ro.completion_mask.sum())  # tokens sampled, before overlong filtering
        ro = shape_rewards(ro, cfg)
        stats.rows_sampled += len(ro)
        stats.reward_sum += float(ro.rewards.sum())
        stats.length_sum += int(ro.lengths.sum())
        gs = group_stats(ro.rewards, ro.group_ids)
        if prompt_history is not None:
            first_rows = torch.searchsorted(ro.group_ids.contiguous(), gs.group_ids)  # rows are group-major
            settled = gs.zero_std_mask[first_rows].tolist()
            stats.prompt_outcomes += [(task.prompt(p), z) for p, z in zip(problems, settled)]
        if stats.rounds == 1:
            stats.frac_zero_std_groups = gs.frac_zero_std_groups
        if refill:
            keep = apply_filters(cfg.filters, ro, cfg.num_generations)
            stats.rows_dropped += len(ro) - int(keep.sum())
            ro = ro.select(keep.nonzero().squeeze(-1))
            groups_kept = int(torch.unique(ro.group_ids).numel())
            stats.groups_dropped += len(problems) - groups_kept
        else:
            groups_kept = len(problems)
        if len(ro):
            kept.append(ro)
            n_kept += groups_kept
        if not refill or n_kept >= need or stats.rounds >= cfg.max_sampling_rounds:
            break
    if not kept:  # every group was dropped: an empty rollout, the trainer skips the update
        return replace(ro, extras={}), stats
    out = cat_rollouts(kept, pad_token_id(tokenizer))
    if refill and n_kept > need:  # trim to exactly num_prompts groups (the first ones sampled)
        last = torch.unique(out.group_ids)[need - 1]
        out = out.select((out.group_ids <= last).nonzero().squeeze(-1))
    return out, stats
