"""The verdicts of notebooks 01 (Δlog p, arXiv 2603.22117) and 02 (FIPO, arXiv 2603.19835), decided by
`workbench.evaluation.verdicts` (holds / refuted / inconclusive); `delta_logp.record_claims` and
`fipo.record_claims` call `delta_logp_claims` and `fipo_claims` here.

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
degenerate CI — typical of the smoke preset), the verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import pandas as pd

from workbench.analysis import delta_logp as dlp
from workbench.evaluation.verdicts import Verdict, decide_paired, decide_unpaired, learned, no_evidence

SESOI_ACCURACY = 0.02  # 2 accuracy points
SESOI_BUDGET = 0.02  # 0.02 of the token budget (fraction of positions replaced)
SESOI_LENGTH = 1.0  # 1 token of mean response length


def paired(treatment: Sequence[float], control: Sequence[float], sesoi: float, *, direction: int = 1,
           baseline_learned: bool = True) -> Verdict:
    """`decide_paired`, inconclusive for no pairs (zero variance is inconclusive in `decide` itself)."""
    if not len(treatment):
        return no_evidence(sesoi, "no pairs to compare")
    return decide_paired(list(treatment), list(control), sesoi, direction=direction, baseline_learned=baseline_learned)


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
    pairs = list(zip(names, (a, b)))
    if all(v.holds for _, v in pairs):
        verdict, (name, key) = "holds", min(pairs, key=lambda p: p[1].ci[0])
    elif any(v.verdict == "refuted" for _, v in pairs):
        verdict, (name, key) = "refuted", next(p for p in pairs if p[1].verdict == "refuted")
    else:
        verdict, (name, key) = "inconclusive", next(p for p in pairs if p[1].verdict == "inconclusive")
    reason = f"{verdict} (numbers: vs {name}); " + "; ".join(f"vs {n}: {v.verdict}, {v.reason}" for n, v in pairs)
    return dataclasses.replace(key, verdict=verdict, reason=reason, budget=key.budget if verdict == "inconclusive" else None)


# ------------------------------------------------------------------------------------------------ notebook 01
def shard_budgets(summary_frame: pd.DataFrame) -> pd.DataFrame:
    """Per replacement seed (= prompt shard): base (budget 0) and RL (budget 1) accuracy and, per selector, the
    interpolated budget at which that shard's accuracy reaches its own RL accuracy (`dlp.reach_budgets`)."""
    rows = []
    for seed, shard in summary_frame.groupby("seed", sort=True):
        acc = shard.groupby("budget")["accuracy"].mean()
        base, rl = float(acc.loc[0.0]), float(acc.loc[1.0])
        rows.append({"seed": seed, "base": base, "rl": rl, **dlp.reach_budgets(shard, rl).to_dict()})
    return pd.DataFrame(rows).fillna(1.0)  # never reached before budget 1: budget 1 is the RL decode itself


def delta_logp_claims(results, rep, ext, rw, P) -> None:
    """Notebook 01's claims (`delta_logp.Replacement`, `.Extrapolation`, `.Reweighting`):

    - `delta_logp_fewest_replacements`: per shard, budget of Δlog p vs entropy and vs KL (direction −1: fewer
      is better; SESOI 0.02 of the budget), each `decide_paired` with baseline_learned = the RL model beats the
      base across shards; the claim holds only if both hold, is refuted if either is (`both`);
    - `extrapolation_helps`: per-problem greedy correctness at the best λ > 0 vs λ = 0 (SESOI 2 points). The
      best λ is chosen on the same problems, which biases the effect upward (a winner's curse): a `holds` here
      is optimistic, a `refuted` is not;
    - `low_prob_beats_dapo`: final accuracy of DAPO + low_prob vs DAPO paired by seed (SESOI 2 points),
      baseline_learned = DAPO's per-seed gain over the base accuracy.
    """
    shards = shard_budgets(rep.summary)
    rl_learned = learned((shards["rl"] - shards["base"]).tolist())
    vs = {name: paired(shards["delta_logp"], shards[name], SESOI_BUDGET, direction=-1, baseline_learned=rl_learned)
          for name in ("entropy", "kl")}
    v = both(vs["entropy"], vs["kl"], ("entropy", "KL"))
    results.claim("delta_logp_fewest_replacements",
                  f"Δlog p needs fewer replacements than entropy and than KL to reach the RL model's accuracy "
                  f"(prompt shards paired; SESOI {SESOI_BUDGET:g} of the token budget, both comparisons)",
                  paper="Δlog p reaches RL accuracy with the fewest replaced tokens (vs entropy, KL/JS)",
                  measured={"budget_to_reach_rl_accuracy": rep.reach_measured,
                            "budget_saved_vs_entropy": summary(vs["entropy"]), "budget_saved_vs_kl": summary(vs["kl"])},
                  verdict=v)

    wide = ext.sweep.pivot(index="problem_index", columns="lam", values="score").sort_index()
    v = paired(wide[ext.gain["best_lam"]], wide[0.0], SESOI_ACCURACY)
    v = dataclasses.replace(v, reason=v.reason + "; the best λ is picked on these same problems, so the effect is biased upward")
    results.claim("extrapolation_helps", f"some λ > 0 beats λ = 0 (the RL model) in greedy held-out accuracy "
                  f"(problems paired; SESOI {100 * SESOI_ACCURACY:g} points; best λ picked on the same problems)",
                  paper="extrapolating along Δlog p raises accuracy with no training",
                  measured={**ext.gain_measured, "gain_points": summary(v, 100, 2)}, verdict=v)

    runs = rw.result.runs
    pairs = by_seed(runs, "final_accuracy", "dapo + low_prob", "dapo", run="variant")
    gains = (runs.loc[runs["variant"] == "dapo", "final_accuracy"] - rw.result.start_accuracy).tolist()
    v = paired(pairs["dapo + low_prob"], pairs["dapo"], SESOI_ACCURACY, baseline_learned=learned(gains))
    results.claim("low_prob_beats_dapo", f"DAPO + low_prob (α = {P.rw_alpha}) beats plain DAPO in final held-out "
                  f"accuracy (seeds paired; SESOI {100 * SESOI_ACCURACY:g} points)",
                  paper="reweighting toward low-probability tokens raises accuracy",
                  measured={**rw.measured, "gain_points": summary(v, 100, 2)}, verdict=v)


