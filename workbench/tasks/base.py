"""What a task gives the trainer and the evaluator: problems, a prompt, rewards, a held-out split.

A `Task` is a record of plain callables, so a synthetic world (`arithmetic`, `shapes`, `haystack`, ...)
becomes a task without importing any model code; adapters that need a tokenizer's chat format live
with the code that trains (`workbench.rl.tasks`).

Rewards come in two kinds, summed with their weights into one scalar per completion:

    r_i = Σ_k w_k · fn_k(completion_i, problem_i)  +  Σ_m w_m · group_fn_m(completions of i's group, problem)[i]

a `RewardSpec` scores one completion at a time; a `GroupRewardSpec` scores a whole group of completions
of one prompt at once (pairwise comparisons such as REACT's, arXiv 2601.04033) and returns one value per
completion of the group.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

RewardFn = Callable[[str, object], float]
GroupRewardFn = Callable[[Sequence[str], object], Sequence[float]]


@dataclass(frozen=True)
class RewardSpec:
    """A named per-completion reward `fn(completion, problem) -> float` and its weight in the sum."""

    name: str
    fn: RewardFn
    weight: float = 1.0


@dataclass(frozen=True)
class GroupRewardSpec:
    """A named group reward `fn(completions of one prompt, problem) -> one float per completion` and its
    weight; it sees all G completions of a prompt at once (e.g. pairwise preference counts).

    With `per_row=True` the second argument is the list of the group's row problems instead of one problem:
    a group that holds completions of several clips (REACT's pairs, `rl.react.pairwise_source`) needs to know
    which row rated which clip."""

    name: str
    fn: GroupRewardFn
    weight: float = 1.0
    per_row: bool = False


@dataclass
class Task:
    """What the trainer and the evaluator need from a task.

    Attributes:
        name: for logs.
        sample: `(n, rng: random.Random) -> list[problem]` training problems.
        prompt: `problem -> str` the (chat) prompt.
        rewards: weighted rewards, `RewardSpec` (per completion) or `GroupRewardSpec` (per group).
        encode: optional `(tokenizer_or_processor, problems, prompts) -> (prompt_ids, prompt_mask, row_inputs)`
            for tasks with images; `row_inputs` is a list (one dict per prompt) of extra model inputs.
        eval_problems: optional `n -> list[problem]` held-out problems; `correct(completion, problem) -> bool`
            (default: the weighted per-completion reward ≥ 1).
        annotate: optional `(policy, tokenizer, rollout) -> {name: [N, T] tensor}` run after log π_old is
            scored and before the advantages; the tensors land in `rollout.extras`, where advantage
            estimators and token weights read them (ToR's `visual_dependency`).
        heldout_metrics: optional `(completions, problems) -> {name: float}` extra held-out metrics
            (e.g. ShapeWorld perception accuracy), reported next to accuracy by `evaluation.evaluate`.
        reference: optional `(problem, rng, error_rate) -> str` an expert response in the policy's format
            (ShapeWorld's scene-graph oracle), wrong with probability `error_rate` in a task-defined way;
            expert-guided sources (TGRL's `expert_mix`) mix it into groups.
        expert_ok: optional `(completion, problem) -> bool` whether an expert response may be learnt from
            (ShapeWorld: right answer and every stated fact true); TGRL's `expert_filter` keeps only these.
    """

    name: str
    sample: Callable[[int, random.Random], list]
    prompt: Callable[[object], str]
    rewards: list
    encode: Callable | None = None
    eval_problems: Callable[[int], list] | None = None
    correct: Callable[[str, object], bool] | None = None
    annotate: Callable | None = None
    heldout_metrics: Callable | None = None
    reference: Callable | None = None
    expert_ok: Callable | None = None

    def is_correct(self, completion: str, problem) -> bool:
        """`correct(completion, problem)`, else whether the weighted per-completion rewards sum to ≥ 1."""
        if self.correct is not None:
            return bool(self.correct(completion, problem))
        return sum(s.weight * s.fn(completion, problem) for s in self.rewards if isinstance(s, RewardSpec)) >= 1.0
