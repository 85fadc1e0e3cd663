"""ShapeWorld as a `Task` for vision-language policies, with ToR's token-type perturbation as a rollout hook.

    task = shapes_task(processor, families=("arithmetic",), visual_dependency="removed")
    cfg = RLConfig.for_method("grpo", token_weights=["tor"])    # ToR on GRPO (arXiv 2603.25077)
    train(vlm, processor, task, cfg)

Images travel with the rollout as per-row model inputs (`pixel_values` [patches, D], `image_grid_thw`
[1, 3]); sampling, scoring and the update see them through the same code as text (the modality ids
M-RoPE needs are read off the token ids). With `visual_dependency` set, every rollout is scored a
second time by the sampling policy with the image perturbed, and

    extras["visual_dependency"][i, t] = log π_old(o_t | I, q, o_<t) − log π_old(o_t | I', q, o_<t)

is what the `tor` weights rank tokens by (I' = no image for ToR's "removed"; "blank" and "noise" are
the other variants of `workbench.analysis.perturbation`).
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from typing import Sequence

import numpy as np
import torch

from workbench.rl.advantages import group_first_rows
from workbench.rl.rollout import Rollout
from workbench.tasks import shapes
from workbench.tasks.base import RewardSpec, Task

#: example streams: SFT of tiny-shapes-vl draws from stream 1 + seed, the frozen split is stream 70 000
RL_STREAM = 50_000
HELDOUT_STREAM = 70_000


def shapes_task(processor, *, families: Sequence[str] = ("arithmetic",),
                config: shapes.SceneConfig | Sequence[shapes.SceneConfig] | None = None,
                visual_dependency: str | None = "removed", visual_entropy: bool = False, answer_weight: float = 1.0,
                format_weight: float = 0.0, grounding_weight: float = 0.0, score_batch_size: int = 64) -> Task:
    """ShapeWorld questions with images for RL on a Qwen2.5-VL-style policy.

    Args:
        processor: the VL processor (`workbench.models.vlm.build_processor` or a real checkpoint's).
        families: question families to train and evaluate on (ToR's visual arithmetic: `("arithmetic",)`).
        config: scene knobs (default `SceneConfig()`), or a sequence of them: each example then draws its
            scene config uniformly from the sequence (a visual-complexity mix, `shapes.complexity_config`),
            and the held-out set takes the configs in turn.
        visual_dependency: perturbation for ToR's perception score ("removed" | "blank" | "noise"), or
            None for no hook (plain GRPO/DAPO need none; the `tor*` weights do).
        visual_entropy: the annotate hook also writes `extras["visual_entropy"]` [N], each prompt's visual
            entropy under the sampling policy's vision encoder (Durian's perceptual difficulty), once per prompt.
        answer_weight: weight of the exact-answer reward (Durian's reward: 0.9 with `format_weight` 0.1).
        format_weight: weight of an extra format reward (`shapes.format_ok`), 0 = off.
        grounding_weight: weight of an extra perception reward, the grounding score of the stated facts
            against the scene graph (`shapes.grounding_score(...).score`), 0 = off (the paper's setting).
            A tiny VLM that barely perceives earns the answer reward mostly by guessing the commonest
            answer; this term pays for stating what the image shows.
        score_batch_size: rows per forward when the hook scores the perturbed rollout.

    Returns:
        a `Task`: training examples from stream `RL_STREAM` (disjoint from SFT and held-out streams);
        held-out examples from stream `HELDOUT_STREAM` restricted to `families` (for all families this is
        the frozen split `data/shapes/eval.jsonl`); reward = exact answer; held-out metric
        `perception_accuracy` (ToR's "are the stated counts right?", `shapes.grounding_score`).
    """
    from workbench.analysis.perturbation import IMAGE_PERTURBATIONS
    from workbench.models.vlm import format_vl_prompt

    families = tuple(families)
    if not families:
        raise ValueError("shapes_task needs at least one question family, got none")
    for f in families:
        shapes.QUESTION_FAMILIES.get(f)  # unknown family -> one-sentence KeyError
    if visual_dependency is not None and visual_dependency not in IMAGE_PERTURBATIONS:
        raise ValueError(f"visual_dependency must be one of {', '.join(IMAGE_PERTURBATIONS.names())} or None, "
                         f"got {visual_dependency!r}")
    configs = list(config) if isinstance(config, (list, tuple)) else [config]
    if not configs:
        raise ValueError("shapes_task got an empty sequence of scene configs")
    if tuple(families) == tuple(shapes.FAMILIES) and config is None:
        held_out = lambda n: shapes.load_eval_set(n)  # noqa: E731
    else:
        held_out = functools.partial(mixed_heldout, configs=configs, families=families)

    def sample(n: int, rng: random.Random) -> list:
        out = []
        for _ in range(n):  # draw order kept from the single-config stream: index, family, then config
            index, family = rng.randrange(2**31), families[rng.randrange(len(families))]
            c = configs[rng.randrange(len(configs))] if len(configs) > 1 else configs[0]
            out.append(shapes.make_example(RL_STREAM, index, family, c))
        return out

    def encode(proc, problems: list, prompts: list[str]):
        return encode_with_images(proc, prompts, [e.image for e in problems])

    rewards = [RewardSpec("correct", lambda c, e: shapes.reward(c, e.answer), answer_weight)]
    if format_weight:
        rewards.append(RewardSpec("format", lambda c, e: float(shapes.format_ok(c)), format_weight))
    if grounding_weight:
        rewards.append(RewardSpec("grounding", lambda c, e: shapes.grounding_score(c, _graph(e)).score, grounding_weight))

    def heldout_metrics(texts: list[str], problems: list) -> dict[str, float]:
        checks = [shapes.grounding_score(t, _graph(e), e.question.facts) for t, e in zip(texts, problems)]
        answers = Counter(shapes.parse_answer(t) for t in texts)
        stated = sum(g.n_facts for g in checks)
        return {"perception_accuracy": float(np.mean([g.perception_correct for g in checks])) if checks else 0.0,
                # a policy that collapsed onto one guess answers the same thing to every question
                "top_answer_share": answers.most_common(1)[0][1] / len(texts) if texts else 0.0,
                # TGRL's grounding accuracy: the share of all stated facts that are true (0.0 when none is stated)
                "grounding_accuracy": sum(g.n_correct for g in checks) / stated if stated else 0.0,
                "facts_stated": stated / len(checks) if checks else 0.0}

    def expert_ok(text: str, e) -> bool:
        g = shapes.grounding_score(text, _graph(e))
        return shapes.reward(text, e.answer) >= 1.0 and g.n_facts > 0 and g.n_correct == g.n_facts

    annotate = None
    if visual_dependency is not None or visual_entropy:
        def annotate(policy, proc, rollout: Rollout) -> dict[str, torch.Tensor]:
            out = {}
            if visual_dependency is not None:
                out["visual_dependency"] = rollout_visual_dependency(policy, proc, rollout, visual_dependency,
                                                                     batch_size=score_batch_size)
            if visual_entropy:
                out["visual_entropy"] = rollout_visual_entropy(policy, rollout)
            return out

    return Task(name=f"shapes({', '.join(families)})", sample=sample,
                  prompt=lambda e: format_vl_prompt(e.prompt, processor), rewards=rewards, encode=encode,
                  eval_problems=held_out, correct=lambda c, e: shapes.reward(c, e.answer) >= 1.0,
                  annotate=annotate, heldout_metrics=heldout_metrics,
                  reference=lambda e, rng, error_rate=0.0: shapes.oracle_chain(e, rng, error_rate), expert_ok=expert_ok)


@functools.lru_cache(maxsize=4096)
def _graph(example) -> shapes.SceneGraph:
    """The scene graph of an example's image (rendered once per example)."""
    return example.render().graph


def mixed_heldout(n: int, *, configs: Sequence, families: Sequence[str]) -> list:
    """n held-out examples from stream `HELDOUT_STREAM` (+ i for the i-th config): config i takes every
    len(configs)-th slot, so any prefix is balanced across configs."""
    k = len(configs)
    parts = [shapes.generate(-(-n // k), seed=HELDOUT_STREAM + i, config=c, families=families)
             for i, c in enumerate(configs)]
    return [parts[j % k][j // k] for j in range(n)]


@torch.no_grad()
def rollout_visual_entropy(policy, rollout: Rollout) -> torch.Tensor:
    """[N] float32: visual entropy (`workbench.analysis.visual_entropy`) of each row's image under `policy`'s
    vision encoder, computed once per prompt (the first row of each group) and repeated over the group."""
    from workbench.analysis.visual_entropy import image_visual_entropy

    if not rollout.row_inputs:
        raise ValueError("visual entropy needs image rows (rollout.row_inputs with pixel_values), this rollout has none")
    first, index = group_first_rows(rollout.group_ids)
    rows = [rollout.row_inputs[i] for i in first.tolist()]
    dev = next(policy.parameters()).device
    pv = torch.cat([r["pixel_values"] for r in rows]).to(dev)
    grid = torch.cat([r["image_grid_thw"] for r in rows]).to(dev)
    return image_visual_entropy(policy, pv, grid).float()[index]


def encode_with_images(processor, prompts: Sequence[str], images: Sequence):
    """`RLTask.encode` for image prompts: (prompt_ids [B, P], prompt_mask [B, P], per-prompt inputs), where
    prompt b's inputs are its own `pixel_values` [patches_b, D] and `image_grid_thw` [1, 3], so rows can
    be selected, re-padded and concatenated freely."""
    from workbench.models.vlm import encode_vl_prompts

    enc = encode_vl_prompts(processor, list(prompts), list(images))
    grid = enc["image_grid_thw"]
    if grid.size(0) != len(prompts):
        raise ValueError(f"expected one image per prompt, got {grid.size(0)} images for {len(prompts)} prompts")
    patches = torch.split(enc["pixel_values"], grid.prod(-1).tolist())
    per_prompt = [{"pixel_values": p, "image_grid_thw": grid[i : i + 1]} for i, p in enumerate(patches)]
    return enc["input_ids"], enc["attention_mask"], per_prompt


@torch.no_grad()
def rollout_visual_dependency(policy, processor, rollout: Rollout, variant: str = "removed", *,
                              batch_size: int = 64) -> torch.Tensor:
    """Signed Δ_t = log π_old(o_t | I, q) − log π_old(o_t | I', q) for every rollout token: [N, T], 0 on padding.

    `rollout.old_logp` (scored with the real images) is the first term; the second scores the same
    completions with each row's image perturbed by `variant` (ToR, arXiv 2603.25077, uses "removed").
    """
    from workbench.analysis.perturbation import perturb_images, score_with_images

    if rollout.old_logp is None:
        raise ValueError("rollout.old_logp must be scored (with the real images) before the visual dependency")
    N, T = rollout.completion_ids.shape
    out = torch.zeros(N, T)
    was_training = policy.training
    policy.eval()
    try:
        for i in range(0, N, batch_size):
            rows = list(range(i, min(i + batch_size, N)))
            exs = [rollout.problems[r] for r in rows]
            images = [e.image for e in exs]
            alt = perturb_images(variant, images, scenes=[e.scene for e in exs], seed=i)
            logp, _ = score_with_images(policy, processor, [e.prompt for e in exs], list(alt),
                                        rollout.completion_ids[rows], rollout.completion_mask[rows])
            out[rows] = (rollout.old_logp[rows] - logp.cpu().to(out.dtype)) * rollout.completion_mask[rows]
    finally:
        policy.train(was_training)
    return out
