"""The verdicts of notebook 11 (token atlas); `record_claims` is called by the notebook.

- `intervention_best_beats_runner_up`: the signal ranked first by its replacement curve's area (AUC over the budget
  grid, normalised to accuracy units) against the one ranked second, paired by held-out prompt, SESOI 2 points.
  The ranking is chosen on the same prompts, which biases the effect upward (a winner's curse): a `holds` is
  optimistic, a `refuted` is not;
- `intervention_best_beats_random`: the first-ranked signal against `random`, paired by prompt, SESOI 2 points;
- both decide nothing unless the RL model beats the base on these prompts (budget-1 − budget-0 score per prompt
  above 2 SE, `verdicts.learned`): without a gap there is nothing to recover;
- `composition_beats_each`: DAPO + ToR + FIPO against DAPO + ToR and against DAPO + FIPO, final greedy held-out
  accuracy paired by seed, SESOI 2 points each (`claims.both`: holds only if both hold, refuted if either is);
  decides nothing unless plain DAPO learned (its per-seed gain over the base above 2 SE).
"""

from __future__ import annotations

from workbench.evaluation.verdicts import learned, paired_se
from workbench.experiments.claims import SESOI_ACCURACY, both, by_seed, paired, summary


def _auc_pairs(iv, treatment: str, control: str):
    wide = iv.per_prompt.pivot(index="prompt_index", columns="selector", values="auc").sort_index()
    return wide[treatment].tolist(), wide[control].tolist()


def rl_gap(iv) -> tuple[float, float]:
    """(mean, SE) over prompts of the RL decode's score minus the base decode's on the replacement prompts."""
    s = iv.scores[iv.scores["selector"] == "random"].sort_values("prompt_index")
    b = sorted(c for c in s.columns if isinstance(c, float))
    d = (s[b[-1]] - s[b[0]]).tolist()
    return (sum(d) / len(d), paired_se(d)) if d else (float("nan"), float("nan"))


def record_claims(results, iv, comp) -> None:
    """Record the three claims of the module docstring in `results` (a `workbench.notebook.Results`).

    Args:
        iv: `token_atlas.Intervention` (text pair); comp: the composition's `Comparison` (vision pair).
    """
    ranked = [s for s in iv.ranking.index if s != "random"]
    gap, gap_se = rl_gap(iv)
    rl_learned = learned(gap, gap_se)
    best, second = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
    auc = {s: round(float(iv.ranking.loc[s, "auc"]), 4) for s in iv.ranking.index}
    v_second = paired(*_auc_pairs(iv, best, second), SESOI_ACCURACY, baseline_learned=rl_learned, max_diff=1.0)
    results.claim("intervention_best_beats_runner_up",
                  f"the signal whose replacements recover the RL accuracy fastest ({best}) beats the runner-up ({second}) "
                  f"in area under the replacement curve (prompts paired; SESOI {100 * SESOI_ACCURACY:g} points; ranking "
                  "picked on the same prompts)",
                  paper="no paper compares them: Δlog p (arXiv 2603.22117) claims the fewest replacements against entropy and KL",
                  measured={"ranking_auc": auc, "rl_minus_base_points": round(100 * gap, 2), "effect": summary(v_second, 100, 2)},
                  verdict=v_second)
    v_random = paired(*_auc_pairs(iv, best, "random"), SESOI_ACCURACY, baseline_learned=rl_learned, max_diff=1.0)
    results.claim("intervention_best_beats_random",
                  f"replacing the tokens {best} picks first recovers the RL accuracy faster than replacing random tokens "
                  f"(area under the curve, prompts paired; SESOI {100 * SESOI_ACCURACY:g} points)",
                  paper="RL's gain sits in a few tokens that a signal can find (arXiv 2603.22117)",
                  measured={"auc_best": auc[best], "auc_random": auc.get("random"), "effect": summary(v_random, 100, 2)},
                  verdict=v_random)

    final = comp.final
    dapo = final[final["run"] == "DAPO"].sort_values("seed")
    gains = (dapo["eval_accuracy"] - dapo["base_accuracy"]).astype(float).tolist()
    dapo_learned = learned(gains)
    vs = {}
    for ctrl in ("DAPO + ToR", "DAPO + FIPO"):
        pair = by_seed(final, "eval_accuracy", "DAPO + ToR + FIPO", ctrl)
        vs[ctrl] = paired(pair["DAPO + ToR + FIPO"].tolist(), pair[ctrl].tolist(), SESOI_ACCURACY, baseline_learned=dapo_learned,
                          max_diff=1.0)
    v = both(vs["DAPO + ToR"], vs["DAPO + FIPO"], ("ToR", "FIPO"))
    means = final.groupby("run")["eval_accuracy"].mean()
    results.claim("composition_beats_each",
                  f"composing ToR's and FIPO's token weights on DAPO beats each alone (final held-out accuracy, seeds "
                  f"paired; SESOI {100 * SESOI_ACCURACY:g} points, both comparisons)",
                  paper="no paper composes them: ToR (arXiv 2603.25077) and FIPO (arXiv 2603.19835) each beat their base",
                  measured={"accuracy": {r: round(float(a), 4) for r, a in means.items()},
                            "base_accuracy": round(float(final["base_accuracy"].iloc[0]), 4),
                            "dapo_gain_points": round(100 * sum(gains) / len(gains), 2) if gains else float("nan"),
                            "vs_tor": summary(vs["DAPO + ToR"], 100, 2), "vs_fipo": summary(vs["DAPO + FIPO"], 100, 2)},
                  verdict=v)
