"""The verdicts of notebook 01 (Δlog p, arXiv 2603.22117); `delta_logp.record_claims` calls `delta_logp_claims`.
Pairing and SESOIs: see `workbench.experiments.claims`."""

from __future__ import annotations

import dataclasses

import pandas as pd

from workbench.analysis import delta_logp as dlp
from workbench.evaluation.verdicts import learned
from workbench.experiments.claims import SESOI_ACCURACY, SESOI_BUDGET, both, by_seed, paired, summary


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
