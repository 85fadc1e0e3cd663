"""A length-demanding arithmetic setting: long chains whose correct solutions need a longer response.

Problems are the `arithmetic` world's left-to-right chains (same prompt, same `answer: N` reward),
with two changes that make *length* the thing RL can learn:

- **More operations, bounded values.** 2–5 operations on single-digit operands, every intermediate
  value kept in [−`max_abs`, `max_abs`] (an operation that would leave it is redrawn), so each line is
  learnable by a tiny model but a long chain needs many lines to be right.
- **Shortcut chains in the SFT data.** `shortcut_cot` merges consecutive operations into one line
  (`7+3*2=20` instead of `7+3=10` / `10*2=20`) with probability `merge_prob` per line break, so the
  SFT'd base sometimes writes the full chain (long, usually right) and sometimes skips lines (short,
  often wrong: two operations in one step). Accuracy then rises with response length, which is the
  lever FIPO (arXiv 2603.19835) claims to pull better than DAPO.

    task = long_arithmetic_task()                 # RL on 2–5 operations, held-out 4–5 operations
    problems = task.eval_problems(200)
"""

from __future__ import annotations

import random
import re

from workbench.models.tokenizer import format_prompt
from workbench.rl.rewards import RewardSpec
from workbench.rl.rollout import RLTask
from workbench.tasks import arithmetic
from workbench.tasks.arithmetic import OPS, ArithmeticProblem

#: the held-out split of the length-demanding setting (seed disjoint from every training stream)
LONG_EVAL_SPEC = dict(n=500, seed=20_000, steps=(4, 5), digits=1, max_abs=99)
_STEP_RE = re.compile(r"([+\-*])([0-9]+)")


def _apply(value: int, op: str, x: int) -> int:
    return value + x if op == "+" else value - x if op == "-" else value * x


def make_bounded_problem(rng: random.Random, steps: int, digits: int = 1, max_abs: int = 99) -> ArithmeticProblem:
    """One left-to-right problem with `steps` operations whose every intermediate |value| ≤ `max_abs`.

    The first operand is drawn as in `arithmetic.make_problem`; each (operator, operand) is redrawn
    until the new value stays in range (adding 0 always does, so this terminates). The target is the
    full chain of thought, one line per operation, then `answer: N`.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    hi = 10**digits - 1
    if max_abs < hi:
        raise ValueError(f"max_abs must be at least the largest operand ({hi}), got {max_abs}")
    value = rng.randint(1 if digits == 1 else 10 ** (digits - 1), hi)
    question, lines = str(value), []
    for _ in range(steps):
        while True:
            op, x = rng.choice(OPS), rng.randint(0, hi)
            new = _apply(value, op, x)
            if abs(new) <= max_abs:
                break
        lines.append(f"{value}{op}{x}={new}")
        question += f"{op}{x}"
        value = new
    lines.append(f"answer: {value}")
    return ArithmeticProblem(question=question, cot="\n".join(lines), answer=value)


def shortcut_cot(problem: ArithmeticProblem, rng: random.Random, merge_prob: float) -> str:
    """The chain of thought of `problem` with some lines merged: each of the k − 1 breaks between the
    k operation lines is dropped with probability `merge_prob` (0: the full chain; 1: one line).

    A merged line evaluates its operations left to right from the value before them, e.g.
    ``7+3*2=20``; the last line is always ``answer: N``.
    """
    if not 0.0 <= merge_prob <= 1.0:
        raise ValueError(f"merge_prob must lie in [0, 1], got {merge_prob}")
    first = re.match(r"-?[0-9]+", problem.question)
    ops = _STEP_RE.findall(problem.question[first.end():]) if first else []
    if not first or not ops:
        raise ValueError(f"cannot parse the operations of question {problem.question!r}")
    value, lines, head, segment = int(first.group()), [], None, ""
    for i, (op, x) in enumerate(ops):
        if head is None:
            head = value
        segment += f"{op}{x}"
        value = _apply(value, op, int(x))
        if i == len(ops) - 1 or rng.random() >= merge_prob:  # close the line here
            lines.append(f"{head}{segment}={value}")
            head, segment = None, ""
    lines.append(f"answer: {value}")
    return "\n".join(lines)


def sample_long_problems(n: int, rng: random.Random, steps: tuple[int, int], digits: int = 1, max_abs: int = 99,
                         exclude: set[str] | frozenset = frozenset()) -> list[ArithmeticProblem]:
    """`n` bounded problems, the number of operations uniform in [steps[0], steps[1]], skipping `exclude`d questions."""
    lo, hi = steps
    if not 1 <= lo <= hi:
        raise ValueError(f"steps must be a range (lo, hi) with 1 <= lo <= hi, got {steps}")
    out = []
    while len(out) < n:
        p = make_bounded_problem(rng, rng.randint(lo, hi), digits, max_abs)
        if p.question not in exclude:
            out.append(p)
    return out


def long_eval_set(n: int | None = None, **spec) -> list[ArithmeticProblem]:
    """The held-out problems of the length-demanding setting (`LONG_EVAL_SPEC`, deterministic, first `n`)."""
    spec = {**LONG_EVAL_SPEC, **spec}
    rng = random.Random(f"arithmetic-long/{spec['seed']}")
    items = sample_long_problems(spec["n"], rng, tuple(spec["steps"]), spec["digits"], spec["max_abs"])
    return items[:n] if n is not None else items


def long_arithmetic_task(steps: tuple[int, int] = (2, 5), eval_steps: tuple[int, int] = (4, 5), digits: int = 1,
                         max_abs: int = 99) -> RLTask:
    """The `RLTask` of the length-demanding setting: training problems with `steps` operations, the
    held-out split with `eval_steps`; exact-match reward on `answer: N` (never a held-out question)."""
    held_out = long_eval_set(steps=eval_steps, digits=digits, max_abs=max_abs)
    excluded = frozenset(p.question for p in held_out)
    return RLTask(
        name=f"arithmetic-long(steps={steps[0]}-{steps[1]}, eval {eval_steps[0]}-{eval_steps[1]}, |v|<={max_abs})",
        sample=lambda n, rng: sample_long_problems(n, rng, steps, digits, max_abs, excluded),
        prompt=lambda p: format_prompt(p.question),
        rewards=[RewardSpec("correct", lambda c, p: arithmetic.reward(c, p.answer))],
        eval_problems=lambda n: held_out[:n],
        correct=lambda c, p: arithmetic.reward(c, p.answer) >= 1.0,
    )
