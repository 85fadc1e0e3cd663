"""Δlog p (arXiv 2603.22117), notebook 01: the direction of RLVR updates. The analyses are
`workbench.analysis.delta_logp`; the token weight is `workbench.rl.weights.low_prob`; this module holds the
notebook's experiments and its presets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from workbench.rl import RLConfig, train


@dataclass
class ReweightingResult:
    """`runs`: one row per (variant, seed) with `final_accuracy`; `curves`: one row per (variant, seed,
    step) with `eval_accuracy` (step 0 = the shared starting model) and `reward_mean`."""

    runs: pd.DataFrame
    curves: pd.DataFrame


def reweighting_comparison(base_model, tokenizer, task, *, seeds: Sequence[int], alpha: float = 0.2,
                           start_accuracy: float | None = None, progress: bool = False,
                           **config) -> ReweightingResult:
    """DAPO with and without the `low_prob` token weight, one run per seed each (arXiv 2603.22117).

    The reweighted run uses Ã_t = [1 + α (1 − p_old(y_t))] · A_t (`workbench.rl.weights.low_prob`);
    everything else — config, seed, hence the first step's prompts — is shared, so runs pair by seed.

    Args:
        base_model: the starting policy (deep-copied for every run).
        task: an `RLTask`; its held-out problems give `eval_accuracy` every `config["eval_every"]` steps.
        seeds: one run per seed and variant.
        alpha: α of `low_prob`.
        start_accuracy: held-out accuracy of `base_model` (plotted at step 0), if known.
        **config: `RLConfig` fields shared by both variants (steps, num_prompts, lr, eval_every, ...).
    Returns:
        ReweightingResult. `final_accuracy` is the held-out accuracy after the last step.
    """
    if not seeds:
        raise ValueError("reweighting_comparison needs at least one seed")
    if not config.get("eval_every"):
        config["eval_every"] = config.get("steps", 100)  # at least the final evaluation
    variants = {"dapo": [], "dapo + low_prob": [("low_prob", {"alpha": float(alpha)})]}
    runs, curves = [], []
    for seed in seeds:
        for name, weights in variants.items():
            cfg = RLConfig.for_method("dapo", token_weights=weights, seed=int(seed), progress=progress, **config)
            result = train(copy.deepcopy(base_model), tokenizer, task, cfg)
            evals = [(h["step"], h["eval_accuracy"]) for h in result.history if "eval_accuracy" in h]
            if start_accuracy is not None:
                curves.append({"variant": name, "seed": int(seed), "step": 0, "eval_accuracy": start_accuracy})
            for h in result.history:
                curves.append({"variant": name, "seed": int(seed), "step": h["step"],
                               "eval_accuracy": h.get("eval_accuracy", float("nan")),
                               "reward_mean": h.get("reward_mean", float("nan"))})
            runs.append({"variant": name, "seed": int(seed), "final_accuracy": evals[-1][1],
                         "train_seconds": round(sum(h.get("step_seconds", 0.0) for h in result.history), 1)})
            del result
    return ReweightingResult(runs=pd.DataFrame(runs), curves=pd.DataFrame(curves))
