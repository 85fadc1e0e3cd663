"""Rollout sources (registry): where the completions of a group come from.

A source is ``fn(ctx: SourceContext, problems, first_group_id) -> Rollout`` returning, for each problem,
`ctx.num_generations` scored completions (rows problem-major, group ids `first_group_id, ...`). The
default `policy` samples them from the policy being trained. A source that mixes in completions the
policy did not sample (expert trajectories, TGRL arXiv 2603.26126; LUFFY arXiv 2504.14945) marks their
tokens in ``rollout.extras["off_policy"]`` ([N, T], 1.0 on off-policy tokens), which token weights,
losses and filters read.

    @ROLLOUT_SOURCES.register("my_source")
    def my_source(ctx, problems, first_group_id, **kwargs) -> Rollout: ...
    RLConfig(rollout_source=("my_source", {...}))
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from workbench.evaluation.heldout import generate_completions
from workbench.registry import Registry
from workbench.rl.rewards import score_completions
from workbench.rl.rollout import Rollout
from workbench.tasks.base import Task

ROLLOUT_SOURCES = Registry("rollout source")


@dataclass
class SourceContext:
    """What a source may use: the policy and its tokenizer, the task, the sampling settings and the step's
    seeded generator / RNG."""

    model: Any
    tokenizer: Any
    task: Task
    num_generations: int
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    generator: torch.Generator | None = None
    rng: random.Random | None = None


def generate_group(model, tokenizer, task: Task, problems: list, *, num_generations: int, max_new_tokens: int,
                   temperature: float, top_p: float, generator: torch.Generator | None, first_group_id: int = 0,
                   greedy: bool = False) -> Rollout:
    """Sample `num_generations` completions for each problem from `model` and score them (no filtering)."""
    gen, row_inputs = generate_completions(model, tokenizer, task, problems, num_samples=num_generations,
                                           max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                           generator=generator, greedy=greedy)
    rows = [p for p in problems for _ in range(num_generations)]
    group_ids = torch.arange(first_group_id, first_group_id + len(problems)).repeat_interleave(num_generations)
    rewards, parts = score_completions(task.rewards, gen.texts, rows, group_ids)
    return Rollout(gen.prompt_ids.cpu(), gen.prompt_mask.cpu(), gen.completion_ids.cpu(), gen.completion_mask.cpu(),
                   gen.truncated.cpu(), rewards, parts, group_ids, gen.texts, rows, row_inputs)


@ROLLOUT_SOURCES.register("policy")
def policy_source(ctx: SourceContext, problems: list, first_group_id: int) -> Rollout:
    """On-policy sampling: G completions per problem from the policy at the configured temperature / top-p."""
    return generate_group(ctx.model, ctx.tokenizer, ctx.task, problems, num_generations=ctx.num_generations,
                          max_new_tokens=ctx.max_new_tokens, temperature=ctx.temperature, top_p=ctx.top_p,
                          generator=ctx.generator, first_group_id=first_group_id)


def parse_spec(spec) -> tuple[str, dict]:
    """A registry spec `name` or `(name, kwargs)` -> (name, kwargs)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return spec[0], dict(spec[1])
    raise ValueError(f"a registry spec must be a name or a (name, kwargs) pair, got {spec!r}")
