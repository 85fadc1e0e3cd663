"""Durian (arXiv 2602.21743), notebook 04: difficulty-aware group normalisation for multimodal RL.

    papermill notebooks/04_durian.ipynb out.ipynb -p preset cpu        # or smoke | gpu -p model <Qwen2.5-VL path>

GRPO divides each group's centred rewards by that group's std; a near-extreme group (1 or G−1 of G right)
has a small std, so its odd one out gets |A| ≈ √G whatever the prompt. Durian takes the std from a bucket
of prompts of like difficulty instead — perceptual (visual entropy of the image's vision-encoder features)
and reasoning (mean sequence log-likelihood of the group) — and mixes the three advantages 0.4 / 0.3 / 0.3
(`workbench.rl.durian`). The task is ShapeWorld visual arithmetic over a visual-complexity mix
(`shapes.complexity_config` levels: clean → crowded, occluded, cluttered, noisy), reward
0.9 · answer + 0.1 · format as in the paper. This module holds the presets, the parameter checks and one
function per notebook section; the multi-seed runs are the one loop `compare.compare_methods`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.analysis.visual_entropy import image_visual_entropy
from workbench.evaluation import evaluate
from workbench.evaluation.verdicts import decide_unpaired, learned, no_evidence
from workbench.experiments.claims import SESOI_ACCURACY, by_seed, paired
from workbench.experiments.compare import compare_methods, seed_bands
from workbench.experiments.presets import Params, Presets
from workbench.experiments.vl_setup import VLSetup, load_vl_setup
from workbench.notebook import ParameterError
from workbench.rl import RLConfig
from workbench.rl.advantages import compute_advantages, near_extreme_groups
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.tasks import shapes_task
from workbench.rl.trainer import advantage_step, annotate_step
from workbench.tasks import shapes
from workbench.utils import seeded_generator

# RLConfig fields every run shares, and the method's defaults (the paper's α, reward 0.9 / 0.1, all levels).
# The paper's b = 12-16 reasoning buckets assume large batches: with fewer than two prompts per bucket every
# prompt sits alone and the reasoning term *is* GRPO's, so the small presets use b = num_prompts / 3 or less.
_RL = dict(micro_batch_size=32, max_new_tokens=48, complexity_levels=[0, 1, 2, 3], alphas=[0.4, 0.3, 0.3],
           format_weight=0.1)
PRESETS = Presets(
    {"smoke": dict(model="tiny-shapes-vl-smoke", n_seeds=1, ablation=False, steps=1, num_prompts=4, num_generations=2,
                   lr=1e-4, eval_n=8, entropy_images=8, entropy_samples=2, probe_batches=2, reasoning_buckets=2, **_RL),
     "cpu": dict(model="tiny-shapes-vl-rl", n_seeds=3, ablation=True, steps=20, num_prompts=8, num_generations=8,
                 lr=1e-4, eval_n=100, entropy_images=96, entropy_samples=8, probe_batches=12, reasoning_buckets=3, **_RL),
     "gpu": dict(model=None, n_seeds=3, ablation=True, steps=200, num_prompts=64, num_generations=8, lr=1e-6,
                 eval_n=500, entropy_images=500, entropy_samples=8, probe_batches=32, reasoning_buckets=12, **_RL)},
    ranges={"n_seeds": (1, 16), "steps": (1, None), "num_prompts": (4, None), "num_generations": (3, 256),
            "lr": (0.0, 1.0), "eval_n": (4, None), "entropy_images": (8, None), "entropy_samples": (1, 64),
            "probe_batches": (2, None), "reasoning_buckets": (1, 64), "max_new_tokens": (8, 32768),
            "format_weight": (0.0, 1.0)})
SESOI_ADVANTAGE = 0.1  # |A| on near-extreme rows, in advantage units (GRPO's odd one out sits near √G ≈ 2.5 at G = 8)


def check(P: Params) -> None:
    """The checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    if P.model is None:
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    if not P.complexity_levels or any(lv not in (0, 1, 2, 3) for lv in P.complexity_levels):
        raise ParameterError(f"parameter 'complexity_levels' must list levels among 0, 1, 2, 3, got {P.complexity_levels}")
    if 2 * P.reasoning_buckets > P.num_prompts:
        raise ParameterError(f"parameter 'reasoning_buckets' must be at most num_prompts / 2 = {P.num_prompts // 2} (else "
                             f"most prompts sit alone in a bucket and the reasoning term is GRPO's), got {P.reasoning_buckets}")
    if len(P.alphas) != 3 or any(a < 0 for a in P.alphas) or not sum(P.alphas) > 0:
        raise ParameterError(f"parameter 'alphas' must be three non-negative weights (α_o, α_p, α_r), got {P.alphas}")


