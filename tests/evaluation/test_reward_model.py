"""Reward-model metrics against naive references and hand-made predictions."""

import random

import numpy as np
import pytest

from workbench.evaluation.reward_model import (attribution, clip_metrics, localisation, pairwise_accuracy,
                                               pairwise_accuracy_with_ties, spearman)
from workbench.tasks.video import ClipView, Rating, load_bench, pair_views, uniform_frames


def naive_with_ties(h, m):
    """VideoAlign's definition written as a double loop over every candidate ε (float64)."""
    best = -1.0
    for eps in [-1.0] + [abs(x) for x in m]:
        good = 0
        for hi, mi in zip(h, m):
            tie = abs(mi) <= eps
            good += (hi == 0 and tie) or (hi != 0 and not tie and hi * mi > 0)
        best = max(best, good / len(h))
    return best


def test_pairwise_accuracy_against_naive_loops():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randrange(1, 15)
        h = [rng.choice([1, -1, 0]) for _ in range(n)]
        m = [rng.choice([-2, -1, 0, 0, 1, 2, 0.5]) for _ in range(n)]
        assert pairwise_accuracy_with_ties(h, m)[0] == pytest.approx(naive_with_ties(h, m))
        strict = [(a, b) for a, b in zip(h, m) if a != 0]
        if strict:
            assert pairwise_accuracy(h, m) == pytest.approx(sum(a * b > 0 for a, b in strict) / len(strict))


def test_ties_hand_cases():
    assert pairwise_accuracy([1, 1, 1, 1], [1, 2, 0, -1]) == 0.5
    assert pairwise_accuracy_with_ties([1, 1, 0, 0], [1, 2, 0, 0]) == (1.0, 0.0)
    assert pairwise_accuracy_with_ties([1, 1, 1], [1, 2, 3])[0] == 1.0
    assert np.isnan(pairwise_accuracy([0, 0], [1, 1]))


def test_spearman_against_the_rank_formula():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x, y = rng.permutation(10).astype(float), rng.permutation(10).astype(float)
        d = x - y  # permutations of 0..9 are their own ranks - 1
        assert spearman(x, y) == pytest.approx(1 - 6 * (d**2).sum() / (10 * 99))
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_attribution_and_localisation_hand_cases():
    a = attribution(["teleport", "none", "merging", None], ["teleport", "teleport", "merging", "none"])
    assert a["accuracy"] == pytest.approx(2 / 3) and a["by_kind"] == {"merging": 1.0, "teleport": 0.5}
    loc = localisation([(1, 2), None, (7,)], [(2, 3), (4,), ()])
    assert loc["recall"] == pytest.approx(0.25) and loc["precision"] == pytest.approx(0.25) and loc["n"] == 2


def test_clip_metrics_of_a_perfect_and_an_inverted_rater():
    pairs = load_bench(10)
    views = [v for p in pairs for v in pair_views(p, uniform_frames(16, 16))]
    perfect = [Rating(v.spec.score, v.spec.label, v.spec.distortion.frames if v.spec.distortion else (), ())
               for v in views]
    m = clip_metrics(perfect, views)
    assert m["pairwise_accuracy"] == 1.0 and m["spearman"] == pytest.approx(1.0)
    assert m["attribution_accuracy"] == 1.0 and m["frame_recall"] == 1.0 and m["format_rate"] == 1.0
    inverted = [Rating(6 - v.spec.score, "none", (), ()) for v in views]
    m = clip_metrics(inverted, views)
    assert m["pairwise_accuracy"] == 0.0 and m["spearman"] == pytest.approx(-1.0) and m["frame_recall"] == 0.0
    unparsed = [Rating(None, None, None, ("score",)) for _ in views]
    assert clip_metrics(unparsed, views)["pairwise_accuracy"] == 0.0
    with pytest.raises(ValueError, match="ratings for"):
        clip_metrics(perfect[:3], views)
