"""FIPO (arXiv 2603.19835), notebook 02: future-KL token weights against DAPO on the length-demanding
arithmetic setting (`workbench.tasks.arithmetic_long`). The method is the `fipo` preset of `workbench.rl.methods`
(its weight is `workbench.rl.weights.future_kl`); this module holds the notebook's experiments and its presets.

    papermill notebooks/02_fipo.ipynb out.ipynb -p preset smoke            # CI, seconds
    papermill notebooks/02_fipo.ipynb out.ipynb -p preset gpu -p model /path/to/Qwen2.5-Math-1.5B

FIPO's weight, with Δ_k = clamp(log π_θ(y_k) − log π_old(y_k), −20, 20) and γ = 2^(−1/decay_rate):
    FutureKL_t = Σ_{k ≥ t} γ^(k−t) · 1[Δ_k ≤ log c] · Δ_k,   f_t = clip(exp(FutureKL_t), 0.8, 1.2),   Ã_t = f_t · A_t.

Claims (`record_claims`, `fipo_claims`): FIPO vs DAPO paired by seed, SESOI 2 points / 1 token; the base's
full chains vs early stops unpaired (Welch).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from workbench.experiments import fipo_claims
from workbench.experiments.compare import Comparison, compare_final, compare_methods, evaluate_heldout, seed_bands
from workbench.experiments.presets import Params, Presets
from workbench.models.tokenizer import token_strings
from workbench.models.zoo import describe_info, load_model
from workbench.notebook import ParameterError
from workbench.rl.advantages import compute_advantages
from workbench.rl.sources import generate_group
from workbench.rl.tasks import long_arithmetic_task
from workbench.rl.update import score_rollout
from workbench.rl.weights import WeightContext, compose_token_weights
from workbench.tasks.arithmetic_long import operations_in_head
from workbench.tasks.base import Task
from workbench.utils import seed_everything, seeded_generator

#: the notebook's presets (gpu has no default model: a local checkpoint path is required)
PRESETS = Presets(
    {
        "smoke": dict(model="tiny-arith-long-smoke", n_seeds=1, steps=2, num_prompts=4, num_generations=4, lr=2e-4,
                      sweep_decay_rates=[8.0], eval_n=16, eval_every=1),
        "cpu": dict(model="tiny-arith-long", n_seeds=3, steps=40, num_prompts=16, num_generations=8, lr=2e-4,
                    sweep_decay_rates=[4.0, 128.0], eval_n=200, eval_every=10),
        "gpu": dict(model=None, n_seeds=3, steps=300, num_prompts=64, num_generations=16, lr=1e-6,
                    sweep_decay_rates=[8.0, 128.0], eval_n=500, eval_every=25),
    },
    ranges={"n_seeds": (1, 16), "steps": (1, None), "num_prompts": (1, None), "num_generations": (2, 256),
            "num_minibatches": (1, 64), "lr": (0.0, 1.0), "decay_rate": (0.01, 1e6), "max_new_tokens": (8, 32768),
            "eval_n": (1, None), "eval_every": (0, None), "eval_samples": (0, 64)},
)
K_PROBE = 4  # samples per held-out problem of the base's length probe
VIEW_PROMPTS = 8  # prompts of the snapshot rollout whose f_t is shown
NO_WEIGHT = "FIPO, f_t ≡ 1"


def check(P: Params) -> None:
    """Cross-parameter checks. Raises ParameterError: no model at preset gpu, a non-positive or infinite sweep rate."""
    __tracebackhide__ = True
    if P.model is None:
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    bad = [t for t in P.sweep_decay_rates if not 0 < t < float("inf")]
    if bad:
        raise ParameterError(f"parameter 'sweep_decay_rates' must hold positive finite numbers, got {bad}")


def seeds(P: Params) -> list[int]:
    """The RL seeds of every method: seed, seed + 1, …, n_seeds of them."""
    return [P.seed + i for i in range(P.n_seeds)]


def snapshot_step(P: Params) -> int:
    """The step whose policy before / after the f_t view compares: halfway through the run."""
    return max(1, P.steps // 2)


def rl_common(P: Params) -> dict:
    """RLConfig fields shared by every run (same budget for every method)."""
    return dict(steps=P.steps, num_prompts=P.num_prompts, num_generations=P.num_generations,
                num_minibatches=P.num_minibatches, lr=P.lr, max_new_tokens=P.max_new_tokens, max_sampling_rounds=2)


def how(P: Params) -> str:
    """How held-out accuracy is measured, for axis labels."""
    return "greedy" if P.eval_samples == 0 else f"mean of {P.eval_samples} samples"


@dataclass
class Setup:
    """The base policy, its tokenizer, the length-demanding task and a description of the run."""

    policy: torch.nn.Module
    tokenizer: object
    task: Task
    summary: str


def load(P: Params) -> Setup:
    """Seed with `P.seed`, build `long_arithmetic_task()` and load `P.model`."""
    seed_everything(P.seed)
    policy, tokenizer = load_model(P.model, device=P.device)
    task = long_arithmetic_task(tokenizer=tokenizer)
    summary = (f"{P.model}: {sum(p.numel() for p in policy.parameters()) / 1e6:.2f}M parameters on {policy.device}\n"
               f"zoo info: {describe_info(policy)}\ntask: {task.name}; seeds {seeds(P)}; {P.steps} steps × {P.num_prompts} prompts × "
               f"{P.num_generations} samples, {P.num_minibatches} mini-batches per rollout")
    return Setup(policy, tokenizer, task, summary)


@dataclass
class LengthProbe:
    """The base's sampled responses grouped by operations left to do in the head (1 = the full chain; 3 = 3+).
    `by_length`: per group share, accuracy, mean tokens (EOS included); `responses`: in_head, correct, tokens per sample."""

    by_length: pd.DataFrame
    accuracy: float
    length: float
    acc_full: float
    acc_stopped: float
    share_stopped: float
    metrics: dict
    summary: str
    responses: pd.DataFrame


def length_probe(s: Setup, P: Params) -> LengthProbe:
    """`K_PROBE` samples (T = 1) per held-out problem from the base; are its full chains right more often?"""
    held = s.task.eval_problems(P.eval_n)
    probe = evaluate_heldout(s.policy, s.tokenizer, s.task, held, samples=K_PROBE, max_new_tokens=P.max_new_tokens, seed=P.seed)
    rows = pd.DataFrame([{"in_head": min(max(operations_in_head(held[i // K_PROBE].question, text), 1), 3),
                          "correct": bool(s.task.correct(text, held[i // K_PROBE])),
                          "tokens": len(s.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1}
                         for i, text in enumerate(probe["texts"])])
    by_length = rows.groupby("in_head").agg(share=("correct", "size"), accuracy=("correct", "mean"), tokens=("tokens", "mean"))
    by_length["share"] /= by_length["share"].sum()
    full, stopped = rows.query("in_head == 1")["correct"], rows.query("in_head > 1")["correct"]
    acc_full = float(full.mean()) if len(full) else float("nan")
    acc_stopped = float(stopped.mean()) if len(stopped) else float("nan")
    share_stopped = float(len(stopped) / max(len(rows), 1))
    metrics = {"base_sampled_accuracy": probe["accuracy"], "base_sampled_length": probe["length"],
               "base_accuracy_full_chain": acc_full, "base_accuracy_stopped_early": acc_stopped,
               "base_share_stopped_early": share_stopped}
    summary = (f"base, {K_PROBE} samples per problem: accuracy {probe['accuracy']:.1%}, mean length {probe['length']:.1f} "
               f"tokens; full chain {acc_full:.1%} vs stopped early {acc_stopped:.1%} ({share_stopped:.0%} of responses)")
    return LengthProbe(by_length, probe["accuracy"], probe["length"], acc_full, acc_stopped, share_stopped, metrics, summary, rows)


@dataclass
class MethodComparison:
    """DAPO vs FIPO over `seeds(P)`. `comparison`: the `compare_methods` output (curves, final, snapshots);
    `bands`: {metric: `seed_bands` per run} for eval_accuracy, eval_length and the 5-step rolling mean of the
    rollout length; `accuracy` / `length` (rollout length over the last quarter of the steps) / `heldout_length`:
    `compare_final` FIPO − DAPO (seed means, difference, its standard error, `clear`), from `rollout_length` per (run, seed)."""

    comparison: Comparison
    bands: dict
    accuracy: dict
    length: dict
    heldout_length: dict
    base_accuracy: float
    metrics: dict
    report: str
    rollout_length: pd.DataFrame


def dapo_vs_fipo(s: Setup, P: Params) -> MethodComparison:
    """DAPO and FIPO (future_kl at `P.decay_rate`) from the same base at the same budget (`rl_common`)."""
    runs = {"DAPO": {"method": "dapo"},
            "FIPO": {"method": "fipo", "token_weights": [("future_kl", {"decay_rate": P.decay_rate})]}}
    cmp = compare_methods(s.policy, s.tokenizer, s.task, runs, seeds(P), common=rl_common(P), eval_every=P.eval_every,
                          eval_n=P.eval_n, eval_samples=P.eval_samples, eval_max_new_tokens=P.max_new_tokens,
                          snapshot_step=snapshot_step(P), snapshot_runs=["FIPO"])
    curves, final = cmp.curves, cmp.final
    rollout = curves.dropna(subset=["response_length"]).copy()
    rollout["response_length_smooth"] = (rollout.groupby(["run", "seed"])["response_length"]
                                         .transform(lambda x: x.rolling(5, min_periods=1).mean()))
    bands = {"eval_accuracy": seed_bands(curves, "eval_accuracy"), "eval_length": seed_bands(curves, "eval_length"),
             "response_length_smooth": seed_bands(rollout, "response_length_smooth")}
    acc = compare_final(final, "eval_accuracy", "FIPO", "DAPO")
    last_quarter = curves[(curves["step"] > 0.75 * P.steps) & curves["response_length"].notna()]
    rollout_length = last_quarter.groupby(["run", "seed"], as_index=False)["response_length"].mean()
    length = compare_final(rollout_length, "response_length", "FIPO", "DAPO")
    heldout_length = compare_final(final, "eval_length", "FIPO", "DAPO")
    weights_seen = (curves[(curves["run"] == "FIPO") & curves["weight_mean"].notna()]["weight_mean"]
                    if "weight_mean" in curves else pd.Series(dtype=float))  # absent when every FIPO step was skipped
    base_acc = float(final["base_accuracy"].iloc[0])
    metrics = {"dapo_final_accuracy": acc["DAPO"], "fipo_final_accuracy": acc["FIPO"], "base_accuracy": base_acc,
               "dapo_rollout_length_last_quarter": length["DAPO"], "fipo_rollout_length_last_quarter": length["FIPO"],
               "dapo_heldout_length": heldout_length["DAPO"], "fipo_heldout_length": heldout_length["FIPO"],
               "base_heldout_length": float(final["base_length"].iloc[0]),
               "fipo_mean_token_weight": float(weights_seen.mean()) if len(weights_seen) else float("nan"),
               "seconds_per_run": float(final["seconds"].mean()),
               "fipo_minus_base_accuracy": acc["FIPO"] - base_acc, "dapo_minus_base_accuracy": acc["DAPO"] - base_acc}
    report = (f"accuracy  FIPO − DAPO = {acc['diff']:+.3f} ± {acc['se']:.3f} (per seed {acc['per_seed']})\n"
              f"against the base ({base_acc:.1%}): FIPO {acc['FIPO'] - base_acc:+.1%}, DAPO {acc['DAPO'] - base_acc:+.1%}"
              + ("; FIPO's lead comes from DAPO losing accuracy, not from FIPO gaining it"
                 if acc["diff"] > 0 and acc["FIPO"] <= base_acc else "")
              + f"\nrollout length, last quarter  FIPO − DAPO = {length['diff']:+.2f} ± {length['se']:.2f} tokens"
              f"\nheld-out length  FIPO − DAPO = {heldout_length['diff']:+.2f} ± {heldout_length['se']:.2f} tokens")
    return MethodComparison(cmp, bands, acc, length, heldout_length, base_acc, metrics, report, rollout_length)


def record_claims(results, probe: LengthProbe, mc: MethodComparison, P: Params) -> None:
    """The notebook's three claims with their verdicts: `fipo_claims.fipo_claims` (pairing and SESOIs)."""
    fipo_claims.fipo_claims(results, probe, mc, P)


