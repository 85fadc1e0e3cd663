"""Verdicts of claims, decided by code from paired comparisons: holds / refuted / inconclusive.

A claim compares a treatment with a control on the same units (seeds × held-out problems, same base),
so the evidence is the paired differences d_i = treatment_i − control_i, signed so that a positive d means
"as the paper says". With n pairs, mean d̄, sample standard deviation s:

    se = s / √n,   CI₉₅ = d̄ ± t_{0.975, n−1} · se,   MDE = (t_{0.975, n−1} + z_{0.80}) · se

and, for a smallest effect size of interest (SESOI, stated with the claim before it runs):

- **holds** when the CI lies above 0;
- **refuted** when the CI lies below the SESOI (an equivalence / non-superiority test, TOST-style: any effect
  is smaller than what would matter) or entirely below 0 (the opposite direction);
- **inconclusive** otherwise — and always when the baseline did not learn (its own gain over the base is
  not above 2 SE: then nothing was compared), when n < 2, or when every pair is the same (zero variance: a
  point CI would overstate what n tied pairs show) — except as below.

**Ties.** When every one of n pairs ties exactly (d_i = 0) and the caller knows the largest |d| a unit can
show (`max_diff`: 1 for differences of 0/1 outcomes, accuracies or areas in [0, 1]), the exact binomial bound
on the share p of units that would differ, (1 − p)ⁿ ≥ 0.05 ⇒ p ≤ p_u = 1 − 0.05^{1/n}, bounds the effect:
|E d| ≤ p_u · max_diff. The claim is **refuted** when that bound is below the SESOI (no effect that matters
hides behind n ties); otherwise inconclusive, with `budget` = the ties that would get there,
n' = ⌈ln 0.05 / ln(1 − SESOI / max_diff)⌉ (≈ 3 · max_diff / SESOI, the rule of three).

For an inconclusive claim `budget` says how many pairs would bring the MDE down to the SESOI at the
measured variance: n' = n · (MDE / SESOI)², rounded up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

VERDICTS = ("holds", "refuted", "inconclusive")
Z_POWER = 0.8416212335729143  # z_{0.80}: 80 % power


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t CDF: F(t) = 1 − ½ I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0 (symmetric below)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse of `t_cdf` by bisection (|error| < 1e-10); p in (0, 1), df > 0."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-11:
            break
    return 0.5 * (lo + hi)


def paired_differences(treatment: Sequence[float], control: Sequence[float], direction: int = 1) -> list[float]:
    """d_i = direction · (treatment_i − control_i) over aligned units (the same seed / problem in both)."""
    if len(treatment) != len(control):
        raise ValueError(f"paired comparison needs aligned units, got {len(treatment)} treatment and {len(control)} control values")
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (the paper claims an increase) or -1 (a decrease), got {direction}")
    return [direction * (float(t) - float(c)) for t, c in zip(treatment, control)]


def paired_se(diffs: Sequence[float]) -> float:
    """se = s / √n with the sample standard deviation s (Bessel); 0.0 for fewer than 2 pairs."""
    n = len(diffs)
    if n < 2:
        return 0.0
    mean = math.fsum(diffs) / n
    return math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1) / n)


@dataclass
class Verdict:
    """The decision on one claim and the numbers behind it (effect in the paper's direction)."""

    verdict: str
    effect: float
    se: float
    ci: tuple[float, float]
    n: int
    mde: float
    sesoi: float
    reason: str
    budget: int | None = None  # pairs that would reach MDE = SESOI (inconclusive claims)

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def no_evidence(sesoi: float, reason: str, n: int = 0) -> Verdict:
    """An inconclusive verdict with nothing measured behind it (no pairs, or a comparison that could not run)."""
    nan = float("nan")
    return Verdict("inconclusive", nan, nan, (nan, nan), n, float("inf"), sesoi, reason)


def learned(gain: Sequence[float] | float, se: float | None = None) -> bool:
    """Whether a baseline learned: its gain over the base model is above 2 SE (per-seed gains, or a gain and its SE)."""
    if isinstance(gain, (int, float)):
        return se is not None and gain > 2 * se and gain > 0
    gains = list(gain)
    return len(gains) >= 2 and math.fsum(gains) / len(gains) > 2 * paired_se(gains)


def tie_bound(n: int, max_diff: float, level: float = 0.95) -> float:
    """The largest mean effect n exactly tied pairs leave room for: (1 − (1 − level)^{1/n}) · max_diff."""
    return (1.0 - (1.0 - level) ** (1.0 / n)) * max_diff


def _ties(effect: float, se: float, ci: tuple[float, float], n: int, mde: float, sesoi: float,
          max_diff: float | None, baseline_learned: bool, level: float) -> Verdict:
    """The verdict of n pairs that all tie (zero variance), by the binomial tie bound when `max_diff` is known."""
    if effect != 0.0 or max_diff is None:
        return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, "zero variance: a point CI, nothing to judge by")
    needed = math.ceil(math.log(1.0 - level) / math.log1p(-sesoi / max_diff)) if sesoi < max_diff else None
    if not baseline_learned:
        return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, "the baseline did not learn (gain not above 2 SE)", needed)
    bound = tie_bound(n, max_diff, level)
    if bound < sesoi:
        return Verdict("refuted", effect, se, ci, n, mde, sesoi,
                       f"all {n} pairs tie: the effect is at most {bound:.3g} (binomial bound), below the SESOI {sesoi:g}")
    return Verdict("inconclusive", effect, se, ci, n, mde, sesoi,
                   f"all {n} pairs tie, which bounds the effect only by {bound:.3g} (binomial), above the SESOI {sesoi:g}",
                   needed)


