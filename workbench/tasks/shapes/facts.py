"""The fixed, parseable phrasing of visual facts, and checking a stated fact against a scene graph.

One fact per line, `subject: value`, lower case, ASCII (a char-level model learns it quickly)::

    red circles: 2                       count       (colour? + plural kind | "shapes")
    shapes: 5                            count of every non-clutter object
    circle colour: red                   colour      (true iff ≥ 1 circle and every circle is red)
    red circle left of blue square: yes  relation    (left of | right of | above | below; yes | no)

Lines without `:` (arithmetic such as `2*3=6`) and the `answer:` line are not facts. A line that
looks like a fact but names nothing in the vocabulary (`purple dragons: 2`) is a *wrong* fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.tasks.shapes.graph import SceneGraph
from workbench.tasks.shapes.scene import COLOURS, PLURALS, plural

_SINGULAR = {v: k for k, v in PLURALS.items()}
_REL_WORDS = {"left of": "left_of", "right of": "right_of", "above": "above", "below": "below"}
_FACT_RE = re.compile(r"([a-z]+(?: [a-z]+)*)\s*:\s*(\S+)")  # linear: no nested ambiguity
_SPLIT_RE = re.compile(r"\n|\.(?=\s|$)")
_INT_RE = re.compile(r"-?[0-9]{1,18}")


def describe(colour: str | None, kind: str | None, many: bool = True) -> str:
    """Noun phrase for a set of objects: `red circles`, `circles`, `red shapes`, `shapes`
    (`many=False`: `red circle`, `circle`, `red shape`, `shape`)."""
    noun = (plural(kind) if many else kind) if kind else ("shapes" if many else "shape")
    return f"{colour} {noun}" if colour else noun


def count_fact(colour: str | None, kind: str | None, n: int) -> str:
    """`red circles: 2`."""
    return f"{describe(colour, kind)}: {n}"


def colour_fact(kind: str, colour: str) -> str:
    """`circle colour: red`."""
    return f"{kind} colour: {colour}"


def relation_fact(a: tuple[str | None, str | None], relation: str, b: tuple[str | None, str | None], holds: bool) -> str:
    """`red circle left of blue square: yes`; `relation` in left_of | right_of | above | below."""
    word = {v: k for k, v in _REL_WORDS.items()}[relation]
    return f"{describe(*a, many=False)} {word} {describe(*b, many=False)}: {'yes' if holds else 'no'}"


@dataclass(frozen=True)
class FactCheck:
    """One stated fact: its `text`, `type` (count | colour | relation | unknown), the `stated` value,
    the `truth` from the scene graph (None when the subject names nothing or no single object), and
    whether it is `correct`."""

    text: str
    type: str
    stated: str
    truth: str | None
    correct: bool


def _parse_descriptor(words: list[str], many: bool) -> tuple[str | None, str | None] | None:
    """`["red", "circles"]` -> ("red", "circle"); None when the words are not a descriptor."""
    colour = None
    if len(words) == 2 and words[0] in COLOURS:
        colour, words = words[0], words[1:]
    if len(words) != 1:
        return None
    noun = words[0]
    if noun == ("shapes" if many else "shape"):
        return (colour, None)
    if many and noun in _SINGULAR:
        return (colour, _SINGULAR[noun])
    if not many and noun in PLURALS:
        return (colour, noun)
    return None


def _check(subject: str, value: str, graph: SceneGraph) -> tuple[str, str | None, bool]:
    """(type, truth, correct) of the fact `subject: value`."""
    words = subject.split()
    if len(words) >= 2 and words[-1] in ("colour", "color"):
        desc = _parse_descriptor(words[:-1], many=False)
        if desc is None or desc[1] is None or desc[0] is not None:
            return "unknown", None, False
        colours = sorted({o.colour for o in graph.find(kind=desc[1])})
        truth = ",".join(colours) if colours else None
        return "colour", truth, len(colours) == 1 and colours[0] == value
    for word, rel in _REL_WORDS.items():
        parts = f" {subject} ".split(f" {word} ")
        if len(parts) == 2:
            a, b = _parse_descriptor(parts[0].split(), many=False), _parse_descriptor(parts[1].split(), many=False)
            if a is None or b is None:
                return "unknown", None, False
            oa, ob = graph.find(*a), graph.find(*b)
            if len(oa) != 1 or len(ob) != 1 or oa[0].index == ob[0].index:
                return "relation", None, False
            truth = "yes" if graph.relation(oa[0].index, rel, ob[0].index) else "no"
            return "relation", truth, value == truth
    desc = _parse_descriptor(words, many=True)
    if desc is None:
        return "unknown", None, False
    truth = str(graph.count(*desc))
    return "count", truth, _INT_RE.fullmatch(value) is not None and int(value) == int(truth)


def split_lines(text: str) -> list[str]:
    """Statements of a response: split on newlines and on sentence-ending periods, stripped, non-empty."""
    return [s.strip() for s in _SPLIT_RE.split(text) if s.strip()]


def check_facts(text: str, graph: SceneGraph) -> list[FactCheck]:
    """Parse every `subject: value` statement of `text` except `answer:` and check it against `graph`.

    Never raises on a string: statements that are not of the form `words: value` are skipped.
    """
    checks = []
    for line in split_lines(text):
        m = _FACT_RE.fullmatch(line.lower())
        if m is None or m.group(1) == "answer":
            continue
        subject, value = " ".join(m.group(1).split()), m.group(2)
        kind, truth, correct = _check(subject, value, graph)
        checks.append(FactCheck(text=line, type=kind, stated=value, truth=truth, correct=bool(correct)))
    return checks


_FACT_LINE_VALUE_RE = re.compile(r"^([a-z]+(?: [a-z]+)*): (\S+)$", re.M)


def fact_value_mask(tokens: list[str]) -> list[bool]:
    """Which tokens of a response spell the *value* of a stated visual fact (`red circles: 2` -> the `2`).

    Args:
        tokens: the response's token strings in order (their concatenation is the response text).

    Returns:
        one bool per token: True when the token starts inside the value of a `subject: value` line
        whose subject is not `answer` (the perception content ToR's perception tokens should cover).
    """
    text = "".join(tokens)
    spans = [m.span(2) for m in _FACT_LINE_VALUE_RE.finditer(text) if m.group(1) != "answer"]
    out, start = [], 0
    for t in tokens:
        out.append(any(a <= start < b for a, b in spans))
        start += len(t)
    return out
