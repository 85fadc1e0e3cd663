"""RL task adapters: a synthetic world from `workbench.tasks` as an `RLTask` the trainer can use."""

from __future__ import annotations

import random

from workbench.models.tokenizer import format_prompt
from workbench.rl.rewards import RewardSpec
from workbench.rl.rollout import RLTask
from workbench.tasks import arithmetic


def arithmetic_task(steps: int = 2, digits: int = 1, format_weight: float = 0.0) -> RLTask:
    """Left-to-right arithmetic (see `workbench.tasks.arithmetic`): exact-match reward (+ optional
    format reward); training problems never include a question of the frozen held-out split."""
    held_out = arithmetic.load_eval_set() if (steps, digits) == (arithmetic.EVAL_SPEC["steps"], arithmetic.EVAL_SPEC["digits"]) \
        else arithmetic.generate(arithmetic.EVAL_SPEC["n"], seed=arithmetic.EVAL_SPEC["seed"], steps=steps, digits=digits)
    excluded = {p.question for p in held_out}

    def sample(n: int, rng: random.Random) -> list:
        out = []
        while len(out) < n:
            p = arithmetic.make_problem(rng, steps, digits)
            if p.question not in excluded:
                out.append(p)
        return out

    rewards = [RewardSpec("correct", lambda c, p: arithmetic.reward(c, p.answer))]
    if format_weight:
        rewards.append(RewardSpec("format", lambda c, p: float(arithmetic.parse_answer(c) is not None and c.strip().splitlines()[-1].startswith("answer:")), format_weight))
    return RLTask(
        name=f"arithmetic(steps={steps}, digits={digits})", sample=sample, prompt=lambda p: format_prompt(p.question),
        rewards=rewards, eval_problems=lambda n: held_out[:n],
        correct=lambda c, p: arithmetic.reward(c, p.answer) >= 1.0,
    )
