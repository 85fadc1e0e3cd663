"""TGRL (arXiv 2603.26126), notebook 05: expert trajectories mixed into GRPO groups, filtered, with a shaped
ratio on expert tokens — against GRPO and plain SFT on the same expert trajectories.

    papermill notebooks/05_tgrl.ipynb out.ipynb -p preset cpu        # or smoke | gpu -p model <Qwen2.5-VL path>

The paper's method text is not available (abstract only); the pieces are reconstructed on LUFFY's mixed-policy
GRPO (arXiv 2504.14945) and are in `workbench.rl.tgrl`: the `expert_mix` rollout source (k of G completions
per group are expert trajectories, tokens marked off-policy), the `expert_filter` rollout filter (right answer
and every stated fact true), the `mixed_grpo` advantages over the mixed group, and the shaped unclipped
f(π) = π / (π + γ) on expert tokens in `losses.policy_loss`. The expert is the scene-graph oracle
(`shapes.oracle_chain`), fallible at `expert_error_rate` so that the filter has something to remove, or any
zoo model / checkpoint (`-p expert <name>`). This module holds the presets, the checks and one function per
notebook section; the RL runs go through the one loop `compare.compare_methods`.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.evaluation.verdicts import learned
from workbench.experiments.claims import SESOI_ACCURACY, both, by_seed, paired
from workbench.experiments.compare import compare_methods, evaluate_heldout, seed_bands
from workbench.experiments.presets import Params, Presets
from workbench.experiments.vl_setup import VLSetup, load_vl_setup
from workbench.models.tokenizer import token_strings
from workbench.models.vlm import format_vl_example
from workbench.notebook import ParameterError
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.sources import SourceContext
from workbench.rl.tasks import shapes_task
from workbench.rl.tgrl import expert_texts
from workbench.rl.update import score_rollout
from workbench.train.batches import collate_vl_sft, sft_batches
from workbench.train.sft import SFTConfig, sft
from workbench.utils import seed_everything, seeded_generator

_RL = dict(micro_batch_size=32, max_new_tokens=48, expert="oracle", k=1, gamma=0.1, families=["arithmetic"])
PRESETS = Presets(
    {"smoke": dict(model="tiny-shapes-vl-smoke", n_seeds=1, ablation=False, steps=1, num_prompts=2, num_generations=3,
                   lr=1e-4, eval_n=6, expert_error_rate=0.3, **_RL),
     "cpu": dict(model="tiny-shapes-vl-rl", n_seeds=3, ablation=True, steps=20, num_prompts=8, num_generations=8,
                 lr=1e-4, eval_n=100, expert_error_rate=0.3, **_RL),
     "gpu": dict(model=None, n_seeds=3, ablation=True, steps=200, num_prompts=64, num_generations=8, lr=1e-6,
                 eval_n=500, expert_error_rate=0.0, **_RL)},
    ranges={"n_seeds": (1, 16), "steps": (1, None), "num_prompts": (1, None), "num_generations": (2, 256),
            "lr": (0.0, 1.0), "eval_n": (2, None), "k": (1, 255), "gamma": (1e-6, 100.0),
            "expert_error_rate": (0.0, 1.0), "max_new_tokens": (8, 32768)})
SESOI_GROUNDING = 0.02  # 2 points of grounding accuracy (share of stated facts that are true)
GRPO, TGRL, NO_FILTER, NO_SHAPING, SFT = "GRPO", "TGRL", "TGRL no filter", "TGRL no shaping", "SFT on expert"


def check(P: Params) -> None:
    """The checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    if P.model is None:
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    if P.k >= P.num_generations:
        raise ParameterError(f"parameter 'k' (expert rows per group) must be below num_generations = {P.num_generations}, got {P.k}")
    if P.expert != "oracle" and P.expert_error_rate:
        raise ParameterError(f"parameter 'expert_error_rate' applies to the oracle expert only, got {P.expert_error_rate} "
                             f"with expert {P.expert!r}")


