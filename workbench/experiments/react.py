"""REACT (arXiv 2601.04033), notebook 08: a reasoning reward model for structural distortions in video — SFT with
masked loss (the zoo's `tiny-react-vl`), then GRPO with pairwise rewards — and dynamic frame sampling at inference.

    papermill notebooks/08_react.ipynb out.ipynb -p preset cpu        # or smoke | gpu -p model <Qwen2.5-VL path>

Reconstructed from the abstract (say so in every figure caption): the taxonomy, the output format and the
rewards are in `workbench.tasks.video` and `workbench.rl.react`; the frame sampling in
`workbench.evaluation.frame_sampling`; the metrics in `workbench.evaluation.reward_model`. This module holds the
presets, the checks and one function per notebook section; the claims are in `react_claims.py`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.evaluation.frame_sampling import SamplingResult, dynamic_sampling, uniform_sampling
from workbench.evaluation.reward_model import clip_metrics
from workbench.experiments.presets import Params, Presets
from workbench.experiments.vl_setup import VLSetup, load_vl_setup
from workbench.notebook import ParameterError
from workbench.rl import RLConfig, train
from workbench.rl.tasks.video import REPEAT_FRAMES, react_task
from workbench.tasks.video import DISTORTIONS, load_bench, uniform_frames

_RL = dict(micro_batch_size=32, window=2, top_m=1)
PRESETS = Presets(
    {"smoke": dict(model="tiny-react-vl-smoke", n_seeds=1, steps=1, num_prompts=1, num_generations=2, lr=1e-4,
                   eval_pairs=3, n_shown=4, probes=2, max_new_tokens=24, **_RL),
     "cpu": dict(model="tiny-react-vl", n_seeds=3, steps=16, num_prompts=4, num_generations=4, lr=5e-5,
                 eval_pairs=50, n_shown=8, probes=4, max_new_tokens=192, **_RL),
     "gpu": dict(model=None, n_seeds=3, steps=200, num_prompts=32, num_generations=8, lr=1e-6, eval_pairs=200,
                 n_shown=8, probes=4, max_new_tokens=256, **_RL)},
    ranges={"n_seeds": (1, 16), "steps": (1, None), "num_prompts": (1, None), "num_generations": (1, 256),
            "lr": (0.0, 1.0), "eval_pairs": (2, 200), "n_shown": (1, 16), "probes": (1, 16), "window": (1, 16),
            "top_m": (1, 16), "max_new_tokens": (8, 32768)})
SFT, GRPO = "SFT", "SFT + GRPO"
UNIFORM, DYNAMIC, UNIFORM_MATCHED = "uniform", "dynamic", "uniform (matched total)"


def check(P: Params) -> None:
    """The checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    if P.model is None:
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    if P.top_m > P.probes:
        raise ParameterError(f"parameter 'top_m' must be at most probes = {P.probes}, got {P.top_m}")
    if P.probes * P.window > 16:
        raise ParameterError(f"probes × window = {P.probes * P.window} frames exceed the 16-frame clips")


class Setup(VLSetup):
    """The SFT reward model (stage 1), its processor, the task and the bench views (pairs, better first)."""

    def describe(self, P: Params) -> str:
        return (f"{self.headline()}\ntask: {self.task.name}; {len(self.held_out) // 2} bench pairs; "
                f"seeds {self.seeds}; {P.steps} GRPO steps × {P.num_prompts} pairs × 2 × {P.num_generations} ratings")


def setup(P: Params) -> Setup:
    """Seed everything, load the SFT reward model and build the REACT task (held out: 2 · eval_pairs bench views,
    better then worse clip of each pair)."""
    return load_vl_setup(P, lambda processor: react_task(processor, n_shown=P.n_shown), Setup,
                         n_held_out=2 * P.eval_pairs)


def example_pairs(kinds=None) -> list:
    """One bench pair per distortion kind (the first whose worse clip has it), for the frame strips."""
    kinds = list(kinds or DISTORTIONS.names())
    out = {}
    for pair in load_bench():
        k = pair.worse.label
        if k in kinds and k not in out:
            out[k] = pair
    return [out[k] for k in kinds if k in out]


def grpo_config(P: Params, seed: int) -> RLConfig:
    """GRPO with the `pairwise` rollout source (2G rows per pair group), the RL settings of the preset."""
    return RLConfig.for_method("grpo", rollout_source="pairwise", steps=P.steps, num_prompts=P.num_prompts,
                               num_generations=P.num_generations, lr=P.lr, max_new_tokens=P.max_new_tokens,
                               micro_batch_size=P.micro_batch_size, seed=seed, eval_every=0)


