"""Does RL improve the ShapeWorld RL base? GRPO on `tiny-shapes-vl-rl` at the cpu preset, measured per seed.

    python -m workbench.recipes shapes-grpo --seeds 0 1 2          # prints the table below and pass@k before/after

Per seed: greedy held-out accuracy before → after on the first `eval_n` frozen arithmetic questions, the gain
with its paired standard error over questions (se = sd(d_i)/√n, d_i = correct_after − correct_before) and
pass@k (unbiased, Chen et al. arXiv 2107.03374, from max(k) samples at T = 1) before and after. The base is
built to have room that RL can reach: its teacher added instead of subtracting or multiplying 70 % of the time
(`recipes.shapes_vl`), so it perceives the counts but follows the wrong operation greedily while sampling the
right one often (pass@16 ≈ 0.97 against greedy ≈ 0.23): the sharpening regime of RLVR.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from workbench.evaluation import evaluate
from workbench.evaluation.verdicts import paired_se
from workbench.models.zoo import load_model
from workbench.rl import RLConfig, train
from workbench.rl.tasks import shapes_task

#: GRPO on tiny-shapes-vl-rl at the cpu preset: about 60 s a seed on 2 cores (measured 62–64 s)
SHAPES_RL_CPU = dict(steps=60, num_prompts=16, num_generations=8, lr=1e-4, max_new_tokens=48, max_sampling_rounds=2,
                     micro_batch_size=32)


@dataclass
class SeedGain:
    """One seed's run: greedy accuracy `before` / `after`, `gain` and its paired `se` (over questions),
    `pass_before` / `pass_after` ({k: pass@k}) and the RL wall time `seconds`."""

    seed: int
    before: float
    after: float
    gain: float
    se: float
    pass_before: dict
    pass_after: dict
    seconds: float


def shapes_rl_gains(model: str = "tiny-shapes-vl-rl", method: str = "grpo", seeds: Sequence[int] = (0, 1, 2), *,
                    eval_n: int = 200, k: Sequence[int] = (1, 4, 16), **overrides) -> list[SeedGain]:
    """RL (`method` at `SHAPES_RL_CPU`, then `overrides`) from zoo model `model` once per seed; the held-out
    evaluation as in the module docstring. The base's numbers are measured once and shared by every seed."""
    base, processor = load_model(model, device="cpu")
    task = shapes_task(processor, families=("arithmetic",))
    problems = task.eval_problems(eval_n)
    cfg_over = {**SHAPES_RL_CPU, **overrides}

    def heldout(m):
        return evaluate(m, processor, task, problems, k=tuple(k), generator=torch.Generator().manual_seed(0),
                        max_new_tokens=cfg_over["max_new_tokens"], sample_batch_size=8)

    ev0 = heldout(base)
    out = []
    for seed in seeds:
        cfg = RLConfig.for_method(method, seed=seed, **cfg_over)
        t0 = time.time()
        run = train(copy.deepcopy(base).train(), processor, task, cfg)
        seconds = time.time() - t0
        ev1 = heldout(run.model)
        diffs = [float(a) - float(b) for a, b in zip(ev1.correct, ev0.correct)]
        out.append(SeedGain(seed, ev0.accuracy, ev1.accuracy, ev1.accuracy - ev0.accuracy, paired_se(diffs),
                            dict(ev0.pass_at_k), dict(ev1.pass_at_k), round(seconds, 1)))
    return out


def gains_report(gains: list[SeedGain]) -> str:
    """One line per seed and the mean gain, in points."""
    lines = [f"seed {g.seed}: {g.before:.1%} -> {g.after:.1%} ({100 * g.gain:+.1f} ± {100 * g.se:.1f} points, "
             f"{g.gain / g.se if g.se else float('inf'):.1f} SE) in {g.seconds:.0f} s; pass@k before "
             f"{ {k: round(v, 3) for k, v in g.pass_before.items()} } after { {k: round(v, 3) for k, v in g.pass_after.items()} }"
             for g in gains]
    mean = sum(g.gain for g in gains) / len(gains)
    return "\n".join([*lines, f"mean gain {100 * mean:+.1f} points over {len(gains)} seeds"])
