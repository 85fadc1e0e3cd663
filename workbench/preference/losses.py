"""DPO-family preference losses (registry `PREFERENCE_LOSSES`): DPO's sigmoid, IPO, hinge, mDPO and AdaViP.

Every loss reads sequence log-probabilities, log π(y | I, Q) = Σ_t log π(y_t | y_<t, I, Q), of the policy and
of the frozen reference (`PairLogps`), and the implicit rewards they define:

    r(I, y) = β · [log π_θ(y | I, Q) − log π_ref(y | I, Q)]
    ++ = (I_w, y_w) chosen,  +− = (I_w, y_l) rejected answer,  −+ = (I_l, y_w) rejected image

- `sigmoid` (DPO, arXiv 2305.18290; TRL's default):  L = −log σ(r_{++} − r_{+−})
- `hinge` (SLiC):                                       L = max(0, 1 − (r_{++} − r_{+−}))
- `ipo` (arXiv 2310.12036, TRL's length-normalised form): with h = log-ratio differences divided by each answer's
  token count,  L = (h_{++} − h_{+−} − 1 / (2β))²
- `mdpo` (arXiv 2406.11839): DPO + the image-conditional term on a corrupted image I′ (the `vision_rejected`
  slot) + an anchor that keeps the chosen reward positive:
      L = −log σ(r_{++} − r_{+−}) − log σ(r_{++} − r_{−+}) − log σ(r_{++} − δ)      (δ = 0)
- `vision_sigmoid`: DPO on the vision pair alone, −log σ(r_{++} − r_{−+}) (the "vision pairs alone" ablation)
- `adavip` (arXiv 2504.15619): one softmax over the two negatives,
      L = −log σ(−log Σ_{j∈{+−, −+}} e^{r_j − r_{++}}) = log(1 + e^{−m_l} + e^{−m_v}),
      m_l = r_{++} − r_{+−},  m_v = r_{++} − r_{−+}.
  ∂L/∂m_l = −e^{−m_l} / (1 + e^{−m_l} + e^{−m_v}) and likewise for m_v, so the *vision share* of the gradient
  e^{−m_v} / (e^{−m_l} + e^{−m_v}) = σ(m_l − m_v) is larger for whichever negative is harder (smaller margin):
  the adaptive balance. This closed form is our reading of the paper's objective (its text gives the softmax
  over negatives; no code is published); without a vision negative it is exactly DPO's sigmoid loss.

Each function returns (loss [B], metrics {name: [B] tensor}); `preference_loss` averages over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workbench.registry import Registry

PREFERENCE_LOSSES: Registry = Registry("preference loss")


@dataclass
class PairLogps:
    """Sequence log-probs, each [B]: policy and reference of the chosen (I_w, y_w), the rejected answer
    (I_w, y_l) and, for vision pairs, the chosen answer on the rejected image (I_l, y_w); token counts [B] of
    y_w and y_l (IPO's length normalisation)."""

    chosen: Tensor
    rejected: Tensor
    ref_chosen: Tensor
    ref_rejected: Tensor
    vision_rejected: Tensor | None = None
    ref_vision_rejected: Tensor | None = None
    chosen_tokens: Tensor | None = None
    rejected_tokens: Tensor | None = None

    def __post_init__(self):
        shape = self.chosen.shape
        for name in ("rejected", "ref_chosen", "ref_rejected", "vision_rejected", "ref_vision_rejected",
                     "chosen_tokens", "rejected_tokens"):
            t = getattr(self, name)
            if t is not None and t.shape != shape:
                raise ValueError(f"PairLogps.{name} has shape {list(t.shape)}, expected {list(shape)} like chosen")
        if (self.vision_rejected is None) != (self.ref_vision_rejected is None):
            raise ValueError("PairLogps needs both vision_rejected and ref_vision_rejected, or neither")
        for name in ("chosen", "rejected", "ref_chosen", "ref_rejected", "vision_rejected", "ref_vision_rejected"):
            t = getattr(self, name)
            if t is not None and not torch.isfinite(t).all():
                raise ValueError(f"PairLogps.{name} holds non-finite log-probs")

    @property
    def has_vision(self) -> bool:
        return self.vision_rejected is not None


def rewards(lp: PairLogps, beta: float) -> dict[str, Tensor]:
    """The implicit rewards r = β · (log π_θ − log π_ref) of each slot present: chosen, rejected, vision_rejected."""
    out = {"chosen": beta * (lp.chosen - lp.ref_chosen), "rejected": beta * (lp.rejected - lp.ref_rejected)}
    if lp.has_vision:
        out["vision_rejected"] = beta * (lp.vision_rejected - lp.ref_vision_rejected)
    return out


def _metrics(r: dict[str, Tensor]) -> dict[str, Tensor]:
    m = {f"rewards/{k}": v.detach() for k, v in r.items()}
    m["rewards/margins"] = (r["chosen"] - r["rejected"]).detach()
    m["rewards/accuracies"] = (r["chosen"] > r["rejected"]).float()
    if "vision_rejected" in r:
        m["rewards/vision_margins"] = (r["chosen"] - r["vision_rejected"]).detach()
        m["rewards/vision_accuracies"] = (r["chosen"] > r["vision_rejected"]).float()
    return m


def _need_vision(lp: PairLogps, name: str) -> None:
    if not lp.has_vision:
        raise ValueError(f"preference loss {name!r} needs vision pairs (vision_rejected log-probs), got none")


@PREFERENCE_LOSSES.register("sigmoid")
def sigmoid_loss(lp: PairLogps, beta: float) -> tuple[Tensor, dict]:
    """DPO: −log σ(r_{++} − r_{+−})."""
    r = rewards(lp, beta)
    return -F.logsigmoid(r["chosen"] - r["rejected"]), _metrics(r)


@PREFERENCE_LOSSES.register("hinge")
def hinge_loss(lp: PairLogps, beta: float) -> tuple[Tensor, dict]:
    """SLiC's hinge: max(0, 1 − (r_{++} − r_{+−}))."""
    r = rewards(lp, beta)
    return torch.relu(1 - (r["chosen"] - r["rejected"])), _metrics(r)


@PREFERENCE_LOSSES.register("ipo")
def ipo_loss(lp: PairLogps, beta: float) -> tuple[Tensor, dict]:
    """IPO with TRL's per-token normalisation: ((Δ_w / n_w − Δ_l / n_l) − 1 / (2β))², Δ = log π_θ − log π_ref."""
    if lp.chosen_tokens is None or lp.rejected_tokens is None:
        raise ValueError("preference loss 'ipo' needs chosen_tokens and rejected_tokens (its length normalisation)")
    h = (lp.chosen - lp.ref_chosen) / lp.chosen_tokens.clamp(min=1) - (lp.rejected - lp.ref_rejected) / lp.rejected_tokens.clamp(min=1)
    return (h - 1 / (2 * beta)) ** 2, _metrics(rewards(lp, beta))


@PREFERENCE_LOSSES.register("mdpo")
def mdpo_loss(lp: PairLogps, beta: float, anchor: float = 0.0) -> tuple[Tensor, dict]:
    """mDPO: DPO + −log σ(r_{++} − r_{−+}) on the corrupted image + the anchor −log σ(r_{++} − δ)."""
    _need_vision(lp, "mdpo")
    r = rewards(lp, beta)
    loss = (-F.logsigmoid(r["chosen"] - r["rejected"]) - F.logsigmoid(r["chosen"] - r["vision_rejected"])
            - F.logsigmoid(r["chosen"] - anchor))
    return loss, _metrics(r)


@PREFERENCE_LOSSES.register("adavip")
def adavip_loss(lp: PairLogps, beta: float) -> tuple[Tensor, dict]:
    """AdaViP: log(1 + e^{−m_l} + e^{−m_v}) (a logsumexp, stable for any margin); without vision pairs, DPO's
    sigmoid loss. Metric `vision_share` = σ(m_l − m_v), the vision negative's share of the gradient."""
    r = rewards(lp, beta)
    m_l = r["chosen"] - r["rejected"]
    if not lp.has_vision:
        return -F.logsigmoid(m_l), _metrics(r)
    m_v = r["chosen"] - r["vision_rejected"]
    loss = torch.logsumexp(torch.stack([torch.zeros_like(m_l), -m_l, -m_v]), dim=0)
    metrics = _metrics(r)
    metrics["vision_share"] = torch.sigmoid(m_l - m_v).detach()
    return loss, metrics


@PREFERENCE_LOSSES.register("vision_sigmoid")
def vision_sigmoid_loss(lp: PairLogps, beta: float) -> tuple[Tensor, dict]:
    """DPO on the vision pair alone, −log σ(r_{++} − r_{−+}): AdaViP's vision term without the language negative
    (the ablation "vision pairs alone")."""
    _need_vision(lp, "vision_sigmoid")
    r = rewards(lp, beta)
    return -F.logsigmoid(r["chosen"] - r["vision_rejected"]), _metrics(r)


def preference_loss(name: str, lp: PairLogps, beta: float = 0.1, **kwargs) -> tuple[Tensor, dict[str, float]]:
    """The batch-mean loss of `PREFERENCE_LOSSES[name]` and its metrics averaged over the batch."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    per_pair, metrics = PREFERENCE_LOSSES.get(name)(lp, beta, **kwargs)
    return per_pair.mean(), {k: float(v.float().mean()) for k, v in metrics.items()}