class Setup(VLSetup):
    """The base policy, its processor, the task and the held-out questions."""

    def describe(self, P: Params) -> str:
        expert = f"the scene-graph oracle, wrong {P.expert_error_rate:.0%} of the time" if P.expert == "oracle" else P.expert
        return (f"{self.headline()}\ntask: {self.task.name}; expert: {expert}; "
                f"{P.k} of {P.num_generations} completions per group are expert trajectories\n"
                f"{len(self.held_out)} held-out questions; seeds {self.seeds}; {P.steps} steps × {P.num_prompts} prompts per run")


def setup(P: Params) -> Setup:
    """Seed everything, load the policy and build the ShapeWorld task (reward: the exact answer)."""
    return load_vl_setup(P, lambda processor: shapes_task(processor, families=tuple(P.families), visual_dependency=None),
                         Setup)


def tgrl_runs(P: Params) -> dict[str, dict]:
    """The RL runs: {label: compare_methods run spec}. TGRL = DAPO-style token-mean loss over mixed groups,
    `expert_mix` + `expert_filter`, shaped expert ratio; the ablations switch the filter or the shaping off."""
    source = ("expert_mix", {"k": P.k, "expert": P.expert, "error_rate": P.expert_error_rate})
    tgrl = {"method": "grpo", "agg": "token-mean", "rollout_source": source, "rollout_filters": ["expert_filter"],
            "advantage": "mixed_grpo", "off_policy_gamma": P.gamma}
    runs = {GRPO: {"method": "grpo"}, TGRL: tgrl}
    if P.ablation:
        runs[NO_FILTER] = {**tgrl, "rollout_filters": []}
        runs[NO_SHAPING] = {**tgrl, "off_policy_shaping": False}
    return runs


def expert_examples(run: Setup, P: Params, seed: int, n: int) -> list[tuple]:
    """`n` (problem, expert text) pairs that pass the expert filter, drawn as TGRL draws them: training-stream
    problems (rng (seed, "sft")), the expert's answers from `rl.tgrl.expert_texts` (the oracle's errors from
    the same rng)."""
    rng, out, tried = random.Random(f"{seed}-sft"), [], 0
    ctx = SourceContext(run.policy, run.processor, run.task, P.num_generations, P.max_new_tokens, rng=rng)
    while len(out) < n:
        if tried > 50 * n:
            raise RuntimeError(f"the expert passed its filter on {len(out)} of {tried} problems; lower expert_error_rate")
        problems = run.task.sample(max(8, n - len(out)), rng)
        tried += len(problems)
        texts = expert_texts(ctx, problems, P.expert, P.expert_error_rate, rng)
        out += [(p, t) for p, t in zip(problems, texts) if run.task.expert_ok(t, p)]
    return out[:n]


def sft_on_expert(run: Setup, P: Params, seed: int) -> tuple[torch.nn.Module, float]:
    """Plain SFT of a fresh copy of the base on filtered expert trajectories at TGRL's expert budget: `steps`
    optimizer steps of `num_prompts × k` trajectories, AdamW at the RL lr (no warm-up). Returns (model, seconds)."""
    seed_everything(seed)
    model = copy.deepcopy(run.policy).train()
    size = P.num_prompts * P.k
    pairs = iter(expert_examples(run, P, seed, P.steps * size))

    def draw(n):
        return [next(pairs) for _ in range(n)]

    def collate(batch):
        fmt = [format_vl_example(p.prompt, t, run.processor) for p, t in batch]
        return collate_vl_sft(run.processor, [a for a, _ in fmt], [b for _, b in fmt], [p.image for p, _ in batch])

    t0 = time.time()
    sft(model, sft_batches(draw, collate, size), SFTConfig(steps=P.steps, lr=P.lr, warmup_steps=0), desc="SFT on expert")
    return model.eval(), time.time() - t0


