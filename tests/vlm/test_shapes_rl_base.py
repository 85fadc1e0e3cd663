"""The RL base's SFT stream (`recipes.shapes_vl`): a teacher that adds instead of subtracting or multiplying, at a
chosen rate per operation."""

import numpy as np
import pytest

from workbench.recipes.shapes_vl import _adds_instead, _coin
from workbench.tasks import shapes

RATES = {"minus": 0.7, "times": 0.7}


def _op_examples(op: str, n: int):
    out = []
    for i in range(600):
        e = shapes.make_example(1, i, "arithmetic")
        if f" {op} " in e.question.text:
            out.append(e)
        if len(out) == n:
            return out
    raise AssertionError(f"too few {op} questions in the stream")


@pytest.mark.parametrize("op, sym", [("times", "*"), ("minus", "-")])
def test_confused_teacher_adds_and_answers_the_sum(op, sym):
    for e in _op_examples(op, 15):
        c = _adds_instead(e, RATES, coin=0.1).question
        a, b = (int(x) for x in e.question.cot.split("\n")[-2].partition("=")[0].split(sym))
        assert c.cot.split("\n")[-2:] == [f"{a}{sym}{b}={a + b}", f"answer: {a + b}"]
        assert c.answer == str(a + b) and c.facts == e.question.facts and c.text == e.question.text
        assert c.cot.split("\n")[:-2] == e.question.cot.split("\n")[:-2]
        assert _adds_instead(e, RATES, coin=0.7) is e  # the coin above the rate: the true teacher


def test_other_questions_are_left_alone():
    for e in _op_examples("plus", 10):
        assert _adds_instead(e, RATES, coin=0.0) is e
    for i in range(20):
        e = shapes.make_example(1, i, "count")
        assert _adds_instead(e, RATES, coin=0.0) is e
    assert _adds_instead(_op_examples("minus", 1)[0], {"times": 1.0}, coin=0.0).question.cot.endswith(
        _op_examples("minus", 1)[0].question.cot.split("\n")[-1])


def test_coin_is_owned_by_the_index_and_uniform():
    draws = np.array([_coin(1, i) for i in range(4000)])
    assert _coin(1, 7) == _coin(1, 7) and _coin(1, 7) != _coin(2, 7)
    assert abs((draws < 0.7).mean() - 0.7) < 0.03


def test_bad_rates_are_refused():
    from workbench.models.vlm import build_processor
    from workbench.recipes.shapes_vl import shapes_sft_batches
    with pytest.raises(ValueError, match=r"adds_instead\['times'\] must be a probability in \[0, 1\], got 1.5"):
        shapes_sft_batches(build_processor(), 4, 0, adds_instead={"times": 1.5})
    with pytest.raises(ValueError, match="names operation 'divide'"):
        shapes_sft_batches(build_processor(), 4, 0, adds_instead={"divide": 0.5})
