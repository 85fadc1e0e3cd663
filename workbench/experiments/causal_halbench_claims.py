"""The claims of notebook 07 (Causal-HalBench, arXiv 2511.10268) and their verdicts, from paired comparisons.

Units pair across models of the same training seed: a counterfactual pair, an unbiased question or an image
is the same item for the ρ_lo and ρ_hi models of seed s (ρ_lo, ρ_hi = the smallest and largest ρ swept).

- `cac_grows_with_rho`, `nac_grows_with_rho`, `chr_grows_with_rho` (the paper's "susceptibility"): the per-pair
  contribution at ρ_hi minus that at ρ_lo, paired by (seed, pair), SESOI 5 points;
- `unbiased_accuracy_stable`: accuracy on unbiased originals at ρ_hi minus at ρ_lo, paired by (seed, question),
  holds when the whole 95 % CI lies inside ± `margin` (an equivalence test), refuted when it lies outside;
- `pope_adversarial_harder`: accuracy on an image's random negatives minus on its adversarial ones (the
  positives are shared), paired by (model, image) over every model, SESOI 5 points;
- `pope_gap_grows`: that per-image gap at ρ_hi minus at ρ_lo, paired by (seed, image), SESOI 5 points.
Every claim is inconclusive when the ρ_lo models do not perceive: their unbiased accuracy is not above
chance (50 %) by 2 SE — a model that cannot see answers from priors alone, and there is nothing to compare.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.evaluation.verdicts import decide, decide_range, no_evidence, paired_se
from workbench.experiments.claims import paired

SESOI_SUSCEPTIBILITY = 0.05  # 5 points of CAC / NAC / CHR / POPE accuracy


def perceives(unbiased: pd.DataFrame, rho: float | None) -> tuple[bool, float, float]:
    """(accuracy − 2 SE > 0.5, accuracy, SE) of the ρ models' pooled unbiased answers (ρ None: every answer, the
    one model benchmarked alone)."""
    rows = unbiased if rho is None else unbiased[unbiased["rho"] == rho]
    c = rows["correct"].astype(float).tolist()
    if len(c) < 2:
        return False, float("nan"), float("nan")
    acc, se = float(np.mean(c)), paired_se(c)
    return acc - 2 * se > 0.5, acc, se


def _paired_by(frame: pd.DataFrame, value: str, unit: str, lo: float, hi: float) -> pd.DataFrame:
    """`value` at ρ_lo and ρ_hi side by side, one row per (seed, unit) both have."""
    sub = frame[frame["rho"].isin([lo, hi])].dropna(subset=[value])
    wide = sub.pivot_table(index=["seed", unit], columns="rho", values=value, aggfunc="mean")
    return wide.dropna() if lo in wide.columns and hi in wide.columns else pd.DataFrame(columns=[lo, hi])


def negatives_accuracy(pope: pd.DataFrame) -> pd.DataFrame:
    """Per (run, rho, seed, image): accuracy on that image's negatives in each POPE split (columns)."""
    neg = pope[pope["label"] == "no"].assign(correct=lambda f: f["correct"].astype(float))
    return neg.pivot_table(index=["run", "rho", "seed", "image"], columns="split", values="correct", aggfunc="mean")


