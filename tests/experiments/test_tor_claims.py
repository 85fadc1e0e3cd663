"""ToR's claims (notebook 03) on hand-made ablation tables: a variant tied with full on every seed is judged by
the binomial tie bound (inconclusive at 5 seeds, with the seeds that would decide it), a clear loss holds."""

import pandas as pd

from workbench.experiments.tor import Ablation, claims


def _ablation(per_seed: dict[str, list[float]], base: float = 0.2) -> Ablation:
    rows = [{"run": run, "seed": s, "eval_accuracy": acc, "base_accuracy": base}
            for run, accs in per_seed.items() for s, acc in enumerate(accs)]
    return Ablation(final=pd.DataFrame(rows), table=pd.DataFrame(), methods=["grpo"],
                    variants=["full", "perception-only", "reasoning-only", "ToR"], seeds=list(range(5)),
                    base_accuracy=base, base_perception_accuracy=0.0, base_top_answer_share=0.0,
                    mean_top_answer_share_after_rl=0.0, ablation={}, seconds_per_run=0.0)


def test_a_variant_tied_on_every_seed_is_inconclusive_with_the_seeds_that_would_decide():
    full = [0.525, 0.525, 0.525, 0.53, 0.495]
    by_id = {c["id"]: c["verdict"] for c in claims(_ablation({
        "GRPO full": full, "GRPO perception-only": list(full),
        "GRPO reasoning-only": [0.40, 0.41, 0.39, 0.42, 0.38], "GRPO ToR": [0.525, 0.52, 0.525, 0.53, 0.5]}))}
    tied = by_id["grpo_perception_only_below_full"]
    assert tied.verdict == "inconclusive" and "all 5 pairs tie" in tied.reason and tied.budget == 149
    assert by_id["grpo_reasoning_only_below_full"].verdict == "holds"


def test_nothing_is_decided_when_full_did_not_learn():
    flat = [0.2, 0.21, 0.19, 0.2, 0.2]
    out = claims(_ablation({"GRPO full": flat, "GRPO perception-only": [0.1] * 5, "GRPO reasoning-only": [0.1] * 5,
                            "GRPO ToR": flat}))
    assert all(c["verdict"].verdict == "inconclusive" for c in out)
