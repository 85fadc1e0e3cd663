"""ShapeWorld answer reward, format check and grounding score."""

from __future__ import annotations

import pytest

from workbench.tasks import shapes


@pytest.fixture(scope="module")
def graph():
    # red circle (left, top), red square (right), blue circle (middle, bottom), a grey distractor
    scene = shapes.Scene(112, 112, "black", (
        shapes.Shape("circle", "grey", 4, 100, 100, clutter=True),
        shapes.Shape("circle", "red", 20, 5, 5),
        shapes.Shape("square", "red", 20, 80, 40),
        shapes.Shape("circle", "blue", 20, 40, 80),
    ))
    return shapes.render(scene).graph


def test_reward_exact_match_on_last_answer():
    assert shapes.reward("red shapes: 2\ncircles: 3\n2*3=6\nanswer: 6", "6") == 1.0
    assert shapes.reward("answer: 6", 6) == 1.0
    assert shapes.reward("answer: 5\nanswer: 6", "6") == 1.0  # the last one counts
    assert shapes.reward("answer: 6\nanswer: 5", "6") == 0.0
    assert shapes.reward("answer: 06.", "6") == 1.0
    assert shapes.reward("Answer: YES", "yes") == 1.0
    assert shapes.reward("answer: -3", "-3") == 1.0 and shapes.reward("answer: -3", "3") == 0.0
    assert shapes.reward("answer: red", "red") == 1.0 and shapes.reward("answer: reddish", "red") == 0.0
    assert shapes.parse_answer("the answer is 6") is None and shapes.parse_answer("answer:") is None
    assert shapes.parse_answer("answer: 1e9999") == "1e9999"
    assert shapes.reward("answer: \uff16", "6") == 0.0  # a full-width digit is not the digit 6


