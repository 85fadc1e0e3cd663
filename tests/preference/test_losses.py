"""Preference losses against naive float64 references, TRL's DPOTrainer code, and AdaViP's adaptive balance."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from workbench.preference.losses import PREFERENCE_LOSSES, PairLogps, preference_loss


def _logps(B=6, vision=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    t = lambda: -torch.rand(B, generator=g, dtype=dtype) * 20  # noqa: E731
    kw = dict(chosen=t(), rejected=t(), ref_chosen=t(), ref_rejected=t(),
              chosen_tokens=torch.randint(1, 9, (B,), generator=g).to(dtype),
              rejected_tokens=torch.randint(1, 9, (B,), generator=g).to(dtype))
    if vision:
        kw.update(vision_rejected=t(), ref_vision_rejected=t())
    return PairLogps(**kw)


def _naive(name, lp, beta, i):
    """Scalar float64 loss of pair i straight from the papers' formulas."""
    c, r = float(lp.chosen[i] - lp.ref_chosen[i]), float(lp.rejected[i] - lp.ref_rejected[i])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    if name == "sigmoid":
        return -math.log(sig(beta * (c - r)))
    if name == "hinge":
        return max(0.0, 1 - beta * (c - r))
    if name == "ipo":
        h = c / float(lp.chosen_tokens[i]) - r / float(lp.rejected_tokens[i])
        return (h - 1 / (2 * beta)) ** 2
    v = float(lp.vision_rejected[i] - lp.ref_vision_rejected[i])
    if name == "mdpo":
        return -math.log(sig(beta * (c - r))) - math.log(sig(beta * (c - v))) - math.log(sig(beta * c))
    if name == "vision_sigmoid":
        return -math.log(sig(beta * (c - v)))
    if name == "adavip":
        return -math.log(sig(-math.log(math.exp(beta * r - beta * c) + math.exp(beta * v - beta * c))))
    raise KeyError(name)


@pytest.mark.parametrize("name", ["sigmoid", "hinge", "ipo", "mdpo", "adavip", "vision_sigmoid"])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_each_loss_matches_a_naive_float64_reference(name, beta):
    lp = _logps()
    loss, metrics = PREFERENCE_LOSSES.get(name)(lp, beta)
    for i in range(len(loss)):
        assert float(loss[i]) == pytest.approx(_naive(name, lp, beta, i), rel=1e-12, abs=1e-12)
    assert torch.equal(metrics["rewards/chosen"], beta * (lp.chosen - lp.ref_chosen))


def test_adavip_without_vision_pairs_is_dpo_sigmoid_exactly():
    lp = _logps(vision=False)
    a, _ = PREFERENCE_LOSSES.get("adavip")(lp, 0.1)
    s, _ = PREFERENCE_LOSSES.get("sigmoid")(lp, 0.1)
    assert torch.equal(a, s)


def test_adavip_gives_the_harder_negative_the_larger_gradient():
    lp = _logps(B=64, seed=3)
    for name in ("rejected", "vision_rejected"):
        getattr(lp, name).requires_grad_(True)
    loss, metrics = PREFERENCE_LOSSES.get("adavip")(lp, 0.5)
    loss.sum().backward()
    g_l, g_v = lp.rejected.grad.abs(), lp.vision_rejected.grad.abs()
    m_l, m_v = metrics["rewards/margins"], metrics["rewards/vision_margins"]
    harder_vision = m_v < m_l
    assert torch.equal(g_v > g_l, harder_vision)  # the smaller margin takes the larger share
    assert torch.allclose(metrics["vision_share"], g_v / (g_v + g_l), rtol=1e-12)
    # DPO's gradient on the rejected answer ignores the image negative entirely
    assert harder_vision.any() and (~harder_vision).any()


def test_adavip_is_stable_at_extreme_margins():
    big = torch.tensor([1e4, -1e4], dtype=torch.float64)
    z = torch.zeros(2, dtype=torch.float64)
    lp = PairLogps(chosen=big, rejected=z, ref_chosen=z, ref_rejected=z, vision_rejected=z, ref_vision_rejected=z)
    loss, _ = PREFERENCE_LOSSES.get("adavip")(lp, 1.0)
    assert torch.isfinite(loss).all() and float(loss[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(loss[1]) == pytest.approx(1e4 + math.log(2), rel=1e-12)


def test_bad_inputs_are_named():
    lp = _logps(vision=False)
    with pytest.raises(ValueError, match="'mdpo' needs vision pairs"):
        preference_loss("mdpo", lp)
    with pytest.raises(ValueError, match="beta must be > 0"):
        preference_loss("sigmoid", lp, beta=0.0)
    with pytest.raises(KeyError, match="unknown preference loss 'dpo'"):
        preference_loss("dpo", lp)
    with pytest.raises(ValueError, match="rejected has shape"):
        PairLogps(chosen=torch.zeros(3), rejected=torch.zeros(2), ref_chosen=torch.zeros(3), ref_rejected=torch.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        PairLogps(chosen=torch.tensor([float("nan")]), rejected=torch.zeros(1), ref_chosen=torch.zeros(1), ref_rejected=torch.zeros(1))


# ------------------------------------------------------------------------------------------- TRL parity
trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer", reason="trl is not importable: TRL parity needs the peer installed")


class _Accelerator:
    device = torch.device("cpu")

    def gather(self, x):
        return x

    def gather_for_metrics(self, x):
        return x


def _trl_loss(loss_type: str, lp: PairLogps, beta: float) -> torch.Tensor:
    """`DPOTrainer._compute_loss` with a stub self and a stub model whose per-token log-probs sum to ours
    (precomputed reference log-probs, as TRL's `precompute_ref_log_probs=True`)."""
    B, T = lp.chosen.numel(), 9
    n = torch.cat([lp.chosen_tokens, lp.rejected_tokens]).long()
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    for i, k in enumerate(n.tolist()):
        completion_mask[i, T - k:] = 1
    shift = completion_mask[:, 1:].to(lp.chosen.dtype)
    total = torch.cat([lp.chosen, lp.rejected])
    per_token = shift * (total / shift.sum(1)).unsqueeze(1)  # spread each sum evenly over its completion tokens
    outputs = SimpleNamespace(log_probs=per_token, entropy=torch.zeros_like(per_token),
                              mean_logits=torch.zeros_like(per_token), is_top1=torch.zeros_like(per_token, dtype=torch.bool))
    stub = SimpleNamespace(model=SimpleNamespace(training=True), accelerator=_Accelerator(), aux_loss_enabled=False,
                           ld_alpha=None, precompute_ref_logps=True, beta=beta, f_divergence_type="reverse_kl",
                           loss_types=[loss_type], loss_weights=[1.0], label_smoothing=0.0, use_weighting=False,
                           _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0,
                           _tp_size=1, args=SimpleNamespace(rpo_alpha=None, gradient_checkpointing_kwargs=None))
    inputs = {"input_ids": torch.ones(2 * B, T, dtype=torch.long), "attention_mask": torch.ones(2 * B, T, dtype=torch.long),
              "completion_mask": completion_mask, "ref_chosen_logps": lp.ref_chosen, "ref_rejected_logps": lp.ref_rejected}
    return trl_dpo.DPOTrainer._compute_loss(stub, lambda **kw: outputs, inputs, return_outputs=False)


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_matches_trl_dpo_trainer_on_identical_logps(loss_type):
    lp = _logps(vision=False, seed=7)
    ours, _ = preference_loss(loss_type, lp, beta=0.1)
    theirs = _trl_loss(loss_type, lp, beta=0.1)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-10)
