"""What the ShapeWorld RL notebooks (03 ToR, 04 Durian, 05 TGRL) share before their first section: the base
vision-language policy, its processor, the task, the held-out questions and the paired RL seeds.

    class Setup(VLSetup):
        def describe(self, P): return self.headline() + ...       # each notebook says what is special about it
    run = load_vl_setup(P, lambda processor: shapes_task(processor, ...), Setup)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from workbench.experiments.presets import Params
from workbench.models.zoo import load_model
from workbench.tasks.base import Task
from workbench.utils import seed_everything


@dataclass
class VLSetup:
    """The base policy, its processor, the task and the held-out questions; `seeds` are the RL seeds every run
    uses (seed, seed + 1, …), so runs pair by seed."""

    policy: torch.nn.Module
    processor: object
    task: Task
    held_out: list
    seeds: list[int]
    model: str

    def headline(self) -> str:
        """`<model>: <millions> M parameters on <device>`."""
        n = sum(p.numel() for p in self.policy.parameters()) / 1e6
        return f"{self.model}: {n:.2f}M parameters on {self.policy.device}"


def load_vl_setup(P: Params, make_task: Callable[[object], Task], cls: type = VLSetup, n_held_out: int | None = None):
    """Seed everything (`P.seed`), load `P.model` (zoo name or checkpoint) on `P.device`, build the task from
    the processor, and take `n_held_out` (default `P.eval_n`) held-out problems and `P.n_seeds` seeds: a `cls`
    instance."""
    seed_everything(P.seed)
    policy, processor = load_model(P.model, device=P.device)
    task = make_task(processor)
    return cls(policy, processor, task, task.eval_problems(P.eval_n if n_held_out is None else n_held_out), list(range(P.seed, P.seed + P.n_seeds)), P.model)
