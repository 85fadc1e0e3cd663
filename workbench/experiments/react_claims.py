"""The claims of notebook 08 (REACT, arXiv 2601.04033), each decided from paired comparisons by
`workbench.evaluation.verdicts`:

- `grpo_raises_pairwise_accuracy`: SFT + GRPO − SFT pairwise accuracy (without ties, uniform frames) > 0, paired
  by seed (each seed's GRPO model against the one SFT model it started from), SESOI 2 points.
- `dynamic_localises_better`: dynamic − uniform frame recall at the same frame budget (the frames the final rating
  sees), paired by distorted clip (each clip's recall averaged over the seeds' GRPO models), SESOI 5 points.
  Decided only if uniform sampling localises anything (its recall above 2 SE).
- `attribution_above_chance`: for every distortion kind, the share of its clips whose predicted label is the
  injected kind (uniform frames, averaged over seeds) lies above chance 1/6 (five kinds and "none") —
  `decide_threshold` per kind, holds if every kind holds, refuted if any is refuted.

Every claim is decided only if the SFT model ranks bench pairs above chance (`sft_learned`: its per-pair
correctness minus ½ above 2 SE): a reward model at chance gives GRPO's pairwise reward nothing but ties, and its
localisation and attributions measure a model that has not learnt the task rather than the method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.evaluation.verdicts import decide_threshold, learned
from workbench.experiments.claims import SESOI_ACCURACY, all_of, paired
from workbench.experiments.react import DYNAMIC, GRPO, SFT, UNIFORM, Runs
from workbench.tasks.video import LABELS

SESOI_RECALL = 0.05  # 5 points of frame recall: a budget of 8 frames moves recall in steps of 1/4 per 4-frame distortion
CHANCE = 1 / len(LABELS)


def _pair_correct(clips: pd.DataFrame) -> pd.Series:
    """Per (model, seed, pair): 1 if the better clip's parsed score beats the worse clip's (unparsed never wins)."""
    wide = clips.pivot_table(index=["model", "seed", "pair_id"], columns="side", values="score", aggfunc="first",
                             dropna=False)
    return ((wide["better"].fillna(-1) > wide["worse"].fillna(99)).astype(float))


def sft_learned(runs: Runs) -> bool:
    """Whether the SFT reward model ranks bench pairs above chance: its per-pair correctness (uniform frames) minus ½
    above 2 SE. Every claim needs it: a reward model that has not learnt to see distortions can neither be improved
    by pairwise rewards nor localise or attribute anything."""
    clips = runs.clips[(runs.clips["method"] == UNIFORM) & (runs.clips["model"] == SFT)].fillna({"seed": -1})
    return learned((_pair_correct(clips) - 0.5).tolist())


def pairwise_claim(runs: Runs) -> dict:
    s = runs.summary[runs.summary["method"] == UNIFORM]
    sft = float(s.loc[s["model"] == SFT, "pairwise_accuracy"].iloc[0])
    grpo = s[s["model"] == GRPO].sort_values("seed")
    above_chance = sft_learned(runs)
    v = paired(grpo["pairwise_accuracy"].tolist(), [sft] * len(grpo), SESOI_ACCURACY, baseline_learned=above_chance)
    return {"id": "grpo_raises_pairwise_accuracy",
            "claim": f"GRPO with pairwise rewards raises the reward model's pairwise accuracy over SFT-only "
                     f"(paired by seed, SESOI {100 * SESOI_ACCURACY:g} points; uniform frames)",
            "paper": "holds (RL stage improves over SFT)",
            "measured": {SFT: round(sft, 4), GRPO: [round(x, 4) for x in grpo["pairwise_accuracy"]],
                         "seeds": [int(x) for x in grpo["seed"]], "sft_above_chance": above_chance},
            "verdict": v}


def dynamic_claim(runs: Runs, model: str = GRPO) -> dict:
    c = runs.clips[(runs.clips["model"] == model) & runs.clips["recall"].notna()]
    wide = c.pivot_table(index="clip", columns="method", values="recall", aggfunc="mean")
    dyn, uni = wide.get(DYNAMIC, pd.Series(dtype=float)), wide.get(UNIFORM, pd.Series(dtype=float))
    v = paired(dyn.tolist(), uni.tolist(), SESOI_RECALL, baseline_learned=sft_learned(runs) and learned(uni.tolist()))
    return {"id": "dynamic_localises_better",
            "claim": f"dynamic frame sampling localises distortions better than uniform sampling at the same frame "
                     f"budget (frame recall, paired by distorted clip, SESOI {100 * SESOI_RECALL:g} points)",
            "paper": "holds (dynamic sampling focuses on the distorted frames)",
            "measured": {"recall_dynamic": _mean(dyn), "recall_uniform": _mean(uni), "clips": int(len(wide)),
                         "model": model},
            "verdict": v}


def attribution_claim(runs: Runs, model: str = GRPO) -> dict:
    c = runs.clips[(runs.clips["model"] == model) & (runs.clips["method"] == UNIFORM) & (runs.clips["kind"] != "none")]
    per_clip = c.groupby(["kind", "clip"])["label_hit"].mean()
    verdicts, measured, learnt = {}, {}, sft_learned(runs)
    for kind in sorted(c["kind"].unique()):
        hits = per_clip.loc[kind].tolist()
        measured[kind] = _mean(hits)
        verdicts[kind] = (decide_threshold(hits, CHANCE, baseline_learned=learnt) if len(hits) >= 2
                          else paired([], [], CHANCE))
    v = all_of(verdicts) if verdicts else paired([], [], CHANCE)
    return {"id": "attribution_above_chance",
            "claim": f"the reward model's attributions match the injected distortion kind above chance "
                     f"({CHANCE:.3f}) for every kind (per-kind share of correct labels, uniform frames)",
            "paper": "holds (attributions explain the score)",
            "measured": {"by_kind": measured, "verdicts": {k: x.verdict for k, x in verdicts.items()}, "model": model},
            "verdict": v}


def claims(runs: Runs) -> list[dict]:
    """The three claims (see the module docstring)."""
    return [pairwise_claim(runs), dynamic_claim(runs), attribution_claim(runs)]


def record_claims(results, runs: Runs) -> None:
    """Record every claim of `claims(runs)`, with its verdict, in `results` (a `workbench.notebook.Results`)."""
    for c in claims(runs):
        results.claim(**c)


def _mean(values) -> float | None:
    vals = [float(x) for x in values]
    return round(float(np.mean(vals)), 4) if vals else None
