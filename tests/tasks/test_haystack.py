"""haystack: determinism, exact lengths, needle placement, frozen split, scoring on adversarial strings."""

import os
import re

import pytest

from workbench.tasks.haystack import (EVAL_PATH, KINDS, exact_match, generate, load_eval_set, make_example,
                                      normalize_prediction, score, write_eval_set)


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_exact_length_and_needles_present(kind):
    a = make_example(kind, 3000, seed=7)
    b = make_example(kind, 3000, seed=7)
    assert a == b
    assert make_example(kind, 3000, seed=8).prompt != a.prompt
    assert len(a.prompt) == 3000
    assert a.prompt.isascii() and a.prompt.endswith(a.question)
    for needle in a.needles:
        assert needle in a.document
    assert a.answer in a.document or kind == "multivalue"
    assert sum(a.document.count(c) for c in ".,;?!") > 3000 // 80  # punctuated prose


def test_needles_sit_at_their_depths_on_sentence_boundaries():
    ex = make_example("multikey", 8000, seed=1, depths=(0.1, 0.4, 0.6, 0.9))
    starts = [ex.document.index(n) for n in ex.needles]
    assert starts == sorted(starts)
    for depth, s in zip(ex.depths, starts):
        assert abs(s / len(ex.document) - depth) < 0.05
        assert s == 0 or ex.document[s - 2:s] in (". ", "? ", "! ")


def test_multikey_asks_one_of_its_keys_and_multivalue_lists_document_order():
    ex = make_example("multikey", 4000, seed=3)
    asked = re.search(r"number for (\S+)\?", ex.question).group(1)
    assert f"numbers for {asked} is: {ex.answer}." in ex.document
    mv = make_example("multivalue", 4000, seed=3, depths=(0.9, 0.1, 0.5, 0.3))
    key = re.search(r"numbers for (\S+)\?", mv.question).group(1)
    assert ", ".join(re.findall(rf"numbers for {key} is: (\d+)\.", mv.document)) == mv.answer
    assert exact_match(mv.answer + ".", mv.answer) == 1.0


def test_generate_uses_consecutive_seeds_and_validates():
    xs = generate(3, "passkey", 600, seed=5)
    assert [x.seed for x in xs] == [5, 6, 7] and xs[1] == make_example("passkey", 600, 6)
    with pytest.raises(ValueError, match="kind 'needle' is unknown"):
        make_example("needle", 600, 0)
    with pytest.raises(ValueError, match="too short"):
        make_example("multikey", 50, 0)
    with pytest.raises(ValueError, match="depths must be"):
        make_example("single", 600, 0, depths=(1.5,))


@pytest.mark.parametrize("prediction,answer,expected", [
    ("68301", "68301", 1.0),
    (" 68301. Remember it.", "68301", 1.0),
    ("68301\nmore text", "68301", 1.0),
    ("68301<|endoftext|>junk", "68301", 1.0),
    ("683011", "68301", 0.0),          # extra digit
    ("68301.5", "68301", 0.0),         # a decimal is not the key
    ("6830", "68301", 0.0),
    ("The pass key is 68301", "68301", 0.0),
    ("", "68301", 0.0),
    (None, "68301", 0.0),
    (68301, "68301", 0.0),             # not text
    ("６８３０１", "68301", 0.0),        # full-width digits
    ("1, 2, 3", "1, 2, 3", 1.0),
    ("1,2,3.", "1, 2, 3", 1.0),
    ("3, 2, 1", "1, 2, 3", 0.0),       # order matters
    ("1, 2", "1, 2, 3", 0.0),
    ("x" * 100000, "68301", 0.0),
])
def test_exact_match_on_adversarial_strings(prediction, answer, expected):
    assert exact_match(prediction, answer) == expected


def test_normalize_and_score():
    assert normalize_prediction("  42. The end") == "42"
    xs = generate(2, "single", 500)
    assert score([xs[0].answer, "nope"], xs) == 0.5
    assert score([], []) == 0.0
    with pytest.raises(ValueError, match="predictions for"):
        score(["a"], xs)


def test_frozen_split_is_small_and_regenerates(tmp_path):
    from workbench.utils import repo_root

    committed = os.path.join(repo_root(), EVAL_PATH)
    assert os.path.getsize(committed) < 1_000_000
    passkeys = load_eval_set(kind="passkey", length=1024)
    assert len(passkeys) == 20 and all(len(x.prompt) == 1024 for x in passkeys)
    write_eval_set(str(tmp_path), kinds=("single",), lengths=(600,), seeds=range(3))
    assert [x.seed for x in load_eval_set(root=str(tmp_path))] == [0, 1, 2]
    path = tmp_path / EVAL_PATH
    path.write_text(path.read_text().replace('"answer": "', '"answer": "9'))
    with pytest.raises(ValueError, match="stale"):
        load_eval_set(root=str(tmp_path))
