"""REACT's stage 2 pieces: the pairwise group reward by hand, the pairwise source's groups, one GRPO step with
video rows, masked video SFT batches, and dynamic frame sampling's focus rule and cost accounting."""

import random

import numpy as np
import pytest
import torch

from workbench.evaluation.frame_sampling import dynamic_sampling, focus_frames, uniform_sampling
from workbench.rl import RLConfig, train
from workbench.rl.react import pairwise_reward, pairwise_source
from workbench.rl.sources import SourceContext
from workbench.rl.tasks.video import bench_views, react_task
from workbench.tasks.video import ClipView, load_bench, pair_views, uniform_frames
from workbench.train.batches import collate_video_sft


def rating(score):
    return f'<think>x</think><answer>{{"score":{score},"label":"none","frames":[]}}</answer>'


@pytest.fixture(scope="module")
def views():
    return pair_views(load_bench(1)[0], uniform_frames(16, 4))


def test_pairwise_reward_by_hand(views):
    better, worse = views
    texts = [rating(5), rating(3), "garbage", rating(4), rating(3)]
    rows = [better, better, worse, worse, worse]
    # better 5 beats {None, 4, 3} -> 2/3; better 3 beats {3? no, 4? no} -> 0/3
    # worse None is beaten by nothing (unparsed never loses or wins) -> 0; worse 4 beaten by 5 -> 1/2; worse 3 by 5 -> 1/2
    assert pairwise_reward(texts, rows) == pytest.approx([2 / 3, 0.0, 0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="rollout_source='pairwise'"):
        pairwise_reward(texts[:2], rows[:2])


def test_pairwise_source_puts_both_clips_in_one_group(vlm, processor):
    task = react_task(processor, n_shown=2)
    problems = task.sample(2, random.Random(0))
    ctx = SourceContext(vlm, processor, task, num_generations=3, max_new_tokens=4,
                        generator=torch.Generator().manual_seed(0))
    ro = pairwise_source(ctx, problems, first_group_id=5)
    assert len(ro) == 12 and ro.group_ids.tolist() == [5] * 6 + [6] * 6
    assert [r.side for r in ro.problems[:6]] == ["better"] * 3 + ["worse"] * 3
    assert set(ro.reward_parts) == {"pairwise", "format", "label"}
    assert ro.row_inputs[0]["video_grid_thw"].tolist() == [[2, 8, 8]]
    with pytest.raises(ValueError, match="pair problems"):
        pairwise_source(ctx, [problems[0][0]], 0)


def test_a_grpo_step_on_video_pairs_changes_the_policy(vlm, processor):
    import copy

    task = react_task(processor, n_shown=2)
    policy = copy.deepcopy(vlm).train()
    before = [p.detach().clone() for p in policy.parameters()]
    cfg = RLConfig.for_method("grpo", rollout_source="pairwise", steps=1, num_prompts=2, num_generations=2,
                              max_new_tokens=4, lr=1e-2, eval_every=0, seed=0)
    steps = []
    train(policy, processor, task, cfg, on_step=steps.append)
    assert steps and all(np.isfinite(v) for v in steps[0].values() if isinstance(v, float))
    with pytest.raises(ValueError, match="rollout_source='pairwise'"):
        train(copy.deepcopy(vlm), processor, task, RLConfig.for_method("grpo", steps=1, num_prompts=1,
                                                                        num_generations=2, max_new_tokens=4))
    del before


def test_video_sft_labels_cover_the_assistant_tokens_only(processor, views):
    v = views[1]
    prompt = "<|user|><|vision_start|><|video_pad|><|vision_end|>" + v.prompt + "<|assistant|>"
    batch = collate_video_sft(processor, [prompt], [v.target + "<|endoftext|>"], [v.render()], repeat_frames=2)
    labelled = batch["input_ids"][0][batch["labels"][0] != -100]
    assert processor.tokenizer.decode(labelled) == v.target + "<|endoftext|>"
    assert not (batch["labels"][0][batch["input_ids"][0] == processor.video_token_id] != -100).any()


def test_focus_frames_rule():
    starts = [0, 4, 8, 12]
    assert focus_frames(16, np.array([0, 0, 3, 1]), starts, 2, 1, 8) == ((5, 6, 7, 8, 9, 10, 11, 12), True)
    assert focus_frames(16, np.zeros(4), starts, 2, 1, 8) == (uniform_frames(16, 8), False)
    frames, found = focus_frames(16, np.array([2, 0, 0, 2]), starts, 2, 2, 8)
    assert found and len(frames) == 8 and {0, 1, 12, 13} <= set(frames)


def test_sampling_cost_accounting(vlm, processor):
    task = react_task(processor, n_shown=4)
    views = bench_views(4, 4)
    uni = uniform_sampling(vlm, processor, task, views, budget=4, max_new_tokens=4, tokens_per_frame=16)
    dyn = dynamic_sampling(vlm, processor, task, views, probes=2, window=2, top_m=1, budget=4, max_new_tokens=4,
                           tokens_per_frame=16)
    assert uni.frames_rated == [4] * 4 and dyn.frames_rated == [8] * 4
    assert dyn.cost()["video_tokens_per_clip"] == 128 and dyn.frame_scores.shape == (4, 16)
    assert dyn.unfocused == 4  # an untrained model writes nothing parsable: no probe finds anything
    assert all(isinstance(v, ClipView) and v.pair_id == w.pair_id for v, w in zip(dyn.views, views))
    with pytest.raises(ValueError, match="top_m"):
        dynamic_sampling(vlm, processor, task, views, probes=2, top_m=3)
