"""Durian's difficulty-aware advantages (arXiv 2602.21743) against a naive float64 loop, GRPO as its
one-bucket-per-prompt limit, its degenerate cases and the invariances it must keep."""

import numpy as np
import pytest
import torch

from workbench.rl import RLConfig
from workbench.rl.advantages import AdvantageContext, advantage_diagnostics, compute_advantages, grpo_advantages, near_extreme_groups
from workbench.rl.durian import bucket_normalised, confidence_buckets, durian_advantages, perception_buckets


def batch(S=10, G=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(S * G, generator=g) < torch.rand(S, generator=g).repeat_interleave(G)).double()
    rewards = 0.9 * rewards + 0.1 * (torch.rand(S * G, generator=g) < 0.8).double()
    group_ids = torch.arange(S).repeat_interleave(G) * 3 + 7  # any ids
    entropy = torch.rand(S, generator=g, dtype=torch.float64).repeat_interleave(G)
    seq_logp = -torch.rand(S * G, generator=g, dtype=torch.float64) * 20
    return rewards, group_ids, AdvantageContext(extras={"visual_entropy": entropy}, sequence_logp=seq_logp)


def naive_durian(rewards, group_ids, H, L, alphas=(0.4, 0.3, 0.3), b=12, eps=1e-4):
    r, gid = rewards.numpy(), group_ids.numpy()
    prompts = sorted(set(gid.tolist()))
    h = np.array([H.numpy()[gid == s][0] for s in prompts])
    conf = np.array([L.numpy()[gid == s].mean() for s in prompts])
    lo, hi = np.quantile(h, [0.25, 0.75])
    pb = {s: (0 if h[j] <= lo else 2 if h[j] >= hi else 1) for j, s in enumerate(prompts)}
    edges = np.quantile(conf, np.arange(1, b) / b)
    rb = {s: int(np.searchsorted(edges, conf[j], side="left")) for j, s in enumerate(prompts)}
    out = np.zeros_like(r)
    for i in range(len(r)):
        grp = r[gid == gid[i]]
        centred = r[i] - grp.mean()
        grpo = 0.0 if grp.std() == 0 else centred / (grp.std(ddof=1) + eps)
        terms = []
        for bucket in (pb, rb):
            pooled = np.concatenate([r[gid == s] for s in prompts if bucket[s] == bucket[gid[i]]])
            sd = pooled.std(ddof=1) if len(pooled) > 1 else 0.0
            terms.append(0.0 if (sd == 0 or grp.std() == 0) else centred / (sd + eps))
        out[i] = alphas[0] * grpo + alphas[1] * terms[0] + alphas[2] * terms[1]
    return out


@pytest.mark.parametrize("seed,b", [(0, 12), (1, 4), (2, 16), (3, 1)])
def test_matches_naive_float64_loop(seed, b):
    rewards, gids, ctx = batch(S=13, seed=seed)
    got = durian_advantages(rewards, gids, ctx=ctx, reasoning_buckets=b)
    want = naive_durian(rewards, gids, ctx.extras["visual_entropy"], ctx.sequence_logp, b=b)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_one_bucket_per_prompt_is_grpo():
    rewards, gids, ctx = batch(S=6)
    each_alone = torch.unique(gids, return_inverse=True)[1]
    assert torch.equal(bucket_normalised(rewards, gids, each_alone), grpo_advantages(rewards, gids))
    # more reasoning buckets than prompts (distinct confidences): each prompt alone, A_reas = A_GRPO
    got = durian_advantages(rewards, gids, ctx=ctx, alphas=(0.0, 0.0, 1.0), reasoning_buckets=64)
    assert torch.equal(got, grpo_advantages(rewards, gids))
    mixed = durian_advantages(rewards, gids, ctx=ctx, alphas=(0.5, 0.0, 0.5), reasoning_buckets=64)
    torch.testing.assert_close(mixed, grpo_advantages(rewards, gids), rtol=0, atol=1e-12)


def test_degenerate_buckets_are_zero_never_nan():
    G = 4
    rewards = torch.tensor([1.0] * G + [0.0] * G + [1, 0, 0, 0.0], dtype=torch.float64)
    gids = torch.arange(3).repeat_interleave(G)
    all_equal_bucket = torch.tensor([0] * (2 * G) + [1] * G)
    adv = bucket_normalised(rewards, gids, torch.zeros_like(gids))
    assert torch.isfinite(adv).all() and (adv[: 2 * G] == 0).all()  # all-equal groups get 0 whatever the bucket
    assert (bucket_normalised(rewards[:G], gids[:G], all_equal_bucket[:G]) == 0).all()  # a bucket with std 0
    one = bucket_normalised(torch.tensor([1.0]), torch.tensor([0]), torch.tensor([0]))
    assert one.item() == 0.0  # a bucket of one completion
    # fewer prompts than buckets, every prompt tied on confidence and entropy
    ctx = AdvantageContext(extras={"visual_entropy": torch.zeros(3 * G)}, sequence_logp=torch.zeros(3 * G))
    assert torch.isfinite(durian_advantages(rewards, gids, ctx=ctx, reasoning_buckets=16)).all()


