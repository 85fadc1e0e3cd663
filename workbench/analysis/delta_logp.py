"""The analyses of the Δlog p paper (arXiv 2603.22117) as plain functions over held-out problems.

`workbench.experiments.delta_logp` runs them (and the DAPO ± low_prob reweighting comparison) for
notebook `01_delta_logp`:

- `rollout_token_stats`: sample from the RL model, score every response token under both models
  (Δlog p_t = log π_RL(y_t) − log π_base(y_t), entropies, KL, JS) and label its kind;
- `replacement_experiment` + `reach_budgets`: base decodes, RL tokens substituted at the
  positions a selector ranks first; the budget each selector needs to reach the RL accuracy;
- `extrapolation_sweep` + `best_lambda_gain`: accuracy of log π̃ = log π_RL + λ (log π_RL − log π_base)
  for a grid of λ, and the paired gain of the best λ > 0 over λ = 0.

A problem is any object with `.question` and `.answer` (e.g. `workbench.tasks.arithmetic`); the
default score is the arithmetic exact-match reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from workbench.analysis.extrapolation import extrapolated_generate
from workbench.analysis.replacement import ReplacementCurve, replacement_curve
from workbench.analysis.token_stats import token_stats_frame
from workbench.models.generation import encode_prompts, sample
from workbench.models.tokenizer import format_prompt
from workbench.tasks import arithmetic

ScoreFn = Callable[[Any, str], float]


def exact_match(problem, text: str) -> float:
    """1.0 if the last `answer: N` of `text` equals `problem.answer`, else 0.0."""
    return arithmetic.reward(text, problem.answer)


def _device(model) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------- token kinds
def arithmetic_token_kinds(tokens: Sequence[str]) -> list[str]:
    """Label each token of one arithmetic response by its role in the chain of thought.

    Lines look like `7+3=10` and end with `answer: 16`. Kinds: `operand` (digits before `=`),
    `operator` (`+ - *` before `=`), `equals`, `result` (digits and sign after `=`: the computed
    value), `answer` (digits and sign after `answer:`), `answer text` (the words `answer:`),
    `newline`, `end` (special tokens such as EOS) and `other`.

    Args:
        tokens: [T] token strings of one response, in order.
    Returns:
        [T] kinds.
    """
    kinds, line = [], ""
    for tok in tokens:
        t = str(tok)
        s = t.strip()
        if t.startswith("<|") and t.endswith("|>"):
            kind = "end"
        elif "\n" in t:
            kind = "newline"
        elif any(c.isalpha() or c == ":" for c in s) or (not s and "answer" in line):
            kind = "answer text"
        elif s and all(c.isdigit() or c == "-" for c in s) and "answer" in line:
            kind = "answer"
        elif s == "=":
            kind = "equals"
        elif s and (s.isdigit() or (s == "-" and ("=" in line or not line))):  # a sign of a result or line-start operand
            kind = "result" if "=" in line else "operand"
        elif s and all(c in "+-*/" for c in s):
            kind = "operator"
        else:
            kind = "other"
        kinds.append(kind)
        line = t.rsplit("\n", 1)[1] if "\n" in t else line + t
    return kinds


# --------------------------------------------------------------------------------------------- 1. statistics
@dataclass
class RolloutStats:
    """RL-model rollouts scored under both models.

    `frame`: one row per response token (columns of `token_stats_frame` with names ("rl", "base"),
    plus `abs_delta_logp`, `step` (index within the response), `kind`, `correct`, `question`);
    `texts`: the N sampled responses; `correct`: [N] bools; `problems`: the N problems (a problem
    repeated `num_samples` times, consecutively).
    """

    frame: pd.DataFrame
    texts: list[str]
    correct: list[bool]
    problems: list


def rollout_token_stats(rl_model, base_model, tokenizer, problems: Sequence, *, num_samples: int = 1,
                        temperature: float = 1.0, max_new_tokens: int = 48, seed: int = 0,
                        score_fn: ScoreFn = exact_match, kinds: Callable[[Sequence[str]], list[str]] =
                        arithmetic_token_kinds, chunk_size: int | None = 256) -> RolloutStats:
    """Sample responses from the RL model and score every response token under both models (arXiv 2603.22117).

    Per token: Δlog p_t = log π_RL(y_t | y_<t) − log π_base(y_t | y_<t), the entropies of both
    next-token distributions, KL(π_RL ‖ π_base) and JS (see `workbench.analysis.token_stats`).

    Args:
        rl_model, base_model: causal LMs sharing `tokenizer`'s vocabulary.
        problems: held-out problems (`.question`, `.answer`).
        num_samples: responses per problem; temperature: sampling temperature (seeded by `seed`).
        kinds: labels the tokens of one response (default: `arithmetic_token_kinds`).
    Returns:
        RolloutStats.
    """
    if len(problems) == 0:
        raise ValueError("rollout_token_stats got no problems")
    gen = sample(rl_model, tokenizer, [format_prompt(p.question, tokenizer) for p in problems], num_samples=num_samples,
                 temperature=temperature, max_new_tokens=max_new_tokens, generator=torch.Generator().manual_seed(seed))
    rows = [p for p in problems for _ in range(num_samples)]
    ids = torch.cat([gen.prompt_ids, gen.completion_ids], 1)  # [N, P + T]: left pads, prompt, response, right pads
    mask = torch.cat([gen.prompt_mask, gen.completion_mask], 1)
    response = torch.cat([torch.zeros_like(gen.prompt_mask), gen.completion_mask], 1)
    frame = token_stats_frame(rl_model, ids.to(_device(rl_model)), mask.to(_device(rl_model)), model_b=base_model,
                              response_mask=response, tokenizer=tokenizer, names=("rl", "base"), chunk_size=chunk_size)
    correct = [score_fn(p, t) >= 1.0 for p, t in zip(rows, gen.texts)]
    frame["abs_delta_logp"] = frame["delta_logp"].abs()
    frame["step"] = frame.groupby("seq_id").cumcount()
    frame["kind"] = frame.groupby("seq_id", sort=False)["token"].transform(lambda s: kinds(s.tolist()))
    frame["correct"] = frame["seq_id"].map(lambda i: "correct" if correct[i] else "wrong")
    frame["question"] = frame["seq_id"].map(lambda i: rows[i].question)
    return RolloutStats(frame=frame, texts=list(gen.texts), correct=correct, problems=rows)


def concentration(values: np.ndarray, top_frac: float = 0.05) -> float:
    """Share of Σ|v| carried by the top `top_frac` of entries by |v| (1 = all mass in the top; `top_frac` = uniform).

    Args:
        values: [N] numbers (non-finite entries dropped).
    Returns:
        share in [0, 1] (NaN when there is no mass).
    """
    a = np.abs(np.asarray(values, dtype=float))
    a = np.sort(a[np.isfinite(a)])[::-1]
    total = a.sum()
    if a.size == 0 or total == 0:
        return float("nan")
    k = max(1, math.ceil(top_frac * a.size))
    return float(a[:k].sum() / total)


# --------------------------------------------------------------------------------------------- 2. replacement
def replacement_experiment(base_model, rl_model, tokenizer, problems: Sequence, *, budgets: Sequence[float],
                           selectors: Sequence[str] = ("delta_logp", "entropy", "kl", "js", "random"),
                           seeds: Sequence[int] = (0, 1, 2), max_new_tokens: int = 48, batch_size: int = 64,
                           score_fn: ScoreFn = exact_match) -> ReplacementCurve:
    """Base decodes greedily; at the positions a selector ranks first, the RL model's token is taken (arXiv 2603.22117).

    Seed s gets its own disjoint shard of `problems` (and its own draw of the `random` selector),
    so the spread over seeds is the spread over prompt samples. Budget 0 is the base model's
    greedy decode, budget 1 the RL model's.

    Args:
        base_model, rl_model: causal LMs (model A and model B of `replacement_curve`).
        problems: held-out problems, split into len(seeds) shards.
        budgets: fractions of the base decode's positions to replace, in [0, 1].
    Returns:
        ReplacementCurve; `per_prompt.prompt_index` indexes `problems`.
    """
    if len(problems) < len(seeds):
        raise ValueError(f"need at least one problem per seed: {len(problems)} problems for {len(seeds)} seeds")
    shards = np.array_split(np.arange(len(problems)), len(seeds))
    per_prompt, summary = [], []
    for seed, shard in zip(seeds, shards):
        chosen = [problems[i] for i in shard]
        ids, mask = encode_prompts(tokenizer, [format_prompt(p.question, tokenizer) for p in chosen], _device(base_model))
        curve = replacement_curve(base_model, rl_model, ids, mask, tokenizer=tokenizer,
                                  score_fn=lambda i, text, chosen=chosen: score_fn(chosen[i], text), budgets=budgets,
                                  selectors=selectors, seeds=(seed,), max_new_tokens=max_new_tokens,
                                  batch_size=batch_size)
        curve.per_prompt["prompt_index"] = curve.per_prompt["prompt_index"].map(lambda i, shard=shard: int(shard[i]))
        per_prompt.append(curve.per_prompt)
        summary.append(curve.summary)
    return ReplacementCurve(per_prompt=pd.concat(per_prompt, ignore_index=True),
                            summary=pd.concat(summary, ignore_index=True))


def reach_budgets(summary: pd.DataFrame, target: float, tol: float = 1e-9) -> pd.Series:
    """Budget at which each selector's seed-mean accuracy first reaches `target`, linearly interpolated.

    With budgets b_0 < b_1 < … and mean accuracies a_j, the first j with a_j ≥ target gives
    b = b_{j−1} + (target − a_{j−1}) / (a_j − a_{j−1}) · (b_j − b_{j−1}) (b_0 if j = 0), so
    selectors that hit the same grid point are still told apart.

    Args:
        summary: `ReplacementCurve.summary` (columns selector, budget, seed, accuracy).
        target: accuracy to reach, e.g. the RL model's (the budget-1 accuracy).
    Returns:
        Series indexed by selector (NaN if it never reaches `target`).
    """
    mean = summary.groupby(["selector", "budget"], sort=False)["accuracy"].mean()
    out = {}
    for name in pd.unique(summary["selector"]):
        curve = mean.loc[name].sort_index()
        b, a = curve.index.to_numpy(dtype=float), curve.to_numpy(dtype=float)
        hit = np.nonzero(a >= target - tol)[0]
        if hit.size == 0:
            out[name] = float("nan")
        elif hit[0] == 0:
            out[name] = float(b[0])
        else:
            j = hit[0]
            out[name] = float(b[j - 1] + (target - a[j - 1]) / (a[j] - a[j - 1]) * (b[j] - b[j - 1]))
    return pd.Series(out, name="budget_to_reach")


# --------------------------------------------------------------------------------------------- 3. extrapolation
def extrapolation_sweep(rl_model, base_model, tokenizer, problems: Sequence, lams: Sequence[float], *,
                        max_new_tokens: int = 48, batch_size: int = 128,
                        score_fn: ScoreFn = exact_match) -> pd.DataFrame:
    """Greedy accuracy of extrapolated decoding log π̃ = log π_RL + λ (log π_RL − log π_base) per λ (arXiv 2603.22117).

    Args:
        rl_model, base_model: causal LMs in lockstep (`extrapolated_generate`); λ = 0 is the RL model.
        problems: held-out problems; lams: the λ grid.
    Returns:
        DataFrame with one row per (lam, problem_index): score, length (generated tokens).
    """
    rows = []
    for lam in lams:
        for start in range(0, len(problems), batch_size):
            chunk = problems[start:start + batch_size]
            ids, mask = encode_prompts(tokenizer, [format_prompt(p.question, tokenizer) for p in chunk], _device(rl_model))
            out = extrapolated_generate(rl_model, base_model, ids, mask, lam=float(lam), max_new_tokens=max_new_tokens,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            for b, p in enumerate(chunk):
                n = int(out.lengths[b])
                text = tokenizer.decode(out.new_tokens[b, :n].tolist(), skip_special_tokens=True)
                rows.append({"lam": float(lam), "problem_index": start + b, "score": float(score_fn(p, text)),
                             "length": n})
    return pd.DataFrame(rows)


def best_lambda_gain(per_problem: pd.DataFrame, ref: float = 0.0) -> dict:
    """The best λ ≠ `ref` by mean score, its gain over λ = `ref`, and the paired standard error of that gain.

    SE = std(s_λ − s_ref) / √n over the n problems both were scored on (paired: same prompts).

    Args:
        per_problem: `extrapolation_sweep` output.
    Returns:
        {"best_lam", "best_accuracy", "ref_accuracy", "gain", "paired_se", "n"}.
    """
    acc = per_problem.groupby("lam")["score"].mean()
    if ref not in acc.index or len(acc) < 2:
        raise ValueError(f"the sweep needs λ = {ref} and at least one other λ, got {list(acc.index)}")
    others = acc.drop(ref)
    best = float(others.idxmax())
    wide = per_problem.pivot(index="problem_index", columns="lam", values="score")
    diff = (wide[best] - wide[ref]).to_numpy(dtype=float)
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return {"best_lam": best, "best_accuracy": float(others.max()), "ref_accuracy": float(acc[ref]),
            "gain": float(others.max() - acc[ref]), "paired_se": se, "n": int(diff.size)}