class Setup(VLSetup):
    """The base policy, its processor, the task over the complexity mix and the held-out questions."""

    def describe(self, P: Params) -> str:
        return (f"{self.headline()}\n"
                f"task: {self.task.name} over complexity levels {list(P.complexity_levels)}; reward "
                f"{1 - P.format_weight:g} · answer + {P.format_weight:g} · format; {len(self.held_out)} held-out questions; "
                f"seeds {self.seeds}; {P.steps} steps × {P.num_prompts} prompts × {P.num_generations} samples per run")


def setup(P: Params) -> Setup:
    """Seed everything, load the policy and build visual arithmetic over `P.complexity_levels` with the
    visual-entropy hook and Durian's reward weights."""
    configs = [shapes.complexity_config(lv) for lv in P.complexity_levels]
    return load_vl_setup(P, lambda processor: shapes_task(
        processor, families=("arithmetic",), config=configs, visual_dependency=None, visual_entropy=True,
        answer_weight=1 - P.format_weight, format_weight=P.format_weight), Setup)


@dataclass
class EntropyView:
    """Visual entropy against measured accuracy, one row per held-out image (`frame`: level, entropy,
    accuracy = mean over `samples` completions at temperature 1, greedy_correct), the least-squares line
    (`slope`, `intercept`) and Spearman's ρ."""

    frame: pd.DataFrame
    slope: float
    intercept: float
    spearman: float
    samples: int


