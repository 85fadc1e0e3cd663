"""Information loss of sparse attention against dense (PHSA, arXiv 2601.02819), per layer and per model.

Per layer (on the dense model's own q, k, v, so errors do not compound):
  * relative output error  ‖O_d − O_s‖_F / ‖O_d‖_F;
  * attention-mass recall  mean over queries/heads of Σ_{k visible} softmax(q kᵀ·scale)_k (1 = lossless);
  * block recall           |selected ∩ oracle top-K| / |oracle top-K|.
Per model (end to end, errors compound through the layers):
  * KL(p_dense ‖ p_sparse) of next-token distributions, mean over positions;
  * ΔNLL = NLL_sparse − NLL_dense of the next tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.attention.blocks import BlockSelection, selection_mask, sparsity
from workbench.attention.config import SparseAttentionConfig
from workbench.attention.kernels import gather_block_sparse_attention
from workbench.attention.selectors import select_blocks
from workbench.attention.sparse import causal_sdpa


def relative_output_error(o_dense: Tensor, o_sparse: Tensor) -> Tensor:
    """‖O_d − O_s‖_F / ‖O_d‖_F over the whole tensor (0 when both are 0). Shapes: any, equal."""
    if o_dense.shape != o_sparse.shape:
        raise ValueError(f"outputs differ in shape: {tuple(o_dense.shape)} vs {tuple(o_sparse.shape)}")
    num = (o_dense.double() - o_sparse.double()).norm()
    den = o_dense.double().norm()
    return torch.where(den > 0, num / den.clamp_min(1e-300), num)


def attention_mass_recall(q: Tensor, k: Tensor, sel: BlockSelection, *, scale: float | None = None,
                          key_padding_mask: Tensor | None = None, rows_per_chunk: int = 512) -> Tensor:
    """Mean dense attention mass that falls on the visible keys.

    recall = mean_{b,h,i} Σ_k [visible(i,k)] softmax_k(q_i·k·scale) over causal (real) keys.

    Args:
        q: [B, Hq, Tq, D]; k: [B, Hkv, Tk, D]; sel: the selection; key_padding_mask: [B, Tk] bool.

    Returns:
        scalar float64 in [0, 1].
    """
    b, hq, tq, d = q.shape
    g = hq // k.shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    kk = k.repeat_interleave(g, 1)
    tk = k.shape[2]
    total = torch.zeros((), dtype=torch.float64, device=q.device)
    for r0 in range(0, tq, rows_per_chunk):
        rows = slice(r0, min(tq, r0 + rows_per_chunk))
        pos = torch.arange(tq, device=q.device)[rows] + (tk - tq)
        allowed = (torch.arange(tk, device=q.device)[None, :] <= pos[:, None])[None, None]
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask.bool()[:, None, None, :]
        logits = torch.einsum("bhqd,bhkd->bhqk", q[:, :, rows].double(), kk.double()) * scale
        probs = torch.nan_to_num(torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1), nan=0.0)
        vis = selection_mask(sel, key_padding_mask, rows).repeat_interleave(g, 1)
        total = total + (probs * vis).sum()
    return total / (b * hq * tq)


def block_recall(sel: BlockSelection, oracle: BlockSelection) -> Tensor:
    """|selected ∩ oracle| / |oracle| over all tiles and KV heads (1.0 if the oracle selects nothing).

    Args:
        sel, oracle: selections of the same shapes (indices [B, Hkv, n_tiles, K], -1 = empty).
    """
    a, o = sel.indices, oracle.indices
    if a.shape[:3] != o.shape[:3]:
        raise ValueError(f"selections cover different tiles: {tuple(a.shape)} vs {tuple(o.shape)}")
    hit = ((o[..., :, None] == a[..., None, :]) & (o[..., :, None] >= 0)).any(-1)
    n = (o >= 0).sum()
    return torch.where(n > 0, hit.sum().double() / n.clamp_min(1), torch.ones((), dtype=torch.float64))


def next_token_kl(logits_dense: Tensor, logits_sparse: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean KL(p_dense ‖ p_sparse) = Σ_v p_d(v) (log p_d(v) − log p_s(v)) over positions.

    Args:
        logits_dense, logits_sparse: [B, T, V]; mask: [B, T] bool positions to average (all if None).
    """
    lp_d = F.log_softmax(logits_dense.double(), -1)
    lp_s = F.log_softmax(logits_sparse.double(), -1)
    kl = (lp_d.exp() * (lp_d - lp_s)).sum(-1)
    if mask is None:
        return kl.mean()
    m = mask.bool()
    return kl[m].sum() / m.sum().clamp_min(1)


