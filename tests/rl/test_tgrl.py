"""TGRL (arXiv 2603.26126, reconstructed on LUFFY's mixed-policy GRPO): the shaped off-policy loss against a
naive float64 loop and its analytic gradient, the expert_mix source, the expert filter and the mixed-group
advantages."""

import random

import numpy as np
import pytest
import torch

from workbench.rl import RLConfig
from workbench.rl.advantages import AdvantageContext, grpo_advantages
from workbench.rl.losses import policy_loss
from workbench.rl.tgrl import expert_filter, mixed_grpo_advantages


def batch(B=4, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    old = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, 1, generator=g, dtype=torch.float64).expand(B, T).clone()
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 4:] = 0
    off = torch.zeros(B, T)
    off[-1, : T] = 1.0
    return logp, old, adv, mask, off


def naive_loss(logp, old, adv, mask, off, gamma=0.1, eps=0.2, shaping=True):
    total, n = 0.0, 0
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if not mask[b, t]:
                continue
            a = float(adv[b, t])
            if off[b, t]:
                p = float(np.exp(float(logp[b, t])))
                f = p / (p + gamma) if shaping else p
                total += -a * f
            else:
                r = float(np.exp(float(logp[b, t] - old[b, t])))
                total += -min(r * a, min(max(r, 1 - eps), 1 + eps) * a)
            n += 1
    return total / n


@pytest.mark.parametrize("shaping", [True, False])
def test_shaped_loss_matches_naive_loop(shaping):
    logp, old, adv, mask, off = batch()
    loss, m = policy_loss(logp, old, adv, mask, off_policy=off, off_policy_shaping=shaping)
    assert loss.item() == pytest.approx(naive_loss(logp, old, adv, mask, off, shaping=shaping), rel=1e-12)
    assert m["off_policy_frac"].item() == pytest.approx(6 / 22)


def test_empty_off_policy_mask_is_the_clipped_loss_exactly():
    logp, old, adv, mask, off = batch(seed=1)
    plain, _ = policy_loss(logp, old, adv, mask, dual_clip_c=3.0)
    masked, _ = policy_loss(logp, old, adv, mask, dual_clip_c=3.0, off_policy=torch.zeros_like(off))
    assert torch.equal(plain, masked)


def test_gradient_of_the_shaped_term_is_gamma_p_over_p_plus_gamma_squared():
    gamma = 0.1
    logp = torch.tensor([[-0.05, -1.0, -3.0, -6.0]], dtype=torch.float64, requires_grad=True)
    adv = torch.ones(1, 4, dtype=torch.float64)
    mask = torch.ones(1, 4)
    loss, _ = policy_loss(logp, logp.detach(), adv, mask, off_policy=torch.ones(1, 4), off_policy_gamma=gamma)
    loss.backward()
    p = logp.detach().exp()
    expected = -gamma * p / (p + gamma) ** 2 / 4  # ∂(−f(π)/N)/∂log π, f = π/(π+γ), N = 4 tokens
    torch.testing.assert_close(logp.grad, expected, rtol=1e-12, atol=0)
    # the boost: a low-probability expert token gets a larger weight than ∇ of the plain ratio would give it
    assert (gamma * p / (p + gamma) ** 2)[0, 2] > p[0, 2]
    with pytest.raises(ValueError, match="off_policy_gamma"):
        policy_loss(logp, logp.detach(), adv, mask, off_policy=torch.ones(1, 4), off_policy_gamma=0.0)


def test_mixed_grpo_statistics():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    gids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    off = torch.zeros(8, 3)
    off[[3, 7]] = 1.0  # the last row of each group is the expert's
    ctx = AdvantageContext(extras={"off_policy": off})
    assert torch.equal(mixed_grpo_advantages(rewards, gids, ctx=ctx), grpo_advantages(rewards, gids))
    got = mixed_grpo_advantages(rewards, gids, ctx=ctx, stats="on_policy", eps=0.0)
    for g, rows in ((0, [0, 1, 2]), (1, [4, 5, 6])):
        on = rewards[rows].numpy()
        want = (rewards[gids == g].numpy() - on.mean()) / on.std(ddof=1)
        np.testing.assert_allclose(got[gids == g].numpy(), want, rtol=1e-12)
    dr = mixed_grpo_advantages(rewards, gids, ctx=ctx, scale=False)
    torch.testing.assert_close(dr[:4], rewards[:4] - 0.5)
    with pytest.raises(ValueError, match="stats"):
        mixed_grpo_advantages(rewards, gids, ctx=ctx, stats="expert")


def test_misspelled_source_option_fails_validation():
    with pytest.raises(ValueError, match="no option 'error_rat'"):
        RLConfig(rollout_source=("expert_mix", {"error_rat": 0.3})).validate()
    RLConfig(rollout_source=("expert_mix", {"k": 2, "error_rate": 0.3}), rollout_filters=["expert_filter"],
             advantage=("mixed_grpo", {"stats": "on_policy"})).validate()


def test_expert_mix_and_filter_on_shapeworld():
    from workbench.models.vlm import build_processor, build_tiny_vlm
    from workbench.rl import train
    from workbench.rl.collect import CollectConfig, collect_rollout
    from workbench.rl.tasks import shapes_task

    proc = build_processor()
    model = build_tiny_vlm(proc, seed=0)
    task = shapes_task(proc, visual_dependency=None)
    cfg = CollectConfig(num_prompts=6, num_generations=3, max_new_tokens=64, source=("expert_mix", {"k": 1, "error_rate": 0.5}))
    ro, stats = collect_rollout(model, proc, task, cfg, generator=torch.Generator().manual_seed(0), rng=random.Random(1))
    assert len(ro) == 18 and torch.equal(ro.group_ids, torch.arange(6).repeat_interleave(3))
    expert = ro.extras["off_policy"].bool().any(-1)
    assert expert.tolist() == [False, False, True] * 6  # a group's expert row last
    assert torch.equal(ro.extras["off_policy"][expert].bool(), ro.completion_mask[expert].bool())
    for i in expert.nonzero().squeeze(-1).tolist():
        ok = task.expert_ok(ro.texts[i], ro.problems[i])
        assert ro.extras["expert_ok"][i].item() == float(ok)
        assert (ro.texts[i] == ro.problems[i].target) <= ok  # the clean oracle always passes
        assert torch.equal(ro.prompt_ids[i], ro.prompt_ids[i - 1])
    n_bad = int((ro.extras["expert_ok"][expert] < 0.5).sum())
    assert 0 < n_bad < 6  # error_rate 0.5 on 6 experts with this rng
    keep = expert_filter(ro, 3)
    assert int((~keep).sum()) == n_bad and keep[~expert].all()
    filtered = CollectConfig(**{**vars(cfg), "filters": ["expert_filter"]})
    _, st = collect_rollout(model, proc, task, filtered, generator=torch.Generator().manual_seed(0), rng=random.Random(1))
    assert st.rows_dropped == n_bad and st.rounds == 1
    rl = RLConfig.for_method("dapo", rollout_source=("expert_mix", {"k": 1}), rollout_filters=["expert_filter"],
                             advantage="mixed_grpo", steps=1, num_prompts=4, num_generations=3, max_new_tokens=64,
                             progress=False, dynamic_sampling=False)
    h = train(model, proc, task, rl).history[0]
    assert h["off_policy_rows"] == 4 and h["rows_dropped"] == 0 and "off_policy_frac" in h
