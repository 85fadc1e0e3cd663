"""Clipped-surrogate policy loss, its aggregation modes and named presets (GRPO / DAPO / Dr.GRPO / FIPO).

Per token (r_t = π_θ / π_old, Ã_t = w_t · A_t with token weights w):

    ℓ_t = −min(r_t Ã_t, clip(r_t, 1 − ε_low, 1 + ε_high) Ã_t)          (PPO; DAPO clip-higher when ε_high > ε_low)
    ℓ_t = min(ℓ_t, −c Ã_t)  where Ã_t < 0                                (dual clip, optional)
    ℓ_t += β · (exp(ref − logp) − (ref − logp) − 1)                      (k3 KL to a reference, optional)

then one scalar by an aggregation mode (`AGGREGATIONS`). Example::

    cfg = LossConfig.from_name("dapo")
    loss, metrics = policy_loss(logp, old_logp, adv, mask, **cfg.as_kwargs(), num_tokens=global_tokens)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from workbench.registry import Registry

AGGREGATIONS = Registry("loss aggregation")


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x · mask over `dim` (all dims when None). x, mask: [B, T]."""
    xm = torch.where(mask.bool(), x, torch.zeros_like(x))
    return xm.sum() if dim is None else xm.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ x · mask / max(Σ mask, 1) over `dim` (all dims when None): 0, not NaN, when the mask is empty."""
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def _positive(value, name: str):
    """A python number must be > 0 (ValueError otherwise); a tensor count of 0 becomes 1 (its sum is 0 too)."""
    if isinstance(value, Tensor):
        return torch.where(value > 0, value, torch.ones_like(value))
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


@AGGREGATIONS.register("token-mean")
def token_mean(per_token: Tensor, mask: Tensor, *, num_tokens=None, max_len=None, num_seqs=None) -> Tensor:
    """DAPO token-level loss (arXiv 2503.14476): Σ_{b,t} ℓ m / N_tok.

    N_tok = `num_tokens` when given — the GLOBAL count of valid tokens over all gradient-accumulation
    micro-batches (and processes) of one optimizer step, so summed micro-batch losses equal the loss of
    the whole batch (under DDP, which averages gradients over P processes, pass global count / P) —
    else the local mask.sum(). Length bias: every token weighs the same wherever it is, so a long
    response moves the policy more in total than a short one; long wrong answers are penalised in full
    (DAPO's motivation), with no per-sequence 1/|o| down-weighting.
    """
    denom = _positive(num_tokens, "num_tokens") if num_tokens is not None else mask.to(per_token.dtype).sum().clamp(min=1)
    return masked_sum(per_token, mask) / denom


@AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(per_token: Tensor, mask: Tensor, *, num_tokens=None, max_len=None, num_seqs=None) -> Tensor:
    """GRPO's original loss (DeepSeekMath, arXiv 2402.03300; TRL ``loss_type="grpo"``): mean_b (Σ_t ℓ m / |o_b|).

    Divided by `num_seqs` when given, else by B; an empty completion counts as a sequence with loss 0
    (as in TRL). Length bias: a token of a long response weighs 1/|o| — correct short answers are
    reinforced more per token and long wrong answers penalised less, so wrong answers drift longer
    (the bias Dr.GRPO, arXiv 2503.20783, and DAPO point out).
    """
    lengths = mask.to(per_token.dtype).sum(-1).clamp(min=1)
    per_seq = masked_sum(per_token, mask, dim=-1) / lengths
    return per_seq.sum() / (_positive(num_seqs, "num_seqs") if num_seqs is not None else max(per_token.shape[0], 1))


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(per_token: Tensor, mask: Tensor, *, num_tokens=None, max_len=None, num_seqs=None) -> Tensor:
    """Dr. GRPO (arXiv 2503.20783; TRL ``loss_type="dr_grpo"``): Σ_{b,t} ℓ m / (B · L_max).

    L_max = `max_len`, a constant (the generation budget), and B = `num_seqs` or the batch size. Length
    bias: none — every token weighs 1/(B · L_max) whatever the length of its response, unlike the
    1/|o| of seq-mean-token-mean; the loss scale no longer depends on how long the batch's responses are.
    """
    if max_len is None:
        raise ValueError("aggregation 'seq-mean-token-sum-norm' needs max_len (the constant generation budget), got None")
    _positive(max_len, "max_len")
    n_seq = _positive(num_seqs, "num_seqs") if num_seqs is not None else max(per_token.shape[0], 1)
    return masked_sum(per_token, mask) / (n_seq * max_len)


def aggregate(per_token: Tensor, mask: Tensor, mode: str, *, num_tokens=None, max_len: int | None = None, num_seqs=None) -> Tensor:
    """Reduce a per-token loss [B, T] to a scalar with the aggregation `mode` (see `AGGREGATIONS`).

    Args:
        per_token: [B, T] loss per token; mask: [B, T] (bool or 0/1).
        mode: ``token-mean`` | ``seq-mean-token-mean`` | ``seq-mean-token-sum-norm``.
        num_tokens: global valid-token count for ``token-mean`` (float or 0-d tensor).
        max_len: the constant L_max of ``seq-mean-token-sum-norm``.
        num_seqs: global sequence count for the two seq-mean modes (default: B).

    Returns:
        0-d tensor.
    """
    if per_token.shape != mask.shape:
        raise ValueError(f"per_token {tuple(per_token.shape)} and mask {tuple(mask.shape)} must have the same shape")
    return AGGREGATIONS.get(mode)(per_token, mask, num_tokens=num_tokens, max_len=max_len, num_seqs=num_seqs)


def dual_clip_drop_mask(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
                        dual_clip_c: float = 10.0, max_clipped: int = 1, log_ratio_clamp: float = 20.0) -> Tensor:
    """FIPO's response filter (arXiv 2603.19835): drop a response with more than one dual-clipped token.

    A token is at the dual-clip bound when m_t = 1, A_t < 0 and r_t > c (for c > 1 that is exactly when
    the dual clip replaces the PPO term), r_t = exp(clamp(logp − old_logp, ±20)). Pass the advantages
    after token weighting (a token with weight 0 is never clipped).

    Args:
        logp, old_logp, advantages, mask: [B, T].
        dual_clip_c: c (> 1).  max_clipped: the most clipped tokens a kept response may have.

    Returns:
        keep: [B] bool, True for responses with at most `max_clipped` such tokens.
    """
    ratio = (logp.detach() - old_logp).clamp(-log_ratio_clamp, log_ratio_clamp).exp()
    at_bound = mask.bool() & (advantages < 0) & (ratio > dual_clip_c)
    return at_bound.sum(-1) <= max_clipped


def policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
    epsilon_low: float = 0.2, epsilon_high: float = 0.2, dual_clip_c: float | None = None,
    ref_logp: Tensor | None = None, kl_coef: float = 0.0, token_weights: Tensor | None = None,
    agg: str = "token-mean", num_tokens=None, max_len: int | None = None, num_seqs=None,
    drop_dual_clipped: bool = False, log_ratio_clamp: float = 20.0,
    off_policy: Tensor | None = None, off_policy_gamma: float = 0.1, off_policy_shaping: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate with ε_low / ε_high, optional dual clip and k3 KL, then aggregation.

    PPO (arXiv 1707.06347) with DAPO clip-higher (separate ε_high, arXiv 2503.14476), dual clip for
    negative advantages (arXiv 1912.09729), k3 KL estimator as in GRPO (arXiv 2402.03300); the
    formulas are in the module docstring. log(r) is clamped to ±`log_ratio_clamp` (verl's guard).

    Args:
        logp: [B, T] current log-probs (requires grad).  old_logp: [B, T] rollout-policy log-probs.
        advantages: [B, T] per-token advantages.  mask: [B, T] completion mask.
        epsilon_low, epsilon_high: clip range [1 − ε_low, 1 + ε_high].
        dual_clip_c: c > 1 bounding the loss of negative-advantage tokens by −c·Ã; None = off.
        ref_logp: [B, T] reference log-probs; needed when kl_coef > 0.  kl_coef: β.
        token_weights: [B, T] multipliers of the advantage (detached), e.g. `compose_token_weights`.
        agg, num_tokens, max_len, num_seqs: passed to `aggregate`.
        drop_dual_clipped: apply FIPO's `dual_clip_drop_mask` (needs dual_clip_c).
        off_policy: [B, T] mask of tokens the policy did not sample (expert trajectories, TGRL arXiv
            2603.26126 / LUFFY arXiv 2504.14945). On them the clipped term is replaced by the unclipped
            ℓ_t = −Ã_t · f(π_θ(o_t)),  f(π) = π / (π + γ)  (`off_policy_shaping`; γ = `off_policy_gamma`),
            whose gradient γ·π / (π + γ)² · ∇log π boosts low-probability expert tokens; without shaping
            f(π) = π (the ratio against a deterministic expert). An all-zero mask changes nothing.

    Returns:
        (loss, metrics): loss 0-d; metrics of detached 0-d tensors (masked means over local valid tokens):
        ``clip_frac_low`` (r < 1 − ε_low, Ã < 0), ``clip_frac_high`` (r > 1 + ε_high, Ã > 0),
        ``clip_frac_dual``, ``kl`` (k3, 0 without ref), ``ratio_mean``, ``weight_mean``, ``dropped_frac``.
    """
    shape = mask.shape
    for name, t in (("logp", logp), ("old_logp", old_logp), ("advantages", advantages), ("ref_logp", ref_logp), ("token_weights", token_weights)):
        if t is not None and t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)} like mask")
    if not (epsilon_low >= 0 and epsilon_high >= 0):
        raise ValueError(f"epsilon_low and epsilon_high must be non-negative, got {epsilon_low} and {epsilon_high}")
    if dual_clip_c is not None and not dual_clip_c > 1:
        raise ValueError(f"dual_clip_c must be greater than 1, got {dual_clip_c}")
    if kl_coef < 0 or not math.isfinite(kl_coef):
        raise ValueError(f"kl_coef must be a non-negative number, got {kl_coef}")
    if kl_coef > 0 and ref_logp is None:
        raise ValueError(f"kl_coef = {kl_coef} needs ref_logp, got None")
    if drop_dual_clipped and dual_clip_c is None:
        raise ValueError("drop_dual_clipped=True needs dual_clip_c, got None")

    valid = mask.bool()
    zero = torch.zeros_like(logp)
    for name, t in (("advantages", advantages), ("token_weights", token_weights)):
        if t is not None and not torch.isfinite(t.detach()[valid]).all():
            raise ValueError(f"{name} must be finite on every completion token, got NaN or inf")
    # padded positions may hold garbage (inf, NaN): zero them before any op so no NaN reaches a gradient
    adv = torch.where(valid, advantages.detach(), zero)
    if token_weights is not None:
        adv = adv * torch.where(valid, token_weights.detach(), zero)
    # log π = −inf (a token the policy cannot emit) on both sides would make −inf − (−inf) = NaN: floor both
    floor = -1e4
    log_ratio = torch.where(valid, logp.clamp(min=floor) - old_logp.detach().clamp(min=floor), zero)
    log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    ratio = log_ratio.exp()
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - epsilon_low, 1 + epsilon_high) * adv)
    off = None
    if off_policy is not None:
        if off_policy.shape != shape:
            raise ValueError(f"off_policy has shape {tuple(off_policy.shape)}, expected {tuple(shape)} like mask")
        if not off_policy_gamma > 0:
            raise ValueError(f"off_policy_gamma must be > 0, got {off_policy_gamma}")
        off = valid & off_policy.bool()
        prob = torch.where(off, logp, zero).clamp(min=floor, max=0.0).exp()
        shaped = prob / (prob + off_policy_gamma) if off_policy_shaping else prob
        per_token = torch.where(off, -shaped * adv, per_token)
    dual_active = torch.zeros_like(mask, dtype=torch.bool)
    if dual_clip_c is not None:
        bound = -dual_clip_c * adv
        on = ~off if off is not None else torch.ones_like(valid)
        dual_active = on & (adv < 0) & (per_token > bound)
        per_token = torch.where(on & (adv < 0), torch.min(per_token, bound), per_token)
    kl = None
    if ref_logp is not None:
        # clamped like the log-ratio: exp overflows float32 once ref − logp passes ~88
        d = torch.where(valid, ref_logp.detach().clamp(min=floor) - logp.clamp(min=floor), zero)
        d = d.clamp(-log_ratio_clamp, log_ratio_clamp)
        kl = d.exp() - d - 1
        if kl_coef > 0:
            per_token = per_token + kl_coef * kl

    loss_mask = valid
    keep = torch.ones(shape[0], dtype=torch.bool, device=mask.device)
    if drop_dual_clipped:
        keep = dual_clip_drop_mask(logp, old_logp, adv, mask, dual_clip_c=dual_clip_c, log_ratio_clamp=log_ratio_clamp)
        loss_mask = loss_mask & keep[:, None]
    loss = aggregate(per_token, loss_mask, agg, num_tokens=num_tokens, max_len=max_len, num_seqs=num_seqs)

    with torch.no_grad():
        r = ratio.detach()
        fdt = torch.promote_types(logp.dtype, torch.float32)
        metrics = {
            "clip_frac_low": masked_mean(((r < 1 - epsilon_low) & (adv < 0)).to(fdt), mask),
            "clip_frac_high": masked_mean(((r > 1 + epsilon_high) & (adv > 0)).to(fdt), mask),
            "clip_frac_dual": masked_mean(dual_active.to(fdt), mask),
            "kl": masked_mean(kl.detach().to(fdt), mask) if kl is not None else torch.zeros((), dtype=fdt, device=mask.device),
            "ratio_mean": masked_mean(r.to(fdt), mask),
            "weight_mean": masked_mean(token_weights.detach().to(fdt), mask) if token_weights is not None
            else torch.ones((), dtype=fdt, device=mask.device),
            "dropped_frac": (~keep).to(fdt).mean() if shape[0] > 0 else torch.zeros((), dtype=fdt, device=mask.device),
        }
        if off is not None:
            metrics["off_policy_frac"] = masked_mean(off.to(fdt), mask)
            metrics["off_policy_prob"] = masked_mean(logp.detach().exp().to(fdt), off) if off.any() else torch.zeros((), dtype=fdt, device=mask.device)
    return loss, metrics


@dataclass
class LossConfig:
    """The policy-loss knobs a paper fixes (`workbench.rl.methods.loss_preset` gives each method's); `as_kwargs` feeds `policy_loss`."""

    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    dual_clip_c: float | None = None
    kl_coef: float = 0.0
    agg: str = "token-mean"
    drop_dual_clipped: bool = False

    def as_kwargs(self) -> dict:
        """The fields as keyword arguments of `policy_loss`."""
        return dataclasses.asdict(self)
