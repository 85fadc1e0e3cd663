"""Token weights: per-token multipliers of the advantage, the hook several papers plug into.

A weight is a registered function ``fn(ctx: WeightContext, **kwargs) -> [B, T]``;
``compose_token_weights([...], ctx)`` multiplies the named weights (identity when the list is
empty) and detaches the result, so a weight rescales the policy-gradient term of a token without
itself being differentiated (stop-gradient). The policy loss uses Ã_t = w_t · A_t.

Example::

    ctx = WeightContext(logp=logp, old_logp=old_logp, mask=mask, advantages=adv, entropy=ent)
    w = compose_token_weights(["low_prob", ("future_kl", {"decay_rate": 32})], ctx)   # [B, T]

Padded positions (mask 0) get weight 1 from `compose_token_weights`; the loss masks them out anyway.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import Tensor

from workbench.analysis.token_stats import top_fraction_mask
from workbench.registry import Registry

TOKEN_WEIGHTS = Registry("token weight")


def row_local(fn):
    """Mark a token weight whose value for a row depends on that row alone (no batch-wide threshold or
    normalisation). Only then may the trainer leave rows with zero advantage out of the update's forward
    (their loss terms are w·0 = 0 whatever w is, but a batch-coupled weight such as ToR's top-30 %
    threshold would see a different batch)."""
    fn.row_local = True
    return fn


def weights_are_row_local(specs: Iterable[Any] | None) -> bool:
    """True when every weight in `specs` is marked `row_local` (an empty list is)."""
    return all(getattr(TOKEN_WEIGHTS.get(_parse_spec(s)[0]), "row_local", False) for s in (specs or []))


@dataclass
class WeightContext:
    """What a token weight may look at; all tensors are [B, T] and aligned with the completion tokens.

    Attributes:
        logp: [B, T] log π_θ(y_t) under the current policy (may require grad; weights never use its grad).
        old_logp: [B, T] log π_old(y_t) under the policy that sampled the rollout.
        mask: [B, T] completion mask (bool or 0/1).
        advantages: [B, T] per-token advantages before weighting.
        entropy: [B, T] per-token entropy of the rollout policy, or None.
        extras: named [B, T] tensors for paper-specific signals, e.g. ``"visual_dependency"``.
    """

    logp: Tensor
    old_logp: Tensor
    mask: Tensor
    advantages: Tensor
    entropy: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def require(self, name: str, weight: str) -> Tensor:
        """The field (or extras key) `name`, or a ValueError naming the field and the weight that needs it."""
        value = getattr(self, name, None) if name in ("logp", "old_logp", "mask", "advantages", "entropy") else self.extras.get(name)
        if value is None:
            where = f"WeightContext.{name}" if hasattr(self, name) else f"WeightContext.extras[{name!r}]"
            raise ValueError(f"token weight {weight!r} needs {where}, which this context does not provide")
        if value.shape != self.mask.shape:
            raise ValueError(f"token weight {weight!r}: {name} has shape {tuple(value.shape)}, expected {tuple(self.mask.shape)} like mask")
        return value.detach()


def _parse_spec(spec: Any) -> tuple[str, dict]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ValueError(f"a token-weight spec given as a dict needs a 'name' key, got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        return spec["name"], kwargs
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict):
        return spec[0], dict(spec[1])
    raise ValueError(f"a token-weight spec must be a name, a (name, kwargs) pair or a dict with 'name', got {spec!r}")


def compose_token_weights(specs: Iterable[Any] | None, ctx: WeightContext) -> Tensor:
    """Product of the named token weights, detached: w_t = Π_j w^(j)_t (all ones when `specs` is empty).

    Args:
        specs: list of names (``"low_prob"``), ``(name, kwargs)`` pairs or dicts ``{"name": ..., **kwargs}``.
        ctx: the `WeightContext` of this mini-batch.

    Returns:
        weights: [B, T] float (float32, or float64 when logp is float64), no grad; 1 where mask is 0.
    """
    dtype = torch.promote_types(ctx.logp.dtype, torch.float32)
    if ctx.logp.shape != ctx.mask.shape or ctx.old_logp.shape != ctx.mask.shape or ctx.advantages.shape != ctx.mask.shape:
        raise ValueError(
            "WeightContext tensors must share one [B, T] shape, got "
            f"logp {tuple(ctx.logp.shape)}, old_logp {tuple(ctx.old_logp.shape)}, "
            f"advantages {tuple(ctx.advantages.shape)}, mask {tuple(ctx.mask.shape)}"
        )
    w = torch.ones(ctx.mask.shape, dtype=dtype, device=ctx.mask.device)
    with torch.no_grad():
        for spec in specs or []:
            name, kwargs = _parse_spec(spec)
            w = w * TOKEN_WEIGHTS.get(name)(ctx, **kwargs).to(dtype)
        w = torch.where(ctx.mask.bool(), w, torch.ones_like(w))
    return w.detach()


def registered_weights(ctx: WeightContext) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Every `TOKEN_WEIGHTS` entry with its default arguments on `ctx` (detached): ({name: [B, T]}, {name: why it
    has no value}) — a weight that needs a signal or argument `ctx` lacks (ToR's visual dependency on text) is
    skipped with its error's sentence. The token inspector and the token atlas show every weight this way."""
    weights, skipped = {}, {}
    for name in TOKEN_WEIGHTS.names():
        try:
            weights[name] = TOKEN_WEIGHTS.get(name)(ctx).detach()
        except (ValueError, TypeError) as e:
            skipped[name] = str(e)
    return weights, skipped


