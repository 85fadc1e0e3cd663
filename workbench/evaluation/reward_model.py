"""Metrics of a point-wise video reward model (REACT, arXiv 2601.04033), computed from parsed ratings.

- **pairwise accuracy** over pairs (a, b) with human preference h ∈ {1, −1, 0} (a ≻ b, b ≻ a, tie) and model
  margin m = s_a − s_b:
    *without ties* (VideoAlign's w/o-ties number): C / (C + D), C = #{h·m > 0}, D = #{h ≠ 0, h·m ≤ 0}
    (a predicted tie on a strict pair is discordant; human ties are left out);
    *with ties* (Deutsch et al., arXiv 2305.14324, as VideoAlign reports it): the model's margin is read as a tie
    when |m| ≤ ε, and ε is calibrated: acc* = max_ε (C_ε + T_hm,ε) / N, where T_hm,ε counts human ties the model
    also ties. A pair whose score could not be parsed has m = 0 (a tie, never a win).
- **Spearman ρ** of predicted and true scores (average ranks for ties; 0 when either side is constant).
- **attribution accuracy**: predicted label = injected kind, over distorted clips, also per kind.
- **frame localisation**: per distorted clip, recall |pred ∩ true| / |true| (the hit rate of the true distorted
  frames) and precision |pred ∩ true| / |pred| (0 for an empty prediction).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def _stats(h: np.ndarray, m: np.ndarray, eps: float) -> tuple[int, int]:
    tie_m = np.abs(m) <= eps
    concordant = int(((h * m > 0) & ~tie_m & (h != 0)).sum())
    both_tie = int(((h == 0) & tie_m).sum())
    return concordant, both_tie


def pairwise_accuracy(h: Sequence[int], m: Sequence[float]) -> float:
    """Accuracy without ties: C / (C + D) over the pairs with h ≠ 0 (nan when there is none). h: [N], m: [N]."""
    h, m = np.asarray(h, dtype=float), np.asarray(m, dtype=float)
    strict = h != 0
    if not strict.any():
        return float("nan")
    return float((h[strict] * m[strict] > 0).mean())


def pairwise_accuracy_with_ties(h: Sequence[int], m: Sequence[float]) -> tuple[float, float]:
    """Tie-calibrated accuracy (acc*, ε*): the best (C_ε + T_hm,ε) / N over ε ∈ {−1} ∪ {|m_i|}. h: [N], m: [N].
    With no human ties and no predicted ties it equals `pairwise_accuracy`."""
    h, m = np.asarray(h, dtype=float), np.asarray(m, dtype=float)
    if len(h) == 0:
        return float("nan"), 0.0
    best, best_eps = -1.0, -1.0
    for eps in [-1.0, *sorted(set(np.abs(m).tolist()))]:
        c, t = _stats(h, m, eps)
        acc = (c + t) / len(h)
        if acc > best:
            best, best_eps = acc, eps
    return float(best), float(best_eps)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):  # average ranks of ties
        same = x == v
        ranks[same] = ranks[same].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of average ranks; 0.0 when either side is constant or n < 2."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


def attribution(pred: Sequence[str | None], true: Sequence[str]) -> dict:
    """{"accuracy", "by_kind": {kind: accuracy}, "n_by_kind"} over the rows whose true label is not "none"."""
    hits, counts = defaultdict(int), defaultdict(int)
    for p, t in zip(pred, true):
        if t == "none":
            continue
        counts[t] += 1
        hits[t] += int(p == t)
    n = sum(counts.values())
    return {"accuracy": sum(hits.values()) / n if n else float("nan"),
            "by_kind": {k: hits[k] / counts[k] for k in sorted(counts)}, "n_by_kind": dict(sorted(counts.items()))}


def localisation(pred: Sequence[Sequence[int] | None], true: Sequence[Sequence[int]]) -> dict:
    """Mean per-clip {"recall", "precision"} of predicted frames against the true distorted frames, over clips
    with at least one true distorted frame (a missing prediction counts as empty); nan when there is none."""
    rec, prec = [], []
    for p, t in zip(pred, true):
        t = set(t)
        if not t:
            continue
        p = set(p or ())
        hit = len(p & t)
        rec.append(hit / len(t))
        prec.append(hit / len(p) if p else 0.0)
    return {"recall": float(np.mean(rec)) if rec else float("nan"),
            "precision": float(np.mean(prec)) if prec else float("nan"), "n": len(rec)}


def clip_metrics(ratings: Sequence, views: Sequence) -> dict[str, float]:
    """Every metric of a reward model from its parsed `ratings` (`tasks.video.Rating`) of `views`
    (`tasks.video.ClipView`; the two views of a pair share `pair_id`, sides "better" / "worse").

    Truth is the whole clip's: its score (`spec.score`), its kind (`spec.label`) and all its distorted frames,
    so a view that misses the distorted frames is scored as the miss it is. Returns floats:
    `pairwise_accuracy`, `pairwise_accuracy_ties`, `spearman` (over parsed scores), `attribution_accuracy` and
    `attribution_<kind>`, `frame_recall`, `frame_precision`, `format_rate`, `n_pairs`."""
    if len(ratings) != len(views):
        raise ValueError(f"got {len(ratings)} ratings for {len(views)} views")
    by_pair: dict = defaultdict(dict)
    for r, v in zip(ratings, views):
        if v.pair_id is not None:
            by_pair[v.pair_id][v.side] = r.score
    margins = [(s["better"] or 0) - (s["worse"] or 0) if s["better"] is not None and s["worse"] is not None else 0
               for s in by_pair.values() if "better" in s and "worse" in s]
    parsed = [(r.score, v.spec.score) for r, v in zip(ratings, views) if r.score is not None]
    attr = attribution([r.label for r in ratings], [v.spec.label for v in views])
    distorted = [(r.frames, v.spec.distortion.frames) for r, v in zip(ratings, views) if v.spec.distortion is not None]
    loc = localisation([p for p, _ in distorted], [t for _, t in distorted])
    out = {"pairwise_accuracy": pairwise_accuracy([1] * len(margins), margins),
           "pairwise_accuracy_ties": pairwise_accuracy_with_ties([1] * len(margins), margins)[0],
           "spearman": spearman([p for p, _ in parsed], [t for _, t in parsed]),
           "attribution_accuracy": attr["accuracy"], "frame_recall": loc["recall"], "frame_precision": loc["precision"],
           "format_rate": float(np.mean([r.ok for r in ratings])) if ratings else float("nan"),
           "n_pairs": float(len(margins))}
    out.update({f"attribution_{k}": v for k, v in attr["by_kind"].items()})
    return out
