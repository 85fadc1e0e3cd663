"""The one held-out evaluator: greedy accuracy, mean@k and pass@k of any model on any `Task`.

    ev = evaluate(model, tokenizer, task, problems)                       # greedy
    ev.accuracy, ev.length, ev.truncated, ev.metrics["perception_accuracy"]
    ev = evaluate(model, tokenizer, task, problems, k=(1, 4, 32), temperature=1.0,
                  generator=torch.Generator().manual_seed(0))             # greedy + pass@k from 32 samples
    ev = evaluate(model, tokenizer, task, problems, greedy=False, samples=4,
                  generator=g)                                            # mean@4: accuracy over 4 samples each

Correctness is `task.is_correct(completion, problem)`. Length counts completion tokens with EOS.
`batch_size` is the number of *prompts* per `sample` call; the draws of a seeded generator depend on it,
so a caller that wants the numbers of an earlier run keeps its batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from workbench.utils import tqdm

from workbench.evaluation.passk import pass_at_k
from workbench.models.generation import Generation, encode_prompts, sample
from workbench.tasks.base import Task


@dataclass
class EvalResult:
    """What `evaluate` measured on `n` problems.

    Attributes:
        accuracy: greedy accuracy (or mean@`samples` with `greedy=False`).
        length: mean completion tokens (EOS included) of the completions behind `accuracy`.
        truncated: fraction of those completions that hit `max_new_tokens`.
        pass_at_k: {k: unbiased pass@k} from the sampled completions, when `k` was given.
        metrics: the task's `heldout_metrics` on the completions behind `accuracy`.
        completions, correct: per completion behind `accuracy` (problem-major; `samples` per problem).
        sampled_correct: number of correct samples per problem (when sampled).
    """

    accuracy: float
    n: int
    length: float = 0.0
    truncated: float = 0.0
    pass_at_k: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    completions: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    sampled_correct: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        """Every number as a flat dict: accuracy, length, truncated, pass@k, the task metrics."""
        return {"accuracy": self.accuracy, "length": self.length, "truncated": self.truncated,
                **{f"pass@{k}": v for k, v in self.pass_at_k.items()}, **self.metrics}


def generate_completions(model, tokenizer, task: Task, problems: Sequence, *, num_samples: int = 1,
                         max_new_tokens: int = 64, temperature: float = 1.0, top_p: float = 1.0,
                         generator: torch.Generator | None = None, greedy: bool = False) -> tuple[Generation, list | None]:
    """Prompt `task` for each problem and sample `num_samples` completions each (rows problem-major).

    Returns:
        (the `Generation`, per-row extra model inputs such as images, or None for text-only tasks).
    """
    prompts = [task.prompt(p) for p in problems]
    device = next(model.parameters()).device
    row_inputs = None
    if task.encode is not None:
        ids, mask, per_prompt = task.encode(tokenizer, problems, prompts)
        row_inputs = [dict(r) for r in per_prompt for _ in range(num_samples)] if per_prompt else None
        extra = {k: torch.cat([r[k] for r in per_prompt], 0).to(device) for k in per_prompt[0]} if per_prompt else {}
    else:
        ids, mask = encode_prompts(tokenizer, prompts, device)
        extra = {}
    gen = sample(model, tokenizer, input_ids=ids, attention_mask=mask, num_samples=num_samples,
                 max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, generator=generator,
                 greedy=greedy, **extra)
    return gen, row_inputs


@torch.no_grad()
def evaluate(model, tokenizer, task: Task, problems: Sequence, *, greedy: bool = True, samples: int = 0,
             k: Sequence[int] = (), max_new_tokens: int = 64, temperature: float = 1.0,
             generator: torch.Generator | None = None, batch_size: int = 128, sample_batch_size: int | None = None,
             progress: bool = False) -> EvalResult:
    """Held-out accuracy of `model` on `problems` of `task`.

    Args:
        greedy: decode each problem greedily; `accuracy` is then the greedy accuracy.
        samples: completions sampled per problem at `temperature` (default max(k) when `k` is given).
            With `greedy=False`, `accuracy` is their mean (mean@samples).
        k: pass@k values to report from the samples (each k ≤ samples).
        generator: seeded CPU generator of the samples (None: torch's global RNG).
        batch_size: prompts per greedy `sample` call; `sample_batch_size` prompts per sampled call (default
            `batch_size`).

    Returns:
        an `EvalResult`. Raises ValueError on an empty problem list or a k above the samples drawn.
    """
    if len(problems) == 0:
        raise ValueError("evaluate got an empty list of problems")
    if samples < 0:
        raise ValueError(f"samples must be >= 0, got {samples}")
    samples = samples or (max(k) if k else 0)
    if not greedy and not samples:
        raise ValueError("evaluate needs greedy=True or samples > 0")
    if k and max(k) > samples:
        raise ValueError(f"pass@k needs k <= samples, got k={max(k)} with {samples} samples")
    was_training = model.training
    model.eval()
    try:
        runs = ([(1, True, batch_size)] if greedy else []) + ([(samples, False, sample_batch_size or batch_size)] if samples else [])
        passes = []
        for n, is_greedy, step in runs:
            texts, hits, tokens, truncated = [], [], 0, 0
            chunks = range(0, len(problems), max(1, step))
            for i in tqdm(chunks, desc="eval greedy" if is_greedy else f"eval {n} samples", leave=False, disable=not progress):
                chunk = problems[i : i + max(1, step)]
                gen, _ = generate_completions(model, tokenizer, task, chunk, num_samples=n, max_new_tokens=max_new_tokens,
                                              temperature=1.0 if is_greedy else temperature, generator=None if is_greedy else generator,
                                              greedy=is_greedy)
                texts += gen.texts
                hits += [task.is_correct(t, chunk[j // n]) for j, t in enumerate(gen.texts)]
                tokens += int(gen.completion_mask.sum())
                truncated += int(gen.truncated.sum())
            passes.append((n, texts, hits, tokens, truncated))
    finally:
        model.train(was_training)
    n, texts, hits, tokens, truncated = passes[0]
    rows = [p for p in problems for _ in range(n)]
    result = EvalResult(accuracy=sum(hits) / len(hits), n=len(problems), length=tokens / len(hits),
                        truncated=truncated / len(hits), completions=texts, correct=hits,
                        metrics=dict(task.heldout_metrics(texts, rows)) if task.heldout_metrics else {})
    if samples:
        n_s, _, s_hits, _, _ = passes[-1]
        result.sampled_correct = [sum(s_hits[j * n_s : (j + 1) * n_s]) for j in range(len(problems))]
        result.pass_at_k = {kk: sum(pass_at_k(n_s, c, kk) for c in result.sampled_correct) / len(problems) for kk in k}
    return result