def decide(diffs: Sequence[float], sesoi: float, *, baseline_learned: bool = True, level: float = 0.95,
           max_diff: float | None = None) -> Verdict:
    """The verdict from paired differences `diffs` (signed: positive = as the paper says) and the claim's SESOI > 0;
    `max_diff`, the largest |d_i| a unit can show, lets n exact ties refute the claim (module docstring, Ties)."""
    if not sesoi > 0:
        raise ValueError(f"the smallest effect size of interest must be > 0, got {sesoi}")
    if max_diff is not None and not max_diff > 0:
        raise ValueError(f"max_diff, the largest possible |difference|, must be > 0, got {max_diff}")
    diffs = [float(d) for d in diffs]
    if not diffs or any(not math.isfinite(d) for d in diffs):
        raise ValueError(f"a verdict needs finite paired differences, got {diffs!r}")
    n = len(diffs)
    effect = math.fsum(diffs) / n
    if n < 2:
        return Verdict("inconclusive", effect, float("nan"), (float("nan"), float("nan")), n, float("inf"), sesoi,
                       "one pair: no variance to judge by", None)
    se = paired_se(diffs)
    t = t_quantile(0.5 + level / 2, n - 1)
    ci = (effect - t * se, effect + t * se)
    mde = (t + Z_POWER) * se
    budget = math.ceil(n * (mde / sesoi) ** 2) if mde > 0 else None
    if se <= 1e-12 * max(1.0, abs(effect)):  # every pair the same (e.g. all ties of 0/1 outcomes): a point CI overstates what n pairs show
        return _ties(effect, se, ci, n, mde, sesoi, max_diff, baseline_learned, level)
    if not baseline_learned:
        return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, "the baseline did not learn (gain not above 2 SE)", budget)
    if ci[0] > 0:
        return Verdict("holds", effect, se, ci, n, mde, sesoi, "95 % CI above 0", None)
    if ci[1] < 0:
        return Verdict("refuted", effect, se, ci, n, mde, sesoi, "95 % CI below 0: the opposite direction", None)
    if ci[1] < sesoi:
        return Verdict("refuted", effect, se, ci, n, mde, sesoi, f"95 % CI below the SESOI {sesoi:g}: any effect is too small to matter", None)
    return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, f"95 % CI spans 0 and the SESOI (MDE {mde:.3g})", budget)


def decide_paired(treatment: Sequence[float], control: Sequence[float], sesoi: float, *, direction: int = 1,
                  baseline_learned: bool = True, max_diff: float | None = None) -> Verdict:
    """`decide` on `paired_differences(treatment, control, direction)`."""
    return decide(paired_differences(treatment, control, direction), sesoi, baseline_learned=baseline_learned,
                  max_diff=max_diff)


def decide_threshold(diffs: Sequence[float], threshold: float, *, baseline_learned: bool = True,
                     level: float = 0.95) -> Verdict:
    """A claim that the mean paired difference reaches `threshold` ("raises accuracy by ≥ 15 points"):
    holds when the CI lies above the threshold, refuted when it lies below, inconclusive otherwise (the
    SESOI is the threshold itself; `budget` = pairs that would make the CI's half-width the distance to it)."""
    diffs = [float(d) for d in diffs]
    if not diffs or any(not math.isfinite(d) for d in diffs):
        raise ValueError(f"a verdict needs finite paired differences, got {diffs!r}")
    n, effect = len(diffs), math.fsum(diffs) / len(diffs)
    if n < 2:
        return Verdict("inconclusive", effect, float("nan"), (float("nan"), float("nan")), n, float("inf"), threshold,
                       "one pair: no variance to judge by")
    se = paired_se(diffs)
    t = t_quantile(0.5 + level / 2, n - 1)
    ci = (effect - t * se, effect + t * se)
    mde = (t + Z_POWER) * se
    if se <= 1e-12 * max(1.0, abs(effect)):
        return Verdict("inconclusive", effect, se, ci, n, mde, threshold, "zero variance: a point CI, nothing to judge by")
    if not baseline_learned:
        return Verdict("inconclusive", effect, se, ci, n, mde, threshold, "the baseline did not learn (gain not above 2 SE)")
    if ci[0] > threshold:
        return Verdict("holds", effect, se, ci, n, mde, threshold, f"95 % CI above the threshold {threshold:g}")
    if ci[1] < threshold:
        return Verdict("refuted", effect, se, ci, n, mde, threshold, f"95 % CI below the threshold {threshold:g}")
    gap = abs(effect - threshold)
    budget = math.ceil(n * (t * se / gap) ** 2) if gap > 0 else None
    return Verdict("inconclusive", effect, se, ci, n, mde, threshold, f"95 % CI contains the threshold {threshold:g}", budget)