def entropy_vs_accuracy(run: Setup, P: Params) -> EntropyView:
    """Per held-out image: visual entropy under the base policy's vision encoder, and accuracy as the mean of
    `P.entropy_samples` sampled answers (temperature 1, generator (seed, 11)) — a per-image success rate."""
    exs = run.task.eval_problems(P.entropy_images)
    _, _, per = run.task.encode(run.processor, exs, [run.task.prompt(e) for e in exs])
    dev = next(run.policy.parameters()).device
    h = image_visual_entropy(run.policy, torch.cat([r["pixel_values"] for r in per]).to(dev),
                             torch.cat([r["image_grid_thw"] for r in per]).to(dev)).numpy()
    k = P.entropy_samples
    ev = evaluate(run.policy, run.processor, run.task, exs, greedy=True, samples=k, max_new_tokens=P.max_new_tokens,
                  generator=seeded_generator(P.seed, 11), batch_size=64, sample_batch_size=max(1, 64 // k))
    acc = np.asarray(ev.sampled_correct, dtype=float) / k  # correct samples per image / k
    levels = [P.complexity_levels[i % len(P.complexity_levels)] for i in range(len(exs))]
    frame = pd.DataFrame({"level": levels, "entropy": h, "accuracy": acc, "greedy_correct": np.asarray(ev.correct, float)})
    slope, intercept = np.polyfit(h, acc, 1) if np.ptp(h) > 0 else (0.0, float(acc.mean()))
    rho = float(frame[["entropy", "accuracy"]].rank().corr().iloc[0, 1]) if frame["accuracy"].nunique() > 1 else float("nan")
    return EntropyView(frame, float(slope), float(intercept), rho, k)


@dataclass
class AdvantageProbe:
    """GRPO's and Durian's advantages on the *same* rollouts of the base policy (`batches` rollouts of
    num_prompts × G): `rows` one row per completion (batch, near_extreme, grpo, durian), `per_batch` the mean
    |A| on near-extreme rows per batch and estimator (the unit of the paired claim), `bucket_scale` the pooled
    reward std per perception bucket against the mean group std."""

    rows: pd.DataFrame
    per_batch: pd.DataFrame
    bucket_scale: pd.DataFrame


def durian_spec(P: Params, perception: bool = True, reasoning: bool = True) -> tuple[str, dict]:
    """The `RLConfig.advantage` spec of Durian at `P`'s settings (ablations switch a bucket family off)."""
    return ("durian", {"alphas": tuple(P.alphas), "reasoning_buckets": P.reasoning_buckets,
                       "perception": perception, "reasoning": reasoning})


def advantage_probe(run: Setup, P: Params) -> AdvantageProbe:
    """Sample `P.probe_batches` rollouts from the base policy (prompts from rng (seed, "probe"), sampling from
    generator (seed, 13, b)), score log π_old and visual entropy as training does, and compute both estimators'
    advantages on each: a paired comparison on identical samples."""
    cfg = RLConfig.for_method("grpo", num_prompts=P.num_prompts, num_generations=P.num_generations,
                              max_new_tokens=P.max_new_tokens, micro_batch_size=P.micro_batch_size, seed=P.seed,
                              advantage=durian_spec(P))
    ccfg = CollectConfig.from_rl(cfg)
    rng, dev = random.Random(f"{P.seed}-probe"), next(run.policy.parameters()).device
    rows, scales = [], []
    for b in range(P.probe_batches):
        ro, _ = collect_rollout(run.policy, run.processor, run.task, ccfg, generator=seeded_generator(P.seed, 13, b), rng=rng)
        annotate_step(run.policy, run.processor, run.task, ro, cfg, dev)
        dur, metrics = advantage_step(ro, cfg)  # exactly what a training step computes
        grpo = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)[:, 0]
        ne = near_extreme_groups(ro.reward_parts["correct"] > 0.5, ro.group_ids)
        rows += [{"batch": b, "near_extreme": bool(n), "grpo": float(g), "durian": float(d)} for n, g, d in zip(ne, grpo, dur[:, 0])]
        scales.append({"batch": b, **{k: v for k, v in metrics.items() if k.startswith("durian/perc_std")}})
    frame = pd.DataFrame(rows)
    near = frame[frame["near_extreme"]]
    per_batch = near.assign(grpo=near["grpo"].abs(), durian=near["durian"].abs()).groupby("batch")[["grpo", "durian"]].mean()
    return AdvantageProbe(frame, per_batch, pd.DataFrame(scales))


@dataclass
class Runs:
    """GRPO vs Durian (and the ablations) from the same base, paired by seed: `compare_methods` output."""

    curves: pd.DataFrame
    final: pd.DataFrame
    runs: list[str]
    seeds: list[int]
    base_accuracy: float
    seconds_per_run: float

    def bands(self, metric: str = "eval_accuracy") -> pd.DataFrame:
        return seed_bands(self.curves, metric)

    def advantage_bands(self) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """Seed bands of the trainer's per-step advantage metrics: mean |A| on near-extreme groups per run (steps
        without such groups log 0 and are left out), and Durian's pooled std per perception bucket {0, 1, 2}."""
        near = seed_bands(self.curves[self.curves["frac_near_extreme_rows"] > 0], "adv_abs_near_extreme_mean")
        durian = self.curves[self.curves["run"] == "Durian"]
        buckets = {k: seed_bands(durian, f"durian/perc_std_{k}") for k in range(3)
                   if f"durian/perc_std_{k}" in durian and durian[f"durian/perc_std_{k}"].notna().any()}
        return near, buckets

    def table(self) -> pd.DataFrame:
        return self.final.groupby("run").agg(accuracy=("eval_accuracy", "mean"), accuracy_sd=("eval_accuracy", "std"),
                                             perception=("eval_perception_accuracy", "mean"),
                                             seconds=("seconds", "mean")).reindex(self.runs)


def train_runs(run: Setup, P: Params) -> Runs:
    """GRPO and Durian (plus, with `P.ablation`, Durian with perception buckets only and reasoning buckets
    only) on every seed; held-out greedy accuracy every `max(1, steps // 4)` steps."""
    runs = {"GRPO": {"method": "grpo"}, "Durian": {"method": "grpo", "advantage": durian_spec(P)}}
    if P.ablation:
        runs["Durian perception only"] = {"method": "grpo", "advantage": durian_spec(P, reasoning=False)}
        runs["Durian reasoning only"] = {"method": "grpo", "advantage": durian_spec(P, perception=False)}
    common = dict(steps=P.steps, num_prompts=P.num_prompts, num_generations=P.num_generations, lr=P.lr,
                  max_new_tokens=P.max_new_tokens, micro_batch_size=P.micro_batch_size)
    cmp = compare_methods(run.policy, run.processor, run.task, runs, run.seeds, common=common,
                          eval_every=max(1, P.steps // 4), eval_n=P.eval_n, eval_max_new_tokens=P.max_new_tokens)
    return Runs(cmp.curves, cmp.final, list(runs), list(run.seeds), float(cmp.final["base_accuracy"].iloc[0]),
                float(cmp.final["seconds"].mean()))


def claims(view: EntropyView, probe: AdvantageProbe, runs: Runs) -> list[dict]:
    """The paper's three claims, each with its verdict (`Results.claim` arguments):

    - `near_extreme_advantage_smaller`: on near-extreme groups Durian's mean |A| is below GRPO's — paired over
      the probe's rollout batches (same samples under both estimators), SESOI 0.1 advantage units;
    - `durian_beats_grpo`: final held-out greedy accuracy Durian − GRPO > 0, paired by seed, SESOI 2 points;
      inconclusive unless GRPO learned (per-seed gain over the base above 2 SE);
    - `accuracy_falls_with_visual_entropy`: images in the top quartile of visual entropy are answered less
      often than those in the bottom quartile (per-image sampled accuracy, Welch, SESOI 2 points).
    """
    out = []
    pb = probe.per_batch
    v = paired(pb["durian"].tolist(), pb["grpo"].tolist(), SESOI_ADVANTAGE, direction=-1)
    out.append({"id": "near_extreme_advantage_smaller",
                "claim": f"on near-extreme groups (1 or G−1 of G correct) Durian's |A| is smaller than GRPO's "
                         f"(paired over {len(pb)} rollout batches, SESOI {SESOI_ADVANTAGE:g})",
                "paper": "holds (bucket std tempers extreme groups)",
                "measured": {"grpo_abs_adv": _r(pb["grpo"].mean()), "durian_abs_adv": _r(pb["durian"].mean()),
                             "grpo_sd": _r(probe.rows.loc[probe.rows.near_extreme, "grpo"].abs().std()),
                             "durian_sd": _r(probe.rows.loc[probe.rows.near_extreme, "durian"].abs().std())},
                "verdict": v})
    gp = runs.final.loc[runs.final["run"] == "GRPO"].sort_values("seed")
    gains = (gp["eval_accuracy"] - gp["base_accuracy"]).astype(float).tolist()
    pair = by_seed(runs.final, "eval_accuracy", "Durian", "GRPO")
    v = paired(pair["Durian"].tolist(), pair["GRPO"].tolist(), SESOI_ACCURACY, baseline_learned=learned(gains))
    out.append({"id": "durian_beats_grpo",
                "claim": f"Durian's final accuracy exceeds GRPO's (paired by seed, SESOI {100 * SESOI_ACCURACY:g} points)",
                "paper": "holds (+ accuracy on multimodal reasoning benchmarks)",
                "measured": {"Durian": _r(pair["Durian"].mean()), "GRPO": _r(pair["GRPO"].mean()),
                             "seeds": [int(s) for s in pair.index],
                             "grpo_gain_over_base_points": _r(100 * np.mean(gains)) if gains else None},
                "verdict": v})
    f = view.frame
    lo, hi = f["entropy"].quantile([0.25, 0.75])
    easy, hard = f.loc[f["entropy"] <= lo, "accuracy"].tolist(), f.loc[f["entropy"] >= hi, "accuracy"].tolist()
    v = decide_unpaired(easy, hard, SESOI_ACCURACY) if len(easy) >= 2 and len(hard) >= 2 else no_evidence(SESOI_ACCURACY, "too few images")
    out.append({"id": "accuracy_falls_with_visual_entropy",
                "claim": "images of high visual entropy (top quartile) are answered less accurately than low-entropy "
                         f"ones (bottom quartile; Welch, SESOI {100 * SESOI_ACCURACY:g} points)",
                "paper": "holds (visual entropy tracks perceptual difficulty)",
                "measured": {"low_entropy_accuracy": _r(np.mean(easy)) if easy else None,
                             "high_entropy_accuracy": _r(np.mean(hard)) if hard else None,
                             "spearman": _r(view.spearman), "slope_per_nat": _r(view.slope), "images": len(f)},
                "verdict": v})
    return out


def _r(x, digits: int = 4):
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def record_claims(results, view: EntropyView, probe: AdvantageProbe, runs: Runs) -> None:
    """Record every claim of `claims(...)`, with its verdict, in `results` (a `workbench.notebook.Results`)."""
    for c in claims(view, probe, runs):
        results.claim(**c)

