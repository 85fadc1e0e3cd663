"""Rewards: per-completion callables ``fn(completion: str, problem) -> float`` and group rewards
``fn(completions of one prompt, problem) -> one float per completion``, combined with weights; DAPO's
overlong shaping adds a length penalty.

    r_i = Σ_k w_k · fn_k(completion_i, problem_i) + Σ_m w_m · g_m(group(i))[i]   (+ overlong_penalty(L_i))

A group reward sees every completion of a prompt at once, so it can rank them against each other
(pairwise comparisons, REACT arXiv 2601.04033).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from workbench.tasks.base import GroupRewardSpec, RewardFn, RewardSpec  # noqa: F401  (re-exported)


def as_reward_specs(rewards) -> list[RewardSpec]:
    """Accept a callable, a list of callables / `RewardSpec` / (name, fn, weight) tuples, or a dict name -> fn."""
    if callable(rewards):
        rewards = [rewards]
    if isinstance(rewards, dict):
        rewards = [RewardSpec(k, v) for k, v in rewards.items()]
    specs = []
    for r in rewards:
        if isinstance(r, (RewardSpec, GroupRewardSpec)):
            specs.append(r)
        elif callable(r):
            specs.append(RewardSpec(getattr(r, "__name__", "reward"), r))
        elif isinstance(r, tuple) and len(r) in (2, 3) and callable(r[1]):
            specs.append(RewardSpec(r[0], r[1], float(r[2]) if len(r) == 3 else 1.0))
        else:
            raise ValueError(f"reward {r!r} is neither a callable, a RewardSpec / GroupRewardSpec nor a (name, fn, weight) tuple")
    if not specs:
        raise ValueError("at least one reward function is needed")
    return specs


def score_completions(specs: Sequence, completions: Sequence[str], problems: Sequence,
                      group_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rewards [N] (weighted sum) and each part [N] by name.

    Args:
        specs: `RewardSpec` (one completion at a time) and `GroupRewardSpec` (all completions of a group).
        completions, problems: N aligned rows.
        group_ids: [N] group of each row; needed by group rewards (rows of a group need not be contiguous).

    A reward that raises, returns a non-finite value, or (group reward) returns the wrong number of values
    fails with one message naming it and the completion or group."""
    parts = {}
    for spec in specs:
        if isinstance(spec, GroupRewardSpec):
            parts[spec.name] = _score_groups(spec, completions, problems, group_ids)
            continue
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


def _score_groups(spec: GroupRewardSpec, completions: Sequence[str], problems: Sequence,
                  group_ids: torch.Tensor | None) -> torch.Tensor:
    """[N] values of a group reward: `spec.fn` once per group, on that group's completions in row order."""
    if group_ids is None:
        raise ValueError(f"group reward {spec.name!r} needs the rows' group_ids, which were not given")
    out = torch.zeros(len(completions), dtype=torch.float32)
    for g in torch.unique(group_ids).tolist():
        rows = (group_ids == g).nonzero().squeeze(-1).tolist()
        texts = [completions[r] for r in rows]
        try:
            values = [float(v) for v in spec.fn(texts, [problems[r] for r in rows] if spec.per_row else problems[rows[0]])]
        except Exception as e:
            raise RuntimeError(f"group reward {spec.name!r} raised {type(e).__name__}: {e} on the group of {texts[0][:40]!r}") from e
        if len(values) != len(rows):
            raise ValueError(f"group reward {spec.name!r} returned {len(values)} values for a group of {len(rows)} completions")
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise ValueError(f"group reward {spec.name!r} returned {bad[0]} on the group of {texts[0][:40]!r}")
        out[rows] = torch.tensor(values, dtype=torch.float32)
    return out


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
