"""The length-demanding arithmetic setting: problems, rewrite chains, early stops, held-out split, recipe."""

import random

import pytest

from workbench.rl.tasks import long_arithmetic_task
from workbench.tasks.arithmetic_long import (
    full_cot, long_eval_set, make_bounded_problem, operations_in_head, parse_question, rewrite_chain,
    sample_long_problems, shortcut_cot,
)
from workbench.tasks import arithmetic


def naive_values(question):
    """Left-to-right evaluation by hand: every intermediate value, in order."""
    tokens, i, first = [], 0, ""
    while i < len(question) and (question[i].isdigit() or (i == 0 and question[i] == "-")):
        first += question[i]
        i += 1
    value, values = int(first), []
    while i < len(question):
        op, j = question[i], i + 1
        num = ""
        while j < len(question) and question[j].isdigit():
            num += question[j]
            j += 1
        value = {"+": value + int(num), "-": value - int(num), "*": value * int(num)}[op]
        values.append(value)
        i = j
    return values


@pytest.mark.parametrize("max_abs,ops", [(9, "+-*"), (19, "+-"), (9, "*")])
def test_bounded_problems_stay_in_range_and_answer_left_to_right(max_abs, ops):
    rng = random.Random(0)
    for _ in range(200):
        steps = rng.randint(1, 6)
        p = make_bounded_problem(rng, steps, max_abs=max_abs, ops=ops)
        values = naive_values(p.question)
        assert len(values) == steps and values[-1] == p.answer
        assert all(abs(v) <= max_abs for v in values)
        assert set(c for c in p.question[1:] if not c.isdigit()) <= set(ops)
        assert arithmetic.reward(p.cot, p.answer) == 1.0


def test_rewrite_chain_does_one_operation_per_line():
    assert rewrite_chain("7+3*2-4") == ["10*2-4", "20-4", "16"]
    assert full_cot("7+3*2-4", 16) == "10*2-4\n20-4\nanswer: 16"
    rng = random.Random(1)
    for p in sample_long_problems(50, rng, (2, 5)):
        lines = rewrite_chain(p.question)
        _, ops = parse_question(p.question)
        assert [int(naive_values(line)[-1]) if i < len(lines) - 1 else int(line) for i, line in enumerate(lines)] == [p.answer] * len(lines)
        assert [len(parse_question(line)[1]) for line in lines[:-1]] == list(range(len(ops) - 1, 0, -1))


def test_shortcut_cot_extremes_and_prefixes():
    rng = random.Random(2)
    for p in sample_long_problems(40, rng, (2, 5)):
        assert shortcut_cot(p, rng, 0.0) == p.cot
        assert shortcut_cot(p, rng, 1.0) == f"answer: {p.answer}"
        cot = shortcut_cot(p, rng, 0.5)
        written = cot.split("\n")[:-1]
        assert written == rewrite_chain(p.question)[: len(written)]
        assert arithmetic.reward(cot, p.answer) == 1.0
        assert operations_in_head(p.question, cot) == len(parse_question(p.question)[1]) - len(written)
    with pytest.raises(ValueError, match="stop_prob must lie in"):
        shortcut_cot(p, rng, 1.5)


def test_early_stop_rate_matches_stop_prob():
    rng = random.Random(3)
    p = make_bounded_problem(random.Random(0), 5)
    stops = [shortcut_cot(p, rng, 0.3).count("\n") for _ in range(4000)]
    assert abs(sum(s == 0 for s in stops) / len(stops) - 0.3) < 0.03  # stopped before the first line


def test_operations_in_head():
    assert operations_in_head("7+3*2-4", full_cot("7+3*2-4", 16)) == 1
    assert operations_in_head("7+3*2-4", "answer: 3") == 3
    assert operations_in_head("7+3*2-4", "garbage\nmore\nlines\nthan ops\nanswer: 1") == 0


def test_held_out_split_is_deterministic_and_never_trained_on():
    a, b = long_eval_set(50), long_eval_set(50)
    assert [p.question for p in a] == [p.question for p in b]
    assert all(len(parse_question(p.question)[1]) in (4, 5) for p in long_eval_set())
    task = long_arithmetic_task()
    held = {p.question for p in task.eval_problems(500)}
    train = task.sample(2000, random.Random(0))
    assert not held & {p.question for p in train}
    assert all(3 <= len(parse_question(p.question)[1]) <= 5 for p in train)
    p = train[0]
    assert task.correct(p.cot, p) and not task.correct("answer: 999", p)


@pytest.mark.parametrize("call,needle", [
    (lambda: make_bounded_problem(random.Random(0), 0), "steps must be >= 1"),
    (lambda: make_bounded_problem(random.Random(0), 3, max_abs=5), "max_abs must be at least"),
    (lambda: make_bounded_problem(random.Random(0), 3, ops="/"), "ops must be"),
    (lambda: sample_long_problems(3, random.Random(0), (4, 2)), "steps must be a range"),
    (lambda: long_eval_set(3, colour="red"), "unknown held-out spec keys"),
    (lambda: parse_question("7+"), "cannot parse"),
])
def test_bad_input_is_one_clear_sentence(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


def test_recipe_runs_and_reports(monkeypatch, tmp_path):
    from workbench.recipes.arith_long import tiny_arith_long

    model, tok, info = tiny_arith_long(sft_steps=2, batch_size=4, hidden=32, layers=1, eval_n=4)
    assert info["sft_steps"] == 2 and 0.0 <= info["heldout_accuracy"] <= 1.0 and info["heldout_length"] > 0
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