def decide_range(outcomes: Sequence[float], lo: float, hi: float, *, level: float = 0.95) -> Verdict:
    """A claim that a mean of per-problem outcomes (e.g. 0/1 correctness) lies in [lo, hi] ("partial accuracy,
    20–50 %"): holds when the CI lies inside, refuted when it lies wholly outside, inconclusive otherwise.
    `effect` is the mean; `sesoi` is reported as the band's half-width."""
    vals = [float(v) for v in outcomes]
    if len(vals) < 2 or any(not math.isfinite(v) for v in vals):
        raise ValueError(f"a range verdict needs at least two finite outcomes, got {len(vals)}")
    if not lo < hi:
        raise ValueError(f"the range must have lo < hi, got [{lo}, {hi}]")
    n, mean = len(vals), math.fsum(vals) / len(vals)
    se = paired_se(vals)
    t = t_quantile(0.5 + level / 2, n - 1)
    ci = (mean - t * se, mean + t * se)
    mde, half = (t + Z_POWER) * se, (hi - lo) / 2
    if lo <= ci[0] and ci[1] <= hi:
        return Verdict("holds", mean, se, ci, n, mde, half, f"95 % CI inside [{lo:g}, {hi:g}]")
    if ci[1] < lo or ci[0] > hi:
        return Verdict("refuted", mean, se, ci, n, mde, half, f"95 % CI outside [{lo:g}, {hi:g}]")
    return Verdict("inconclusive", mean, se, ci, n, mde, half, f"95 % CI straddles an edge of [{lo:g}, {hi:g}]")


def decide_unpaired(treatment: Sequence[float], control: Sequence[float], sesoi: float, *, direction: int = 1,
                    baseline_learned: bool = True, level: float = 0.95) -> Verdict:
    """`decide`'s rule for two independent samples (no pairing possible, e.g. a model's full chains vs its early
    stops): effect = direction · (mean_t − mean_c), Welch's se = √(s_t²/n_t + s_c²/n_c) and the
    Welch–Satterthwaite degrees of freedom; n = n_t + n_c."""
    t_vals, c_vals = [float(v) for v in treatment], [float(v) for v in control]
    if len(t_vals) < 2 or len(c_vals) < 2:
        return Verdict("inconclusive", float("nan"), float("nan"), (float("nan"), float("nan")), len(t_vals) + len(c_vals),
                       float("inf"), sesoi, f"too few values to compare ({len(t_vals)} vs {len(c_vals)})")
    if not sesoi > 0:
        raise ValueError(f"the smallest effect size of interest must be > 0, got {sesoi}")
    var = lambda v: math.fsum((x - math.fsum(v) / len(v)) ** 2 for x in v) / (len(v) - 1)  # noqa: E731
    a, b = var(t_vals) / len(t_vals), var(c_vals) / len(c_vals)
    effect = direction * (math.fsum(t_vals) / len(t_vals) - math.fsum(c_vals) / len(c_vals))
    se = math.sqrt(a + b)
    n = len(t_vals) + len(c_vals)
    if se == 0:
        df = n - 2
    else:
        df = (a + b) ** 2 / (a ** 2 / (len(t_vals) - 1) + b ** 2 / (len(c_vals) - 1)) if (a or b) else n - 2
    t = t_quantile(0.5 + level / 2, max(df, 1.0))
    ci, mde = (effect - t * se, effect + t * se), (t + Z_POWER) * se
    scale = math.ceil(n * (mde / sesoi) ** 2) if mde > 0 else None
    if se <= 1e-12 * max(1.0, abs(effect)):
        return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, "zero variance: a point CI, nothing to judge by")
    if not baseline_learned:
        return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, "the baseline did not learn (gain not above 2 SE)", scale)
    if ci[0] > 0:
        return Verdict("holds", effect, se, ci, n, mde, sesoi, "95 % CI above 0 (Welch, unpaired)")
    if ci[1] < 0:
        return Verdict("refuted", effect, se, ci, n, mde, sesoi, "95 % CI below 0: the opposite direction (Welch, unpaired)")
    if ci[1] < sesoi:
        return Verdict("refuted", effect, se, ci, n, mde, sesoi, f"95 % CI below the SESOI {sesoi:g} (Welch, unpaired)")
    return Verdict("inconclusive", effect, se, ci, n, mde, sesoi, f"95 % CI spans 0 and the SESOI (MDE {mde:.3g}; Welch, unpaired)", scale)