@dataclass
class FutureKLView:
    """Future-KL weights of one rollout between two policies (π_old samples, π_θ is the updated policy).

    Attributes (N completions, T tokens): tokens: per row, the completion's tokens (list of str);
    texts; rewards [N]; advantages [N]; mask [N, T]; delta [N, T] = log π_θ − log π_old;
    weights: {decay_rate: f [N, T]} from the registered `future_kl` weight.
    """

    tokens: list[list[str]]
    texts: list[str]
    rewards: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    delta: torch.Tensor
    weights: dict


@torch.no_grad()
def future_kl_view(old_policy, new_policy, tokenizer, task: Task, *, num_prompts: int = 8, num_generations: int = 8,
                   max_new_tokens: int = 64, decay_rates: Sequence[float] = (32.0,), seed: int = 0,
                   weight_kwargs: dict | None = None) -> FutureKLView:
    """Sample a rollout from `old_policy` and weigh its tokens with FIPO's future-KL (arXiv 2603.19835).

    Δ_t = log π_new(y_t) − log π_old(y_t); f_t = `future_kl` weight (registry) for each decay rate,
    with GRPO advantages of the rollout's exact-match rewards (the safety clamp needs their sign).

    Returns:
        a `FutureKLView`.
    """
    problems = task.sample(num_prompts, random.Random(f"future-kl-view/{seed}"))
    ro = generate_group(old_policy, tokenizer, task, problems, num_generations=num_generations,
                        max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, generator=seeded_generator(seed, 1))
    old_logp, _ = score_rollout(old_policy, ro, 64, 1.0, with_entropy=False)
    new_logp, _ = score_rollout(new_policy, ro, 64, 1.0, with_entropy=False)
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)  # [N, T]
    ctx = WeightContext(logp=new_logp, old_logp=old_logp, mask=ro.completion_mask, advantages=adv)
    weights = {d: compose_token_weights([("future_kl", {**(weight_kwargs or {}), "decay_rate": d})], ctx) for d in decay_rates}
    lengths = ro.completion_mask.sum(-1).tolist()
    tokens = [token_strings(tokenizer, ro.completion_ids[i, :n]) for i, n in enumerate(lengths)]
    delta = torch.where(ro.completion_mask.bool(), new_logp - old_logp, torch.zeros_like(new_logp))
    return FutureKLView(tokens=tokens, texts=ro.texts, rewards=ro.rewards, advantages=adv.sum(-1) / ro.completion_mask.sum(-1).clamp(min=1),
                        mask=ro.completion_mask, delta=delta, weights=weights)


