"""`arithmetic`: seeded multi-step arithmetic with a chain of thought and a verifiable final answer.

A problem is a chain of operations evaluated **left to right** (no operator precedence), which keeps
every intermediate step a single line the model must get right::

    question: 7+3*2-4
    target:   7+3=10
              10*2=20
              20-4=16
              answer: 16

Difficulty knobs: `steps` (number of operations; `steps=2` means three operands) and `digits`
(operand digits). The reward is exact match on the last `answer: N` and never raises.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import asdict, dataclass

OPS = ("+", "-", "*")
_ANSWER_RE = re.compile(r"answer:[ \t]*(-?[0-9]{1,30})(?![0-9])")


@dataclass(frozen=True)
class ArithmeticProblem:
    """One problem: `question` (the prompt text), `cot` (the target response), `answer` (int)."""

    question: str
    cot: str
    answer: int


def make_problem(rng: random.Random, steps: int = 2, digits: int = 1) -> ArithmeticProblem:
    """Sample one problem with `steps` operations on `digits`-digit operands (first operand ≥ 1)."""
    lo, hi = (1 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    value = rng.randint(lo, hi)
    question, lines = str(value), []
    for _ in range(steps):
        op, x = rng.choice(OPS), rng.randint(0, hi)
        new = value + x if op == "+" else value - x if op == "-" else value * x
        lines.append(f"{value}{op}{x}={new}")
        question += f"{op}{x}"
        value = new
    lines.append(f"answer: {value}")
    return ArithmeticProblem(question=question, cot="\n".join(lines), answer=value)


def generate(n: int, seed: int = 0, steps: int = 2, digits: int = 1) -> list[ArithmeticProblem]:
    """`n` problems from a private `random.Random(seed)`: the same arguments give the same list."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    rng = random.Random(f"arithmetic/{seed}/{steps}/{digits}")
    return [make_problem(rng, steps, digits) for _ in range(n)]


def parse_answer(text: str) -> int | None:
    """The integer after the last `answer:` in `text`, or None if there is none (never raises)."""
    if not isinstance(text, str):
        return None
    matches = _ANSWER_RE.findall(text)
    return int(matches[-1]) if matches else None


def reward(completion: str, answer: int, format_weight: float = 0.0) -> float:
    """Outcome reward: 1 if the last `answer: N` equals `answer`, else 0; plus `format_weight` if the
    completion ends with a well-formed `answer: N` line (whatever N). Never raises on malformed text."""
    parsed = parse_answer(completion)
    r = 1.0 if parsed is not None and parsed == answer else 0.0
    if format_weight:
        tail = completion.strip().splitlines()[-1] if isinstance(completion, str) and completion.strip() else ""
        if re.fullmatch(r"answer:[ \t]*-?[0-9]{1,30}", tail):
            r += format_weight
    return r


# ---------------------------------------------------------------------------- frozen evaluation split
EVAL_PATH = os.path.join("data", "arithmetic", "eval.jsonl")
EVAL_SPEC = dict(n=500, seed=10_000, steps=2, digits=1)  # disjoint seed from any training stream


def write_eval_set(root: str, **spec) -> str:
    """(Re)write the frozen held-out split `data/arithmetic/eval.jsonl` under `root`."""
    spec = {**EVAL_SPEC, **spec}
    path = os.path.join(root, EVAL_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for p in generate(**spec):
            f.write(json.dumps(asdict(p)) + "\n")
    return path


def load_eval_set(n: int | None = None, root: str | None = None) -> list[ArithmeticProblem]:
    """The frozen held-out problems (first `n` if given), read from `data/arithmetic/eval.jsonl`."""
    from workbench.utils import repo_root

    path = os.path.join(root or repo_root(), EVAL_PATH)
    if not os.path.exists(path):
        raise FileNotFoundError(f"frozen eval set {path} is missing; run workbench.tasks.arithmetic.write_eval_set")
    with open(path) as f:
        items = [ArithmeticProblem(**json.loads(line)) for line in f if line.strip()]
    return items[:n] if n is not None else items