def tokens_per_frame(run: Setup) -> int:
    """Video tokens one frame costs (merged grid cells × frame repeat / temporal patch)."""
    vc = run.policy.config.vision_config
    size = run.held_out[0].spec.width
    return (size // (vc.patch_size * vc.spatial_merge_size)) ** 2 * REPEAT_FRAMES // vc.temporal_patch_size


def sample_all(model, run: Setup, P: Params) -> dict[str, SamplingResult]:
    """Uniform at `n_shown` frames, dynamic (probes × window, then `n_shown` dense frames) and uniform at the
    dynamic method's total frame count (matched budget, capped at the clip length) on the bench views."""
    kw = dict(max_new_tokens=P.max_new_tokens, tokens_per_frame=tokens_per_frame(run))
    T = run.held_out[0].spec.n_frames
    matched = min(T, P.probes * P.window + P.n_shown)
    return {UNIFORM: uniform_sampling(model, run.processor, run.task, run.held_out, budget=P.n_shown, **kw),
            DYNAMIC: dynamic_sampling(model, run.processor, run.task, run.held_out, probes=P.probes, window=P.window,
                                      top_m=P.top_m, budget=P.n_shown, **kw),
            UNIFORM_MATCHED: uniform_sampling(model, run.processor, run.task, run.held_out, budget=matched, **kw)}


def clip_rows(model_name: str, seed: int | None, results: dict[str, SamplingResult]) -> list[dict]:
    """One row per (sampling method, clip): truth, prediction, label hit and frame recall (distorted clips)."""
    rows = []
    for method, res in results.items():
        for i, (v, r) in enumerate(zip(res.views, res.ratings)):
            true = v.spec.distortion.frames if v.spec.distortion is not None else ()
            hit = len(set(r.frames or ()) & set(true))
            rows.append({"model": model_name, "seed": seed, "method": method, "clip": i, "pair_id": v.pair_id,
                         "side": v.side, "kind": v.spec.label, "true_score": v.spec.score, "score": r.score,
                         "label": r.label, "label_hit": float(r.label == v.spec.label), "ok": r.ok,
                         "recall": hit / len(true) if true else np.nan, "frames": ",".join(map(str, v.frames))})
    return rows


def summarise(model_name: str, seed: int | None, results: dict[str, SamplingResult]) -> list[dict]:
    """One row per sampling method: every `clip_metrics` number and the cost."""
    return [{"model": model_name, "seed": seed, "method": m, **clip_metrics(r.ratings, r.views), **r.cost(),
             "unfocused": r.unfocused} for m, r in results.items()]


@dataclass
class Runs:
    """GRPO curves (one row per seed and step), per-model × method summaries, per-clip rows, and the SFT model's
    probe scores of the example clips."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    clips: pd.DataFrame
    seeds: list[int]
    seconds: dict

    def table(self, method: str = UNIFORM) -> pd.DataFrame:
        """Mean ± sd over seeds of the headline metrics, SFT against SFT + GRPO, at one sampling method."""
        s = self.summary[self.summary["method"] == method]
        cols = ["pairwise_accuracy", "pairwise_accuracy_ties", "spearman", "attribution_accuracy", "frame_recall",
                "format_rate"]
        return s.groupby("model")[cols].agg(["mean", "std"]).reindex([SFT, GRPO])

    def sampling_table(self) -> pd.DataFrame:
        """Per model and sampling method: frame recall / precision, pairwise accuracy and the cost."""
        cols = ["frame_recall", "frame_precision", "pairwise_accuracy", "attribution_accuracy", "frames_per_clip",
                "video_tokens_per_clip", "seconds_per_clip", "unfocused"]
        return self.summary.groupby(["model", "method"])[cols].mean()


def train_runs(run: Setup, P: Params, log=print) -> Runs:
    """Evaluate the SFT model (all sampling methods), then per seed train a copy with GRPO + pairwise rewards and
    evaluate it the same way."""
    t0 = time.time()
    base = sample_all(run.policy, run, P)
    summary, clips, curves = summarise(SFT, None, base), clip_rows(SFT, None, base), []
    seconds = {"sft_eval": time.time() - t0}
    for seed in run.seeds:
        policy = copy.deepcopy(run.policy).train()
        t1 = time.time()
        train(policy, run.processor, run.task, grpo_config(P, seed),
              on_step=lambda m, seed=seed: curves.append({"seed": seed, **m}))
        seconds[f"grpo_seed{seed}"] = time.time() - t1
        res = sample_all(policy.eval(), run, P)
        summary += summarise(GRPO, seed, res)
        clips += clip_rows(GRPO, seed, res)
        if log:
            s = summary[-3]
            log(f"seed {seed}: pairwise accuracy {summary[0]['pairwise_accuracy']:.1%} -> {s['pairwise_accuracy']:.1%} "
                f"({seconds[f'grpo_seed{seed}']:.0f} s of GRPO)")
    return Runs(pd.DataFrame(curves), pd.DataFrame(summary), pd.DataFrame(clips), list(run.seeds), seconds)


def example_probe(run: Setup, P: Params, pairs: list) -> tuple[list, SamplingResult]:
    """Dynamic sampling of the SFT model on the worse clip of each example pair: (specs, result) for the strips."""
    from workbench.tasks.video import ClipView

    views = [ClipView(p.worse, uniform_frames(p.worse.n_frames, P.n_shown), p.pair_id, "worse") for p in pairs]
    res = dynamic_sampling(run.policy, run.processor, run.task, views, probes=P.probes, window=P.window,
                           top_m=P.top_m, budget=P.n_shown, max_new_tokens=P.max_new_tokens)
    return [p.worse for p in pairs], res


def describe_ratings(res: SamplingResult) -> pd.DataFrame:
    """One row per clip of a sampling result: true kind / frames / score against the final rating."""
    return pd.DataFrame([{"kind": v.spec.label, "true frames": list(v.spec.distortion.frames) if v.spec.distortion else [],
                          "true score": v.spec.score, "frames rated": list(v.frames), "score": r.score, "label": r.label,
                          "predicted frames": list(r.frames or []), "well formed": r.ok}
                         for v, r in zip(res.views, res.ratings)])


def summary_records(runs: Runs) -> list[dict]:
    """`runs.summary` as JSON-able records (numbers rounded to 4 places)."""
    return [{k: (round(float(v), 4) if isinstance(v, (float, np.floating)) and np.isfinite(v) else v)
             for k, v in row.items()} for row in runs.summary.to_dict(orient="records")]


def chosen_frames(res: SamplingResult) -> list[tuple[int, ...]]:
    """The frames each clip's final rating saw, in clip order (for `viz.react.plot_frame_strips`)."""
    return [v.frames for v in res.views]