def delta_nll(logits_dense: Tensor, logits_sparse: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """ΔNLL = mean NLL_sparse − mean NLL_dense of next tokens (logits[:, t] predicts labels[:, t + 1]).

    Args:
        logits_*: [B, T, V]; labels: [B, T] (ignore_index positions are skipped; 0 if none are left).
    """
    tgt = labels[:, 1:]
    valid = tgt != ignore_index
    if not bool(valid.any()):
        return torch.zeros((), dtype=torch.float64)

    def nll(logits: Tensor) -> Tensor:
        lp = F.log_softmax(logits[:, :-1].double(), -1)
        picked = lp.gather(-1, tgt.clamp_min(0)[..., None]).squeeze(-1)
        return -(picked[valid]).mean()

    return nll(logits_sparse) - nll(logits_dense)


@dataclass
class LayerLoss:
    """Information loss of one layer under one config."""

    layer: int
    relative_error: float
    mass_recall: float
    block_recall: float
    sparsity: float


@dataclass
class ModelLoss:
    """Per-layer losses plus end-to-end KL and ΔNLL; `mean_*` average over layers."""

    layers: list[LayerLoss] = field(default_factory=list)
    kl: float = 0.0
    delta_nll: float = 0.0

    def mean(self, name: str) -> float:
        vals = [getattr(x, name) for x in self.layers]
        return float(sum(vals) / len(vals)) if vals else float("nan")


def layer_information_loss(q: Tensor, k: Tensor, v: Tensor, cfg: SparseAttentionConfig | dict, *,
                           scale: float | None = None, punctuation_mask: Tensor | None = None,
                           key_padding_mask: Tensor | None = None, branch=None, layer: int = 0) -> LayerLoss:
    """All per-layer measures of `cfg` on one layer's q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D]."""
    cfg = SparseAttentionConfig.from_dict(cfg)
    if cfg.selector == "dense":
        return LayerLoss(layer, 0.0, 1.0, 1.0, 0.0)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    kw = dict(scale=scale, key_padding_mask=key_padding_mask)
    sel = select_blocks(q, k, cfg, punctuation_mask=punctuation_mask, branch=branch, **kw)
    oracle = select_blocks(q, k, cfg.replace(selector="oracle"), **kw)
    o_dense = causal_sdpa(q, k, v, scale, key_padding_mask)
    o_sparse = gather_block_sparse_attention(q, k, v, sel, **kw)
    return LayerLoss(layer=layer, relative_error=float(relative_output_error(o_dense, o_sparse)),
                     mass_recall=float(attention_mass_recall(q, k, sel, **kw)),
                     block_recall=float(block_recall(sel, oracle)), sparsity=sparsity(sel))


@torch.no_grad()
def model_information_loss(model, input_ids: Tensor, cfg: SparseAttentionConfig | dict, *,
                           labels: Tensor | None = None, attention_mask: Tensor | None = None,
                           per_layer: bool = True) -> ModelLoss:
    """Information loss of `cfg` on a transformers causal LM, per layer and end to end.

    Runs the model dense (recording every layer's q, k, v), then sparse; restores the model's
    attention implementation and `config.sparse_attention` afterwards.

    Args:
        model: a causal LM; input_ids: [B, T]; labels: [B, T] for ΔNLL (defaults to input_ids).
        per_layer: also compute the per-layer measures (the oracle costs O(T²) per layer).
    """
    from workbench.attention.hf import IMPLEMENTATION, enable_sparse_attention, record_attention

    cfg = SparseAttentionConfig.from_dict(cfg)
    saved_impl = model.config._attn_implementation
    saved_cfg = getattr(model.config, "sparse_attention", None)
    try:
        enable_sparse_attention(model, cfg.replace(selector="dense"))
        with record_attention() as records:
            dense = model(input_ids=input_ids, attention_mask=attention_mask).logits
        enable_sparse_attention(model, cfg)
        sparse = model(input_ids=input_ids, attention_mask=attention_mask).logits
        layers = []
        if per_layer:
            for rec in records:
                branch = getattr(_module_for_layer(model, rec.layer_idx), "nsa_branch", None)
                layers.append(layer_information_loss(rec.q, rec.k, rec.v, cfg, scale=rec.scale,
                                                     punctuation_mask=rec.punctuation_mask,
                                                     key_padding_mask=rec.key_padding_mask, branch=branch,
                                                     layer=rec.layer_idx))
    finally:
        if saved_cfg is not None:
            model.config.sparse_attention = saved_cfg
        if saved_impl != IMPLEMENTATION:
            from workbench.attention.hf import disable_sparse_attention

            disable_sparse_attention(model, saved_impl)
    mask = None if attention_mask is None else attention_mask.bool()
    labels = input_ids if labels is None else labels
    if attention_mask is not None:
        labels = labels.masked_fill(~attention_mask.bool(), -100)
    return ModelLoss(layers=layers, kl=float(next_token_kl(dense, sparse, mask)),
                     delta_nll=float(delta_nll(dense, sparse, labels)))


def _module_for_layer(model, layer_idx: int):
    from workbench.attention.hf import _attention_modules

    for m in _attention_modules(model):
        if m.layer_idx == layer_idx:
            return m
    return None


def information_loss_table(model, input_ids: Tensor, cfg: SparseAttentionConfig | dict, selectors: list[str],
                           top_ks: list[int], *, per_layer: bool = True) -> list[dict]:
    """Information loss for every (selector, top-K): one flat row each, ready for a DataFrame.

    Row keys: selector, top_k, sparsity, relative_error, mass_recall, block_recall (means over
    layers), kl, delta_nll. `cfg` supplies everything else (block size, window, punctuation ids, ...).
    """
    cfg = SparseAttentionConfig.from_dict(cfg)
    rows = []
    for name in selectors:
        for k in top_ks:
            loss = model_information_loss(model, input_ids, cfg.replace(selector=name, top_k=k), per_layer=per_layer)
            row = {"selector": name, "top_k": k, "kl": loss.kl, "delta_nll": loss.delta_nll}
            for metric in ("sparsity", "relative_error", "mass_recall", "block_recall"):
                row[metric] = loss.mean(metric)
            rows.append(row)
    return rows
