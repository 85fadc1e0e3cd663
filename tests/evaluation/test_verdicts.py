"""Verdicts from paired comparisons: the t quantile, the paired SE, and hand-made claims of each kind."""

import math

import numpy as np
import pytest

from workbench.evaluation.verdicts import decide, decide_paired, learned, paired_differences, paired_se, t_cdf, t_quantile


@pytest.mark.parametrize("df,q", [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (9, 2.262157163),
                                  (29, 2.045229642), (1000, 1.962339081)])
def test_t_quantile_matches_the_table(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-7)
    assert t_cdf(q, df) == pytest.approx(0.975, abs=1e-9) and t_cdf(-q, df) == pytest.approx(0.025, abs=1e-9)


def test_paired_se_against_float64_numpy():
    rng = np.random.default_rng(0)
    t, c = rng.normal(0.5, 0.1, 17), rng.normal(0.45, 0.1, 17)
    d = paired_differences(t.tolist(), c.tolist())
    assert paired_se(d) == pytest.approx(np.std(t - c, ddof=1) / math.sqrt(17), rel=1e-12)
    assert paired_se([0.3]) == 0.0
    assert paired_differences([1, 2], [0, 0], direction=-1) == [-1.0, -2.0]


def test_a_clear_win_holds():
    v = decide_paired([0.60, 0.62, 0.61, 0.63, 0.60], [0.50, 0.51, 0.52, 0.50, 0.51], sesoi=0.02)
    assert v.verdict == "holds" and v.holds and v.ci[0] > 0 and v.n == 5 and v.budget is None


def test_a_clear_loss_is_refuted_as_the_opposite_direction():
    v = decide_paired([0.40, 0.41, 0.42, 0.40], [0.50, 0.52, 0.51, 0.50], sesoi=0.02)
    assert v.verdict == "refuted" and "opposite" in v.reason and v.ci[1] < 0


def test_a_tight_null_is_refuted_by_equivalence():
    d = [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.0, -0.0005, 0.001]
    v = decide(d, sesoi=0.02)
    assert v.verdict == "refuted" and "SESOI" in v.reason and v.ci[1] < 0.02 and v.ci[0] < 0 < v.ci[1]


def test_an_underpowered_tie_is_inconclusive_with_a_budget():
    d = [0.04, -0.03, 0.05, -0.02]  # CI spans 0 and the SESOI
    v = decide(d, sesoi=0.02)
    assert v.verdict == "inconclusive" and v.budget > 4
    # the budget reaches MDE = SESOI at the measured variance (with the t quantile of n − 1 = 3 df it is conservative)
    assert v.mde == pytest.approx((t_quantile(0.975, 3) + 0.8416212335729143) * paired_se(d))
    assert v.budget == math.ceil(4 * (v.mde / 0.02) ** 2)


def test_a_baseline_that_did_not_learn_decides_nothing():
    assert not learned([0.01, -0.02, 0.0])
    assert learned([0.10, 0.12, 0.09])
    assert not learned(0.004, se=0.003) and learned(0.02, se=0.003)
    v = decide_paired([0.60, 0.62, 0.61], [0.50, 0.51, 0.52], sesoi=0.02, baseline_learned=False)
    assert v.verdict == "inconclusive" and "did not learn" in v.reason


def test_one_pair_and_bad_input():
    assert decide([0.5], sesoi=0.02).verdict == "inconclusive"
    with pytest.raises(ValueError, match="SESOI|smallest effect"):
        decide([0.1, 0.2], sesoi=0)
    with pytest.raises(ValueError, match="finite"):
        decide([0.1, float("nan")], sesoi=0.02)
    with pytest.raises(ValueError, match="aligned units, got 2 treatment and 3 control"):
        paired_differences([1, 2], [1, 2, 3])


def test_results_record_a_verdict_and_its_numbers(tmp_path, monkeypatch):
    import json

    from workbench.notebook import Results

    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path))
    r = Results("nb", "smoke", 0)
    v = decide_paired([0.60, 0.62, 0.61], [0.50, 0.51, 0.52], sesoi=0.02)
    r.claim("x", "treatment beats control", paper="+5", measured=round(v.effect, 3), verdict=v)
    r.claim("y", "plain", paper=1, measured=1, holds=True)
    out = json.load(open(r.save()))["claims"]
    assert out[0]["verdict"] == "holds" and out[0]["holds"] is True and out[0]["evidence"]["n"] == 3
    assert "verdict" not in out[1] and out[1]["holds"] is True
    with pytest.raises(ValueError, match="needs holds"):
        r.claim("z", "no decision", paper=1, measured=1)


