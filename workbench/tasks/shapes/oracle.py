"""The scene-graph oracle: a fully grounded chain for a ShapeWorld question, in the policy's response
format, and a fallible version of it (an "expert" that sometimes misperceives), for expert-guided RL
(TGRL, arXiv 2603.26126).

    oracle_chain(ex)                                # "red shapes: 2\ncircles: 3\n2*3=6\nanswer: 6" (= ex.target)
    oracle_chain(ex, random.Random(0), error_rate=0.3)

With probability `error_rate` the chain carries one error, of one of two kinds (equally likely):

- `misperceived`: one stated count is off by one and the arithmetic follows it, so the answer is
  usually wrong too (a consistent chain about the wrong image);
- `unfaithful`: one stated count is off by one but the answer is still the right one (the chain does not
  support its own answer) — only a check of the stated facts against the scene graph catches it.

Questions without counts (exists, colour, position) flip the stated fact's value instead. The oracle
never raises on a well-formed example.
"""

from __future__ import annotations

import random
import re

from workbench.tasks.shapes.questions import OPS
from workbench.tasks.shapes.scene import COLOURS

EXPERT_ERRORS = ("misperceived", "unfaithful")
_COUNT_LINE = re.compile(r"^(.+): (\d+)$")
_OP_OF = {v: k for k, v in OPS.items()}


def oracle_chain(example, rng: random.Random | None = None, error_rate: float = 0.0) -> str:
    """The example's grounded chain (its reference CoT: facts from the scene graph, the arithmetic, the
    answer), or with probability `error_rate` (draws from `rng`) a chain with one error of a kind in
    `EXPERT_ERRORS`. `rng` is needed only when `error_rate` > 0."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    chain = example.target
    if error_rate == 0.0:
        return chain
    if rng is None:
        raise ValueError("oracle_chain needs an rng when error_rate > 0")
    if rng.random() >= error_rate:
        return chain
    return corrupt_chain(chain, EXPERT_ERRORS[rng.randrange(2)], rng)


def corrupt_chain(chain: str, kind: str, rng: random.Random) -> str:
    """`chain` with one error of `kind` (`EXPERT_ERRORS`): a count fact moved by ±1 (never below 0) and, for
    `misperceived`, the arithmetic line and answer recomputed from it; a yes/no or colour fact flipped when
    the chain states no count."""
    if kind not in EXPERT_ERRORS:
        raise ValueError(f"expert error kind must be one of {', '.join(EXPERT_ERRORS)}, got {kind!r}")
    lines = chain.split("\n")
    counts = [i for i, line in enumerate(lines) if _COUNT_LINE.match(line) and not line.startswith("answer:")]
    if not counts:
        return _flip_fact(lines, kind)
    i = counts[rng.randrange(len(counts))]
    subject, value = _COUNT_LINE.match(lines[i]).groups()
    n = int(value)
    wrong = n + 1 if n == 0 or rng.random() < 0.5 else n - 1
    lines[i] = f"{subject}: {wrong}"
    if kind == "misperceived":
        values = [int(_COUNT_LINE.match(lines[j]).group(2)) for j in counts]
        step = next((j for j, line in enumerate(lines) if "=" in line), None)
        if step is not None and len(values) == 2:
            op = next(c for c in lines[step] if c in _OP_OF)
            a, b = values
            result = {"+": a + b, "-": a - b, "*": a * b}[op]
            lines[step] = f"{a}{op}{b}={result}"
            lines[-1] = f"answer: {result}"
        elif step is None and len(values) == 1 and lines[-1].startswith("answer:"):
            lines[-1] = f"answer: {values[0]}"  # a count question answers the count it states
    return "\n".join(lines)


def _flip_fact(lines: list[str], kind: str) -> str:
    """Flip the value of the first fact line (yes <-> no; a colour to another colour)."""
    for i, line in enumerate(lines):
        subject, sep, value = line.rpartition(": ")
        if not sep or line.startswith("answer:"):
            continue
        if value in ("yes", "no"):
            new = "no" if value == "yes" else "yes"
        elif value in COLOURS:
            new = next(c for c in COLOURS if c != value)
        else:
            continue
        lines[i] = f"{subject}: {new}"
        if kind == "misperceived" and lines[-1].startswith("answer:"):
            lines[-1] = f"answer: {new}"
        return "\n".join(lines)
    return "\n".join(lines)