@dataclass
class WeightView:
    """f_t of the snapshot rollout (`view`, a `FutureKLView`) at `P.decay_rate`: `f` [N, T], `valid` [N, T];
    `row`: the response whose Σ|f_t − 1| is largest, its `tokens` and `f_minus_one`; `heat`: delta, f, valid [R, T']
    and rewards [R] (numpy) of the 16 rows with the largest Σ|f_t − 1|, cut to their longest response;
    `spread`: {decay_rate: mean |f_t − 1| over valid tokens}; `values`: {decay_rate: f_t on them}."""

    view: FutureKLView
    f: torch.Tensor
    valid: torch.Tensor
    row: int
    tokens: list[str]
    f_minus_one: list[float]
    heat: dict
    spread: dict
    values: dict
    fraction_not_one: float
    share_moved: float
    step: int
    report: str


def weight_view(s: Setup, mc: MethodComparison, P: Params) -> WeightView:
    """`future_kl_view` between the FIPO policy before and after `snapshot_step(P)` (first seed), for every decay rate
    of the notebook (`decay_rate` and `sweep_decay_rates`)."""
    before, after = mc.comparison.snapshots[("FIPO", seeds(P)[0])]
    old_policy, new_policy = copy.deepcopy(s.policy), copy.deepcopy(s.policy)
    old_policy.load_state_dict(before)
    new_policy.load_state_dict(after)
    view = future_kl_view(old_policy, new_policy, s.tokenizer, s.task, num_prompts=VIEW_PROMPTS, num_generations=P.num_generations,
                          max_new_tokens=P.max_new_tokens, decay_rates=sorted({P.decay_rate, *P.sweep_decay_rates}), seed=P.seed)
    f, valid = view.weights[P.decay_rate], view.mask.bool()
    deviation = ((f - 1).abs() * valid).sum(-1)
    row = int(deviation.argmax())
    n_tok = int(valid[row].sum())
    not_one = float(((f - 1).abs() > 1e-6)[valid].float().mean())
    spread = {t: float(((w - 1).abs() * valid).sum() / valid.sum()) for t, w in sorted(view.weights.items())}
    report = (f"step {snapshot_step(P)}: {int(valid.sum())} tokens, f_t ≠ 1 on {not_one:.0%} of them, "
              f"range [{float(f[valid].min()):.3f}, {float(f[valid].max()):.3f}]; shown: reward {float(view.rewards[row]):.0f}, "
              f"advantage {float(view.advantages[row]):+.2f}")
    order = deviation.argsort(descending=True)[:16]
    T = int(valid[order].sum(-1).max())
    heat = {"delta": view.delta[order, :T].numpy(), "f": f[order, :T].numpy(), "valid": valid[order, :T].numpy(),
            "rewards": view.rewards[order].tolist()}
    return WeightView(view, f, valid, row, view.tokens[row], (f[row, :n_tok] - 1).tolist(), heat,
                      spread, {t: w[valid].numpy() for t, w in sorted(view.weights.items())}, not_one,
                      float(((f - 1).abs() > 0.01)[valid].float().mean()), snapshot_step(P), report)


