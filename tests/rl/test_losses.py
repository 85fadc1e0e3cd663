"""Aggregations and the clipped policy loss against naive float64 loops (values, gradients, metrics)."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.rl.methods import loss_preset
from workbench.rl.losses import (
    AGGREGATIONS,
    LossConfig,
    aggregate,
    dual_clip_drop_mask,
    masked_mean,
    policy_loss,
)


def random_batch(seed: int, b: int = 6, t: int = 7, spread: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=torch.float64) * 2
    logp = (old + torch.randn(b, t, generator=g, dtype=torch.float64) * spread).requires_grad_(True)
    ref = old + torch.randn(b, t, generator=g, dtype=torch.float64) * 0.3
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[1] = 0  # an empty completion
    mask = torch.arange(t)[None, :] < lengths[:, None]
    sign = torch.tensor([(-1.0) ** i for i in range(b)], dtype=torch.float64)[:, None]  # both signs present
    adv = (sign * torch.randn(b, 1, generator=g, dtype=torch.float64).abs() + 0.3 * torch.randn(b, t, generator=g, dtype=torch.float64)) * mask
    weights = 0.8 + 0.4 * torch.rand(b, t, generator=g, dtype=torch.float64)
    return logp, old, adv, mask, ref, weights


def naive_aggregate(per_token, mask, mode, num_tokens=None, max_len=None, num_seqs=None):
    b, t = mask.shape
    total, count, seq_means = 0.0, 0, []
    for i in range(b):
        row = [per_token[i][k] for k in range(t) if mask[i, k]]
        total = total + sum(row)
        count += len(row)
        seq_means.append(sum(row) / len(row) if row else 0.0)
    n_seq = num_seqs if num_seqs is not None else b
    if mode == "token-mean":
        return total / (num_tokens if num_tokens is not None else max(count, 1))
    if mode == "seq-mean-token-mean":
        return sum(seq_means) / n_seq
    return total / (n_seq * max_len)


def naive_policy_loss(logp, old, adv, mask, *, eps_low, eps_high, c=None, ref=None, beta=0.0, weights=None, agg="token-mean", **agg_kw):
    b, t = mask.shape
    per_token = [[None] * t for _ in range(b)]
    low = high = dual = 0
    for i in range(b):
        for k in range(t):
            a = adv[i, k].item() * (weights[i, k].item() if weights is not None else 1.0)
            d = torch.clamp(logp[i, k] - old[i, k], -20.0, 20.0)
            r = torch.exp(d)
            clipped = torch.clamp(r, 1 - eps_low, 1 + eps_high)
            loss = -torch.minimum(r * a, clipped * a)
            if c is not None and a < 0 and loss.item() > -c * a:
                loss = loss * 0 - c * a
                dual += bool(mask[i, k])
            if ref is not None and beta:
                dr = ref[i, k] - logp[i, k]
                loss = loss + beta * (torch.exp(dr) - dr - 1)
            per_token[i][k] = loss
            if mask[i, k]:
                low += r.item() < 1 - eps_low and a < 0
                high += r.item() > 1 + eps_high and a > 0
    n = max(int(mask.sum()), 1)
    metrics = {"clip_frac_low": low / n, "clip_frac_high": high / n, "clip_frac_dual": dual / n}
    return naive_aggregate(per_token, mask, agg, **agg_kw), metrics


CASES = [
    dict(preset="grpo"),
    dict(preset="dapo"),
    dict(preset="dapo", num_tokens=40.0),
    dict(preset="dr_grpo", max_len=11),
    dict(preset="grpo", num_seqs=8),
    dict(preset="dapo", dual_clip_c=1.5, weights=True),
    dict(preset="grpo", kl_coef=0.1, ref=True),
    dict(preset="dr_grpo", max_len=9, dual_clip_c=2.0, kl_coef=0.04, ref=True, weights=True),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_policy_loss_matches_naive_loop(case, seed):
    logp, old, adv, mask, ref, weights = random_batch(seed)
    cfg = loss_preset(case["preset"], **{k: case[k] for k in ("dual_clip_c", "kl_coef") if k in case})
    agg_kw = {k: case[k] for k in ("num_tokens", "max_len", "num_seqs") if k in case}
    w = weights if case.get("weights") else None
    r = ref if case.get("ref") else None
    loss, metrics = policy_loss(logp, old, adv, mask, **cfg.as_kwargs(), ref_logp=r, token_weights=w, **agg_kw)
    (grad,) = torch.autograd.grad(loss, logp)

    logp_ref = logp.detach().clone().requires_grad_(True)
    expected, expected_metrics = naive_policy_loss(
        logp_ref, old, adv, mask, eps_low=cfg.epsilon_low, eps_high=cfg.epsilon_high, c=cfg.dual_clip_c,
        ref=r, beta=cfg.kl_coef, weights=w, agg=cfg.agg, **agg_kw)
    (grad_ref,) = torch.autograd.grad(expected, logp_ref)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    torch.testing.assert_close(grad, grad_ref, atol=1e-12, rtol=0)
    assert torch.isfinite(grad).all() and (grad[~mask] == 0).all()
    for key, value in expected_metrics.items():
        assert metrics[key].item() == pytest.approx(value, abs=1e-12), key
    # the random inputs really exercise clipping
    assert metrics["clip_frac_low"] + metrics["clip_frac_high"] > 0
    if cfg.dual_clip_c == 1.5:
        assert metrics["clip_frac_dual"] > 0


def test_metrics_kl_ratio_weight_match_naive():
    logp, old, adv, mask, ref, weights = random_batch(3)
    _, m = policy_loss(logp, old, adv, mask, ref_logp=ref, token_weights=weights)
    n = int(mask.sum())
    lp = logp.detach()
    kl = sum(math.exp(ref[i, k] - lp[i, k]) - (ref[i, k] - lp[i, k]).item() - 1
             for i in range(mask.shape[0]) for k in range(mask.shape[1]) if mask[i, k])
    ratio = sum(math.exp(lp[i, k] - old[i, k]) for i in range(mask.shape[0]) for k in range(mask.shape[1]) if mask[i, k])
    assert m["kl"].item() == pytest.approx(kl / n, rel=1e-6)
    assert m["ratio_mean"].item() == pytest.approx(ratio / n, rel=1e-6)
    assert m["weight_mean"].item() == pytest.approx(weights[mask].mean().item(), rel=1e-6)
    assert all(not v.requires_grad and v.dim() == 0 for v in m.values())


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("extra", [{}, {"num_tokens": 13.0, "num_seqs": 3}])
def test_aggregations_match_naive(mode, extra):
    _, _, _, mask, _, _ = random_batch(4)
    per_token = torch.randn(mask.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    kw = dict(extra, max_len=10)
    ours = aggregate(per_token, mask, mode, **kw)
    expected = naive_aggregate(per_token.tolist(), mask, mode, **kw)
    assert ours.item() == pytest.approx(expected, abs=1e-12)
    assert set(AGGREGATIONS.names()) == {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"}


def test_empty_batch_gives_zero_not_nan():
    per_token = torch.randn(3, 4, dtype=torch.float64)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    for mode in AGGREGATIONS:
        assert aggregate(per_token, mask, mode, max_len=4).item() == 0.0
    logp = torch.full((3, 4), float("nan"), requires_grad=True)
    loss, m = policy_loss(logp, torch.zeros(3, 4), torch.ones(3, 4), mask)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logp.grad).all() and m["ratio_mean"].item() == 0.0


def test_garbage_in_padding_gives_finite_gradients():
    logp, old, adv, mask, ref, _ = random_batch(5)
    logp = logp.detach().clone()
    logp[~mask] = -float("inf")
    old = old.clone()
    old[~mask] = float("nan")
    logp.requires_grad_(True)
    loss, _ = policy_loss(logp, old, adv, mask, dual_clip_c=3.0, ref_logp=ref, kl_coef=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all() and (logp.grad[~mask] == 0).all()


def test_token_mean_with_global_count_equals_full_batch_under_accumulation():
    logp, old, adv, mask, _, _ = random_batch(6, b=6)
    full, _ = policy_loss(logp, old, adv, mask, epsilon_high=0.28)
    n = mask.sum()
    parts = [policy_loss(logp[s], old[s], adv[s], mask[s], epsilon_high=0.28, num_tokens=n)[0]
             for s in (slice(0, 2), slice(2, 3), slice(3, 6))]
    assert sum(parts).item() == pytest.approx(full.item(), abs=1e-12)


def test_dual_clip_drop_mask_and_drop_in_loss():
    old = torch.zeros(4, 4, dtype=torch.float64)
    big = math.log(12.0)  # ratio 12 > c = 10
    logp = torch.tensor([[big, big, 0, 0], [big, 0, 0, 0], [big, big, 0, 0], [big, big, big, 0]], dtype=torch.float64)
    adv = torch.tensor([[-1.0] * 4, [-1.0] * 4, [1.0] * 4, [-1.0] * 4], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    keep = dual_clip_drop_mask(logp, old, adv, mask, dual_clip_c=10.0)
    # two clipped tokens -> dropped; one -> kept; positive advantage -> kept; the 3rd big token is padding
    assert keep.tolist() == [False, True, True, False]
    cfg = loss_preset("fipo")
    loss, m = policy_loss(logp, old, adv, mask, **cfg.as_kwargs())
    expected, _ = policy_loss(logp, old, adv, mask & keep[:, None], **{**cfg.as_kwargs(), "drop_dual_clipped": False})
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    assert m["dropped_frac"].item() == 0.5


def test_presets_and_bad_input():
    assert loss_preset("grpo") == LossConfig(0.2, 0.2, None, 0.0, "seq-mean-token-mean", False)
    assert loss_preset("dapo").epsilon_high == 0.28 and loss_preset("dapo").agg == "token-mean"
    assert loss_preset("dr_grpo").agg == "seq-mean-token-sum-norm"
    assert loss_preset("fipo").dual_clip_c == 10.0
    assert loss_preset("dapo", epsilon_high=0.3).epsilon_high == 0.3
    with pytest.raises(ValueError, match="unknown LossConfig field 'eps'"):
        loss_preset("dapo", eps=0.3)
    with pytest.raises(KeyError, match="unknown RL method 'ppo'"):
        loss_preset("ppo")
    logp, old, adv, mask, _, _ = random_batch(7)
    with pytest.raises(ValueError, match="kl_coef = 0.1 needs ref_logp"):
        policy_loss(logp, old, adv, mask, kl_coef=0.1)
    with pytest.raises(ValueError, match="dual_clip_c must be greater than 1, got 0.5"):
        policy_loss(logp, old, adv, mask, dual_clip_c=0.5)
    with pytest.raises(ValueError, match="advantages has shape"):
        policy_loss(logp, old, adv[:, :3], mask)
    with pytest.raises(ValueError, match="needs max_len"):
        policy_loss(logp, old, adv, mask, agg="seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="num_tokens must be positive, got 0"):
        aggregate(adv, mask, "token-mean", num_tokens=0)
    with pytest.raises(KeyError, match="unknown loss aggregation 'sum'"):
        aggregate(adv, mask, "sum")
    assert masked_mean(adv, torch.zeros_like(mask)).item() == 0.0
