"""Agreement between token signals: top-q sets, Jaccard and class shares against naive Python set arithmetic."""

import numpy as np
import pandas as pd
import pytest

from workbench.analysis import agreement as agr


def _frame():
    rng = np.random.default_rng(0)
    rows = []
    for seq in range(4):
        for pos in range(10):
            cls = "digit" if pos % 3 else "format"
            vals = {"a": rng.normal(), "b": rng.normal(), "set": float(pos % 4 == 0)}
            vals["a_copy"] = vals["a"] * 2 + 1
            rows += [{"seq_id": seq, "pos": pos, "token": str(pos), "token_class": cls, "signal": s, "value": v}
                     for s, v in vals.items()]
    return pd.DataFrame(rows)


def test_top_sets_and_jaccard_match_naive_sets():
    w = agr.wide(_frame())
    assert list(w.columns) == ["a", "b", "set", "a_copy"]
    n = len(w)
    for q in (0.1, 0.25, 0.5):
        sets = {}
        for s in w.columns:
            vals = sorted(w[s], reverse=True)
            thr = vals[int(np.ceil(q * n)) - 1]
            sets[s] = {i for i, v in zip(w.index, w[s]) if v >= thr}
        got = agr.top_sets(w, q)
        for s in w.columns:
            assert set(got.index[got[s]]) == sets[s], (s, q)
        j = agr.jaccard(w, q)
        for a in w.columns:
            for b in w.columns:
                want = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
                assert j.loc[a, b] == pytest.approx(want)
    assert agr.jaccard(w, 0.2).loc["a", "a_copy"] == 1.0  # a monotone transform picks the same tokens
    assert agr.set_sizes(w, 0.1)["set"] == pytest.approx(0.3)  # ties at the threshold are in: all of the 0/1 signal's ones


def test_class_shares_sum_to_one_and_include_all_tokens():
    f = _frame()
    w = agr.wide(f)
    cls = f.drop_duplicates(["seq_id", "pos"]).set_index(["seq_id", "pos"])["token_class"]
    shares = agr.class_shares(w, cls, 0.2)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares.loc["set", "format"] == pytest.approx(1 / 3)  # ones at pos 0, 4, 8; only pos 0 is format (pos % 3 == 0)
    assert shares.loc["all tokens", "format"] == pytest.approx(0.4)
    curves = agr.jaccard_curves(w, (0.1, 0.5))
    assert len(curves) == 2 * 6 and set(curves.q) == {0.1, 0.5}


def test_bad_q_is_named():
    with pytest.raises(ValueError, match="q must be a fraction in \\(0, 1\\], got 1.5"):
        agr.top_sets(agr.wide(_frame()), 1.5)


def test_token_classes_of_a_shapes_and_an_arithmetic_response():
    toks = list("red shapes: 2\n") + list("2*3=6\nanswer: 6")
    cls = agr.token_classes(toks)
    assert cls[toks.index("2")] == "visual fact"
    line2 = 14
    assert cls[line2:line2 + 5] == ["digit", "operator", "digit", "=", "digit"]
    assert cls[-1] == "answer digit" and cls[0] == "format"