# --------------------------------------------------------------------------------------------- low_prob


@TOKEN_WEIGHTS.register("low_prob")
@row_local
def low_prob_weight(ctx: WeightContext, alpha: float = 0.1) -> Tensor:
    """Up-weight tokens the old policy found unlikely (Δlog p paper, arXiv 2603.22117; reconstructed).

    w_t = 1 + α · (1 − p_old(y_t)),  p_old = exp(old_logp);  α ≈ 0.1–0.2 gives w ∈ [1, 1 + α].

    Returns:
        [B, T] weights.
    """
    if not math.isfinite(alpha):
        raise ValueError(f"low_prob alpha must be finite, got {alpha}")
    old = ctx.require("old_logp", "low_prob").to(torch.promote_types(ctx.old_logp.dtype, torch.float32))
    return 1.0 + alpha * (1.0 - old.exp())


# --------------------------------------------------------------------------------------------- future_kl


def discount_matrix(n: int, gamma: float, *, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """D: [n, n] with D[k, t] = γ^(k − t) for k ≥ t and 0 above, so (x @ D)_t = Σ_{k≥t} γ^(k−t) x_k."""
    idx = torch.arange(n)
    dist = idx[:, None] - idx[None, :]
    # float64 on the CPU (MPS has no float64), then cast and move once
    powers = torch.pow(torch.tensor(gamma, dtype=torch.float64), dist.clamp(min=0).to(torch.float64))
    return torch.where(dist >= 0, powers, torch.zeros_like(powers)).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _cached_discount_matrix(n: int, gamma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    return discount_matrix(n, gamma, dtype=dtype, device=device)


def discounted_future_sum(x: Tensor, gamma: float, *, chunk: int = 128) -> Tensor:
    """S_t = Σ_{k ≥ t} γ^(k − t) x_k along the last axis, in O(T · chunk) time and memory.

    Naive twin: the reverse recursion S_t = x_t + γ S_{t+1} (a Python loop over T), or x @ D with the
    T×T matrix of `discount_matrix` (O(T²)). Here T is cut into chunks of length L = `chunk`: a
    within-chunk sum by an L×L matmul, then the sums at chunk starts obey the same recursion with γ^L,
    solved by calling this function again on those C = T/L values (depth log_L T).

    Args:
        x: [..., T] float.
        gamma: discount in [0, 1].
        chunk: chunk length L (≥ 2).

    Returns:
        [..., T] in the dtype of x.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    if chunk < 2:
        raise ValueError(f"chunk must be at least 2, got {chunk}")
    T = x.shape[-1]
    if T <= chunk:
        return x @ _cached_discount_matrix(T, gamma, x.dtype, x.device)
    lead = x.shape[:-1]
    n_chunks = -(-T // chunk)
    xp = torch.nn.functional.pad(x, (0, n_chunks * chunk - T))  # zeros in the future change nothing
    # one 2-D matmul [rows, L] @ [L, L] (a 3-D @ 2-D product is several times slower on CPU)
    local = (xp.reshape(-1, chunk) @ _cached_discount_matrix(chunk, gamma, x.dtype, x.device)).reshape(*lead, n_chunks, chunk)
    starts = discounted_future_sum(local[..., 0], gamma**chunk, chunk=chunk)  # S at each chunk start
    after = torch.nn.functional.pad(starts[..., 1:], (0, 1))  # S at the next chunk's start, 0 at the end
    tail = torch.pow(torch.tensor(gamma, dtype=torch.float64), torch.arange(chunk, 0, -1, dtype=torch.float64))
    out = local + after[..., None] * tail.to(dtype=x.dtype, device=x.device)  # γ^(L − t) · S_next
    return out.reshape(*lead, n_chunks * chunk)[..., :T]


@TOKEN_WEIGHTS.register("future_kl")
@row_local
def future_kl_weight(
    ctx: WeightContext,
    decay_rate: float = 32.0,
    dual_clip_c: float = 10.0,
    clip_ratio: float = 0.2,
    clip_high_only: bool = False,
    safety_threshold: float = 4.0,
    log_ratio_clamp: float = 20.0,
    chunk: int = 128,
) -> Tensor:
    """FIPO future-KL influence weight (arXiv 2603.19835, as in the authors' verl recipe).

    Δ_k = clamp(log π_θ(y_k) − log π_old(y_k), −20, 20)
    FutureKL_t = Σ_{k≥t} γ^(k−t) · m_k · 1[Δ_k ≤ log c] · Δ_k,   γ = 2^(−1/decay_rate)  (current token included)
    f_t = clip(exp(FutureKL_t), 1 − ε_f, 1 + ε_f)   (ε_f = clip_ratio = 0.2; `clip_high_only` → [1, 1 + ε_f])
    safety: where A_t < 0 and exp(Δ_t) > safety_threshold, f_t ← clip(f_t, 0.8, 1).

    On the first mini-batch of a rollout π_θ = π_old, so Δ = 0 and f = 1 exactly. The discounted sum
    is linear in T (`discounted_future_sum`), never a T×T matrix.

    Args:
        ctx: needs logp, old_logp, mask, advantages.
        decay_rate: half-life of the discount in tokens (paper 32; the recipe's code default is 128);
            ``math.inf`` means no decay.
        dual_clip_c: tokens with ratio above c (Δ > log c) are left out of the sum.
        clip_ratio: ε_f of the clip range, in (0, 1).
        clip_high_only: clip to [1, 1 + ε_f] instead of [1 − ε_f, 1 + ε_f].
        safety_threshold: ratio above which negative-advantage tokens are capped at 1 (recipe script: 10).
        log_ratio_clamp: bound of |Δ|.
        chunk: chunk length of the linear-time scan.

    Returns:
        [B, T] weights f_t.
    """
    if not decay_rate > 0:
        raise ValueError(f"future_kl decay_rate must be positive, got {decay_rate}")
    if not dual_clip_c > 1:
        raise ValueError(f"future_kl dual_clip_c must be greater than 1, got {dual_clip_c}")
    if not 0 < clip_ratio < 1:
        raise ValueError(f"future_kl clip_ratio must lie in (0, 1), got {clip_ratio}")
    dtype = torch.promote_types(ctx.logp.dtype, torch.float32)
    logp = ctx.require("logp", "future_kl").to(dtype)
    old = ctx.require("old_logp", "future_kl").to(dtype)
    adv = ctx.require("advantages", "future_kl")
    mask = ctx.mask.bool()
    delta = (logp - old).clamp(-log_ratio_clamp, log_ratio_clamp)
    counted = mask & (delta <= math.log(dual_clip_c))
    x = torch.where(counted, delta, torch.zeros_like(delta))
    gamma = 2.0 ** (-1.0 / decay_rate)
    fkl = discounted_future_sum(x, gamma, chunk=chunk)
    low = 1.0 if clip_high_only else 1.0 - clip_ratio
    f = fkl.exp().clamp(low, 1.0 + clip_ratio)
    unsafe = (adv < 0) & (delta.exp() > safety_threshold)
    return torch.where(unsafe, f.clamp(0.8, 1.0), f)


# --------------------------------------------------------------------------------------------- ToR


def _tor_sets(ctx: WeightContext, weight: str, reasoning_frac: float, perception_frac: float) -> tuple[Tensor, Tensor]:
    entropy = ctx.require("entropy", weight)
    dependency = ctx.require("visual_dependency", weight).abs()
    return top_fraction_mask(entropy, ctx.mask, reasoning_frac), top_fraction_mask(dependency, ctx.mask, perception_frac)


@TOKEN_WEIGHTS.register("tor")
def tor_weight(
    ctx: WeightContext,
    reasoning_frac: float = 0.3,
    perception_frac: float = 0.3,
    gamma_r: float = 1.0,
    gamma_p: float = 0.5,
) -> Tensor:
    """ToR token reweighting (arXiv 2603.25077; official code not public, follows a re-implementation).

    T_r = top 30% of valid tokens by ctx.entropy (reasoning); T_p = top 30% by
    |ctx.extras["visual_dependency"]| = |log π_old(o_t | I, q) − log π_old(o_t | ∅, q)| (perception);
    thresholds over the whole (local) batch.  w_t = γ_r · 1[t ∈ T_r] + γ_p · 1[t ∈ T_p \\ T_r], 0 elsewhere.

    Returns:
        [B, T] weights in {0, γ_p, γ_r}.
    """
    t_r, t_p = _tor_sets(ctx, "tor", reasoning_frac, perception_frac)
    w = torch.zeros(ctx.mask.shape, dtype=torch.promote_types(ctx.logp.dtype, torch.float32), device=ctx.mask.device)
    w = torch.where(t_p & ~t_r, torch.full_like(w, gamma_p), w)
    return torch.where(t_r, torch.full_like(w, gamma_r), w)


@TOKEN_WEIGHTS.register("tor_perception_only")
def tor_perception_only_weight(ctx: WeightContext, perception_frac: float = 0.3) -> Tensor:
    """ToR ablation (arXiv 2603.25077): w_t = 1 on the perception set T_p, 0 elsewhere."""
    dependency = ctx.require("visual_dependency", "tor_perception_only").abs()
    return top_fraction_mask(dependency, ctx.mask, perception_frac).to(torch.promote_types(ctx.logp.dtype, torch.float32))


@TOKEN_WEIGHTS.register("tor_reasoning_only")
def tor_reasoning_only_weight(ctx: WeightContext, reasoning_frac: float = 0.3) -> Tensor:
    """ToR ablation (arXiv 2603.25077): w_t = 1 on the reasoning set T_r (top entropy), 0 elsewhere."""
    entropy = ctx.require("entropy", "tor_reasoning_only")
    return top_fraction_mask(entropy, ctx.mask, reasoning_frac).to(torch.promote_types(ctx.logp.dtype, torch.float32))
