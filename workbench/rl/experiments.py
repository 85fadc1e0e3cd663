"""Multi-seed method comparisons for the RL notebooks: run, evaluate, tabulate — the notebook only plots.

    cmp = compare_methods(base, tok, task, {"DAPO": dict(method="dapo"), "FIPO": dict(method="fipo")},
                          seeds=[0, 1, 2], common=dict(steps=30, num_prompts=16), eval_every=10, eval_n=100)
    cmp.curves            # tidy DataFrame: one row per (run, method, seed, step), training + held-out metrics
    seed_bands(cmp.curves, "eval_accuracy")   # mean and min/max over seeds per (run, step)

Every run starts from a fresh copy of the same base, so the methods differ only in their config.
Held-out evaluation is greedy and also records the mean response length (tokens, EOS included), the
quantity FIPO (arXiv 2603.19835) claims to grow. `future_kl_view` recomputes the future-KL weights
of a rollout between two snapshots of a run (the policy before a step = π_old, after it = π_θ).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
import torch

from workbench.models.tokenizer import token_strings
from workbench.rl.advantages import compute_advantages
from workbench.rl.rollout import RLTask, generate_group
from workbench.rl.trainer import RLConfig, score_rollout, seeded_generator, train
from workbench.rl.weights import WeightContext, compose_token_weights


@torch.no_grad()
def evaluate_heldout(model, tokenizer, task: RLTask, problems: list, *, samples: int = 0, max_new_tokens: int = 64,
                     batch_size: int = 128, seed: int = 0) -> dict:
    """Held-out accuracy and mean response length of `model` on `problems`: greedy when `samples` = 0,
    else the mean over `samples` completions per problem at temperature 1 (mean@k, as FIPO reports avg@k).

    Returns:
        {"accuracy": fraction correct (`task.correct`), "length": mean completion tokens (EOS
        included), "truncated": fraction that hit `max_new_tokens`, every `task.heldout_metrics`
        entry, "texts": the completions}.
    """
    if not problems:
        raise ValueError("evaluate_heldout got an empty list of problems")
    if samples < 0:
        raise ValueError(f"samples must be >= 0 (0 = greedy), got {samples}")
    correct = task.correct or (lambda c, p: sum(s.weight * s.fn(c, p) for s in task.rewards) >= 1.0)
    k = max(samples, 1)
    generator = seeded_generator(seed, 4242) if samples else None
    hits, tokens, truncated, texts = 0, 0, 0, []
    was_training = model.training
    model.eval()
    step = max(1, batch_size // k)
    for i in range(0, len(problems), step):
        chunk = problems[i : i + step]
        ro = generate_group(model, tokenizer, task, chunk, num_generations=k, max_new_tokens=max_new_tokens,
                            temperature=1.0, top_p=1.0, generator=generator, greedy=not samples)
        hits += sum(bool(correct(t, p)) for t, p in zip(ro.texts, ro.problems))
        tokens += int(ro.completion_mask.sum())
        truncated += int(ro.truncated.sum())
        texts += ro.texts
    model.train(was_training)
    n = len(problems) * k
    extra = task.heldout_metrics(texts, [p for p in problems for _ in range(k)]) if task.heldout_metrics else {}
    return {"accuracy": hits / n, "length": tokens / n, "truncated": truncated / n, **extra, "texts": texts}


@dataclass
class Comparison:
    """What `compare_methods` returns.

    Attributes:
        curves: one row per (run, method, seed, step); step 0 is the base model. Columns: the trainer's
            per-step metrics (reward_mean, response_length, entropy, clip fractions, weight_mean, ...)
            and, on evaluation steps, `eval_accuracy`, `eval_length`, `eval_truncated` (and `eval_<name>`
            for each of the task's `heldout_metrics`).
        final: one row per (run, seed): the last evaluation and the wall time of the run.
        snapshots: {(run, seed): (state_dict before step k, state_dict after step k)} when asked.
        configs: {run: the RLConfig of its first seed, as a dict}.
    """

    curves: pd.DataFrame
    final: pd.DataFrame
    snapshots: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)


def compare_methods(base, tokenizer, task: RLTask, runs: dict[str, dict], seeds: Sequence[int], *,
                    common: dict | None = None, eval_every: int = 10, eval_n: int = 100, eval_samples: int = 0,
                    eval_max_new_tokens: int = 64, snapshot_step: int | None = None,
                    snapshot_runs: Sequence[str] = (), progress: bool = False, log=print) -> Comparison:
    """Train a fresh copy of `base` for every (run, seed) and collect tidy per-step metrics.

    Args:
        base: the starting policy (left untouched); tokenizer: its tokenizer.
        task: the `RLTask` (its `eval_problems(eval_n)` is the held-out set).
        runs: {label: {"method": preset name of `RLConfig.for_method`, **RLConfig overrides}}, e.g.
            ``{"FIPO τ=8": {"method": "fipo", "token_weights": [("future_kl", {"decay_rate": 8})]}}``.
        seeds: RL seeds (prompts, sampling, shuffling); each run uses all of them.
        common: RLConfig overrides shared by every run (steps, num_prompts, lr, ...), applied first.
        eval_every: held-out evaluation every k steps (and at the last step); 0 = only at the end.
        eval_n: held-out problems per evaluation.
        eval_samples: 0 = greedy held-out accuracy; k > 0 = mean over k samples at temperature 1.
        snapshot_step: for (run in `snapshot_runs`, first seed) keep the policy before and after this
            step (state dicts on the CPU), for `future_kl_view`.
        progress: show the trainer's tqdm bar.
        log: called with one line per finished run (None = silent).

    Returns:
        a `Comparison`.
    """
    if not runs:
        raise ValueError("compare_methods needs at least one run, got an empty dict")
    if not seeds:
        raise ValueError("compare_methods needs at least one seed, got none")
    problems = task.eval_problems(eval_n) if task.eval_problems else []
    if not problems:
        raise ValueError(f"task {task.name!r} has no held-out problems to evaluate on")
    base_eval = evaluate_heldout(base, tokenizer, task, problems, samples=eval_samples, max_new_tokens=eval_max_new_tokens)
    rows, finals, snapshots, configs = [], [], {}, {}
    for label, spec in runs.items():
        spec = dict(spec)
        method = spec.pop("method", None)
        if method is None:
            raise ValueError(f"run {label!r} must name a 'method' (a preset of RLConfig.for_method)")
        for seed in seeds:
            cfg = RLConfig.for_method(method, **{**(common or {}), **spec, "seed": seed, "eval_every": 0,
                                                 "progress": progress})
            configs.setdefault(label, dataclasses.asdict(cfg))
            policy = copy.deepcopy(base).train()
            keep = snapshot_step is not None and label in snapshot_runs and seed == seeds[0]
            before: dict[str, Any] = {}
            base_row = {"run": label, "method": method, "seed": seed, "step": 0, **_eval_columns(base_eval)}
            rows.append(base_row)
            if keep and snapshot_step == 1:
                before["state"] = _cpu_state(policy)

            def on_step(m: dict, policy=policy, label=label, method=method, seed=seed, cfg=cfg, keep=keep, before=before):
                row = {"run": label, "method": method, "seed": seed, **m}
                step = m["step"]
                if (eval_every and step % eval_every == 0) or step == cfg.steps:
                    ev = evaluate_heldout(policy, tokenizer, task, problems, samples=eval_samples,
                                          max_new_tokens=eval_max_new_tokens)
                    row.update(_eval_columns(ev))
                rows.append(row)
                if keep and step == snapshot_step - 1:
                    before["state"] = _cpu_state(policy)
                if keep and step == snapshot_step:
                    snapshots[(label, seed)] = (before["state"], _cpu_state(policy))

            t0 = time.time()
            train(policy, tokenizer, task, cfg, on_step=on_step)
            seconds = time.time() - t0
            last = rows[-1]
            last_eval = {k: v for k, v in last.items() if k.startswith("eval_")}
            base_cols = {"base_" + k[len("eval_"):]: v for k, v in _eval_columns(base_eval).items()}
            finals.append({"run": label, "method": method, "seed": seed, **last_eval, **base_cols, "seconds": seconds})
            if log:
                log(f"{label} seed {seed}: held-out accuracy {base_eval['accuracy']:.1%} -> {last['eval_accuracy']:.1%}, "
                    f"length {base_eval['length']:.1f} -> {last['eval_length']:.1f} tokens ({seconds:.0f} s)")
    return Comparison(curves=pd.DataFrame(rows), final=pd.DataFrame(finals), snapshots=snapshots, configs=configs)


def _eval_columns(ev: dict) -> dict:
    """`evaluate_heldout` output as `eval_<name>` columns (every number, texts left out)."""
    return {f"eval_{k}": v for k, v in ev.items() if k != "texts"}


def _cpu_state(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def seed_bands(curves: pd.DataFrame, metric: str, by: str = "run") -> pd.DataFrame:
    """Mean, standard deviation, min and max of `metric` over seeds, per (`by`, step), rows with the metric only.

    Returns:
        DataFrame with columns [by, "step", "mean", "std", "lo", "hi", "n"] (std 0 for a single seed).
    """
    if metric not in curves.columns:
        raise ValueError(f"metric {metric!r} is not a column of the curves; known: {', '.join(map(str, curves.columns))}")
    d = curves.dropna(subset=[metric])
    g = d.groupby([by, "step"])[metric]
    out = g.agg(mean="mean", std="std", lo="min", hi="max", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def compare_final(final: pd.DataFrame, metric: str, treatment: str, control: str) -> dict:
    """Difference of the seed means of `metric` (treatment − control) and its standard error.

    se = sqrt(s_t² / n_t + s_c² / n_c) with sample standard deviations over seeds (0 for one seed).
    `clear` is True when the difference is positive and larger than se (a one-σ margin).
    """
    vals = {}
    for name in (treatment, control):
        v = final.loc[final["run"] == name, metric].astype(float)
        if v.empty:
            raise ValueError(f"run {name!r} has no final rows; known runs: {', '.join(final['run'].unique())}")
        vals[name] = v
    t, c = vals[treatment], vals[control]
    sd = lambda v: float(v.std()) if len(v) > 1 else 0.0  # noqa: E731
    se = math.sqrt(sd(t) ** 2 / len(t) + sd(c) ** 2 / len(c))
    diff = float(t.mean() - c.mean())
    return {treatment: round(float(t.mean()), 4), control: round(float(c.mean()), 4), "diff": round(diff, 4),
            "se": round(se, 4), "per_seed": {treatment: [round(x, 4) for x in t], control: [round(x, 4) for x in c]},
            "clear": bool(diff > 0 and diff > se)}


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
def future_kl_view(old_policy, new_policy, tokenizer, task: RLTask, *, num_prompts: int = 8, num_generations: int = 8,
                   max_new_tokens: int = 64, decay_rates: Sequence[float] = (32.0,), seed: int = 0,
                   weight_kwargs: dict | None = None) -> FutureKLView:
    """Sample a rollout from `old_policy` and weigh its tokens with FIPO's future-KL (arXiv 2603.19835).

    Δ_t = log π_new(y_t) − log π_old(y_t); f_t = `future_kl` weight (registry) for each decay rate,
    with GRPO advantages of the rollout's exact-match rewards (the safety clamp needs their sign).

    Returns:
        a `FutureKLView`.
    """
    import random

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