@dataclass
class DecaySweep:
    """One FIPO run per swept decay rate and one with FIPO's loss but f_t ≡ 1, on the first seed. `table`: one row
    per decay rate (the main FIPO run included) with eval_accuracy, eval_length and the snapshot's mean |f_t − 1|;
    `dapo` / `no_weight`: final rows of DAPO (main runs) and of the f_t ≡ 1 run."""

    table: pd.DataFrame
    dapo: pd.Series
    no_weight: pd.Series
    metrics: dict
    report: str


def decay_sweep(s: Setup, mc: MethodComparison, wv: WeightView, P: Params) -> DecaySweep:
    """The sweep runs (`compare_methods`, evaluated at the end only) next to the main runs of the first seed."""
    taus = [t for t in P.sweep_decay_rates if t != P.decay_rate]
    runs = {f"FIPO τ={tau:g}": {"method": "fipo", "token_weights": [("future_kl", {"decay_rate": tau})]} for tau in taus}
    runs[NO_WEIGHT] = {"method": "fipo", "token_weights": []}
    sweep = compare_methods(s.policy, s.tokenizer, s.task, runs, seeds(P)[:1], common=rl_common(P), eval_every=0,
                            eval_n=P.eval_n, eval_samples=P.eval_samples, eval_max_new_tokens=P.max_new_tokens)
    first = mc.comparison.final[mc.comparison.final["seed"] == seeds(P)[0]].set_index("run")
    swept = sweep.final.set_index("run")
    cols = ["eval_accuracy", "eval_length"]
    table = [{"decay_rate": P.decay_rate, "run": "FIPO", **first.loc["FIPO", cols].to_dict()}]
    table += [{"decay_rate": tau, "run": f"FIPO τ={tau:g}", **swept.loc[f"FIPO τ={tau:g}", cols].to_dict()} for tau in taus]
    table = pd.DataFrame(table).sort_values("decay_rate").reset_index(drop=True)
    table["mean |f_t − 1| (snapshot)"] = [wv.spread.get(t, np.nan) for t in table["decay_rate"]]
    no_weight = swept.loc[NO_WEIGHT]
    metrics = {"fipo_without_future_kl_seed0": {"eval_accuracy": float(no_weight["eval_accuracy"]),
                                                "eval_length": float(no_weight["eval_length"])},
               "decay_sweep": table.to_dict(orient="records")}
    report = (f"seed {seeds(P)[0]}: DAPO {first.loc['DAPO', 'eval_accuracy']:.1%}, FIPO loss with f_t ≡ 1 "
              f"{no_weight['eval_accuracy']:.1%}, FIPO {first.loc['FIPO', 'eval_accuracy']:.1%} held-out accuracy")
    return DecaySweep(table, first.loc["DAPO"], no_weight, metrics, report)
