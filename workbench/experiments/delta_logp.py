"""Δlog p (arXiv 2603.22117), notebook 01: the direction of RLVR updates, on held-out arithmetic.

    papermill notebooks/01_delta_logp.ipynb out.ipynb -p preset smoke     # CI, seconds
    papermill notebooks/01_delta_logp.ipynb out.ipynb -p preset gpu -p base_model /ckpt/base -p rl_model /ckpt/rl

Δlog p_t = log π_RL(y_t | y_<t) − log π_base(y_t | y_<t). The four experiments: (1) statistics of Δlog p over
RL rollouts, (2) token replacement (the base decodes, the RL token is taken at the positions a selector ranks
first), (3) extrapolation log π̃ = log π_RL + λ (log π_RL − log π_base), (4) DAPO with the `low_prob` token
weight Ã_t = [1 + α (1 − p_old(y_t))] · A_t against plain DAPO. The analyses are `workbench.analysis.delta_logp`,
the weight `workbench.rl.weights.low_prob`; this module holds the notebook's experiments and its presets.

The claims' verdicts (`record_claims`) are paired: replacement budgets by prompt shard, extrapolation by held-out
problem, the reweighting runs by seed; SESOIs 0.02 of the token budget and 2 accuracy points, justified in
`workbench.experiments.delta_logp_claims`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from workbench.analysis import delta_logp as dlp
from workbench.experiments import delta_logp_claims
from workbench.experiments.compare import compare_methods, seed_bands
from workbench.experiments.presets import Params, Presets
from workbench.models.generation import encode_prompts
from workbench.models.tokenizer import format_prompt
from workbench.models.zoo import load_model
from workbench.notebook import ParameterError
from workbench.recipes.rl_arith import ARITH_RL_CPU
from workbench.rl import RLConfig, train
from workbench.rl.inspect import TokenInspection, inspect_tokens
from workbench.rl.tasks import arithmetic_task
from workbench.tasks import arithmetic
from workbench.utils import seed_everything
from workbench.viz.distributions import rank_correlation, token_kind_summary

_BUDGETS = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0]
_LAMBDAS = [0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0]  # fractions of lambda_max
#: the notebook's presets. `rl_steps` None = load `rl_model`; `rl_overrides` shrink the RL run trained here
#: (after `ARITH_RL_CPU`); `budgets` of the replacement curves; `lambda_grid` in units of `lambda_max`;
#: `rw_config`: RLConfig fields shared by both variants of the reweighting comparison (`eval_n` problems).
PRESETS = Presets(
    {
        "smoke": dict(rl_steps=2, n_rollouts=16, n_replace=8, replace_seeds=1, n_lambda=16, rw_seeds=2, rw_steps=2,
                      rw_lr=3e-5, budgets=[0.0, 0.25, 1.0], lambda_grid=[0.0, 0.5, 1.0],
                      rl_overrides=dict(num_prompts=4, num_generations=4),
                      rw_config=dict(num_prompts=4, num_generations=4, eval_every=2, eval_n=16)),
        "cpu": dict(rl_steps=None, n_rollouts=256, n_replace=192, replace_seeds=3, n_lambda=500, rw_seeds=3, rw_steps=30,
                    rw_lr=3e-5, budgets=_BUDGETS, lambda_grid=_LAMBDAS, rl_overrides={},
                    rw_config=dict(num_prompts=8, num_generations=8, eval_every=10, eval_n=300)),
        "gpu": dict(rl_steps=None, n_rollouts=512, n_replace=500, replace_seeds=3, n_lambda=500, rw_seeds=3, rw_steps=200,
                    rw_lr=1e-6, budgets=_BUDGETS, lambda_grid=_LAMBDAS, rl_overrides={},
                    rw_config=dict(num_prompts=64, num_generations=8, eval_every=25, eval_n=500)),
    },
    ranges={"rl_steps": (1, None), "max_new_tokens": (1, 4096), "n_rollouts": (1, None), "n_replace": (1, None),
            "replace_seeds": (1, 16), "n_lambda": (1, None), "lambda_max": (0.0, 10.0), "rw_seeds": (1, 16),
            "rw_steps": (1, None), "rw_alpha": (0.0, 10.0), "rw_lr": (0.0, 1.0), "show_rollout": (0, None)},
)
#: per-token statistics compared by rank correlation
STAT_COLS = ["delta_logp", "abs_delta_logp", "entropy_rl", "entropy_base", "kl", "js"]

#: zoo models the notebook loads with its default parameters (for the runner's plan): the base, and at cpu the
#: cached RL run (smoke trains its own GRPO copy)
ZOO_MODELS_USED = {"smoke": ["tiny-arith"], "cpu": ["tiny-arith", "tiny-arith-grpo"]}


def check(P: Params) -> None:
    """Cross-parameter checks. Raises ParameterError: fewer replacement problems than seeds."""
    __tracebackhide__ = True
    if P.n_replace < P.replace_seeds:
        raise ParameterError(f"parameter 'n_replace' must be at least replace_seeds={P.replace_seeds}, got {P.n_replace}")


def held_out(n: int) -> list:
    """The first `n` problems of the frozen held-out arithmetic split."""
    return arithmetic.load_eval_set()[:n]


@dataclass
class Models:
    """The base model, the RL model (loaded, or trained here with `rl_steps` GRPO steps), their tokenizer."""

    base: object
    rl: object
    tokenizer: object
    rl_name: str
    summary: str


def load_models(P: Params) -> Models:
    """Seed with `P.seed`, load `base_model`, then load `rl_model` or train a GRPO copy of the base for `rl_steps`."""
    seed_everything(P.seed)
    base, tokenizer = load_model(P.base_model, device=P.device)
    if P.rl_steps is None:
        rl, _ = load_model(P.rl_model, device=P.device)
        rl_name = P.rl_model
    else:
        cfg = RLConfig.for_method("grpo", **{**ARITH_RL_CPU, **P.rl_overrides, "steps": P.rl_steps, "seed": P.seed,
                                            "eval_every": 0, "max_new_tokens": P.max_new_tokens, "progress": False})
        rl = train(copy.deepcopy(base), tokenizer, arithmetic_task(tokenizer=tokenizer), cfg).model.eval()
        rl_name = f"{P.base_model} + {P.rl_steps} GRPO steps"
    summary = f"base: {P.base_model} ({sum(p.numel() for p in base.parameters()) / 1e6:.2f}M parameters on {base.device}); RL: {rl_name}"
    return Models(base, rl, tokenizer, rl_name, summary)


# --------------------------------------------------------------------------------------------- 1. statistics
@dataclass
class TokenStatistics:
    """RL rollouts scored under both models. `frame`: one row per response token (`dlp.RolloutStats.frame`);
    `metrics`: the scalar results (token count, sampled accuracy, share of |Δlog p| < 0.01, top-5/10 % mass);
    `corr`: Spearman ρ between `STAT_COLS`; `spearman`: its Δlog p and |Δlog p| rows (rounded);
    `kinds`: `token_kind_summary` of Δlog p by token kind; `by_kind`: its results-file form."""

    frame: pd.DataFrame
    texts: list[str]
    correct: list[bool]
    metrics: dict
    corr: pd.DataFrame
    spearman: dict
    kinds: pd.DataFrame
    by_kind: dict
    summary: str


def token_statistics(m: Models, P: Params) -> TokenStatistics:
    """Sample one response per held-out problem from the RL model (T = 1, seed `P.seed`) on `n_rollouts` problems."""
    stats = dlp.rollout_token_stats(m.rl, m.base, m.tokenizer, held_out(P.n_rollouts), max_new_tokens=P.max_new_tokens,
                                    seed=P.seed)
    frame = stats.frame
    abs_d = frame["abs_delta_logp"].to_numpy()
    acc, small = float(np.mean(stats.correct)), float(np.mean(abs_d < 0.01))
    metrics = {"rollout_tokens": len(frame), "rollout_accuracy_sampled": acc, "share_abs_delta_logp_below_0.01": small,
               "top5pct_share_of_abs_delta_logp": dlp.concentration(abs_d, 0.05),
               "top10pct_share_of_abs_delta_logp": dlp.concentration(abs_d, 0.10)}
    corr = rank_correlation(frame, STAT_COLS)
    spearman = {c: {d: round(float(corr.loc[c, d]), 3) for d in STAT_COLS} for c in ("delta_logp", "abs_delta_logp")}
    kinds = token_kind_summary(frame, "delta_logp", kind="kind")
    by_kind = kinds[["count", "mean", "mean_abs", "mass_share"]].round(4).to_dict(orient="index")
    summary = (f"{len(frame)} response tokens from {len(stats.texts)} rollouts ({acc:.0%} correct); {small:.0%} have "
               f"|Δlog p| < 0.01; the top 5% of tokens carry {metrics['top5pct_share_of_abs_delta_logp']:.0%} of Σ|Δlog p|")
    return TokenStatistics(frame, stats.texts, stats.correct, metrics, corr, spearman, kinds, by_kind, summary)


@dataclass
class OneRollout:
    """One rollout's tokens [T] with Δlog p [T] and the RL model's entropy [T]; `title` names it."""

    seq_id: int
    tokens: list[str]
    delta_logp: np.ndarray
    entropy: np.ndarray
    title: str


def rollout_view(stats: TokenStatistics, show_rollout: int | None = None) -> OneRollout:
    """Rollout `show_rollout` (None: the one with the largest Σ|Δlog p|). Raises ParameterError for an unknown id."""
    __tracebackhide__ = True
    sums = stats.frame.groupby("seq_id")["abs_delta_logp"].sum()
    row = int(sums.idxmax()) if show_rollout is None else show_rollout
    if row not in sums.index:
        raise ParameterError(f"parameter 'show_rollout' must be a rollout id in 0..{len(sums) - 1}, got {row}")
    one = stats.frame[stats.frame["seq_id"] == row]
    title = f"{one['question'].iloc[0]}  ({one['correct'].iloc[0]}, Σ|Δlog p| = {sums[row]:.2f})"
    return OneRollout(row, one["token"].tolist(), one["delta_logp"].to_numpy(), one["entropy_rl"].to_numpy(), title)


def inspect_rollout(m: Models, stats: TokenStatistics, one: OneRollout, k: int = 5) -> TokenInspection:
    """The token inspector's numbers for rollout `one`, base = A and RL = B (`rl.inspect.inspect_tokens`): at every
    token the top-`k` alternatives under both models, log π, Δlog p, entropy and every registered token weight."""
    rows = stats.frame[stats.frame["seq_id"] == one.seq_id]
    prompt, _ = encode_prompts(m.tokenizer, [format_prompt(rows["question"].iloc[0], m.tokenizer)])
    completion = torch.as_tensor(rows["token_id"].to_numpy(dtype=np.int64))
    return inspect_tokens(m.base, m.rl, m.tokenizer, prompt[0], completion, names=("base", "RL"), k=k)


# --------------------------------------------------------------------------------------------- 2. replacement
@dataclass
class Replacement:
    """Replacement curves over `n_seeds` disjoint prompt shards. `summary`: one row per (selector, budget, seed);
    `reach` / `reach90`: budget at which each selector's seed-mean accuracy reaches the RL accuracy / 90 % of the
    base→RL gap (NaN: never); `reach_measured`: `reach` for the claim (None: never)."""

    summary: pd.DataFrame
    base_acc: float
    rl_acc: float
    reach: pd.Series
    reach90: pd.Series
    n_seeds: int
    metrics: dict
    reach_measured: dict
    report: str


def replacement(m: Models, P: Params) -> Replacement:
    """`dlp.replacement_experiment` on `n_replace` held-out problems, seeds `seed`, `seed + 1`, …, at `P.budgets`."""
    curve = dlp.replacement_experiment(m.base, m.rl, m.tokenizer, held_out(P.n_replace), budgets=P.budgets,
                                       seeds=[P.seed + i for i in range(P.replace_seeds)], max_new_tokens=P.max_new_tokens)
    summary = curve.summary
    by_budget = summary.groupby("budget")["accuracy"].mean()
    base_acc, rl_acc = float(by_budget.loc[0.0]), float(by_budget.loc[1.0])
    reach = dlp.reach_budgets(summary, rl_acc)
    reach90 = dlp.reach_budgets(summary, base_acc + 0.9 * (rl_acc - base_acc))  # less sensitive to the last noisy point
    metrics = {"replacement_base_accuracy": base_acc, "replacement_rl_accuracy": rl_acc,
               "budget_to_reach_rl_accuracy": reach.round(4).to_dict(), "budget_to_reach_90pct_of_gap": reach90.round(4).to_dict(),
               "replacement_curve": summary.groupby(["selector", "budget"])[["accuracy", "changed_frac"]].mean()
               .round(4).reset_index().to_dict(orient="records")}
    report = (f"greedy accuracy on {P.n_replace} held-out problems: base {base_acc:.1%}, RL {rl_acc:.1%}\n" + (
              "the RL model is not above the base: there is no gap to close (budget 0 already reaches the RL accuracy)"
              if rl_acc <= base_acc else
              "budget needed to reach the RL accuracy (interpolated): " + ", ".join(f"{k} {v:.3f}" for k, v in reach.items())
              + "\nbudget needed to close 90% of the gap: " + ", ".join(f"{k} {v:.3f}" for k, v in reach90.items())))
    measured = {k: (None if np.isnan(v) else round(float(v), 4)) for k, v in reach.items()}
    return Replacement(summary, base_acc, rl_acc, reach, reach90, P.replace_seeds, metrics, measured, report)


# --------------------------------------------------------------------------------------------- 3. extrapolation
@dataclass
class Extrapolation:
    """Greedy accuracy per λ (`accuracy`, indexed by λ) with its binomial standard error `se` = √(a(1 − a)/n);
    `gain`: `dlp.best_lambda_gain` (best λ > 0 against λ = 0, paired SE); `sweep`: the per-(λ, problem) scores
    of `dlp.extrapolation_sweep`, which the claim pairs by problem."""

    accuracy: pd.Series
    se: pd.Series
    n: int
    gain: dict
    metrics: dict
    gain_measured: dict
    sweep: pd.DataFrame


def extrapolation(m: Models, P: Params) -> Extrapolation:
    """`dlp.extrapolation_sweep` on `n_lambda` held-out problems for λ = `lambda_max` × `P.lambda_grid`."""
    lambdas = [P.lambda_max * f for f in P.lambda_grid]
    sweep = dlp.extrapolation_sweep(m.rl, m.base, m.tokenizer, held_out(P.n_lambda), lambdas, max_new_tokens=P.max_new_tokens)
    acc = sweep.groupby("lam")["score"].mean()
    gain = dlp.best_lambda_gain(sweep, ref=0.0)
    metrics = {"accuracy_vs_lambda": {float(k): float(v) for k, v in acc.items()}, "best_lambda": gain}
    measured = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in gain.items()}
    return Extrapolation(acc, np.sqrt(acc * (1 - acc) / P.n_lambda), P.n_lambda, gain, metrics, measured, sweep)


# --------------------------------------------------------------------------------------------- 4. reweighting
@dataclass
class ReweightingResult:
    """`runs`: one row per (variant, seed), seed-major, with `final_accuracy` (and `train_seconds`, wall time of
    the run); `curves`: one row per (variant, seed, step) with `eval_accuracy` (step 0 = the shared starting
    model, NaN between evaluations) and `reward_mean`; `start_accuracy`: the base's held-out accuracy."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    start_accuracy: float = float("nan")


