"""The scene-graph oracle and its fallible version (TGRL's expert trajectories), checked by the grounding checker."""

import random

import pytest

from workbench.tasks import shapes


def graded(text, ex):
    g = shapes.grounding_score(text, ex.render().graph)
    return shapes.reward(text, ex.answer) >= 1, g.n_facts > 0 and g.n_correct == g.n_facts


def test_clean_oracle_is_the_grounded_reference():
    for ex in shapes.generate(40, seed=3):
        chain = shapes.oracle_chain(ex)
        assert chain == ex.target and graded(chain, ex) == (True, True)


def test_error_kinds():
    ex = shapes.generate(1, seed=1, families=("arithmetic",))[0]
    mis = shapes.corrupt_chain(ex.target, "misperceived", random.Random(0))
    unf = shapes.corrupt_chain(ex.target, "unfaithful", random.Random(0))
    assert mis != ex.target and unf != ex.target
    assert graded(unf, ex) == (True, False)  # right answer, a wrong stated fact: only the fact check catches it
    right, grounded = graded(mis, ex)
    assert not grounded
    lines = mis.split("\n")  # the arithmetic follows the misperceived count
    a, b = (int(line.rsplit(": ", 1)[1]) for line in lines[:2])
    assert lines[-1] == f"answer: {eval(lines[2].split('=')[0])}" and lines[2].startswith(f"{a}") and f"{b}=" in lines[2]
    yes_no = shapes.generate(1, seed=4, families=("exists",))[0]
    flipped = shapes.corrupt_chain(yes_no.target, "misperceived", random.Random(0))
    assert graded(flipped, yes_no) == (False, False)
    with pytest.raises(ValueError, match="error kind"):
        shapes.corrupt_chain(ex.target, "lazy", random.Random(0))


def test_error_rate_is_the_share_of_corrupted_chains():
    exs = shapes.generate(400, seed=5, families=("arithmetic",))
    rng = random.Random(0)
    bad = sum(shapes.oracle_chain(e, rng, 0.3) != e.target for e in exs)
    assert 0.24 < bad / len(exs) < 0.36
    with pytest.raises(ValueError, match="error_rate"):
        shapes.oracle_chain(exs[0], rng, 1.5)
    with pytest.raises(ValueError, match="rng"):
        shapes.oracle_chain(exs[0], None, 0.2)
