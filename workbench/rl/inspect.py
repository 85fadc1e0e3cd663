"""The token inspector's numbers: for one response, per token the top-k alternatives and their probabilities
under two models (base and RL, or any two), log π(y_t) under each, Δlog p, entropy, and the token's weight
under every registered token-weight method (`rl.weights.TOKEN_WEIGHTS`).

    insp = inspect_tokens(base, rl_model, tokenizer, prompt_ids, completion_ids, names=("base", "RL"))
    insp.table(t)              # DataFrame: the top-k alternatives at position t under both models
    insp.summary()             # DataFrame: one row per token (log p, Δlog p, entropy, every weight)

`workbench.viz.inspector` draws it (a live picker in JupyterLab, a static figure of one token's top-k bars).

The weights are those the trainer would give the response if model A had sampled it (π_old = A) and model B were
being updated (π_θ = B), with advantage 1 on every token, entropy from A and each weight's default arguments:
low_prob (the Δlog p paper, arXiv 2603.22117), future_kl (FIPO, arXiv 2603.19835), ToR's sets (arXiv 2603.25077;
its batch-wide top-fraction thresholds are taken over this one response), and any weight registered later.
A weight that needs a signal this
context lacks (ToR's `visual_dependency` for a text model, unless passed in `extras`) is listed in `skipped`
with the reason instead of a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.models.scoring import entropy_from_logits
from workbench.models.tokenizer import token_strings
from workbench.rl.weights import WeightContext, registered_weights


@dataclass
class TokenInspection:
    """One response of T tokens seen by two models A and B (index 0 and 1), top k alternatives each.

    Attributes:
        tokens: [T] response token strings; names: (A, B) labels.
        top_tokens: [2][T][k] strings of the k most likely tokens at each position; top_probs: [2, T, k].
        logp: [2, T] log π(y_t | context) under A and B; entropy: [2, T] (nats).
        delta_logp: [T] = logp[1] − logp[0].
        weights: {registered weight name: [T]}; skipped: {name: why it has no value here}.
    """

    tokens: list[str]
    names: tuple[str, str]
    top_tokens: list[list[list[str]]]
    top_probs: np.ndarray
    logp: np.ndarray
    entropy: np.ndarray
    delta_logp: np.ndarray
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def _check(self, t: int) -> None:
        if not 0 <= t < len(self.tokens):
            raise IndexError(f"token position {t} is outside the response (0..{len(self.tokens) - 1})")

    def table(self, t: int) -> pd.DataFrame:
        """The top-k alternatives at position `t`: columns `<A> token`, `<A> p`, `<B> token`, `<B> p` (rank 1..k)."""
        self._check(t)
        cols = {}
        for i, name in enumerate(self.names):
            cols[f"{name} token"] = self.top_tokens[i][t]
            cols[f"{name} p"] = self.top_probs[i, t]
        return pd.DataFrame(cols, index=pd.RangeIndex(1, self.top_probs.shape[2] + 1, name="rank"))

    def summary(self) -> pd.DataFrame:
        """One row per token: the token, log p under A and B, Δlog p, entropy under A and B, every weight."""
        a, b = self.names
        frame = pd.DataFrame({"token": self.tokens, f"logp {a}": self.logp[0], f"logp {b}": self.logp[1],
                              "delta_logp": self.delta_logp, f"entropy {a}": self.entropy[0],
                              f"entropy {b}": self.entropy[1]})
        for name, w in self.weights.items():
            frame[f"w {name}"] = w
        return frame.rename_axis("t")


def _completion_logits(model, prompt_ids: torch.Tensor, completion_ids: torch.Tensor, model_inputs: dict) -> torch.Tensor:
    """[T, V] float64 logits that predict each completion token (one sequence, no padding)."""
    ids = torch.cat([prompt_ids, completion_ids]).unsqueeze(0).to(next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **model_inputs).logits[0]
    p = prompt_ids.numel()
    return logits[p - 1: p - 1 + completion_ids.numel()].double().cpu()


def inspect_tokens(model_a, model_b, tokenizer, prompt_ids: torch.Tensor, completion_ids: torch.Tensor, *,
                   names: tuple[str, str] = ("base", "RL"), k: int = 5, model_inputs: dict | None = None,
                   extras: dict[str, torch.Tensor] | None = None) -> TokenInspection:
    """Score one response under both models and evaluate every registered token weight on it.

    Args:
        model_a, model_b: the two causal LMs (A plays π_old, B π_θ for the weights); tokenizer: theirs.
        prompt_ids: [P] prompt token ids; completion_ids: [T] response ids (no padding).
        k: alternatives per position (1..vocabulary size).
        model_inputs: extra forward inputs (e.g. `pixel_values`, `image_grid_thw` of a VLM), for both models.
        extras: [T] signals for weights that need them, e.g. {"visual_dependency": |Δ_t|}.
    Returns:
        a `TokenInspection`.
    """
    prompt_ids, completion_ids = torch.as_tensor(prompt_ids).reshape(-1), torch.as_tensor(completion_ids).reshape(-1)
    if completion_ids.numel() == 0:
        raise ValueError("the response to inspect is empty: pass at least one completion token")
    if prompt_ids.numel() == 0:
        raise ValueError("the prompt is empty: the first response token needs a context to be predicted from")
    logps, ents, tops, top_p = [], [], [], []
    for model in (model_a, model_b):
        lp = torch.log_softmax(_completion_logits(model, prompt_ids, completion_ids, model_inputs or {}), dim=-1)
        if not 1 <= k <= lp.shape[-1]:
            raise ValueError(f"k must lie in 1..{lp.shape[-1]} (the vocabulary), got {k}")
        logps.append(lp.gather(-1, completion_ids.view(-1, 1)).squeeze(-1))
        ents.append(entropy_from_logits(lp))
        vals, idx = lp.topk(k, dim=-1)
        top_p.append(vals.exp())
        tops.append([token_strings(tokenizer, row.tolist()) for row in idx])
    logp, entropy = torch.stack(logps), torch.stack(ents)
    ctx = WeightContext(logp=logp[1:].float(), old_logp=logp[:1].float(), mask=torch.ones(1, completion_ids.numel()),
                        advantages=torch.ones(1, completion_ids.numel()), entropy=entropy[:1].float(),
                        extras={n: torch.as_tensor(v, dtype=torch.float32).reshape(1, -1) for n, v in (extras or {}).items()})
    weights, skipped = registered_weights(ctx)
    weights = {name: w[0].double().numpy() for name, w in weights.items()}
    return TokenInspection(token_strings(tokenizer, completion_ids.tolist()), tuple(names), tops,
                           torch.stack(top_p).numpy(), logp.numpy(), entropy.numpy(), (logp[1] - logp[0]).numpy(),
                           weights, skipped)