def reweighting_comparison(base_model, tokenizer, task, *, seeds: Sequence[int], alpha: float = 0.2,
                           start_accuracy: float | None = None, progress: bool = False,
                           **config) -> ReweightingResult:
    """DAPO with and without the `low_prob` token weight, one run per seed each (arXiv 2603.22117), run by
    `compare_methods` (greedy held-out accuracy of `config["eval_n"]` problems every `config["eval_every"]` steps
    and after the last).

    The reweighted run uses Ã_t = [1 + α (1 − p_old(y_t))] · A_t (`workbench.rl.weights.low_prob`);
    everything else — config, seed, hence the first step's prompts — is shared, so runs pair by seed.

    Args:
        base_model: the starting policy (deep-copied for every run).
        seeds: one run per seed and variant.
        start_accuracy: if given, the step-0 rows of `curves` carry it instead of the measured base accuracy.
        **config: `RLConfig` fields shared by both variants (steps, num_prompts, lr, eval_every, eval_n, ...).
    """
    if not seeds:
        raise ValueError("reweighting_comparison needs at least one seed")
    config = dict(config)
    eval_every, eval_n = config.pop("eval_every", 0), config.pop("eval_n", RLConfig.eval_n)
    variants = {"dapo": {"method": "dapo", "token_weights": []},
                "dapo + low_prob": {"method": "dapo", "token_weights": [("low_prob", {"alpha": float(alpha)})]}}
    cmp = compare_methods(base_model, tokenizer, task, variants, [int(s) for s in seeds], common=config,
                          eval_every=eval_every, eval_n=eval_n, progress=progress, log=None)
    curves = cmp.curves.rename(columns={"run": "variant"}).reindex(columns=["variant", "seed", "step", "eval_accuracy",
                                                                             "reward_mean"])  # NaN: no such metric
    start = float(curves.loc[curves["step"] == 0, "eval_accuracy"].iloc[0])
    if start_accuracy is not None:
        curves.loc[curves["step"] == 0, "eval_accuracy"] = start_accuracy
    runs = (cmp.final.rename(columns={"run": "variant", "eval_accuracy": "final_accuracy", "seconds": "train_seconds"})
            .sort_values("seed", kind="stable")[["variant", "seed", "final_accuracy", "train_seconds"]]
            .round({"train_seconds": 1}).reset_index(drop=True))
    return ReweightingResult(runs=runs, curves=curves, start_accuracy=start)


