"""The verdicts of notebook 02 (FIPO, arXiv 2603.19835); `fipo.record_claims` calls `fipo_claims`.
Pairing and SESOIs: see `workbench.experiments.claims`."""

from __future__ import annotations



from workbench.evaluation.verdicts import decide_unpaired, learned
from workbench.experiments.claims import SESOI_ACCURACY, SESOI_LENGTH, by_seed, paired, summary


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
