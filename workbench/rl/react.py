"""REACT's stage 2 (arXiv 2601.04033): GRPO with pairwise rewards, as one rollout source and one group reward.

    cfg = RLConfig.for_method("grpo", rollout_source="pairwise")      # problems: (better view, worse view) pairs
    train(reward_model, processor, react_task(processor), cfg)

The paper's text is abstract-only; this is our reconstruction. For a pair a ≻ b of the same scene shown at the
same frames, the `pairwise` source samples G ratings of a and G of b and puts all 2G rows in **one group**
(rows a₁…a_G, b₁…b_G), so the group-relative advantage compares ratings of both clips. The group reward
`pairwise_reward` pays a rating of a for every rating of b it out-scores, and a rating of b for every rating of a
that out-scores it:

    r_pair(a_i) = (1/G) Σ_j 1[s(a_i) > s(b_j)],    r_pair(b_j) = (1/G) Σ_i 1[s(a_i) > s(b_j)]

(an unparsable score never wins). The task adds a format reward (every part of the answer well formed) and a
label reward (the predicted kind equals the kind visible in the shown frames): r = r_pair + r_format + r_label.
"""

from __future__ import annotations

from typing import Sequence

import torch

from workbench.evaluation.heldout import generate_completions
from workbench.rl.rewards import score_completions
from workbench.rl.rollout import Rollout
from workbench.rl.sources import ROLLOUT_SOURCES, SourceContext
from workbench.tasks.video import parse_rating


def pairwise_reward(completions: Sequence[str], rows: Sequence) -> list[float]:
    """r_pair of every row of one pair group (see the module docstring). `rows`: the group's `ClipView`s, each
    with `side` "better" or "worse". Raises ValueError when the group does not hold both sides of one pair."""
    sides = [getattr(r, "side", None) for r in rows]
    pair_ids = {getattr(r, "pair_id", None) for r in rows}
    if set(sides) != {"better", "worse"} or len(pair_ids) != 1:
        raise ValueError("the pairwise reward needs groups holding both clips of one pair "
                         "(train with rollout_source='pairwise')")
    scores = [parse_rating(c).score for c in completions]
    better = [s for s, side in zip(scores, sides) if side == "better"]
    worse = [s for s, side in zip(scores, sides) if side == "worse"]
    win = lambda a, b: float(a is not None and b is not None and a > b)  # noqa: E731
    return [sum(win(s, w) for w in worse) / len(worse) if side == "better" else sum(win(b, s) for b in better) / len(better)
            for s, side in zip(scores, sides)]


@ROLLOUT_SOURCES.register("pairwise")
def pairwise_source(ctx: SourceContext, problems: list, first_group_id: int) -> Rollout:
    """G sampled ratings of each clip of each pair problem ((better view, worse view)), 2G rows per group, pair
    k in group `first_group_id + k`; rewards scored over those groups."""
    for p in problems:
        if not (isinstance(p, (tuple, list)) and len(p) == 2):
            raise ValueError(f"the pairwise source needs (better, worse) pair problems, got {type(p).__name__}")
    views = [v for pair in problems for v in pair]
    G = ctx.num_generations
    gen, row_inputs = generate_completions(ctx.model, ctx.tokenizer, ctx.task, views, num_samples=G,
                                           max_new_tokens=ctx.max_new_tokens, temperature=ctx.temperature,
                                           top_p=ctx.top_p, generator=ctx.generator)
    rows = [v for v in views for _ in range(G)]
    group_ids = torch.arange(first_group_id, first_group_id + len(problems)).repeat_interleave(2 * G)
    rewards, parts = score_completions(ctx.task.rewards, gen.texts, rows, group_ids)
    return Rollout(gen.prompt_ids.cpu(), gen.prompt_mask.cpu(), gen.completion_ids.cpu(), gen.completion_mask.cpu(),
                   gen.truncated.cpu(), rewards, parts, group_ids, gen.texts, rows, row_inputs)