def _r(x, digits: int = 4):
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def claims(sweep, margin: float) -> list[dict]:
    """The claims above as `Results.claim` keyword dicts (verdict included). Without a ρ sweep of ≥ 2 values (one
    model benchmarked alone) only `pope_adversarial_harder` applies, its baseline that model's perception."""
    rhos = sorted({r.rho for r in sweep.runs if r.rho is not None})
    if len(rhos) < 2:
        ok, acc, se = perceives(sweep.unbiased, rhos[0] if rhos else None)
        return [pope_adversarial_claim(sweep, ok, {"unbiased_accuracy": _r(acc), "unbiased_se": _r(se)})]
    lo, hi = rhos[0], rhos[-1]
    ok, acc, se = perceives(sweep.unbiased, lo)
    sees = {"rho_lo_unbiased_accuracy": _r(acc), "rho_lo_unbiased_se": _r(se)}
    out = []
    for m, what in (("cac", "CAC (a removed target still 'seen')"), ("nac", "NAC (an absent object the target made "
                    "the model see)"), ("chr", "CHR (the inserted, out-of-context object denied)")):
        w = _paired_by(sweep.pairs, m, "pair", lo, hi)
        v = paired(w[hi].tolist(), w[lo].tolist(), SESOI_SUSCEPTIBILITY, baseline_learned=ok) if len(w) \
            else no_evidence(SESOI_SUSCEPTIBILITY, "no counterfactual pair defines it")
        out.append({"id": f"{m}_grows_with_rho",
                    "claim": f"{what} is larger at rho = {hi:g} than at rho = {lo:g} (paired by seed and pair, SESOI "
                             f"{100 * SESOI_SUSCEPTIBILITY:g} points)",
                    "paper": "holds (hallucination follows co-occurrence)",
                    "measured": {f"rho={lo:g}": _r(w[lo].mean()) if len(w) else None,
                                 f"rho={hi:g}": _r(w[hi].mean()) if len(w) else None, "pairs": len(w), **sees},
                    "verdict": v})
    w = _paired_by(sweep.unbiased, "correct", "question", lo, hi)
    diffs = (w[hi].astype(float) - w[lo].astype(float)).tolist()
    v = decide_range(diffs, -margin, margin) if len(diffs) >= 2 else no_evidence(margin, "too few unbiased questions")
    if v.verdict != "inconclusive" and not ok:
        v = no_evidence(margin, "the rho_lo models do not perceive (unbiased accuracy not above chance by 2 SE)", len(diffs))
    out.append({"id": "unbiased_accuracy_stable",
                "claim": f"accuracy on unbiased originals changes by less than {100 * margin:g} points from rho = {lo:g} "
                         f"to rho = {hi:g} (95 % CI of the paired difference inside ± {100 * margin:g} points)",
                "paper": "holds (the biased models differ in susceptibility, not in plain accuracy)",
                "measured": {f"rho={lo:g}": _r(w[lo].astype(float).mean()) if len(w) else None,
                             f"rho={hi:g}": _r(w[hi].astype(float).mean()) if len(w) else None,
                             "questions_x_seeds": len(diffs)},
                "verdict": v})
    out.append(pope_adversarial_claim(sweep, ok, sees))
    gap = pope_gaps(sweep.pope)
    g = _paired_by(gap, "gap", "image", lo, hi)
    v = paired(g[hi].tolist(), g[lo].tolist(), SESOI_SUSCEPTIBILITY, baseline_learned=ok) if len(g) \
        else no_evidence(SESOI_SUSCEPTIBILITY, "no image pairs across rho")
    out.append({"id": "pope_gap_grows",
                "claim": f"the random − adversarial POPE gap is larger at rho = {hi:g} than at rho = {lo:g} (paired by seed "
                         f"and image, SESOI {100 * SESOI_SUSCEPTIBILITY:g} points)",
                "paper": "holds at our scale if hallucination follows co-occurrence (not a claim of the paper)",
                "measured": {f"rho={lo:g}": _r(g[lo].mean()) if len(g) else None,
                             f"rho={hi:g}": _r(g[hi].mean()) if len(g) else None, "images_x_seeds": len(g)},
                "verdict": v})
    return out


def pope_gaps(pope: pd.DataFrame) -> pd.DataFrame:
    """Per (run, rho, seed, image): accuracy on its random negatives minus on its adversarial ones (`gap`); no rows
    when either split has no negatives."""
    return _gaps(_both_splits(pope))


def _gaps(neg: pd.DataFrame) -> pd.DataFrame:
    return (neg["random"] - neg["adversarial"]).rename("gap").reset_index()


def _both_splits(pope: pd.DataFrame) -> pd.DataFrame:
    neg = negatives_accuracy(pope)
    return neg.reindex(columns=sorted({*neg.columns, "random", "adversarial"})).dropna(subset=["random", "adversarial"])


def pope_adversarial_claim(sweep, ok: bool, sees: dict) -> dict:
    """`pope_adversarial_harder` over every model of `sweep`; `ok`: the compared models perceive."""
    neg = _both_splits(sweep.pope)
    gap = _gaps(neg)
    v = decide(gap["gap"].tolist(), SESOI_SUSCEPTIBILITY, baseline_learned=ok) if len(gap) >= 2 \
        else no_evidence(SESOI_SUSCEPTIBILITY, "too few images")
    return {"id": "pope_adversarial_harder",
            "claim": "POPE's adversarial negatives are answered less accurately than its random ones (paired by model "
                     f"and image, every model pooled, SESOI {100 * SESOI_SUSCEPTIBILITY:g} points)",
            "paper": "holds (POPE: adversarial < popular < random)",
            "measured": {"random": _r(neg["random"].mean()), "adversarial": _r(neg["adversarial"].mean()),
                         "images_x_models": len(gap), **sees},
            "verdict": v}


def record_claims(results, sweep, margin: float) -> None:
    """Record every claim of `claims(sweep, margin)` in `results` (a `workbench.notebook.Results`)."""
    for c in claims(sweep, margin):
        results.claim(**c)
