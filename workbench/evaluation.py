"""Held-out evaluation of any model on any task: greedy accuracy and pass@k.

pass@k uses the unbiased estimator of Chen et al. (arXiv 2107.03374) from n ≥ k samples per problem:
    pass@k = 1 − C(n − c, k) / C(n, k),   c = number of correct samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from workbench.models.generation import sample
from workbench.models.tokenizer import format_prompt


@dataclass
class EvalResult:
    """`accuracy`: mean greedy reward ≥ 1 (exact); `pass_at_k`: {k: value} when sampled;
    `completions`/`correct`: per problem (greedy)."""

    accuracy: float
    n: int
    pass_at_k: dict[int, float] = field(default_factory=dict)
    completions: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `c` correct out of `n` samples."""
    if k > n:
        raise ValueError(f"pass@k needs k <= n samples, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def evaluate(
    model,
    tokenizer,
    problems: Sequence,
    reward_fn: Callable[[str, object], float],
    *,
    prompt_fn: Callable[[object], str] = lambda p: format_prompt(p.question),
    batch_size: int = 128,
    max_new_tokens: int = 64,
    k: Sequence[int] = (),
    n_samples: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Greedy accuracy (reward ≥ 1 counts as correct) and, if `k` is given, pass@k from `n_samples`
    sampled completions per problem (default `max(k)`). `reward_fn(completion, problem.answer)`."""
    if len(problems) == 0:
        raise ValueError("evaluate got an empty list of problems")
    completions, correct = [], []
    chunks = range(0, len(problems), batch_size)
    for i in tqdm(chunks, desc="eval greedy", leave=False, disable=not progress):
        chunk = problems[i : i + batch_size]
        gen = sample(model, tokenizer, [prompt_fn(p) for p in chunk], greedy=True, max_new_tokens=max_new_tokens)
        completions += gen.texts
        correct += [reward_fn(t, p.answer) >= 1.0 for t, p in zip(gen.texts, chunk)]
    result = EvalResult(accuracy=sum(correct) / len(correct), n=len(problems), completions=completions, correct=correct)
    if k:
        n = n_samples or max(k)
        g = torch.Generator().manual_seed(seed)
        counts = []
        for i in tqdm(chunks, desc=f"eval pass@{max(k)}", leave=False, disable=not progress):
            chunk = problems[i : i + batch_size]
            gen = sample(model, tokenizer, [prompt_fn(p) for p in chunk], num_samples=n, temperature=temperature,
                         max_new_tokens=max_new_tokens, generator=g)
            for j, p in enumerate(chunk):
                counts.append(sum(reward_fn(t, p.answer) >= 1.0 for t in gen.texts[j * n : (j + 1) * n]))
        result.pass_at_k = {kk: sum(pass_at_k(n, c, kk) for c in counts) / len(counts) for kk in k}
    return result
