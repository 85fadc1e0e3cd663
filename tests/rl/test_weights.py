"""Token weights against naive float64 loops: low_prob, future_kl (FIPO), ToR; composition and errors."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.rl.weights import (
    TOKEN_WEIGHTS,
    WeightContext,
    compose_token_weights,
    discount_matrix,
    discounted_future_sum,
    top_fraction_mask,
)


def random_ctx(seed: int, b: int = 6, t: int = 40, scale: float = 0.05, spikes: bool = True) -> WeightContext:
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    delta = torch.randn(b, t, generator=g, dtype=torch.float64) * scale
    if spikes:  # some tokens above log 10 (excluded), some with ratio in (4, 10) (safety clamp)
        pick = torch.rand(b, t, generator=g)
        delta = torch.where(pick < 0.05, torch.full_like(delta, 3.0), delta)
        delta = torch.where((pick >= 0.05) & (pick < 0.12), torch.full_like(delta, 1.8), delta)
    lengths = torch.randint(0, t + 1, (b,), generator=g)
    lengths[0], lengths[1] = 0, t  # an empty completion and a full one
    mask = torch.arange(t)[None, :] < lengths[:, None]
    adv = torch.randn(b, 1, generator=g, dtype=torch.float64).expand(b, t) * mask
    return WeightContext(logp=old + delta, old_logp=old, mask=mask, advantages=adv,
                         entropy=torch.rand(b, t, generator=g, dtype=torch.float64),
                         extras={"visual_dependency": torch.randn(b, t, generator=g, dtype=torch.float64)})


def naive_future_kl(ctx, decay_rate=32.0, c=10.0, clip_ratio=0.2, clip_high_only=False, safety=4.0):
    b, t = ctx.mask.shape
    gamma = 2.0 ** (-1.0 / decay_rate)
    out = torch.zeros(b, t, dtype=torch.float64)
    for i in range(b):
        deltas = [min(max(ctx.logp[i, k].item() - ctx.old_logp[i, k].item(), -20.0), 20.0) for k in range(t)]
        for s in range(t):
            fkl = 0.0
            for k in range(s, t):  # the double loop: every future token, the current one included
                if ctx.mask[i, k] and deltas[k] <= math.log(c):
                    fkl += gamma ** (k - s) * deltas[k]
            lo = 1.0 if clip_high_only else 1.0 - clip_ratio
            f = min(max(math.exp(fkl), lo), 1.0 + clip_ratio)
            if ctx.advantages[i, s] < 0 and math.exp(deltas[s]) > safety:
                f = min(max(f, 0.8), 1.0)
            out[i, s] = f if ctx.mask[i, s] else 1.0
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"decay_rate": 4.0, "chunk": 8},
        {"decay_rate": math.inf, "chunk": 3},
        {"clip_high_only": True, "chunk": 16},
        {"safety_threshold": 10.0, "dual_clip_c": 5.0, "clip_ratio": 0.1, "chunk": 7},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_future_kl_matches_naive_double_loop(kwargs, seed):
    ctx = random_ctx(seed, scale=0.3 if seed else 0.05)
    ours = compose_token_weights([("future_kl", kwargs)], ctx)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "chunk"}
    ref = naive_future_kl(ctx, **{"c" if k == "dual_clip_c" else ("safety" if k == "safety_threshold" else k): v
                                  for k, v in ref_kwargs.items()})
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    # the inputs exercise both clip bounds, unclipped values, and the safety clamp
    valid = ours[ctx.mask]
    hi = 1.0 + kwargs.get("clip_ratio", 0.2)
    lo = 1.0 if kwargs.get("clip_high_only") else 1.0 - kwargs.get("clip_ratio", 0.2)
    assert ((valid >= lo - 1e-12) | ((valid >= 0.8 - 1e-12) & (valid <= 1.0))).all() and (valid <= hi + 1e-12).all()


def test_future_kl_clip_ranges_reach_both_bounds():
    t = 6
    mask = torch.ones(2, t, dtype=torch.bool)
    old = torch.full((2, t), -1.0, dtype=torch.float64)
    logp = old + torch.tensor([[0.5] * t, [-0.5] * t], dtype=torch.float64)
    ctx = WeightContext(logp=logp, old_logp=old, mask=mask, advantages=torch.ones(2, t, dtype=torch.float64))
    w = compose_token_weights(["future_kl"], ctx)
    assert (w[0] == 1.2).all() and (w[1] == 0.8).all()
    w = compose_token_weights([("future_kl", {"clip_high_only": True})], ctx)
    assert (w[0] == 1.2).all() and (w[1] == 1.0).all()


def test_future_kl_safety_clamp_and_exclusion():
    old = torch.zeros(1, 3, dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    # token 0 has ratio e^1.5 ≈ 4.5 > 4 (safety) but < 10 (counted); FutureKL_0 = 1.5 + ... > log 1.2
    logp = torch.tensor([[1.5, 0.0, 0.0]], dtype=torch.float64)
    neg = WeightContext(logp=logp, old_logp=old, mask=mask, advantages=-torch.ones(1, 3, dtype=torch.float64))
    pos = WeightContext(logp=logp, old_logp=old, mask=mask, advantages=torch.ones(1, 3, dtype=torch.float64))
    assert compose_token_weights(["future_kl"], neg)[0, 0].item() == 1.0  # capped at 1 for A < 0
    assert compose_token_weights(["future_kl"], pos)[0, 0].item() == pytest.approx(1.2)
    assert compose_token_weights([("future_kl", {"safety_threshold": 10.0})], neg)[0, 0].item() == pytest.approx(1.2)
    # a token above log c is left out of every sum: the token before it sees FutureKL = -0.1 only
    logp = torch.tensor([[-0.1, 3.0, 0.0]], dtype=torch.float64)
    ctx = WeightContext(logp=logp, old_logp=old, mask=mask, advantages=torch.ones(1, 3, dtype=torch.float64))
    w = compose_token_weights([("future_kl", {"decay_rate": 1.0})], ctx)
    assert w[0, 0].item() == pytest.approx(math.exp(-0.1), abs=1e-15)
    assert w[0, 1].item() == 1.0  # its own FutureKL is 0


def test_future_kl_is_one_on_first_minibatch_and_moves_after():
    ctx = random_ctx(3, scale=0.0, spikes=False)
    assert (ctx.logp == ctx.old_logp).all()
    w = compose_token_weights(["future_kl"], ctx)
    assert (w == 1.0).all()
    moved = WeightContext(logp=ctx.logp + 0.01, old_logp=ctx.old_logp, mask=ctx.mask, advantages=ctx.advantages)
    w2 = compose_token_weights(["future_kl"], moved)
    assert (w2[moved.mask] > 1.0).all()


@pytest.mark.parametrize("t,chunk", [(0, 4), (1, 4), (4, 4), (5, 4), (17, 2), (130, 8), (1000, 16)])
def test_discounted_future_sum_matches_recursion(t, chunk):
    x = torch.randn(3, t, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    gamma = 2 ** (-1 / 5)
    ref = torch.zeros_like(x)
    running = torch.zeros(3, dtype=torch.float64)
    for k in range(t - 1, -1, -1):
        running = x[:, k] + gamma * running
        ref[:, k] = running
    torch.testing.assert_close(discounted_future_sum(x, gamma, chunk=chunk), ref, atol=1e-12, rtol=0)
    if t:
        torch.testing.assert_close(x @ discount_matrix(t, gamma, dtype=torch.float64), ref, atol=1e-12, rtol=0)


def test_low_prob_matches_naive_loop():
    ctx = random_ctx(4)
    w = compose_token_weights([("low_prob", {"alpha": 0.2})], ctx)
    for i in range(w.shape[0]):
        for t in range(w.shape[1]):
            expected = 1 + 0.2 * (1 - math.exp(ctx.old_logp[i, t].item())) if ctx.mask[i, t] else 1.0
            assert w[i, t].item() == pytest.approx(expected, abs=1e-14)


def test_composition_is_a_detached_product_and_specs_are_equivalent():
    ctx = random_ctx(5, scale=0.2)
    ctx.logp.requires_grad_(True)
    ident = compose_token_weights([], ctx)
    assert (ident == 1).all() and not ident.requires_grad
    a = compose_token_weights(["low_prob"], ctx)
    b = compose_token_weights([("future_kl", {"decay_rate": 8.0})], ctx)
    ab = compose_token_weights(["low_prob", {"name": "future_kl", "decay_rate": 8.0}], ctx)
    assert not ab.requires_grad
    torch.testing.assert_close(ab, a * b, atol=1e-15, rtol=0)
    assert not (a == 1).all() and not (b == 1).all()


def naive_top_set(scores, mask, frac):
    vals = sorted((scores[i, t].item() for i in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[i, t]), reverse=True)
    k = math.ceil(frac * len(vals) - 1e-9)
    if k == 0:
        return torch.zeros_like(mask, dtype=torch.bool)
    return mask.bool() & (scores >= vals[k - 1])


def test_tor_on_hand_made_batch():
    # 8 valid tokens (row 0: 5, row 1: 3) -> each set holds ceil(0.3 * 8) = 3 tokens
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    entropy = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.0], [0.7, 0.3, 0.05, 9.0, 9.0]])  # T_r = (0,0), (0,2), (1,0)
    vis = torch.tensor([[0.0, -2.0, 1.5, 0.1, 0.2], [0.0, 0.3, 1.0, 5.0, 5.0]])  # |.|: T_p = (0,1), (0,2), (1,2)
    z = torch.zeros(2, 5)
    ctx = WeightContext(logp=z, old_logp=z, mask=mask, advantages=z, entropy=entropy, extras={"visual_dependency": vis})
    w = compose_token_weights(["tor"], ctx)
    assert w.tolist() == [[1.0, 0.5, 1.0, 0.0, 0.0], [1.0, 0.0, 0.5, 1.0, 1.0]]  # padding -> 1 (masked anyway)
    assert compose_token_weights(["tor_reasoning_only"], ctx)[mask].tolist() == [1, 0, 1, 0, 0, 1, 0, 0]
    assert compose_token_weights(["tor_perception_only"], ctx)[mask].tolist() == [0, 1, 1, 0, 0, 0, 0, 1]
    w = compose_token_weights([("tor", {"gamma_r": 2.0, "gamma_p": 0.25})], ctx)
    assert w[mask].tolist() == [2.0, 0.25, 2.0, 0, 0, 2.0, 0, 0.25]


@pytest.mark.parametrize("frac", [0.0, 0.3, 0.5, 1.0])
def test_top_fraction_matches_naive_sort(frac):
    ctx = random_ctx(6)
    ours = top_fraction_mask(ctx.entropy, ctx.mask, frac)
    assert torch.equal(ours, naive_top_set(ctx.entropy, ctx.mask, frac))
    empty = torch.zeros_like(ctx.mask)
    assert not top_fraction_mask(ctx.entropy, empty, frac).any()


def test_missing_field_and_bad_values_are_one_clear_error():
    z = torch.zeros(2, 3)
    ctx = WeightContext(logp=z, old_logp=z, mask=torch.ones(2, 3), advantages=z)
    with pytest.raises(ValueError, match=r"'tor' needs WeightContext.entropy"):
        compose_token_weights(["tor"], ctx)
    ctx.entropy = z
    with pytest.raises(ValueError, match=r"'tor_perception_only' needs WeightContext.extras\['visual_dependency'\]"):
        compose_token_weights(["tor_perception_only"], ctx)
    with pytest.raises(ValueError, match="decay_rate must be positive, got 0"):
        compose_token_weights([("future_kl", {"decay_rate": 0})], ctx)
    with pytest.raises(ValueError, match="spec"):
        compose_token_weights([("future_kl", 3)], ctx)
    with pytest.raises(KeyError, match="unknown token weight 'futur_kl'; known: .*future_kl"):
        compose_token_weights(["futur_kl"], ctx)
    assert {"low_prob", "future_kl", "tor", "tor_perception_only", "tor_reasoning_only"} <= set(TOKEN_WEIGHTS.names())
