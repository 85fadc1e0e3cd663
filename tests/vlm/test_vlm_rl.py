"""RL on a vision-language policy: images ride along in the rollout, log π_old through the RL path equals
the analysis path's scoring with images, ToR's visual dependency hook, and a ToR step runs end to end."""

import random

import pytest
import torch

from workbench.analysis.perturbation import score_with_images
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.tasks.shapes import rollout_visual_dependency, shapes_task
from workbench.rl import RLConfig, train
from workbench.rl.update import score_rollout


def _rollout(vlm, processor, task, prompts=3, G=2, seed=0):
    ro, _ = collect_rollout(vlm, processor, task, CollectConfig(num_prompts=prompts, num_generations=G, max_new_tokens=10), generator=torch.Generator().manual_seed(seed), rng=random.Random(seed))
    return ro


def test_rollout_carries_one_image_per_row_and_scores_like_the_analysis_path(vlm, processor):
    task = shapes_task(processor)
    ro = _rollout(vlm, processor, task)
    assert len(ro) == 6 and len(ro.row_inputs) == 6
    assert all(r["image_grid_thw"].shape == (1, 3) for r in ro.row_inputs)
    assert torch.equal(ro.row_inputs[0]["pixel_values"], ro.row_inputs[1]["pixel_values"])  # same prompt, same image
    logp, ent = score_rollout(vlm, ro, micro_batch_size=4, temperature=1.0)
    exs = ro.problems
    ref, _ = score_with_images(vlm, processor, [e.prompt for e in exs], [e.image for e in exs],
                               ro.completion_ids, ro.completion_mask)
    assert ro.completion_mask.sum() > 0
    torch.testing.assert_close(logp, ref, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(ent).all()


def test_visual_dependency_hook_matches_a_direct_difference(vlm, processor):
    task = shapes_task(processor, visual_dependency="removed")
    ro = _rollout(vlm, processor, task, seed=1)
    ro.old_logp, ro.entropy = score_rollout(vlm, ro, micro_batch_size=8, temperature=1.0)
    dep = task.annotate(vlm, processor, ro)["visual_dependency"]
    exs = ro.problems
    no_image, _ = score_with_images(vlm, processor, [e.prompt for e in exs], [None] * len(exs),
                                    ro.completion_ids, ro.completion_mask)
    torch.testing.assert_close(dep, (ro.old_logp - no_image) * ro.completion_mask, atol=1e-5, rtol=1e-5)
    assert dep[ro.completion_mask.bool()].abs().sum() > 0  # the image matters to a random VLM with gain 5
    assert (dep[~ro.completion_mask.bool()] == 0).all()


def test_tor_on_grpo_trains_a_vlm_end_to_end(vlm, processor):
    import copy
    import dataclasses

    from workbench.rl.rewards import RewardSpec

    # a random VLM is never right: reward the parity of the response length so groups have spread
    task = dataclasses.replace(shapes_task(processor), rewards=[RewardSpec("parity", lambda c, e: float(len(c) % 2))])
    cfg = RLConfig.for_method("grpo", token_weights=["tor"], steps=2, num_prompts=2, num_generations=4,
                              max_new_tokens=8, lr=1e-3, progress=False)
    policy = copy.deepcopy(vlm)
    before = [p.detach().clone() for p in policy.parameters()]
    result = train(policy, processor, task, cfg)
    assert len(result.history) == 2 and all(0 <= h["reward_mean"] <= 1 for h in result.history)
    assert any(h["frac_zero_std_groups"] < 1 for h in result.history), "no group had reward spread"
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert all(0 < h["weight_mean"] < 1 for h in result.history)  # ToR zeroes the tokens outside T_r ∪ T_p


def test_bad_perturbation_name_is_one_sentence(processor):
    with pytest.raises(ValueError, match="visual_dependency must be one of .* got 'upside_down'"):
        shapes_task(processor, visual_dependency="upside_down")


def test_heldout_metrics_and_grounding_reward(processor, examples):
    task = shapes_task(processor, grounding_weight=0.5, visual_dependency=None)
    assert [s.name for s in task.rewards] == ["correct", "grounding"] and task.annotate is None
    ex = examples[0]
    right = ex.target
    wrong_answer = right.rsplit("answer:", 1)[0] + "answer: 999"
    grounding = next(s for s in task.rewards if s.name == "grounding")
    assert grounding.fn(right, ex) == 1.0 and grounding.fn("no facts here", ex) == 0.0
    m = task.heldout_metrics([right, wrong_answer, right], [ex, ex, ex])
    assert m["perception_accuracy"] == 1.0  # the facts are stated right in all three
    assert abs(m["top_answer_share"] - 2 / 3) < 1e-12
