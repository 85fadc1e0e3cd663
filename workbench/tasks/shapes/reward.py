"""ShapeWorld rewards: exact-match answer reward, format check, and the grounding score of stated facts.

- `reward`: 1 if the value after the *last* `answer:` equals the reference (integers compared as
  integers, words case-insensitively), else 0; plus `format_weight` for a well-formed response.
- `grounding_score`: every `subject: value` fact of the response (`facts.py`) checked against the
  scene graph: score = n_correct / n_facts (0.0 when no fact is stated, never NaN);
  `perception_correct` = at least one fact, all stated facts right, and every reference fact stated
  (the "perception accuracy" of ToR, arXiv 2603.25077: are the stated counts right?).
None of these raise on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from workbench.tasks.shapes.facts import FactCheck, check_facts
from workbench.tasks.shapes.graph import SceneGraph

_ANSWER_RE = re.compile(r"answer\s*:[ \t]*(\S*)", re.IGNORECASE)
_INT_RE = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits only
_STEP_RE = re.compile(r"-?[0-9]{1,30}[+*-]-?[0-9]{1,30}=-?[0-9]{1,30}")
_FACT_LINE_RE = re.compile(r"[a-z]+(?: [a-z]+)*: [a-z0-9-]+")


def _normalise(value: str) -> str:
    value = value.strip().rstrip(".,;!?").lower()
    if _INT_RE.fullmatch(value):
        return str(int(value))
    return value


def _fact_key(subject: str, value: str) -> tuple[str, str]:
    return " ".join(subject.lower().split()), _normalise(value)


def parse_answer(text: str) -> str | None:
    """The normalised value after the last `answer:` in `text` (lower case; an integer of ≤ 30 digits
    without leading zeros or `+`), or None when there is none or it is empty. Never raises."""
    if not isinstance(text, str):
        return None
    matches = _ANSWER_RE.findall(text)
    if not matches:
        return None
    value = _normalise(matches[-1])
    return value or None


def format_ok(text: str) -> bool:
    """True when `text` is, line by line, facts (`words: value`), arithmetic steps (`2*3=6`) and a final
    `answer: X` line, with `answer:` appearing exactly once. Never raises."""
    if not isinstance(text, str):
        return False
    lines = text.strip().split("\n")
    if len(_ANSWER_RE.findall(text)) != 1 or not re.fullmatch(r"answer: [a-z0-9-]+", lines[-1]):
        return False
    return all(_FACT_LINE_RE.fullmatch(line) or _STEP_RE.fullmatch(line) for line in lines[:-1])


def reward(completion: str, answer: str | int, format_weight: float = 0.0) -> float:
    """Outcome reward: 1.0 if `parse_answer(completion)` equals `answer`, else 0.0; plus `format_weight`
    when `format_ok(completion)`. Never raises on a string completion.

    Args:
        completion: the model's response text.
        answer: the reference answer (`Question.answer`, e.g. "6", "yes", "red"; an int is accepted).
        format_weight: bonus for a well-formed response (Durian uses 0.1·format + 0.9·accuracy).
    """
    parsed = parse_answer(completion)
    r = 1.0 if parsed is not None and parsed == _normalise(str(answer)) else 0.0
    if format_weight and format_ok(completion):
        r += format_weight
    return r


@dataclass(frozen=True)
class Grounding:
    """`score` = n_correct / n_facts (0.0 when n_facts = 0); `facts`: per-fact checks in order;
    `perception_correct`: ≥ 1 fact, all correct, every required (reference) fact stated."""

    score: float
    n_facts: int
    n_correct: int
    facts: tuple[FactCheck, ...]
    perception_correct: bool


def grounding_score(completion: str, graph: SceneGraph, required: Sequence[str] = ()) -> Grounding:
    """Check every visual fact stated in `completion` against `graph`.

    score = (1 / F) Σ_f 1[fact f holds in the scene graph] over the F stated facts (0.0 if F = 0).

    Args:
        completion: the model's response.
        graph: the scene graph of the image the response is about.
        required: reference fact lines (`Question.facts`); each must be stated with the same value
            for `perception_correct`.
    """
    if not isinstance(completion, str):
        return Grounding(0.0, 0, 0, (), False)
    checks = check_facts(completion, graph)
    n_correct = sum(c.correct for c in checks)
    stated = {_fact_key(c.text.partition(":")[0], c.stated) for c in checks if c.correct}
    needed = {_fact_key(*line.partition(":")[::2]) for line in required}
    perception = bool(checks) and n_correct == len(checks) and needed <= stated
    score = n_correct / len(checks) if checks else 0.0
    return Grounding(score=score, n_facts=len(checks), n_correct=n_correct, facts=tuple(checks),
                     perception_correct=perception)