# ------------------------------------------------------------------------------------------------ notebook 02
def fipo_claims(results, probe, mc, P) -> None:
    """Notebook 02's claims (`fipo.LengthProbe`, `fipo.MethodComparison`):

    - `length_demanding_setting`: the base's sampled responses, full chains vs early stops, 0/1 correctness,
      `decide_unpaired` (Welch; SESOI 2 points). The K samples of one problem are not independent, so this SE is
      somewhat optimistic;
    - `fipo_beats_dapo_accuracy`: final held-out accuracy, FIPO vs DAPO paired by seed (SESOI 2 points);
    - `fipo_lengthens_responses`: mean rollout length over the last quarter of the steps, FIPO vs DAPO paired
      by seed (SESOI 1 token; the held-out length comparison is reported alongside).

    Both RL claims take baseline_learned = DAPO's per-seed held-out accuracy gain over the base.
    """
    rows = probe.responses
    full, stopped = rows.loc[rows["in_head"] == 1, "correct"], rows.loc[rows["in_head"] > 1, "correct"]
    v = decide_unpaired(full.astype(float).tolist(), stopped.astype(float).tolist(), SESOI_ACCURACY)
    results.claim("length_demanding_setting", "in our setting the base's full chains are right more often than its "
                  f"early stops (unpaired, Welch; SESOI {100 * SESOI_ACCURACY:g} points)",
                  paper="premise of the setting (longer chains needed)",
                  measured={"full_chain": round(probe.acc_full, 3), "stopped_early": round(probe.acc_stopped, 3),
                            "difference_points": summary(v, 100, 2)}, verdict=v)

    final = mc.comparison.final
    dapo = final[final["run"] == "DAPO"]
    dapo_learned = learned((dapo["eval_accuracy"] - dapo["base_accuracy"]).astype(float).tolist())
    acc = by_seed(final, "eval_accuracy", "FIPO", "DAPO")
    v = paired(acc["FIPO"], acc["DAPO"], SESOI_ACCURACY, baseline_learned=dapo_learned)
    results.claim("fipo_beats_dapo_accuracy", "FIPO raises held-out accuracy over DAPO at the same budget "
                  f"(seeds paired; SESOI {100 * SESOI_ACCURACY:g} points)",
                  paper="AIME 2024 pass@1 50.0% (DAPO) → 56–58% (FIPO), Qwen2.5-32B",
                  measured={**mc.accuracy, "gain_points": summary(v, 100, 2)}, verdict=v)

    length = by_seed(mc.rollout_length, "response_length", "FIPO", "DAPO")
    v = paired(length["FIPO"], length["DAPO"], SESOI_LENGTH, baseline_learned=dapo_learned)
    heldout = by_seed(final, "eval_length", "FIPO", "DAPO")
    v_heldout = paired(heldout["FIPO"], heldout["DAPO"], SESOI_LENGTH, baseline_learned=dapo_learned)
    results.claim("fipo_lengthens_responses", "FIPO's responses grow longer than DAPO's (breaks length stagnation; "
                  f"seeds paired; SESOI {SESOI_LENGTH:g} token)",
                  paper="mean chain of thought ~4,000 → >10,000 tokens",
                  measured={"rollout_length_last_quarter": mc.length, "heldout_length": mc.heldout_length,
                            "gain_tokens": summary(v, 1, 2), "heldout_gain_tokens": summary(v_heldout, 1, 2)},
                  verdict=v)
