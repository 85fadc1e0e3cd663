"""Selective rollouts: skip prompts that keep giving all-equal groups (GRESO, arXiv 2506.02177).

A group whose G rewards are all equal has zero group-relative advantage, so the compute spent sampling
it buys no gradient (with GRPO on `tiny-arith` at temperature 0.7, 60–80 % of the groups). GRESO observes
that this is consistent in time — a prompt whose groups had zero reward variance the last z times it
was drawn is likely to again — and skips such prompts *before* sampling them:

    P(sample prompt x again) = explore^{z(x)},   z(x) = consecutive all-equal groups of x so far

(z = 0, a prompt never seen or whose last group was mixed, is always sampled). Skipped candidates are
replaced by fresh draws from the task, so a step still samples `num_prompts` groups, and more of them
are informative. Simplification, said plainly: `explore` is a fixed number here, where GRESO adapts it
(separately for easy and hard prompts) to hit a target fraction of zero-variance groups.

The history is keyed by prompt text, so it suits tasks whose prompt identifies the problem, as in
`arithmetic` (a vision-language task that asks one question of many images would pool them). It is
updated after every sampling round from the groups' final rewards (after DAPO's overlong shaping:
exactly the groups DAPO's dynamic sampling would drop), merged across processes by the trainer and
saved in its checkpoints, so a resumed run draws the same prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class PromptHistory:
    """`streak[prompt]`: consecutive all-equal-reward groups of that prompt so far (0: last group mixed)."""

    streak: dict[str, int] = field(default_factory=dict)

    def record(self, outcomes: list[tuple[str, bool]]) -> None:
        """Apply (prompt, group had all-equal rewards) outcomes in order."""
        for key, zero_variance in outcomes:
            self.streak[key] = self.streak.get(key, 0) + 1 if zero_variance else 0

    def draw(self, task, n: int, rng: random.Random, explore: float, max_draws_factor: int = 8) -> list:
        """`n` problems from `task.sample`, each candidate with streak z kept with probability explore^z.

        After `max_draws_factor · n` candidates every further one is kept, so a history in which every
        prompt is settled cannot stall a step."""
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        out: list = []
        draws = 0
        while len(out) < n:
            for problem in task.sample(n - len(out), rng):
                draws += 1
                z = self.streak.get(task.prompt(problem), 0)
                if z and draws <= max_draws_factor * n and rng.random() >= explore**z:
                    continue
                out.append(problem)
        return out

    def state_dict(self) -> dict:
        return {"streak": dict(self.streak)}

    @classmethod
    def from_state_dict(cls, state: dict | None) -> "PromptHistory":
        return cls(streak={str(k): int(v) for k, v in (state or {}).get("streak", {}).items()})