def test_invariances():
    rewards, gids, ctx = batch(S=9, seed=4)
    base = durian_advantages(rewards, gids, ctx=ctx, eps=0.0)
    # shifting every reward by a constant, or scaling it by c > 0, changes nothing (eps = 0)
    torch.testing.assert_close(durian_advantages(rewards + 3.0, gids, ctx=ctx, eps=0.0), base)
    torch.testing.assert_close(durian_advantages(rewards * 5.0, gids, ctx=ctx, eps=0.0), base)
    # relabelling and permuting the prompts permutes the advantages
    perm = torch.randperm(len(rewards), generator=torch.Generator().manual_seed(0))
    pctx = AdvantageContext(extras={"visual_entropy": ctx.extras["visual_entropy"][perm]}, sequence_logp=ctx.sequence_logp[perm])
    torch.testing.assert_close(durian_advantages(rewards[perm], gids[perm] * 2 + 1, ctx=pctx, eps=0.0), base[perm])
    # each group's advantages still sum to 0: the baseline is the prompt's own mean
    sums = torch.zeros(int(gids.max()) + 1, dtype=base.dtype).index_add_(0, gids, base)
    assert sums.abs().max() < 1e-12


def test_bucket_helpers():
    h = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], dtype=torch.float64)
    assert perception_buckets(h).tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert confidence_buckets(-h, 4).tolist() == [3, 3, 2, 2, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="reasoning_buckets"):
        confidence_buckets(h, 0)


def test_near_extreme_diagnostics_show_the_smaller_scale():
    G = 8
    rewards = torch.tensor([1.0] + [0.0] * 7 + [1.0] * 4 + [0.0] * 4 + [1.0] * 7 + [0.0], dtype=torch.float64)
    gids = torch.arange(3).repeat_interleave(G)
    ne = near_extreme_groups(rewards > 0.5, gids)
    assert ne.tolist() == [True] * G + [False] * G + [True] * G
    ctx = AdvantageContext(extras={"visual_entropy": torch.arange(3.0).repeat_interleave(G)}, sequence_logp=torch.zeros(3 * G))
    grpo = advantage_diagnostics(grpo_advantages(rewards, gids), rewards > 0.5, gids)
    dur = advantage_diagnostics(durian_advantages(rewards, gids, ctx=ctx, reasoning_buckets=1), rewards > 0.5, gids)
    assert grpo["adv_abs_near_extreme_max"] == pytest.approx(7 / np.sqrt(8), rel=1e-3)  # (1 − 1/8) / std_g
    assert dur["adv_abs_near_extreme_max"] < grpo["adv_abs_near_extreme_max"]


def test_missing_context_and_bad_options_are_one_sentence():
    rewards, gids, _ = batch(S=3)
    with pytest.raises(ValueError, match="visual_entropy"):
        compute_advantages("durian", rewards, gids, torch.ones(len(rewards), 4))
    with pytest.raises(ValueError, match="no option 'reasoning_bucket'"):
        RLConfig(advantage=("durian", {"reasoning_bucket": 12})).validate()
    RLConfig(advantage=("durian", {"reasoning_buckets": 12, "perception": False})).validate()


def test_durian_trains_a_tiny_vlm_on_the_complexity_mix():
    """One GRPO step with the durian estimator on a random tiny VLM: the task's hook writes one visual entropy per
    prompt (repeated over its group), and the step logs the bucket scales and the near-extreme |A|."""
    import random

    from workbench.models.vlm import build_processor, build_tiny_vlm
    from workbench.rl import train
    from workbench.rl.collect import CollectConfig, collect_rollout
    from workbench.rl.tasks import shapes_task
    from workbench.rl.tasks.shapes import rollout_visual_entropy
    from workbench.tasks import shapes

    proc = build_processor()
    model = build_tiny_vlm(proc, seed=0)
    configs = [shapes.complexity_config(0), shapes.complexity_config(3)]
    task = shapes_task(proc, config=configs, visual_dependency=None, visual_entropy=True, answer_weight=0.9, format_weight=0.1)
    held = task.eval_problems(6)
    assert held[0].id.startswith("70000-") and held[1].id.startswith("70001-")  # configs take turns, own streams
    ro, _ = collect_rollout(model, proc, task, CollectConfig(num_prompts=3, num_generations=2, max_new_tokens=6),
                            generator=torch.Generator().manual_seed(0), rng=random.Random(0))
    h = rollout_visual_entropy(model, ro)
    assert h.shape == (6,) and torch.equal(h[0::2], h[1::2]) and (h > 0).all()
    cfg = RLConfig.for_method("grpo", advantage=("durian", {"reasoning_buckets": 2}), steps=1, num_prompts=4,
                              num_generations=3, max_new_tokens=6, progress=False)
    hist = train(model, proc, task, cfg).history
    assert {"durian/reas_std_mean", "adv_abs_near_extreme_mean", "frac_near_extreme_rows"} <= set(hist[0])
    assert any(k.startswith("durian/perc_std_") for k in hist[0])
