"""Reward functions are plain callables ``fn(completion: str, problem) -> float``; several combine
with weights, and DAPO's overlong shaping adds a length penalty.

    r_i = Σ_k w_k · fn_k(completion_i, problem_i)  (+ overlong_penalty(L_i))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

RewardFn = Callable[[str, object], float]


@dataclass(frozen=True)
class RewardSpec:
    """A named reward function and its weight in the sum."""

    name: str
    fn: RewardFn
    weight: float = 1.0


def as_reward_specs(rewards) -> list[RewardSpec]:
    """Accept a callable, a list of callables / `RewardSpec` / (name, fn, weight) tuples, or a dict name -> fn."""
    if callable(rewards):
        rewards = [rewards]
    if isinstance(rewards, dict):
        rewards = [RewardSpec(k, v) for k, v in rewards.items()]
    specs = []
    for r in rewards:
        if isinstance(r, RewardSpec):
            specs.append(r)
        elif callable(r):
            specs.append(RewardSpec(getattr(r, "__name__", "reward"), r))
        elif isinstance(r, tuple) and len(r) in (2, 3) and callable(r[1]):
            specs.append(RewardSpec(r[0], r[1], float(r[2]) if len(r) == 3 else 1.0))
        else:
            raise ValueError(f"reward {r!r} is neither a callable, a RewardSpec nor a (name, fn, weight) tuple")
    if not specs:
        raise ValueError("at least one reward function is needed")
    return specs


def score_completions(specs: Sequence[RewardSpec], completions: Sequence[str], problems: Sequence) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rewards [N] (weighted sum) and each part [N] by name. A reward that raises or returns a
    non-finite value fails with a message naming it and the completion."""
    parts = {}
    for spec in specs:
        values = []
        for c, p in zip(completions, problems):
            try:
                v = float(spec.fn(c, p))
            except Exception as e:
                raise RuntimeError(f"reward function {spec.name!r} raised {type(e).__name__}: {e} on completion {c[:60]!r}") from e
            if not math.isfinite(v):
                raise ValueError(f"reward function {spec.name!r} returned {v} on completion {c[:60]!r}")
            values.append(v)
        parts[spec.name] = torch.tensor(values, dtype=torch.float32)
    total = sum(spec.weight * parts[spec.name] for spec in specs)
    return total, parts


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), lengths [N] -> penalty [N] ≤ 0:

        0                                   if L ≤ L_max − L_cache
        ((L_max − L_cache) − L) / L_cache   if L_max − L_cache < L ≤ L_max
        −1                                  if L > L_max
    scaled by `factor`."""
    if buffer <= 0 or buffer > max_len:
        raise ValueError(f"overlong buffer must be in (0, max_len={max_len}], got {buffer}")
    L = lengths.float()
    start = max_len - buffer
    pen = torch.where(L <= start, torch.zeros_like(L), (start - L) / buffer)
    return factor * torch.where(L > max_len, torch.full_like(L, -1.0), pen)
