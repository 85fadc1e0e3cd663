"""POPE, CHAIR and Causal-HalBench's metrics against hand-computed golden values, parsing quirks included."""

import json
import math
import os

import pytest

from workbench.evaluation.hallucination import (HalRecord, chair, halbench_metrics, mentioned_objects, pair_table,
                                                pope_answer, pope_metrics)

GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "..", "golden", "hallucination_records.json")))


def test_pope_parsing_follows_llava_quirks():
    g = GOLDEN["pope"]
    assert [pope_answer(a) for a in g["answers"]] == g["parsed"]
    # first sentence only; "Not" capitalised and "nope" do not say no; commas are dropped
    assert pope_answer("Yes. No.") == "yes"
    assert pope_answer("Nope") == "yes"
    assert pope_answer("no,") == "no"


def test_pope_metrics_golden():
    g = GOLDEN["pope"]
    got = pope_metrics(g["labels"], g["answers"])
    assert got == pytest.approx(g["metrics"])


def test_pope_metrics_naive_reference():
    labels = ["yes", "no"] * 5
    answers = ["yes", "yes", "no", "no", "yes", "no", "yes", "yes", "no", "no"]
    tp = sum(a == "yes" and y == "yes" for a, y in zip(answers, labels))
    fp = sum(a == "yes" and y == "no" for a, y in zip(answers, labels))
    fn = sum(a == "no" and y == "yes" for a, y in zip(answers, labels))
    p, r = tp / (tp + fp), tp / (tp + fn)
    got = pope_metrics(labels, answers)
    assert got["f1"] == pytest.approx(2 * p * r / (p + r))
    assert got["yes_ratio"] == pytest.approx(answers.count("yes") / 10)


def test_pope_degenerate_answers_give_zero_not_nan():
    got = pope_metrics(["yes", "no"], ["no", "no"])
    assert got["precision"] == 0.0 and got["f1"] == 0.0 and got["accuracy"] == 0.5
    with pytest.raises(ValueError, match="labels must be 'yes' or 'no'"):
        pope_metrics(["maybe"], ["yes"])
    with pytest.raises(ValueError, match="as many answers as labels"):
        pope_metrics(["yes"], [])


def test_halbench_metrics_golden():
    g = GOLDEN["halbench"]
    records = [HalRecord(*r) for r in g["records"]]
    assert halbench_metrics(records) == pytest.approx(g["metrics"])
    table = pair_table(records)
    assert math.isnan(table.loc["B_001", "nac"])  # B has no absent question: NAC over A's pairs only
    assert list(table.index) == ["A_001", "A_002", "B_001"]


def test_halbench_records_are_checked():
    with pytest.raises(ValueError, match="record type"):
        HalRecord("A", "A_001", "targets", "origin", "yes", "yes")
    with pytest.raises(ValueError, match="record tag"):
        HalRecord("A", "A_001", "target", "original", "yes", "yes")
    r = HalRecord("A", "A_001", "target", "origin", "yes", "yes")
    with pytest.raises(ValueError, match="two target_origin records"):
        pair_table([r, r])


def test_chair_golden_and_synonyms():
    g = GOLDEN["chair"]
    got = chair(g["captions"], g["objects"])
    assert (got.chair_s, got.chair_i, got.recall, got.mentions) == pytest.approx(
        (g["chair_s"], g["chair_i"], g["recall"], g["mentions"]))
    assert got.hallucinated[1] == ("circle",) and got.hallucinated[3] == ("cross",)
    assert mentioned_objects("Two crescents and three boxes") == ["moon", "square"]
    assert chair(["nothing."], [["star"]]).chair_i == 0.0
