"""The one multi-seed comparison loop of the RL notebooks: run, evaluate, tabulate — the notebook only plots.

    cmp = compare_methods(base, tok, task, {"DAPO": dict(method="dapo"), "FIPO": dict(method="fipo")},
                          seeds=[0, 1, 2], common=dict(steps=30, num_prompts=16), eval_every=10, eval_n=100)
    cmp.curves            # tidy DataFrame: one row per (run, method, seed, step), training + held-out metrics
    seed_bands(cmp.curves, "eval_accuracy")   # mean and min/max over seeds per (run, step)

Every run starts from a fresh copy of the same base, so the methods differ only in their config and
runs pair by seed. Held-out evaluation (`evaluation.evaluate`) is greedy and also records the mean
response length (tokens, EOS included), the quantity FIPO (arXiv 2603.19835) claims to grow.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from workbench.evaluation import evaluate
from workbench.rl import RLConfig, train
from workbench.tasks.base import Task
from workbench.utils import seeded_generator


def evaluate_heldout(model, tokenizer, task: Task, problems: list, *, samples: int = 0, max_new_tokens: int = 64,
                     batch_size: int = 128, seed: int = 0) -> dict:
    """`evaluation.evaluate` as the comparison records it: greedy when `samples` = 0, else mean@samples at
    temperature 1 (FIPO's avg@k) from a generator seeded by (seed, 4242), `batch_size // samples` prompts a call.

    Returns:
        {"accuracy", "length", "truncated", every `task.heldout_metrics` entry, "texts"}.
    """
    if samples < 0:
        raise ValueError(f"samples must be >= 0 (0 = greedy), got {samples}")
    ev = evaluate(model, tokenizer, task, problems, greedy=not samples, samples=samples, max_new_tokens=max_new_tokens,
                  generator=seeded_generator(seed, 4242) if samples else None, batch_size=batch_size,
                  sample_batch_size=max(1, batch_size // max(samples, 1)))
    return {"accuracy": ev.accuracy, "length": ev.length, "truncated": ev.truncated, **ev.metrics, "texts": ev.completions}


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


def compare_methods(base, tokenizer, task: Task, runs: dict[str, dict], seeds: Sequence[int], *,
                    common: dict | None = None, eval_every: int = 10, eval_n: int = 100, eval_samples: int = 0,
                    eval_max_new_tokens: int = 64, snapshot_step: int | None = None,
                    snapshot_runs: Sequence[str] = (), progress: bool = False, log=print) -> Comparison:
    """Train a fresh copy of `base` for every (run, seed) and collect tidy per-step metrics.

    Args:
        base: the starting policy (left untouched); tokenizer: its tokenizer.
        task: the `Task` (its `eval_problems(eval_n)` is the held-out set).
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
