"""A length-demanding arithmetic setting: long chains whose correct solutions need a longer response.

Problems are left-to-right chains as in the `arithmetic` world (same prompt, same `answer: N`
exact-match reward), changed so that response *length* is something RL can learn:

- **More operations, small values.** 2–5 operations on single-digit operands with every
  intermediate value kept in [−`max_abs`, `max_abs`] (an operation that would leave the range is
  redrawn), so each step is a small fact a tiny model can learn, but a long chain needs many steps.
- **A chain of rewrites.** The chain of thought rewrites the expression one operation at a time
  (`7+3*2-4` → `10*2-4` → `20-4` → `answer: 16`): each line needs one small operation and a copy of
  the rest, so no line asks the model to find "the k-th operation" in the question.
- **Early stops in the SFT data.** `shortcut_cot` jumps to `answer: N` before each line with
  probability `stop_prob`, so the SFT'd base sometimes stops thinking early and must do the
  remaining operations in its head — usually wrong. Longer responses are then more often right:
  the length stagnation FIPO (arXiv 2603.19835) claims to break better than DAPO.

    problems = long_eval_set(200)          # held-out: 4–5 operations (the RL task: `workbench.rl.tasks.long_arithmetic_task`)
"""

from __future__ import annotations

import random
import re

from workbench.tasks.arithmetic import ArithmeticProblem

#: the held-out split of the length-demanding setting (seed disjoint from every training stream)
LONG_EVAL_SPEC = dict(n=500, seed=20_000, steps=(4, 5), digits=1, max_abs=9, ops="+-*")
_STEP_RE = re.compile(r"([+\-*])([0-9]+)")


def _apply(value: int, op: str, x: int) -> int:
    return value + x if op == "+" else value - x if op == "-" else value * x


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]]:
    """(first operand, [(operator, operand), ...]) of a left-to-right question such as ``7+3*2-4``."""
    first = re.match(r"-?[0-9]+", question)
    ops = _STEP_RE.findall(question[first.end():]) if first else []
    if not first or not ops or "".join(o + x for o, x in ops) != question[first.end():]:
        raise ValueError(f"cannot parse the operations of question {question!r}")
    return int(first.group()), [(o, int(x)) for o, x in ops]


def rewrite_chain(question: str) -> list[str]:
    """The expressions met while evaluating `question` left to right, one operation at a time.

    ``7+3*2-4`` gives ``["10*2-4", "20-4", "16"]``: each line is the previous one with its first
    operation done; the last entry is the value.
    """
    value, ops = parse_question(question)
    lines = []
    for i, (op, x) in enumerate(ops):
        value = _apply(value, op, x)
        lines.append(str(value) + "".join(f"{o}{y}" for o, y in ops[i + 1:]))
    return lines


def full_cot(question: str, answer: int) -> str:
    """Every rewrite of `question` but the last (that one is the answer), then ``answer: N``."""
    return "\n".join(rewrite_chain(question)[:-1] + [f"answer: {answer}"])


def make_bounded_problem(rng: random.Random, steps: int, digits: int = 1, max_abs: int = 9,
                         ops: str = "+-*") -> ArithmeticProblem:
    """One left-to-right problem with `steps` operations whose every intermediate |value| ≤ `max_abs`.

    The first operand is drawn as in `arithmetic.make_problem`; each (operator, operand) is redrawn
    until the new value stays in range (an operand 0 always does, so this terminates). `cot` is the
    full rewrite chain (`full_cot`).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    hi = 10**digits - 1
    if max_abs < hi:
        raise ValueError(f"max_abs must be at least the largest operand ({hi}), got {max_abs}")
    if not ops or set(ops) - set("+-*"):
        raise ValueError(f"ops must be a non-empty string of '+', '-', '*', got {ops!r}")
    value = rng.randint(1 if digits == 1 else 10 ** (digits - 1), hi)
    question = str(value)
    for _ in range(steps):
        while True:
            op, x = rng.choice(ops), rng.randint(0, hi)
            new = _apply(value, op, x)
            if abs(new) <= max_abs:
                break
        question += f"{op}{x}"
        value = new
    return ArithmeticProblem(question=question, cot=full_cot(question, value), answer=value)


def shortcut_cot(problem: ArithmeticProblem, rng: random.Random, stop_prob: float) -> str:
    """A chain of thought for `problem` that may stop early: before each rewrite line it jumps to
    ``answer: N`` with probability `stop_prob` (0: the full chain; 1: answer at once).

    Every line written is a correct one-operation rewrite, so stopping early only means doing the
    remaining operations in one's head: the shorter the chain, the more often a model gets it wrong.
    """
    if not 0.0 <= stop_prob <= 1.0:
        raise ValueError(f"stop_prob must lie in [0, 1], got {stop_prob}")
    kept = []
    for line in rewrite_chain(problem.question)[:-1]:
        if rng.random() < stop_prob:
            break
        kept.append(line)
    return "\n".join(kept + [f"answer: {problem.answer}"])


def operations_in_head(question: str, completion: str) -> int:
    """How many operations of `question` a completion left to do in its head: the operation count
    minus the rewrite lines it wrote before ``answer:`` (1 for the full chain, the last one being done
    on the answer line; the count of operations for an immediate answer). Never below 0."""
    _, ops = parse_question(question)
    head = completion.split("answer:")[0]
    lines = [line for line in head.split("\n") if line.strip()]
    return max(len(ops) - len(lines), 0)


def sample_long_problems(n: int, rng: random.Random, steps: tuple[int, int], digits: int = 1, max_abs: int = 9,
                         ops: str = "+-*", exclude: set[str] | frozenset = frozenset()) -> list[ArithmeticProblem]:
    """`n` bounded problems, the number of operations uniform in [steps[0], steps[1]], skipping `exclude`d questions."""
    lo, hi = steps
    if not 1 <= lo <= hi:
        raise ValueError(f"steps must be a range (lo, hi) with 1 <= lo <= hi, got {steps}")
    out = []
    while len(out) < n:
        p = make_bounded_problem(rng, rng.randint(lo, hi), digits, max_abs, ops)
        if p.question not in exclude:
            out.append(p)
    return out


def long_eval_set(n: int | None = None, **spec) -> list[ArithmeticProblem]:
    """The held-out problems of the length-demanding setting (`LONG_EVAL_SPEC` updated by `spec`; first `n`).

    Deterministic: generated from its own seed, so every caller gets the same list.
    """
    unknown = set(spec) - set(LONG_EVAL_SPEC)
    if unknown:
        raise ValueError(f"unknown held-out spec keys {sorted(unknown)}; known: {', '.join(LONG_EVAL_SPEC)}")
    spec = {**LONG_EVAL_SPEC, **spec}
    rng = random.Random(f"arithmetic-long/{spec['seed']}/{spec['max_abs']}/{spec['ops']}")
    items = sample_long_problems(spec["n"], rng, tuple(spec["steps"]), spec["digits"], spec["max_abs"], spec["ops"])
    return items[:n] if n is not None else items