@dataclass
class Runs:
    """Every run's final held-out numbers, one row per (run, seed) (`final`), and the RL curves."""

    curves: pd.DataFrame
    final: pd.DataFrame
    runs: list[str]
    seeds: list[int]
    base: dict
    drop_rate: dict

    def table(self) -> pd.DataFrame:
        return self.final.groupby("run").agg(
            accuracy=("eval_accuracy", "mean"), accuracy_sd=("eval_accuracy", "std"),
            grounding=("eval_grounding_accuracy", "mean"), facts_stated=("eval_facts_stated", "mean"),
            perception=("eval_perception_accuracy", "mean"), seconds=("seconds", "mean")).reindex(self.runs)

    def bands(self, metric: str = "eval_accuracy") -> pd.DataFrame:
        return seed_bands(self.curves, metric)

    def base_summary(self) -> dict:
        """The base model's held-out accuracy, grounding and perception accuracy and facts stated."""
        keys = ("accuracy", "grounding_accuracy", "perception_accuracy", "facts_stated")
        return {k: self.base[k] for k in keys if k in self.base}


def train_runs(run: Setup, P: Params) -> Runs:
    """GRPO, TGRL (and with `P.ablation` TGRL without the filter, without the shaping) through `compare_methods`,
    then SFT on expert per seed; held-out greedy accuracy, grounding and perception accuracy for every run."""
    runs = tgrl_runs(P)
    common = dict(steps=P.steps, num_prompts=P.num_prompts, num_generations=P.num_generations, lr=P.lr,
                  max_new_tokens=P.max_new_tokens, micro_batch_size=P.micro_batch_size)
    cmp = compare_methods(run.policy, run.processor, run.task, runs, run.seeds, common=common,
                          eval_every=max(1, P.steps // 4), eval_n=P.eval_n, eval_max_new_tokens=P.max_new_tokens)
    final = cmp.final
    base = {k[len("base_"):]: v for k, v in final.iloc[0].items() if k.startswith("base_")}
    rows = []
    for seed in run.seeds:
        model, seconds = sft_on_expert(run, P, seed)
        ev = evaluate_heldout(model, run.processor, run.task, run.held_out, max_new_tokens=P.max_new_tokens)
        rows.append({"run": SFT, "method": "sft", "seed": seed, **{f"eval_{k}": v for k, v in ev.items() if k != "texts"},
                     **{f"base_{k}": v for k, v in base.items()}, "seconds": seconds})
    final = pd.concat([final, pd.DataFrame(rows)], ignore_index=True)
    expert_rows = P.num_prompts * P.k
    drop = {r: float(cmp.curves.loc[cmp.curves["run"] == r, "rows_dropped"].dropna().mean() / expert_rows)
            for r in runs if r != GRPO and "rows_dropped" in cmp.curves}
    return Runs(cmp.curves, final, [*runs, SFT], list(run.seeds), base, drop)


@dataclass
class ExpertView:
    """One expert trajectory of a TGRL rollout: its tokens, π_θ of each under the base policy and the gradient
    weight γπ/(π+γ)² the shaped ratio gives it (against π for the plain ratio); `passed`: the filter keeps it."""

    question: str
    text: str
    tokens: list[str]
    prob: np.ndarray
    weight: np.ndarray
    passed: bool


def expert_view(run: Setup, P: Params) -> ExpertView:
    """Collect `num_prompts` `expert_mix` groups from the base policy and show the expert row the policy finds
    least likely (lowest token probability): there the shaping's boost is visible."""
    cfg = CollectConfig(num_prompts=P.num_prompts, num_generations=P.num_generations, max_new_tokens=P.max_new_tokens,
                        source=tgrl_runs(P)[TGRL]["rollout_source"])
    ro, _ = collect_rollout(run.policy, run.processor, run.task, cfg, generator=seeded_generator(P.seed, 21),
                            rng=random.Random(f"{P.seed}-view"))
    logp, _ = score_rollout(run.policy, ro, P.micro_batch_size, 1.0, with_entropy=False)
    experts = ro.extras["off_policy"].bool().any(-1).nonzero().squeeze(-1)
    lowest = logp.masked_fill(~ro.completion_mask.bool(), 0.0).min(-1).values
    row = int(experts[lowest[experts].argmin()])
    n = int(ro.completion_mask[row].sum())
    prob = logp[row, :n].exp().double().numpy()
    weight = P.gamma * prob / (prob + P.gamma) ** 2
    toks = token_strings(getattr(run.processor, "tokenizer", run.processor), ro.completion_ids[row, :n])
    return ExpertView(ro.problems[row].prompt, ro.texts[row], toks, prob, weight, bool(ro.extras["expert_ok"][row] > 0.5))


def claims(runs: Runs) -> list[dict]:
    """The paper's claims, each paired by seed (same base, same prompts per seed, same held-out questions):

    - `tgrl_accuracy_above_grpo`: TGRL − GRPO final greedy accuracy > 0 (SESOI 2 points);
    - `tgrl_grounding_above_grpo`: TGRL − GRPO grounding accuracy > 0 (SESOI 2 points);
    - `filter_and_shaping_help`: TGRL − TGRL no filter > 0 and TGRL − TGRL no shaping > 0 (`claims.both`).

    A comparison decides nothing unless one of its runs learned (per-seed accuracy gain over the base above
    2 SE, `verdicts.learned`): two runs that both stayed at the base compare noise.
    """
    f = runs.final
    gain = {r: (f.loc[f["run"] == r].sort_values("seed")["eval_accuracy"] - f.loc[f["run"] == r].sort_values("seed")["base_accuracy"]).astype(float).tolist()
            for r in runs.runs}
    moved = lambda *names: any(learned(gain.get(n, [])) for n in names)  # noqa: E731

    def compare(metric, treat, ctrl, sesoi):
        pair = by_seed(f, metric, treat, ctrl)
        return paired(pair[treat].tolist(), pair[ctrl].tolist(), sesoi, baseline_learned=moved(treat, ctrl)), pair

    out = []
    for cid, metric, text, paper, sesoi in (
            ("tgrl_accuracy_above_grpo", "eval_accuracy", "TGRL's final accuracy exceeds GRPO's", "holds (accuracy gains)", SESOI_ACCURACY),
            ("tgrl_grounding_above_grpo", "eval_grounding_accuracy", "TGRL's grounding accuracy (share of stated facts that are true) exceeds GRPO's",
             "holds (reasoning grounded in visual facts)", SESOI_GROUNDING)):
        v, pair = compare(metric, TGRL, GRPO, sesoi)
        out.append({"id": cid, "claim": f"{text} (paired by seed, SESOI {100 * sesoi:g} points)", "paper": paper,
                    "measured": {TGRL: _mean(pair[TGRL]), GRPO: _mean(pair[GRPO]), "seeds": [int(s) for s in pair.index],
                                 "gain_over_base_points": {r: round(100 * float(np.mean(g)), 2) for r, g in gain.items() if g}},
                    "verdict": v})
    if NO_FILTER in runs.runs and NO_SHAPING in runs.runs:
        vf, pf = compare("eval_accuracy", TGRL, NO_FILTER, SESOI_ACCURACY)
        vs, ps = compare("eval_accuracy", TGRL, NO_SHAPING, SESOI_ACCURACY)
        out.append({"id": "filter_and_shaping_help",
                    "claim": f"trajectory filtering and the shaped expert ratio each raise TGRL's accuracy (paired by seed, "
                             f"SESOI {100 * SESOI_ACCURACY:g} points each)",
                    "paper": "holds (both components contribute)",
                    "measured": {TGRL: _mean(pf[TGRL]), NO_FILTER: _mean(pf[NO_FILTER]), NO_SHAPING: _mean(ps[NO_SHAPING]),
                                 "filter_drop_rate": runs.drop_rate.get(TGRL)},
                    "verdict": both(vf, vs, ("no filter", "no shaping"))})
    return out


def _mean(values) -> float | None:
    return round(float(np.mean(values)), 4) if len(values) else None


def record_claims(results, runs: Runs) -> None:
    """Record every claim of `claims(runs)`, with its verdict, in `results` (a `workbench.notebook.Results`)."""
    for c in claims(runs):
        results.claim(**c)
