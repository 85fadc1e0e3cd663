"""Per-token statistics of one or two causal LMs over the same sequences (arXiv 2603.22117).

For the token y_t at position t of a sequence, with next-token distributions p_a = π_A(·|y_<t)
and p_b = π_B(·|y_<t) over the vocabulary V:

    logp_a      = log p_a(y_t)
    entropy_a   = −Σ_v p_a(v) log p_a(v)
    delta_logp  = log p_a(y_t) − log p_b(y_t)          (A = RL model, B = base gives the paper's Δlog p)
    kl          = KL(p_a ‖ p_b) = Σ_v p_a(v) (log p_a(v) − log p_b(v))
    js          = ½ KL(p_a ‖ m) + ½ KL(p_b ‖ m),  m = ½ (p_a + p_b)

Memory stays bounded: the backbone runs once per batch of sequences, and the LM head plus every
statistic run over `chunk_size` positions at a time, so at most [B, chunk_size, V] logits live at
once. Log-probs of the taken token use `selective_log_softmax` (logsumexp + gather). Statistics
are computed in float32 (float64 when the model is float64) whatever the model's dtype.

Example::

    frame = token_stats_frame(rl_model, ids, mask, model_b=base_model, names=("rl", "base"),
                              response_mask=resp, tokenizer=tok)
    frame[["token", "delta_logp", "entropy_rl", "kl"]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import pandas as pd
import torch

from workbench.models.scoring import (  # noqa: F401  (re-exported: the analysis API names them)
    _upcast, _xlogy_exp, entropy_from_logits, position_ids_from_mask, selective_log_softmax)

LN2 = math.log(2.0)


def kl_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_v p(v) (log p(v) − log q(v)) for p = softmax(logits_p), q = softmax(logits_q).

    Args:
        logits_p, logits_q: [..., V].
    Returns:
        kl: [...] in nats (≥ 0; +inf where q forbids a token p allows).
    """
    logp = torch.log_softmax(_upcast(logits_p), dim=-1)
    logq = torch.log_softmax(_upcast(logits_q), dim=-1)
    return _xlogy_exp(logp, logp - logq).sum(-1)


