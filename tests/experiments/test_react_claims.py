"""Notebook 08's claims on hand-made runs: a clear effect holds, the same effect from a reward model at chance is
inconclusive, an opposite effect is refuted, and attribution needs every kind above chance."""

import numpy as np
import pandas as pd

from workbench.experiments.react import DYNAMIC, GRPO, SFT, UNIFORM, Runs
from workbench.experiments.react_claims import CHANCE, all_of, attribution_claim, dynamic_claim, pairwise_claim
from workbench.evaluation.verdicts import decide


def make_runs(sft_correct: float, grpo_acc: list[float], recall_uni: float, recall_dyn: float, label_p: dict,
              n_pairs: int = 40, seed: int = 0) -> Runs:
    rng = np.random.default_rng(seed)
    summary = [{"model": SFT, "seed": None, "method": UNIFORM, "pairwise_accuracy": sft_correct}]
    summary += [{"model": GRPO, "seed": s, "method": UNIFORM, "pairwise_accuracy": a} for s, a in enumerate(grpo_acc)]
    clips = []
    kinds = list(label_p)
    for model, seeds in ((SFT, [None]), (GRPO, list(range(len(grpo_acc))))):
        for s in seeds:
            for p in range(n_pairs):
                right = (p % 10) < round(10 * sft_correct)  # an exact share of pairs ranked right
                kind = kinds[p % len(kinds)]
                for side, score in (("better", 5 if right else 3), ("worse", 4)):
                    for method, rec in ((UNIFORM, recall_uni), (DYNAMIC, recall_dyn)):
                        distorted = side == "worse"
                        clips.append({"model": model, "seed": s, "method": method, "clip": 2 * p + (side == "worse"),
                                      "pair_id": f"p{p}", "side": side, "kind": kind if distorted else "none",
                                      "score": score, "label_hit": float(rng.random() < label_p[kind]) if distorted else 1.0,
                                      "recall": float(np.clip(rec + rng.normal(0, 0.2), 0, 1)) if distorted else np.nan})
    return Runs(pd.DataFrame(), pd.DataFrame(summary), pd.DataFrame(clips), list(range(len(grpo_acc))), {})


KINDS = {"deformation": 0.8, "disappearance": 0.7, "duplication": 0.9, "merging": 0.75, "teleport": 0.85}


def test_clear_effects_hold():
    runs = make_runs(0.8, [0.86, 0.88, 0.9], 0.3, 0.7, KINDS)
    assert pairwise_claim(runs)["verdict"].verdict == "holds"
    assert dynamic_claim(runs)["verdict"].verdict == "holds"
    assert attribution_claim(runs)["verdict"].verdict == "holds"


def test_a_reward_model_at_chance_decides_nothing():
    runs = make_runs(0.5, [0.56, 0.58, 0.6], 0.3, 0.7, KINDS)
    v = pairwise_claim(runs)["verdict"]
    assert v.verdict == "inconclusive" and "did not learn" in v.reason
    assert {c(runs)["verdict"].verdict for c in (dynamic_claim, attribution_claim)} == {"inconclusive"}


def test_opposite_effects_are_refuted():
    runs = make_runs(0.8, [0.7, 0.72, 0.71], 0.7, 0.3, KINDS)
    assert pairwise_claim(runs)["verdict"].verdict == "refuted"
    assert dynamic_claim(runs)["verdict"].verdict == "refuted"


def test_one_kind_at_chance_keeps_attribution_from_holding():
    runs = make_runs(0.8, [0.86, 0.88, 0.9], 0.3, 0.7, {**KINDS, "teleport": 0.03}, n_pairs=150)
    c = attribution_claim(runs)
    assert c["verdict"].verdict == "refuted" and c["measured"]["verdicts"]["teleport"] == "refuted"
    assert CHANCE == 1 / 6


def test_all_of_reports_the_deciding_member():
    good = decide([0.5, 0.6, 0.55, 0.52], 0.02)
    unsure = decide([0.5, -0.6, 0.55, -0.4], 0.02)
    v = all_of({"a": good, "b": unsure})
    assert v.verdict == "inconclusive" and v.effect == unsure.effect and "b: inconclusive" in v.reason
    assert all_of({"a": good, "b": good}).verdict == "holds"
