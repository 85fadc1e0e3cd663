"""Zoo recipes of the tiny Qwen2.5-VL on ShapeWorld: `tiny-shapes-vl` (all question families),
`tiny-shapes-vl-arith` (the ToR base, notebook 03) and `tiny-shapes-vl-smoke` (CI).

    model, processor = load_model("tiny-shapes-vl-arith")     # trained on first use (~6 CPU-minutes), then cached
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator, Mapping, Sequence

import numpy as np

from workbench.evaluation import evaluate
from workbench.models.vlm import build_processor, build_tiny_vlm, format_vl_example
from workbench.models.zoo import register_recipe
from workbench.rl.tasks import shapes_task
from workbench.tasks import shapes
from workbench.tasks.shapes.questions import OPS
from workbench.train.batches import collate_vl_sft, sft_batches
from workbench.train.sft import SFTConfig, sft
from workbench.utils import seed_everything

# 300 steps at batch 32 take ~3 min on 2 free cores; held-out accuracy lands near 0.4-0.5 (see info.json).
# Counts and yes/no answers are learnt first, largely from text priors: "what colour is the <kind>" (shape
# recognition) stays near chance, and answers depend only weakly on image content at this budget.
TINY_SHAPES_VL = dict(steps=300, batch_size=32, lr=1e-3, warmup_steps=20, merger_gain=5.0, eval_n=200,
                      max_new_tokens=64)


def shapes_sft_batches(processor, batch_size: int, seed: int, families: Sequence[str] = shapes.FAMILIES,
                       config: shapes.SceneConfig | None = None, adds_instead: Mapping[str, float] | None = None
                       ) -> Iterator[dict]:
    """Endless SFT batches of fresh ShapeWorld examples from stream `1 + seed` (the frozen eval split uses
    stream 70 000), families cycling; each batch is `collate_vl_sft` of (image prompt, CoT target).
    `adds_instead` = {op: p} makes the teacher unreliable at an operation ("minus", "times"): the target of an
    arithmetic example asking "a <op> b" computes `a<sym>b=<a + b>` (and that answer) with probability p, decided
    by the example's own index so the stream stays deterministic."""
    adds_instead = dict(adds_instead or {})
    for op, p in adds_instead.items():
        if op not in ("minus", "times"):
            raise ValueError(f"adds_instead names operation {op!r}; the teacher can add instead of 'minus' or 'times'")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"adds_instead[{op!r}] must be a probability in [0, 1], got {p}")
    drawn = [0]

    def draw(n: int) -> list:
        i, drawn[0] = drawn[0], drawn[0] + n
        exs = [shapes.make_example(1 + seed, i + j, families[(i + j) % len(families)], config) for j in range(n)]
        return [_adds_instead(e, adds_instead, _coin(1 + seed, i + j)) if adds_instead else e for j, e in enumerate(exs)]

    def collate(exs: list) -> dict:
        pairs = [format_vl_example(e.prompt, e.target, processor) for e in exs]
        return collate_vl_sft(processor, [p for p, _ in pairs], [c for _, c in pairs], [e.image for e in exs])

    return sft_batches(draw, collate, batch_size)


def _coin(stream: int, index: int) -> float:
    """A uniform draw owned by example `index` of `stream` (independent of the scene's own draws)."""
    return float(np.random.default_rng([stream, index, 17]).random())


def _adds_instead(ex, rates: Mapping[str, float], coin: float):
    """`ex` with a teacher that adds instead of applying the question's operation when `coin` < `rates[op]`: for
    "a <op> b" the arithmetic line reads `a<sym>b=<a + b>` and the answer follows it; any other example (another
    family, an operation not in `rates`, a coin above the rate) is returned unchanged."""
    q = ex.question
    op = next((o for o in rates if f" {o} " in q.text), None) if q.family == "arithmetic" else None
    if op is None or coin >= rates[op]:
        return ex
    *head, line, _ = q.cot.split("\n")
    a, b = (int(x) for x in line.partition("=")[0].split(OPS[op]))
    cot = "\n".join([*head, f"{a}{OPS[op]}{b}={a + b}", f"answer: {a + b}"])
    return dataclasses.replace(ex, question=dataclasses.replace(q, cot=cot, answer=str(a + b)))


