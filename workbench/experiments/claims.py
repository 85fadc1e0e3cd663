"""Pairing helpers and smallest effects of interest shared by the RL notebooks' claims (verdicts from
`workbench.evaluation.verdicts`: holds / refuted / inconclusive); the claims themselves are in
`delta_logp_claims.py` (notebook 01) and `fipo_claims.py` (notebook 02).

Pairing — every comparison between methods is paired on units that share seed, held-out problems and base:

- replacement budgets: by **prompt shard** (the replacement seeds are disjoint shards of the held-out problems; a
  shard's budget to reach its own RL accuracy is one unit, so entropy, KL and Δlog p are compared on the same
  prompts and the same base / RL decodes);
- extrapolation: by **held-out problem** (greedy 0/1 correctness of the same problem at λ and at λ = 0);
- RL runs (DAPO + low_prob vs DAPO, FIPO vs DAPO): by **seed** (the `final` table of `compare_methods`, one row per
  (run, seed): same base, same first prompts, same held-out problems);
- the base's full chains vs its early stops cannot be paired (a response is one or the other): Welch, unpaired.

Smallest effects of interest, stated in each claim's text:

- accuracy: **2 points** (0.02) — below that a difference is within what one more seed or a reworded prompt moves;
- replacement budget: **0.02 of the token budget** — two replaced tokens per hundred, finer than the budget grid
  (0, 0.02, 0.05, …) resolves, so a smaller saving is not one the curves can show;
- response length: **1 token** — the length-demanding task's extra rewrite step is several tokens long
  (`7+3*2-4` → `10*2-4`), so less than a token of mean growth is not a longer chain.

An RL comparison whose baseline did not learn (DAPO's per-seed gain over the base not above 2 SE,
`verdicts.learned`) decides nothing; neither does a replacement comparison whose RL model does not beat the base on
the shards (no gap to close). With fewer than two units, or zero variance across them (every pair equal, a
degenerate CI — typical of the smoke preset), the verdict is inconclusive — unless every pair ties exactly and
enough pairs tie that the binomial tie bound (`verdicts.tie_bound`, with the largest possible |difference|
`max_diff`, 1 for accuracies) rules out an effect as large as the SESOI: then it is refuted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import pandas as pd

from workbench.evaluation.verdicts import Verdict, decide_paired, no_evidence

SESOI_ACCURACY = 0.02  # 2 accuracy points
SESOI_BUDGET = 0.02  # 0.02 of the token budget (fraction of positions replaced)
SESOI_LENGTH = 1.0  # 1 token of mean response length


def paired(treatment: Sequence[float], control: Sequence[float], sesoi: float, *, direction: int = 1,
           baseline_learned: bool = True, max_diff: float | None = None) -> Verdict:
    """`decide_paired`, inconclusive for no pairs (zero variance is judged in `decide` itself: by the binomial tie
    bound when `max_diff` is given, else inconclusive)."""
    if not len(treatment):
        return no_evidence(sesoi, "no pairs to compare")
    return decide_paired(list(treatment), list(control), sesoi, direction=direction, baseline_learned=baseline_learned,
                         max_diff=max_diff)


def by_seed(frame: pd.DataFrame, value: str, treatment: str, control: str, run: str = "run") -> pd.DataFrame:
    """`value` of `treatment` and `control` side by side, one row per seed both have (sorted by seed)."""
    wide = frame.pivot_table(index="seed", columns=run, values=value, aggfunc="mean")
    cols = [c for c in (treatment, control) if c in wide.columns]
    return wide[cols].dropna().sort_index() if len(cols) == 2 else pd.DataFrame(columns=[treatment, control])


def summary(v: Verdict, scale: float = 1.0, digits: int = 4) -> dict:
    """The verdict's effect and CI (× `scale`, rounded; None where undefined) for `measured`."""
    r = lambda x: round(scale * x, digits) if math.isfinite(x) else None  # noqa: E731
    return {"verdict": v.verdict, "effect": r(v.effect), "ci": [r(v.ci[0]), r(v.ci[1])], "n": v.n}


def both(a: Verdict, b: Verdict, names: tuple[str, str]) -> Verdict:
    """A claim that needs two comparisons: holds if both hold, refuted if either is refuted, else inconclusive.
    The numbers are those of the deciding comparison (the refuted one, else an inconclusive one, else the one
    with the lower CI bound); `reason` names both."""
    return _combine(list(zip(names, (a, b))), lambda n, v: f"vs {n}: {v.verdict}, {v.reason}", lambda v: v.ci[0],
                    "vs ")


def all_of(verdicts: dict[str, Verdict]) -> Verdict:
    """A claim made for every member: holds if all hold, refuted if any is refuted, else inconclusive; the
    numbers are those of the deciding member (the refuted one, else an inconclusive one, else the one whose CI
    lies least far past its SESOI)."""
    if not verdicts:
        raise ValueError("all_of needs at least one verdict")
    return _combine(list(verdicts.items()), lambda n, v: f"{n}: {v.verdict}", lambda v: v.ci[0] - v.sesoi)


def _combine(items: list, describe, weakest, prefix: str = "") -> Verdict:
    """The verdict of a claim over named member verdicts (see `both`, `all_of`): `describe(name, v)` writes each
    member into the reason, `weakest(v)` picks the member whose numbers a claim that holds reports."""
    if all(v.holds for _, v in items):
        verdict, (name, key) = "holds", min(items, key=lambda p: weakest(p[1]))
    elif any(v.verdict == "refuted" for _, v in items):
        verdict, (name, key) = "refuted", next(p for p in items if p[1].verdict == "refuted")
    else:
        verdict, (name, key) = "inconclusive", next(p for p in items if p[1].verdict == "inconclusive")
    reason = f"{verdict} (numbers: {prefix}{name}); " + "; ".join(describe(n, v) for n, v in items)
    return dataclasses.replace(key, verdict=verdict, reason=reason, budget=key.budget if verdict == "inconclusive" else None)