def test_threshold_and_range_claims():
    from workbench.evaluation.verdicts import decide_range, decide_threshold

    assert decide_threshold([0.20, 0.21, 0.19, 0.22], 0.15).verdict == "holds"
    assert decide_threshold([0.10, 0.11, 0.09, 0.12], 0.15).verdict == "refuted"
    v = decide_threshold([0.10, 0.20, 0.14, 0.18], 0.15)
    assert v.verdict == "inconclusive" and (v.budget is None or v.budget >= 4)
    acc = [1.0] * 35 + [0.0] * 65  # 35 % of 100: CI ≈ [0.25, 0.45]
    assert decide_range(acc, 0.2, 0.5).verdict == "holds"
    assert decide_range([1.0] * 90 + [0.0] * 10, 0.2, 0.5).verdict == "refuted"
    assert decide_range([1.0] * 48 + [0.0] * 52, 0.2, 0.5).verdict == "inconclusive"
    with pytest.raises(ValueError, match="lo < hi"):
        decide_range(acc, 0.5, 0.2)


def test_unpaired_welch_against_a_float64_reference():
    from workbench.evaluation.verdicts import decide_unpaired

    t, c = [0.9, 0.8, 1.0, 0.85, 0.95], [0.5, 0.7, 0.4, 0.6]
    v = decide_unpaired(t, c, sesoi=0.05)
    a, b = np.var(t, ddof=1) / 5, np.var(c, ddof=1) / 4
    df = (a + b) ** 2 / (a ** 2 / 4 + b ** 2 / 3)
    assert v.se == pytest.approx(math.sqrt(a + b), rel=1e-12) and v.n == 9
    assert v.ci[0] == pytest.approx(np.mean(t) - np.mean(c) - t_quantile(0.975, df) * math.sqrt(a + b), rel=1e-9)
    assert v.verdict == "holds"
    assert decide_unpaired([0.5, 0.6], [0.5], sesoi=0.05).verdict == "inconclusive"


def test_zero_variance_is_inconclusive_not_a_point_ci():
    from workbench.evaluation.verdicts import decide_threshold, decide_unpaired

    assert decide([0.0] * 16, sesoi=0.02).verdict == "inconclusive"
    assert decide([0.05] * 4, sesoi=0.02).verdict == "inconclusive"
    assert decide_threshold([0.2] * 3, 0.15).verdict == "inconclusive"
    assert decide_unpaired([0.0] * 5, [0.0] * 5, sesoi=0.02).verdict == "inconclusive"


def test_exact_ties_refute_only_when_the_binomial_bound_is_below_the_sesoi():
    from workbench.evaluation.verdicts import tie_bound

    many = decide([0.0] * 192, sesoi=0.02, max_diff=1.0)  # 192 tied prompts: effect ≤ 1 − 0.05^(1/192) ≈ 0.0155
    assert many.verdict == "refuted" and "192 pairs tie" in many.reason
    few = decide([0.0] * 5, sesoi=0.02, max_diff=1.0)  # 5 tied seeds leave room for an effect of 0.45
    assert few.verdict == "inconclusive" and few.budget == 149
    assert tie_bound(149, 1.0) < 0.02 <= tie_bound(148, 1.0)
    assert decide([0.0] * 192, sesoi=0.02, max_diff=2.0).verdict == "inconclusive"  # differences up to 2: bound 0.031
    assert decide([0.05] * 4, sesoi=0.02, max_diff=1.0).verdict == "inconclusive"  # a constant non-zero shift is not a tie
    assert decide([0.0] * 192, sesoi=0.02, max_diff=1.0, baseline_learned=False).verdict == "inconclusive"
    assert decide([0.0] * 192, sesoi=0.02).verdict == "inconclusive"  # without max_diff nothing bounds the effect
    with pytest.raises(ValueError, match="max_diff"):
        decide([0.0] * 4, sesoi=0.02, max_diff=0.0)


def test_tie_bound_against_a_float64_bisection():
    from workbench.evaluation.verdicts import tie_bound

    for n in (1, 3, 20, 192, 1000):
        lo, hi = 0.0, 1.0  # the largest p with (1 − p)^n ≥ 0.05
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.float64(1 - mid) ** n >= 0.05 else (lo, mid)
        assert tie_bound(n, 0.5) == pytest.approx(0.5 * lo, rel=1e-12)