@dataclass
class Reweighting:
    """The reweighting comparison with its summaries: `final` (mean, std, min, max, count of the final
    accuracy per variant), `bands` (`seed_bands` of eval_accuracy per variant) and the claim's `measured`."""

    result: ReweightingResult
    final: pd.DataFrame
    bands: pd.DataFrame
    eval_n: int
    metrics: dict
    measured: dict


def reweighting(m: Models, P: Params) -> Reweighting:
    """`reweighting_comparison` from the base for `rw_seeds` seeds (`seed`, `seed + 1`, …), α = `rw_alpha`,
    `rw_steps` DAPO steps at lr `rw_lr` with the preset's `rw_config`."""
    res = reweighting_comparison(m.base, m.tokenizer, arithmetic_task(tokenizer=m.tokenizer), seeds=[P.seed + i for i in range(P.rw_seeds)],
                                 alpha=P.rw_alpha, **{**P.rw_config, "steps": P.rw_steps, "lr": P.rw_lr,
                                                      "max_new_tokens": P.max_new_tokens})
    final = res.runs.groupby("variant")["final_accuracy"].agg(["mean", "std", "min", "max", "count"])
    metrics = {"reweighting_runs": res.runs.to_dict(orient="records"), "reweighting_start_accuracy": res.start_accuracy}
    measured = {name: {"mean": round(float(final.loc[name, "mean"]), 4), "std": round(float(np.nan_to_num(final.loc[name, "std"])), 4),
                       "seeds": int(final.loc[name, "count"])} for name in final.index}
    return Reweighting(res, final, seed_bands(res.curves, "eval_accuracy", by="variant"), P.rw_config["eval_n"], metrics,
                       measured)


# --------------------------------------------------------------------------------------------- claims
def record_claims(results, rep: Replacement, ext: Extrapolation, rw: Reweighting, P: Params) -> None:
    """The notebook's three claims with their verdicts: `delta_logp_claims.delta_logp_claims` (its docstring
    gives each claim's pairing and SESOI)."""
    delta_logp_claims.delta_logp_claims(results, rep, ext, rw, P)

