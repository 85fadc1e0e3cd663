"""Property tests (hypothesis): every advantage estimator, token weight, aggregation and the policy loss stay
finite — loss and gradient — on random shapes, masks and extreme but finite inputs, or stop with a clear error.
`make test` runs a bounded number of examples; `make test-slow` the long profile."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.rl.advantages import ADVANTAGES, MAX_ABS_REWARD, AdvantageContext, compute_advantages
from workbench.rl.losses import AGGREGATIONS, policy_loss
from workbench.rl.weights import TOKEN_WEIGHTS, WeightContext, compose_token_weights

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXTREME = st.one_of(st.floats(-0.99 * MAX_ABS_REWARD, 0.99 * MAX_ABS_REWARD, allow_nan=False, width=64), st.sampled_from([0.0, 1.0, -1.0, 1e-30]))


@st.composite
def rollouts(draw):
    groups = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 5), min_size=groups, max_size=groups))
    N = sum(sizes)
    T = draw(st.integers(1, 7))
    rewards = torch.tensor(draw(st.lists(EXTREME, min_size=N, max_size=N)), dtype=torch.float32)
    group_ids = torch.cat([torch.full((n,), 3 * g + 1) for g, n in enumerate(sizes)])
    mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=N, max_size=N)))
    logp_vals = st.one_of(st.floats(-1e4, 0.0, width=32), st.just(float("-inf")))
    logp = torch.tensor(draw(st.lists(st.lists(logp_vals, min_size=T, max_size=T), min_size=N, max_size=N)))
    old = torch.tensor(draw(st.lists(st.lists(logp_vals, min_size=T, max_size=T), min_size=N, max_size=N)))
    return rewards, group_ids, mask, logp, old


def context(rewards, mask, logp):
    N, T = mask.shape
    g = torch.Generator().manual_seed(N * 31 + T)
    return AdvantageContext(extras={"visual_entropy": torch.rand(N, generator=g), "off_policy": (torch.rand(N, T, generator=g) < 0.3).float(),
                                    "visual_dependency": torch.randn(N, T, generator=g) * 1e3},
                            sequence_logp=(logp.clamp(min=-1e4) * mask).sum(-1))


def ours(registry):
    """The package's own entries (other tests register toy ones in the same process)."""
    return [n for n in registry.names() if registry.get(n).__module__.startswith("workbench.")]


def check_everything(rewards, group_ids, mask, logp, old):
    ctx = context(rewards, mask, logp)
    for name in ours(ADVANTAGES):
        adv = compute_advantages(name, rewards, group_ids, mask, ctx=ctx)
        assert torch.isfinite(adv).all(), name
    adv = compute_advantages("grpo", rewards, group_ids, mask)
    lp = logp.clone().requires_grad_(True)
    wctx = WeightContext(logp=lp, old_logp=old, mask=mask, advantages=adv, entropy=torch.rand(mask.shape),
                         extras={"visual_dependency": ctx.extras["visual_dependency"]})
    for name in ours(TOKEN_WEIGHTS):
        w = compose_token_weights([name], wctx)
        assert torch.isfinite(w[mask]).all(), name
    for agg in ours(AGGREGATIONS):
        for extra in ({}, {"dual_clip_c": 3.0, "epsilon_high": 0.28}, {"ref_logp": old.flip(0), "kl_coef": 0.1},
                      {"off_policy": ctx.extras["off_policy"]}):
            lp.grad = None
            loss, metrics = policy_loss(lp, old, adv, mask, agg=agg, max_len=mask.shape[1],
                                        token_weights=compose_token_weights(["low_prob"], wctx), **extra)
            loss.backward()
            assert torch.isfinite(loss), (agg, extra.keys())
            assert torch.isfinite(lp.grad).all(), (agg, extra.keys())
            assert all(torch.isfinite(v) for v in metrics.values())


@FAST
@given(rollouts())
def test_finite_on_extreme_inputs(batch):
    check_everything(*batch)


@pytest.mark.slow
@LONG
@given(rollouts())
def test_finite_on_extreme_inputs_long(batch):
    check_everything(*batch)


def test_bad_numbers_are_one_sentence():
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="rewards must lie within"):
        compute_advantages("grpo", torch.tensor([3e38, 0.0]), torch.tensor([0, 0]), mask)
    with pytest.raises(ValueError, match="advantages must be finite"):
        policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.full((2, 3), float("nan")), mask)
    with pytest.raises(ValueError, match="token_weights must be finite"):
        policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), mask, token_weights=torch.full((2, 3), float("inf")))