ADVERSARIAL = [
    "", " ", "\n\n", "answer", "answer:", "answer: ", ":::", "answer: \x00", "answer: ∞", "答案: 6", "answer: ６",
    "answer: 1e9999", "answer: " + "9" * 5000, "answer: -" + "9" * 40, "answer: 1.5", "answer: nan",
    "answer: 1 answer: 2 answer: 3", "red shapes: " + "9" * 100 + "\nanswer: 1", "😀" * 1000,
    "answer:" * 10_000, "a" * 100_000 + ":", " " * 50_000 + "x", "red circle left of: yes", ": 2",
    "circles: -0\nanswer: -0", "RED SHAPES: 2\nCircles:3", "shapes colour: red", "red circle left of red circle: yes",
    "left of left of: no", "colour: red", ".\n.\n.", "answer: 6\r\n", "\ud800",
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_reward_and_grounding_never_raise(text, graph):
    for answer in ("6", "yes", "-3", 6):
        r = shapes.reward(text, answer, format_weight=0.1)
        assert r in (0.0, 0.1, 1.0, 1.1)
    g = shapes.grounding_score(text, graph, required=("red shapes: 2",))
    assert 0.0 <= g.score <= 1.0 and g.n_correct <= g.n_facts
    assert isinstance(shapes.format_ok(text), bool)


def test_non_string_completion_is_zero(graph):
    assert shapes.reward(None, "6") == 0.0
    assert shapes.grounding_score(None, graph).n_facts == 0


def test_format_ok():
    assert shapes.format_ok("red shapes: 2\ncircles: 3\n2*3=6\nanswer: 6")
    assert shapes.format_ok("circle colour: red\nanswer: red")
    assert shapes.format_ok("red circle left of blue square: yes\nanswer: yes")
    assert not shapes.format_ok("red shapes: 2\nanswer: 6\nanswer: 6")
    assert not shapes.format_ok("answer: 6\nred shapes: 2")
    assert not shapes.format_ok("I think red shapes: 2, so\nanswer: 2")
    assert shapes.reward("red shapes: 2\nanswer: 2", "2", format_weight=0.1) == pytest.approx(1.1)
    assert shapes.reward("red shapes: 2\nanswer: 3", "2", format_weight=0.1) == pytest.approx(0.1)


def test_grounding_correct_response(graph):
    g = shapes.grounding_score("red shapes: 2\ncircles: 2\n2*2=4\nanswer: 4", graph, ("red shapes: 2", "circles: 2"))
    assert (g.score, g.n_facts, g.n_correct, g.perception_correct) == (1.0, 2, 2, True)
    assert [f.type for f in g.facts] == ["count", "count"] and [f.truth for f in g.facts] == ["2", "2"]
    # clutter is not counted: 3 shapes, not 4; sentence-style separators parse too
    g = shapes.grounding_score("shapes: 3. blue circles: 1. red squares: 1. answer: 3", graph)
    assert g.score == 1.0 and g.n_facts == 3


def test_grounding_incorrect_and_partial(graph):
    g = shapes.grounding_score("red shapes: 3\ncircles: 2\n3*2=6\nanswer: 6", graph, ("red shapes: 2", "circles: 2"))
    assert g.score == 0.5 and not g.perception_correct
    assert (g.facts[0].stated, g.facts[0].truth, g.facts[0].correct) == ("3", "2", False)
    # a right fact but a required one missing: not perception-correct
    g = shapes.grounding_score("circles: 2\nanswer: 4", graph, ("red shapes: 2", "circles: 2"))
    assert g.score == 1.0 and not g.perception_correct
    # hallucinated vocabulary is a wrong fact
    g = shapes.grounding_score("purple dragons: 2\nred shapes: 2\nanswer: 4", graph)
    assert g.facts[0].type == "unknown" and g.facts[0].truth is None and g.score == 0.5
    # a non-integer count is wrong, not an error
    assert not shapes.grounding_score("red shapes: two", graph).facts[0].correct


def test_grounding_colour_and_relation_facts(graph):
    checks = {c.text: c for c in shapes.check_facts(
        "square colour: red\ncircle colour: red\nstar colour: red\n"
        "red circle left of red square: yes\nred circle above blue circle: yes\n"
        "blue circle left of red circle: yes\nred shape left of blue circle: yes\nanswer: yes", graph)}
    assert checks["square colour: red"].correct
    c = checks["circle colour: red"]  # two circles, red and blue: not a fact about "the circle"
    assert not c.correct and c.truth == "blue,red"
    assert not checks["star colour: red"].correct and checks["star colour: red"].truth is None
    assert checks["red circle left of red square: yes"].correct
    assert checks["red circle above blue circle: yes"].correct
    b = checks["blue circle left of red circle: yes"]
    assert b.type == "relation" and b.truth == "no" and not b.correct
    amb = checks["red shape left of blue circle: yes"]  # two red shapes: ambiguous reference
    assert amb.type == "relation" and amb.truth is None and not amb.correct


def test_grounding_malformed(graph):
    for text in ("", "blah blah", "2*3=6\nanswer: 6", "answer: 4"):
        g = shapes.grounding_score(text, graph, ("red shapes: 2",))
        assert (g.score, g.n_facts, g.perception_correct) == (0.0, 0, False)


def test_targets_are_fully_grounded():
    for ex in shapes.generate(60, seed=21, config=shapes.complexity_config(1)):
        g = shapes.grounding_score(ex.target, ex.render().graph, ex.question.facts)
        assert g.score == 1.0 and g.perception_correct and g.n_facts == len(ex.question.facts), ex.target
        assert shapes.reward(ex.target, ex.answer) == 1.0 and shapes.format_ok(ex.target)


def test_fact_value_mask_marks_only_stated_fact_values():
    from workbench.tasks.shapes import fact_value_mask

    text = "red shapes: 2\ncircles: 13\n2*13=26\nanswer: 26"
    tokens = list(text) + ["<|endoftext|>"]
    mask = fact_value_mask(tokens)
    marked = "".join(t for t, m in zip(tokens, mask) if m)
    assert marked == "213" and len(mask) == len(tokens)
    assert fact_value_mask(["answer: 3"]) == [False] and fact_value_mask([]) == []
