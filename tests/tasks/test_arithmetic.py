import random

import pytest

from workbench.tasks import arithmetic
from workbench.utils import repo_root


def _left_to_right(question: str) -> int:
    """Independent evaluator: scan the question character by character."""
    import re

    first = re.match(r"-?\d+", question)
    toks = [first.group()] + re.findall(r"\d+|[+\-*]", question[first.end():])
    value = int(toks[0])
    for op, x in zip(toks[1::2], toks[2::2]):
        value = value + int(x) if op == "+" else value - int(x) if op == "-" else value * int(x)
    return value


def test_generator_is_deterministic_and_seed_sensitive():
    a = arithmetic.generate(50, seed=3, steps=3, digits=2)
    assert a == arithmetic.generate(50, seed=3, steps=3, digits=2)
    assert a != arithmetic.generate(50, seed=4, steps=3, digits=2)


@pytest.mark.parametrize("steps,digits", [(1, 1), (2, 1), (4, 2), (6, 1)])
def test_answers_and_chain_of_thought_are_right(steps, digits):
    for p in arithmetic.generate(200, seed=1, steps=steps, digits=digits):
        assert p.answer == _left_to_right(p.question)
        lines = p.cot.splitlines()
        assert len(lines) == steps + 1 and lines[-1] == f"answer: {p.answer}"
        for line in lines[:-1]:  # every intermediate step is a true equation
            lhs, rhs = line.split("=")
            assert _left_to_right(lhs) == int(rhs)
        assert arithmetic.reward(p.cot, p.answer) == 1.0


@pytest.mark.parametrize("text,expected", [
    ("", 0.0), ("answer:", 0.0), ("answer: 12", 1.0), ("answer:12", 1.0), ("answer: 1 2", 0.0),
    ("answer: 5\nanswer: 12", 1.0), ("answer: 12\nanswer: 5", 0.0), ("answer: 120", 0.0),
    ("answer: -12", 0.0), ("ANSWER: 12", 0.0), ("answer: ١٢", 0.0), ("answer: 12.0", 1.0),
    ("answer: " + "9" * 5000, 0.0), ("\x00answer: 12\x00", 1.0), ("answer: 1e9999", 0.0), ("<script>", 0.0),
])
def test_reward_never_raises(text, expected):
    assert arithmetic.reward(text, 12) == expected


def test_reward_on_non_strings_and_format_bonus():
    assert arithmetic.reward(None, 1) == 0.0  # type: ignore[arg-type]
    assert arithmetic.reward(b"answer: 1", 1) == 0.0  # type: ignore[arg-type]
    assert arithmetic.reward("1+1=2\nanswer: 3", 2, format_weight=0.1) == pytest.approx(0.1)
    assert arithmetic.reward("1+1=2\nanswer: 2", 2, format_weight=0.1) == pytest.approx(1.1)
    assert arithmetic.reward("answer: 2 and more", 2, format_weight=0.1) == pytest.approx(1.0)


def test_bad_knobs_are_named():
    with pytest.raises(ValueError, match="steps"):
        arithmetic.generate(3, steps=0)
    with pytest.raises(ValueError, match="digits"):
        arithmetic.generate(3, digits=0)


def test_frozen_eval_set_matches_generator(tmp_path):
    committed = arithmetic.load_eval_set(root=repo_root())
    arithmetic.write_eval_set(str(tmp_path))
    assert arithmetic.load_eval_set(root=str(tmp_path)) == committed
    assert len(committed) == arithmetic.EVAL_SPEC["n"]


def test_sft_stream_never_contains_an_eval_question():
    from workbench.recipes.arith import arithmetic_batches
    from workbench.models.tokenizer import ASSISTANT, USER, build_tokenizer

    tok = build_tokenizer()
    held = {p.question for p in arithmetic.load_eval_set()}
    stream = arithmetic_batches(tok, 256, 0, held, steps=2, digits=1)
    seen = set()
    for _ in range(8):
        batch = next(stream)
        for ids in batch["input_ids"]:
            text = tok.decode(ids)
            seen.add(text.split(USER)[1].split(ASSISTANT)[0])
    assert len(seen) > 1000 and not seen & held