def js_from_logits(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence ½ KL(p ‖ m) + ½ KL(q ‖ m), m = ½ (p + q), in nats (≤ ln 2).

    log m is computed as logsumexp(log p, log q) − ln 2, so it is finite wherever p or q is > 0.

    Args:
        logits_p, logits_q: [..., V].
    Returns:
        js: [...].
    """
    logp = torch.log_softmax(_upcast(logits_p), dim=-1)
    logq = torch.log_softmax(_upcast(logits_q), dim=-1)
    logm = torch.logaddexp(logp, logq) - LN2
    return 0.5 * (_xlogy_exp(logp, logp - logm) + _xlogy_exp(logq, logq - logm)).sum(-1)


def pair_statistics(logits_a: torch.Tensor, index: torch.Tensor,
                    logits_b: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All per-token statistics for one chunk of positions (formulas in the module docstring).

    Args:
        logits_a: [..., V] model A's next-token logits.
        index: [...] long, the token scored at each position.
        logits_b: [..., V] model B's logits at the same positions, or None for one model.
    Returns:
        `{"logp_a", "entropy_a"}` and, with B, also `{"logp_b", "entropy_b", "delta_logp", "kl",
        "js"}`; every value [...].
    """
    out = {"logp_a": selective_log_softmax(logits_a, index), "entropy_a": entropy_from_logits(logits_a)}
    if logits_b is not None:
        out["logp_b"] = selective_log_softmax(logits_b, index)
        out["entropy_b"] = entropy_from_logits(logits_b)
        out["delta_logp"] = out["logp_a"] - out["logp_b"]
        out["kl"] = kl_from_logits(logits_a, logits_b)
        out["js"] = js_from_logits(logits_a, logits_b)
    return out


@dataclass
class TokenStats:
    """Per-token statistics of one batch; entry [b, t] scores token `input_ids[b, t]`.

    Shapes: every tensor in `values` is [B, T] (0 where not `valid`); `valid`: [B, T] bool — a real
    token with a real predecessor (and inside `response_mask` when one was given);
    `position_ids`: [B, T] index of each token within its unpadded sequence.
    """

    input_ids: torch.Tensor
    valid: torch.Tensor
    position_ids: torch.Tensor
    values: dict[str, torch.Tensor]


@torch.inference_mode()
def compute_token_stats(model_a, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                        model_b=None, response_mask: torch.Tensor | None = None,
                        chunk_size: int | None = 256) -> TokenStats:
    """Statistics of every token of a batch under model A (and B), chunked over the sequence.

    Args:
        model_a, model_b: HF causal LMs sharing a vocabulary (B optional).
        input_ids: [B, T] left- or right-padded token ids.
        attention_mask: [B, T] (all ones when None); position ids are derived from it.
        response_mask: [B, T] optional; only tokens where it is 1 are `valid`.
        chunk_size: positions per LM-head chunk; None runs the plain full forward (the unchunked
            reference: [B, T, V] logits at once).
    Returns:
        TokenStats with `values` keyed as in `pair_statistics`.
    """
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(f"input_ids must be a non-empty [B, T] tensor, got shape {tuple(input_ids.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = attention_mask.to(input_ids.device)
    position_ids = position_ids_from_mask(attention_mask)
    real = attention_mask.bool()
    valid = torch.zeros_like(real)
    valid[:, 1:] = real[:, 1:] & real[:, :-1]
    if response_mask is not None:
        valid &= response_mask.to(valid.device).bool()

    streams = [_logit_chunks(m, input_ids, attention_mask, position_ids, chunk_size)
               for m in ([model_a] if model_b is None else [model_a, model_b])]
    B, T = input_ids.shape
    values: dict[str, torch.Tensor] = {}
    for chunks in zip(*streams):
        start, end = chunks[0][0], chunks[0][1]
        # logits at position s predict token s + 1
        lo, hi = max(start, 0), min(end, T - 1)
        if hi <= lo:
            continue
        index = input_ids[:, lo + 1:hi + 1]
        sl = slice(lo - start, hi - start)
        stats = pair_statistics(chunks[0][2][:, sl], index, chunks[1][2][:, sl] if model_b is not None else None)
        for name, v in stats.items():
            if name not in values:
                values[name] = torch.zeros(B, T, dtype=v.dtype, device=v.device)
            values[name][:, lo + 1:hi + 1] = v
    names = ["logp_a", "entropy_a"] + ([] if model_b is None else ["logp_b", "entropy_b", "delta_logp", "kl", "js"])
    for name in names:  # a one-token sequence has no prediction at all
        values.setdefault(name, torch.zeros(B, T, device=input_ids.device))
    values = {k: values[k].masked_fill(~valid, 0.0) for k in names}
    return TokenStats(input_ids=input_ids, valid=valid, position_ids=position_ids, values=values)


def token_stats_frame(model_a, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                      model_b=None, response_mask: torch.Tensor | None = None, tokenizer=None,
                      names: Sequence[str] = ("a", "b"), seq_ids: Sequence | None = None,
                      batch_size: int = 16, chunk_size: int | None = 256) -> pd.DataFrame:
    """Tidy per-token table of `compute_token_stats`, one row per valid token (Δlog p: arXiv 2603.22117).

    Args:
        model_a, model_b, input_ids [N, T], attention_mask [N, T], response_mask [N, T], chunk_size:
            as in `compute_token_stats`; rows are processed `batch_size` sequences at a time.
        tokenizer: object with `decode(list[int])`, or a callable id -> str, for the `token`
            column (the id as a string when None).
        names: suffixes for the per-model columns, e.g. ("rl", "base") -> `logp_rl`, `entropy_base`.
        seq_ids: one id per row of `input_ids` (defaults to 0..N−1).
    Returns:
        DataFrame with columns seq_id, position, token_id, token, logp_<a>, entropy_<a> and, with
        model B, logp_<b>, entropy_<b>, delta_logp, kl, js (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two distinct suffixes, got {names!r}")
    N = input_ids.size(0)
    seq_ids = list(range(N)) if seq_ids is None else list(seq_ids)
    if len(seq_ids) != N:
        raise ValueError(f"seq_ids has {len(seq_ids)} entries for {N} sequences")
    rename = {"logp_a": f"logp_{names[0]}", "entropy_a": f"entropy_{names[0]}",
              "logp_b": f"logp_{names[1]}", "entropy_b": f"entropy_{names[1]}"}
    parts = []
    for s in range(0, N, batch_size):
        sl = slice(s, s + batch_size)
        st = compute_token_stats(model_a, input_ids[sl], None if attention_mask is None else attention_mask[sl],
                                 model_b=model_b, chunk_size=chunk_size,
                                 response_mask=None if response_mask is None else response_mask[sl])
        rows, cols = st.valid.nonzero(as_tuple=True)
        part = {"seq_id": [seq_ids[s + int(r)] for r in rows.tolist()],
                "position": st.position_ids[rows, cols].cpu().numpy(),
                "token_id": st.input_ids[rows, cols].cpu().numpy()}
        for k, v in st.values.items():
            part[rename.get(k, k)] = v[rows, cols].double().cpu().numpy()
        parts.append(pd.DataFrame(part))
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(3, "token", _token_strings(frame["token_id"].tolist(), tokenizer))
    return frame


# ---------------------------------------------------------------------------------------------
def _logit_chunks(model, input_ids, attention_mask, position_ids,
                  chunk_size) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (start, end, logits [B, end − start, V]) over the sequence.

    Chunked path: run the backbone once (`model.<base_model_prefix>`), then the output embedding
    per chunk. Models whose head does more than a linear map (logit soft-capping or scaling) and
    `chunk_size=None` use the full forward instead.
    """
    T = input_ids.size(1)
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    cfg = getattr(model, "config", None)
    plain_head = not any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale"))
    if chunk_size is None or base is None or base is model or head is None or not plain_head:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        step = T if chunk_size is None else chunk_size
        for s in range(0, T, step):
            yield s, min(s + step, T), logits[:, s:s + step]
        return
    hidden = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
    for s in range(0, T, chunk_size):
        yield s, min(s + chunk_size, T), head(hidden[:, s:s + chunk_size])


def _token_strings(token_ids: list[int], tokenizer: Callable | object | None) -> list[str]:
    if tokenizer is None:
        return [str(t) for t in token_ids]
    if hasattr(tokenizer, "decode"):
        table = {t: tokenizer.decode([t]) for t in set(token_ids)}
    else:
        table = {t: tokenizer(t) for t in set(token_ids)}
    return [table[t] for t in token_ids]


def top_fraction_mask(scores: torch.Tensor, mask: torch.Tensor, frac: float) -> torch.Tensor:
    """Mark the top ⌈frac · n⌉ of the n valid tokens by score, one threshold over the whole batch.

    The threshold τ is the ⌈frac · n⌉-th largest valid score; every valid token with score ≥ τ is
    selected (ties at τ all count). No valid token, or frac = 0, selects nothing.

    Args:
        scores: [B, T]; mask: [B, T]; frac: in [0, 1].

    Returns:
        [B, T] bool.
    """
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"top fraction must lie in [0, 1], got {frac}")
    valid = mask.bool()
    vals = scores[valid]
    k = math.ceil(frac * vals.numel() - 1e-9)
    if k == 0:
        return torch.zeros_like(valid)
    tau = torch.topk(vals, k).values[-1]
    return valid & (scores >= tau)
