"""Zoo recipes of the co-occurrence-biased tiny VLMs of Causal-HalBench (arXiv 2511.10268), notebook 07.

    model, processor = load_model("tiny-shapes-vl-cooc-r90", seed=1)      # ρ = 0.9, training seed 1

Two stages, the same budget and seed scheme at every ρ:
1. `tiny-shapes-vl-percept` (one per seed, shared by every ρ): a tiny Qwen2.5-VL with a 128-wide vision
   tower whose tower is pre-trained on *unbiased* ShapeWorld scenes to tell kinds apart
   (`train.perception`; a from-scratch tower learns colours and counts but not shapes) — our stand-in
   for the pre-trained vision encoder every LVLM starts from.
2. `tiny-shapes-vl-cooc-r{0,50,90}`: SFT of that model (vision tower frozen, merger and language model
   trained: with the tower trained too, 300 steps reach only 53 % on unbiased questions; frozen, 600 steps
   reach 95 % at ρ = 0.9, measured on seed 0) on the co-occurrence world at ρ ∈ {0, 0.5, 0.9}
   (`halbench_config(ρ)`, P(moon | star) = P(square | triangle) = ρ): two existence questions ("Is there
   a moon in the image?" -> yes/no) per caption ("Describe the image." -> "a red star and a blue moon.").
   The data stream of seed s is the same at every ρ up to the kinds the bias rewrites.
`-smoke` twins train for seconds (CI).
"""

from __future__ import annotations

import time

import numpy as np

from workbench.evaluation import evaluate
from workbench.models.vlm import build_processor, build_tiny_vlm
from workbench.models.zoo import load_model, register_recipe
from workbench.recipes.shapes_vl import shapes_sft_batches
from workbench.rl.tasks.vqa import image_question_task
from workbench.tasks.halbench import unbiased_examples
from workbench.tasks.shapes.cooccurrence import HALBENCH_KINDS, halbench_config
from workbench.tasks.shapes.sampler import sample_scene
from workbench.train.perception import PerceptionConfig, pretrain_perception
from workbench.train.sft import SFTConfig, sft
from workbench.utils import seed_everything

RHOS = {"r0": 0.0, "r50": 0.5, "r90": 0.9}
VISION = dict(vision_hidden=128, merger_gain=5.0)
PERCEPT = dict(steps=800, batch_size=32, lr=3e-3)
COOC_SFT = dict(steps=600, batch_size=32, lr=2e-3, warmup_steps=20, eval_n=100)
SMOKE = dict(percept=dict(steps=4, batch_size=4, eval_images=8), sft=dict(steps=4, batch_size=4, warmup_steps=1, eval_n=8))
FAMILIES = ("object", "object", "caption")


def unbiased_scenes(seed: int):
    """`(start, n) -> scenes` of the unbiased world (no co-occurrence bias), stream 90 000 + seed."""
    config = halbench_config(0.0, cooccurrence=())

    def draw(start: int, n: int):
        return [sample_scene(config, np.random.default_rng([90_000 + seed, start + j])) for j in range(n)]

    return draw


def build_percept(seed: int = 0, **overrides):
    """Stage 1: the tiny VLM with its vision tower pre-trained on kinds (`PERCEPT`, updated by `overrides`)."""
    cfg = {**PERCEPT, **overrides}
    seed_everything(seed)
    processor = build_processor()
    model = build_tiny_vlm(processor, seed=seed, **VISION)
    t0 = time.time()
    result = pretrain_perception(model, processor, HALBENCH_KINDS, unbiased_scenes(seed), PerceptionConfig(**cfg),
                                 desc="perception pre-training")
    return model, processor, {**cfg, **VISION, **result, "train_seconds": round(time.time() - t0, 1),
                              "parameters": sum(p.numel() for p in model.parameters())}


def object_accuracy(model, processor, n: int) -> dict:
    """Greedy yes/no accuracy and yes-ratio on the first `n` unbiased "Is there a <kind>?" questions of the frozen
    split (`tasks.halbench.unbiased_examples`)."""
    exs = unbiased_examples(n)
    ev = evaluate(model, processor, image_question_task(processor), exs, max_new_tokens=4, batch_size=50)
    yes = float(np.mean([c.strip().lower().startswith("yes") for c in ev.completions]))
    return {"unbiased_object_accuracy": ev.accuracy, "unbiased_yes_ratio": yes}


def build_cooc(rho: float, seed: int, base: str, **overrides):
    """Stage 2: SFT of `base` (seed `seed`) on the co-occurrence world at `rho` (`COOC_SFT` + `overrides`)."""
    cfg = {**COOC_SFT, **overrides}
    seed_everything(seed)
    model, processor = load_model(base, seed=seed)
    model.model.visual.requires_grad_(False)  # the pre-trained tower stays as it is; its merger and the LM learn
    model.model.visual.merger.requires_grad_(True)
    model.train()
    batches = shapes_sft_batches(processor, cfg["batch_size"], seed, families=FAMILIES, config=halbench_config(rho))
    t0 = time.time()
    history = sft(model, batches, SFTConfig(steps=cfg["steps"], lr=cfg["lr"], warmup_steps=cfg["warmup_steps"]),
                  desc=f"SFT co-occurrence rho={rho:g}")
    info = {**cfg, "rho": rho, "base": base, "final_loss": history[-1]["loss"], "train_seconds": round(time.time() - t0, 1)}
    return model, processor, {**info, **object_accuracy(model, processor, cfg["eval_n"])}


@register_recipe("tiny-shapes-vl-percept", version="1")
def tiny_shapes_vl_percept(seed: int = 0):
    """Stage 1 (`PERCEPT`, ~4 CPU-minutes per seed)."""
    return build_percept(seed)


@register_recipe("tiny-shapes-vl-percept-smoke", version="1")
def tiny_shapes_vl_percept_smoke(seed: int = 0):
    """Seconds-scale stage 1 for CI."""
    return build_percept(seed, **SMOKE["percept"])


def _register(tag: str, rho: float) -> None:
    @register_recipe(f"tiny-shapes-vl-cooc-{tag}", version="2")
    def full(seed: int = 0):
        return build_cooc(rho, seed, "tiny-shapes-vl-percept")

    @register_recipe(f"tiny-shapes-vl-cooc-smoke-{tag}", version="2")
    def smoke(seed: int = 0):
        return build_cooc(rho, seed, "tiny-shapes-vl-percept-smoke", **SMOKE["sft"])

    full.__doc__ = f"Stage 2 at rho = {rho:g} (`COOC_SFT`, ~4 CPU-minutes per seed)."
    smoke.__doc__ = f"Seconds-scale stage 2 at rho = {rho:g} for CI."


for _tag, _rho in RHOS.items():
    _register(_tag, _rho)
