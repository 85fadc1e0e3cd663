"""Question families over a scene graph, each with a chain-of-thought target: facts, then compute, then answer.

Every target states the visual facts first (one per line, `facts.py` phrasing), then any arithmetic,
then `answer: X`::

    How many red shapes times circles?     red shapes: 2
                                           circles: 3
                                           2*3=6
                                           answer: 6

Families (registry `QUESTION_FAMILIES`, each `fn(graph, rng, config) -> Question | None`, None when
the scene cannot support the family):
- `count`      "How many red circles?"                      -> `red circles: 2` / `answer: 2`
- `exists`     "Is there a red circle?" (yes/no balanced)   -> `red circles: 0` / `answer: no`
- `colour`     "What colour is the circle?" (unique kind)   -> `circle colour: red` / `answer: red`
- `position`   "Is the red circle left of the blue square?" -> `red circle left of blue square: yes` / `answer: yes`
- `arithmetic` "How many red shapes times circles?" (plus, minus, times; minus never goes below 0)
Perception tokens are the fact lines, reasoning tokens the arithmetic: the split ToR
(arXiv 2603.25077) weights differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workbench.registry import Registry
from workbench.tasks.shapes.facts import colour_fact, count_fact, describe, relation_fact
from workbench.tasks.shapes.graph import ObjectNode, SceneGraph
from workbench.tasks.shapes.scene import SceneConfig

QUESTION_FAMILIES: Registry = Registry("shapes question family")
FAMILIES = ("count", "exists", "colour", "position", "arithmetic")
OPS = {"plus": "+", "minus": "-", "times": "*"}
_MIN_OFFSET = 4.0  # px between centres along the asked axis, so a relation is visible


@dataclass(frozen=True)
class Question:
    """`text` (the prompt), `cot` (target response), `answer` (string after `answer:`), `facts` (the
    visual-fact lines of the target, in order), `family`."""

    family: str
    text: str
    cot: str
    answer: str
    facts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inverse: `Question.from_dict`)."""
        return {**asdict(self), "facts": list(self.facts)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Question":
        """Rebuild from `to_dict` output."""
        try:
            return cls(family=d["family"], text=d["text"], cot=d["cot"], answer=str(d["answer"]), facts=tuple(d["facts"]))
        except KeyError as e:
            raise ValueError(f"question dict lacks key {e}: {str(d)[:120]}") from None


def _question(family: str, text: str, facts: list[str], steps: list[str], answer: Any) -> Question:
    cot = "\n".join([*facts, *steps, f"answer: {answer}"])
    return Question(family=family, text=text, cot=cot, answer=str(answer), facts=tuple(facts))


def _pick(rng: np.random.Generator, seq: list | tuple):
    return seq[int(rng.integers(len(seq)))]


def _descriptor(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig, mode: str,
                p_present: float) -> tuple[str | None, str | None]:
    """A (colour, kind) descriptor; `mode` in all | kind | colour | both; drawn from a present object
    with probability `p_present`, else from the vocabulary of `config`."""
    items = graph.items()
    if items and rng.random() < p_present:
        o: ObjectNode = _pick(rng, items)
        colour, kind = o.colour, o.kind
    else:
        colour, kind = str(_pick(rng, config.colours)), str(_pick(rng, config.kinds))
    return (colour if mode in ("colour", "both") else None, kind if mode in ("kind", "both") else None)


@QUESTION_FAMILIES.register("count")
def count_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"How many <descriptor>?" with descriptor drawn from a present object 80% of the time."""
    colour, kind = _descriptor(graph, rng, config, _pick(rng, ("all", "kind", "colour", "both")), 0.8)
    n = graph.count(colour, kind)
    return _question("count", f"How many {describe(colour, kind)}?", [count_fact(colour, kind, n)], [], n)


@QUESTION_FAMILIES.register("exists")
def exists_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"Is there a <descriptor>?", yes and no equally likely; None if every descriptor tried is present."""
    want_yes = bool(rng.random() < 0.5)
    for _ in range(20):
        colour, kind = _descriptor(graph, rng, config, _pick(rng, ("kind", "colour", "both")), 1.0 if want_yes else 0.0)
        n = graph.count(colour, kind)
        if (n > 0) == want_yes:
            text = f"Is there a {describe(colour, kind, many=False)}?"
            return _question("exists", text, [count_fact(colour, kind, n)], [], "yes" if n else "no")
    return None


@QUESTION_FAMILIES.register("colour")
def colour_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"What colour is the <kind>?" about a kind present exactly once; None if there is none."""
    kinds = sorted({o.kind for o in graph.items() if graph.count(kind=o.kind) == 1})
    if not kinds:
        return None
    kind = _pick(rng, kinds)
    colour = graph.find(kind=kind)[0].colour
    return _question("colour", f"What colour is the {kind}?", [colour_fact(kind, colour)], [], colour)


@QUESTION_FAMILIES.register("position")
def position_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"Is the <a> <left of|right of|above|below> the <b>?" for two objects each unique by (colour,
    kind) whose centres differ by ≥ 4 px on the asked axis; None if no such pair exists."""
    unique = [o for o in graph.items() if graph.count(o.colour, o.kind) == 1]
    triples = [(a, b, axis) for a in unique for b in unique if a.index != b.index for axis in (0, 1)
               if abs(a.center[axis] - b.center[axis]) >= _MIN_OFFSET]
    if not triples:
        return None
    a, b, axis = _pick(rng, triples)
    relation = _pick(rng, (("left_of", "right_of"), ("above", "below"))[axis])
    holds = graph.relation(a.index, relation, b.index)
    fact = relation_fact((a.colour, a.kind), relation, (b.colour, b.kind), holds)
    word = relation.replace("_", " ")
    text = f"Is the {describe(a.colour, a.kind, many=False)} {word} the {describe(b.colour, b.kind, many=False)}?"
    return _question("position", text, [fact], [], "yes" if holds else "no")


@QUESTION_FAMILIES.register("arithmetic")
def arithmetic_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"How many <colour descriptor> <plus|minus|times> <kind descriptor>?" — perception (two counts)
    then reasoning (one operation). A minus that would go negative is asked the other way round."""
    da = _descriptor(graph, rng, config, _pick(rng, ("colour", "colour", "both")), 0.9)
    db = _descriptor(graph, rng, config, "kind", 0.9)
    op = _pick(rng, tuple(OPS))
    a, b = graph.count(*da), graph.count(*db)
    if op == "minus" and a < b:
        (da, a), (db, b) = (db, b), (da, a)
    result = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    text = f"How many {describe(*da)} {op} {describe(*db)}?"
    facts = [count_fact(*da, a), count_fact(*db, b)]
    return _question("arithmetic", text, facts, [f"{a}{OPS[op]}{b}={result}"], result)


def ask(family: str, graph: SceneGraph, rng: np.random.Generator, config: SceneConfig | None = None) -> Question | None:
    """Ask a question of `family` (a `QUESTION_FAMILIES` name) about `graph`; None if the scene cannot support it."""
    return QUESTION_FAMILIES.get(family)(graph, rng, config or SceneConfig())