def evaluate_shapes(model, processor, examples: Sequence, *, batch_size: int = 50, max_new_tokens: int = 64) -> dict:
    """Greedy held-out results of `model` on ShapeWorld `examples` through the one evaluator: accuracy,
    accuracy per question family, perception accuracy (every reference fact stated, all stated facts true)."""
    task = shapes_task(processor, families=shapes.FAMILIES, visual_dependency=None)
    ev = evaluate(model, processor, task, list(examples), batch_size=batch_size, max_new_tokens=max_new_tokens)
    families = sorted({e.question.family for e in examples})
    by_family = {f: float(np.mean([c for c, e in zip(ev.correct, examples) if e.question.family == f])) for f in families}
    return {"accuracy": ev.accuracy, "by_family": by_family, "perception_accuracy": ev.metrics["perception_accuracy"]}


def build_tiny_shapes_vl(seed: int = 0, **overrides):
    """Tiny Qwen2.5-VL (vision depth 2 / hidden 64, text 2 layers / hidden 128) after SFT on ShapeWorld at
    112 px (`TINY_SHAPES_VL`, updated by `overrides`; `families=(...)` restricts the question families,
    default all), stopped early so held-out accuracy is partial. Returns (model, processor, info) as a zoo
    recipe does."""
    cfg = {**TINY_SHAPES_VL, **overrides}
    families = tuple(cfg.pop("families", shapes.FAMILIES))
    adds_instead = cfg.pop("adds_instead", None)
    seed_everything(seed)
    processor = build_processor()
    model = build_tiny_vlm(processor, seed=seed, merger_gain=cfg["merger_gain"])
    batches = shapes_sft_batches(processor, cfg["batch_size"], seed, families=families, adds_instead=adds_instead)
    t0 = time.time()
    history = sft(model, batches, SFTConfig(steps=cfg["steps"], lr=cfg["lr"], warmup_steps=cfg["warmup_steps"]),
                  desc="SFT tiny-shapes-vl")
    train_s = time.time() - t0
    held_out = shapes.load_eval_set(cfg["eval_n"])
    result = evaluate_shapes(model, processor, held_out, max_new_tokens=cfg["max_new_tokens"])
    return model, processor, {
        **cfg, "families": list(families), "adds_instead": adds_instead or {}, "final_loss": history[-1]["loss"], "train_seconds": round(train_s, 1),
        "heldout_accuracy": result["accuracy"], "heldout_by_family": result["by_family"],
        "heldout_perception_accuracy": result["perception_accuracy"],
        "parameters": sum(p.numel() for p in model.parameters())}


@register_recipe("tiny-shapes-vl", version="1")
def tiny_shapes_vl(seed: int = 0):
    """`build_tiny_shapes_vl` with the `TINY_SHAPES_VL` settings (~6 CPU-minutes, 43% held-out)."""
    return build_tiny_shapes_vl(seed)


@register_recipe("tiny-shapes-vl-arith", version="1")
def tiny_shapes_vl_arith(seed: int = 0):
    """The ToR base (notebook 03): SFT on counting and visual arithmetic only (half each), 800 steps, so the
    counts that arithmetic needs are perceived rather than guessed (369 s on 2 free cores; held-out
    arithmetic 57.5 %, count 67.5 %)."""
    return build_tiny_shapes_vl(seed, steps=800, families=("count", "arithmetic"))


@register_recipe("tiny-shapes-vl-smoke", version="1")
def tiny_shapes_vl_smoke(seed: int = 0):
    """Seconds-scale stand-in for CI notebook runs: 8 SFT steps of batch 8, evaluated on 10 examples."""
    return build_tiny_shapes_vl(seed, steps=8, batch_size=8, warmup_steps=2, eval_n=10, max_new_tokens=32)


@register_recipe("tiny-shapes-vl-rl", version="4")
def tiny_shapes_vl_rl(seed: int = 0):
    """The ShapeWorld RL base: `tiny-shapes-vl-arith`'s recipe (counting and visual arithmetic, 800 steps)
    from a teacher that writes a + b for "a minus b" and "a times b" 70 % of the time (`adds_instead`), so the base
    perceives counts as well as the arithmetic base but subtracts and multiplies right only sometimes: reasoning
    it samples and RL can sharpen (the held-out numbers are in `info.json`)."""
    return build_tiny_shapes_vl(seed, steps=800, families=("count", "arithmetic"), adds_instead={"minus": 0.7, "times": 0.7})
