"""The RL base's SFT stream (`recipes.shapes_vl`): a teacher that adds instead of multiplying, at a chosen rate."""

import numpy as np
import pytest

from workbench.recipes.shapes_vl import _coin, _confuse_times
from workbench.tasks import shapes


def _times_examples(n: int):
    out = []
    for i in range(400):
        e = shapes.make_example(1, i, "arithmetic")
        if " times " in e.question.text:
            out.append((i, e))
        if len(out) == n:
            return out
    raise AssertionError("too few times questions in the stream")


def test_confused_teacher_adds_and_answers_the_sum():
    for i, e in _times_examples(20):
        c = _confuse_times(e, 1, i).question
        a, b = (int(x) for x in e.question.cot.split("\n")[-2].partition("=")[0].split("*"))
        assert c.cot.split("\n")[-2:] == [f"{a}*{b}={a + b}", f"answer: {a + b}"]
        assert c.answer == str(a + b) and c.facts == e.question.facts and c.text == e.question.text
        assert c.cot.split("\n")[:-2] == e.question.cot.split("\n")[:-2]


def test_other_questions_are_left_alone():
    for i in range(40):
        e = shapes.make_example(1, i, "count" if i % 2 else "arithmetic")
        if " times " not in e.question.text:
            assert _confuse_times(e, 1, i) is e


def test_coin_is_owned_by_the_index_and_uniform():
    draws = np.array([_coin(1, i) for i in range(4000)])
    assert _coin(1, 7) == _coin(1, 7) and _coin(1, 7) != _coin(2, 7)
    assert abs((draws < 0.7).mean() - 0.7) < 0.03


def test_rate_out_of_range_is_refused():
    from workbench.models.vlm import build_processor
    from workbench.recipes.shapes_vl import shapes_sft_batches
    with pytest.raises(ValueError, match="times_as_plus must be a probability in \\[0, 1\\], got 1.5"):
        shapes_sft_batches(build_processor(), 4, 0, times_as_plus=1.5)
