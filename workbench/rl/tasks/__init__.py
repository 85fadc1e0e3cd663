"""RL task adapters: a synthetic world of `workbench.tasks` as a `Task` in the chat format of our tokenizer.

    arithmetic_task()            # tiny-arith: 2-step single-digit chains (the quickstart, Δlog p)
    long_arithmetic_task()       # the length-demanding setting of FIPO (notebook 02)
    shapes_task(processor)       # ShapeWorld with images for a VLM (`workbench.rl.tasks.shapes`; ToR, notebook 03)
"""

from __future__ import annotations

import random

from workbench.models.tokenizer import format_prompt
from workbench.tasks import arithmetic
from workbench.tasks.arithmetic_long import long_eval_set, sample_long_problems
from workbench.tasks.base import RewardSpec, Task


def arithmetic_task(steps: int = 2, digits: int = 1, format_weight: float = 0.0, tokenizer=None) -> Task:
    """Left-to-right arithmetic (see `workbench.tasks.arithmetic`): exact-match reward (+ optional
    format reward); training problems never include a question of the frozen held-out split. Prompts are
    `format_prompt(question, tokenizer)`: pass a real checkpoint's tokenizer for its chat template."""
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
    return Task(
        name=f"arithmetic(steps={steps}, digits={digits})", sample=sample, prompt=lambda p: format_prompt(p.question, tokenizer),
        rewards=rewards, eval_problems=lambda n: held_out[:n],
        correct=lambda c, p: arithmetic.reward(c, p.answer) >= 1.0,
    )


def long_arithmetic_task(steps: tuple[int, int] = (3, 5), eval_steps: tuple[int, int] = (4, 5), digits: int = 1,
                         max_abs: int = 9, ops: str = "+-*", tokenizer=None) -> Task:
    """The `Task` of the length-demanding setting: training problems with `steps` operations, the
    held-out split (`long_eval_set`) with `eval_steps`; exact-match reward on ``answer: N``.
    Training problems never include a held-out question; `tokenizer` as in `arithmetic_task`."""
    held_out = long_eval_set(steps=eval_steps, digits=digits, max_abs=max_abs, ops=ops)
    excluded = frozenset(p.question for p in held_out)
    return Task(
        name=f"arithmetic-long(steps {steps[0]}-{steps[1]}, held-out {eval_steps[0]}-{eval_steps[1]}, |value| <= {max_abs})",
        sample=lambda n, rng: sample_long_problems(n, rng, steps, digits, max_abs, ops, excluded),
        prompt=lambda p: format_prompt(p.question, tokenizer),
        rewards=[RewardSpec("correct", lambda c, p: arithmetic.reward(c, p.answer))],
        eval_problems=lambda n: held_out[:n],
        correct=lambda c, p: arithmetic.reward(c, p.answer) >= 1.0,
    )


from workbench.rl.tasks.shapes import shapes_task  # noqa: E402  (the ShapeWorld adapter)

__all__ = ["arithmetic_task", "long_arithmetic_task", "shapes_task"]
