"""The token atlas's numbers: every paper's per-token signal on the same rollouts, each computed by the piece
that implements it (notebook 11, `workbench.experiments.token_atlas`).

Three policies score a batch of B responses (T tokens, right-padded): the base π_base (the policy that sampled
them, π_old), the RL model π_RL, and π_θ, the base at the end of one update (FIPO's future-KL needs π_θ ≠ π_old).
With y_t the response token and ŷ_t = argmax π_RL at its context, the signals ([B, T], 0 on padding) are

    delta_logp            log π_RL(y_t) − log π_base(y_t)                          (arXiv 2603.22117)
    abs_delta_logp        |delta_logp|
    delta_logp_rl_token   log π_RL(ŷ_t) − log π_base(ŷ_t)    (notebook 01's replacement selector)
    entropy_base / _rl    H(π(· | y_<t))
    kl                    KL(π_RL ‖ π_base) at the context;  js: JS(π_base, π_RL)
    w:<name>              every registered `TOKEN_WEIGHTS` entry with its defaults, π_old = π_base, π_θ = the
                          one-update policy, A_t = 1, entropy of π_base: low_prob (01), future_kl (FIPO 02,
                          arXiv 2603.19835), tor / tor_perception_only / tor_reasoning_only (ToR 03, arXiv
                          2603.25077; their top-30 % thresholds over the whole batch) and any weight registered
                          later; a weight that needs a signal the batch lacks (ToR's visual dependency for a text
                          model) is listed in `skipped`
    durian_reasoning      Durian's confidence bucket of the response's prompt (04, arXiv 2602.21743), turned into
                          a difficulty: b − 1 − `durian.confidence_buckets(Σ_t log π_base(y_t), b)`, per sequence
    durian_perception     `durian.perception_buckets(visual entropy)` (0 / 1 / 2; 2 = the most visually complex
                          images), per sequence, where the batch has images
    tgrl_expert_weight    TGRL's shaped expert-token weight (05, arXiv 2603.26126): the gradient of
                          `losses.policy_loss` on the token with the response marked as an expert trajectory
                          over its gradient as an on-policy token, at π_θ = π_base, A = 1; analytically
                          γ · π / (π + γ)², π = π_base(y_t), γ = 0.1 — largest for tokens with π = γ

Every signal is oriented so that a larger value means "this token is singled out".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import Tensor

from workbench.analysis.token_stats import js_from_logits, kl_from_logits
from workbench.models.scoring import completion_logits, entropy_from_logits, selective_log_softmax
from workbench.rl.durian import confidence_buckets, perception_buckets
from workbench.rl.losses import policy_loss
from workbench.rl.weights import WeightContext, registered_weights

#: signals that are one value per response (the same on every token of it)
SEQUENCE_SIGNALS = ("durian_reasoning", "durian_perception")


@dataclass
class SignalTable:
    """B responses' per-token signals.

    Attributes:
        values: {signal name: [B, T] float64}, 0 on padding, larger = singled out.
        mask: [B, T] bool completion mask.
        logp: {"base", "rl", "updated": [B, T] float64 log π(y_t)}.
        skipped: {registered weight name: why this batch gives it no value}.
    """

    values: dict[str, Tensor]
    mask: Tensor
    logp: dict[str, Tensor]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.values)

    def frame(self, tokens: list[list[str]], classes: list[list[str]]) -> pd.DataFrame:
        """Long format, one row per (valid token, signal): seq_id, pos, token, token_class, signal, value.
        `tokens` / `classes`: per response its token strings and classes (as many as its valid tokens)."""
        rows, cols = self.mask.nonzero(as_tuple=True)
        r, c = rows.tolist(), cols.tolist()
        if any(len(tokens[i]) != int(self.mask[i].sum()) or len(classes[i]) != len(tokens[i]) for i in set(r)):
            raise ValueError("tokens and classes must give one entry per valid completion token of every response")
        base = pd.DataFrame({"seq_id": r, "pos": c, "token": [tokens[i][j] for i, j in zip(r, c)],
                             "token_class": [classes[i][j] for i, j in zip(r, c)]})
        parts = [base.assign(signal=name, value=v[rows, cols].numpy()) for name, v in self.values.items()]
        return pd.concat(parts, ignore_index=True)


def _logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask, model_inputs) -> Tensor:
    device = next(model.parameters()).device
    with torch.no_grad():
        z = completion_logits(model, prompt_ids.to(device), prompt_mask.to(device), completion_ids.to(device),
                              completion_mask.to(device), **{k: v.to(device) for k, v in model_inputs.items()})
    return z.double().cpu()


def tgrl_expert_weight(logp: Tensor, mask: Tensor, gamma: float = 0.1) -> Tensor:
    """TGRL's per-token weight of an expert token relative to an on-policy one, read off `losses.policy_loss`:
    w_t = (∂ℓ/∂log π_t with off_policy = mask) / (∂ℓ/∂log π_t without), at π_θ = π_old (ratio 1), A = 1.
    Closed form γ π_t / (π_t + γ)². logp, mask: [B, T] -> [B, T] float64 (0 on padding)."""
    lp = logp.detach().double()
    grads = []
    for off in (mask, None):
        x = lp.clone().requires_grad_(True)
        loss, _ = policy_loss(x, lp, torch.ones_like(lp), mask, off_policy=off, off_policy_gamma=gamma)
        (g,) = torch.autograd.grad(loss, x)
        grads.append(g)
    on = grads[1]
    return torch.where(mask.bool() & (on != 0), grads[0] / torch.where(on != 0, on, torch.ones_like(on)), torch.zeros_like(on))


def token_signals(base, rl, updated, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                  completion_mask: Tensor, *, model_inputs: dict | None = None, extras: dict[str, Tensor] | None = None,
                  visual_entropy: Tensor | None = None, reasoning_buckets: int = 4, tgrl_gamma: float = 0.1) -> SignalTable:
    """Every signal of the module docstring on one batch of responses.

    Args:
        base, rl, updated: causal LMs sharing a vocabulary (π_base = π_old, π_RL, π_θ after one update).
        prompt_ids, prompt_mask: [B, P] left-padded; completion_ids, completion_mask: [B, T] right-padded.
        model_inputs: extra forward inputs of every row (`pixel_values`, `image_grid_thw` of a VLM).
        extras: [B, T] signals for weights that need them, e.g. {"visual_dependency": Δ_t} (ToR).
        visual_entropy: [B] per-response visual entropy (Durian's perception buckets), or None.
        reasoning_buckets: b of Durian's confidence buckets (at most B).
        tgrl_gamma: γ of TGRL's shaped ratio.
    Returns:
        a `SignalTable`.
    """
    mask = completion_mask.bool().cpu()
    if not mask.any():
        raise ValueError("the responses are empty: token_signals needs at least one completion token")
    y = completion_ids.cpu()
    logits = {name: _logits(m, prompt_ids, prompt_mask, completion_ids, completion_mask, model_inputs or {})
              for name, m in (("base", base), ("rl", rl), ("updated", updated))}
    zero = torch.zeros(mask.shape, dtype=torch.float64)
    on = lambda t: torch.where(mask, t.double(), zero)  # noqa: E731
    logp = {n: on(selective_log_softmax(z, y)) for n, z in logits.items()}
    y_rl = logits["rl"].argmax(-1)
    v: dict[str, Tensor] = {"delta_logp": logp["rl"] - logp["base"]}
    v["abs_delta_logp"] = v["delta_logp"].abs()
    v["delta_logp_rl_token"] = on(selective_log_softmax(logits["rl"], y_rl) - selective_log_softmax(logits["base"], y_rl))
    v["entropy_base"], v["entropy_rl"] = on(entropy_from_logits(logits["base"])), on(entropy_from_logits(logits["rl"]))
    v["kl"], v["js"] = on(kl_from_logits(logits["rl"], logits["base"])), on(js_from_logits(logits["base"], logits["rl"]))
    ctx = WeightContext(logp=logp["updated"], old_logp=logp["base"], mask=mask, advantages=mask.double(),
                        entropy=v["entropy_base"], extras={k: t.detach().double().cpu() for k, t in (extras or {}).items()})
    weights, skipped = registered_weights(ctx)
    v.update({f"w:{n}": on(w) for n, w in weights.items()})
    b = min(reasoning_buckets, mask.size(0))
    conf = confidence_buckets(logp["base"].sum(-1), b)
    v["durian_reasoning"] = on((b - 1 - conf).double()[:, None].expand(mask.shape))
    if visual_entropy is not None:
        v["durian_perception"] = on(perception_buckets(visual_entropy.cpu()).double()[:, None].expand(mask.shape))
    v["tgrl_expert_weight"] = tgrl_expert_weight(logp["base"], mask, tgrl_gamma)
    return SignalTable(v, mask, logp, skipped)
