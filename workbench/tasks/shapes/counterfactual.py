"""Counterfactual images that break co-occurrence (Causal-HalBench, arXiv 2511.10268), exact by construction.

For an image with ≥ 2 objects and each object whose kind appears once as the target T (a kind seen twice
would survive the edit):

1. context C ~ the other kinds in the image, weighted by co-occurrence count with T (uniform if all 0);
2. candidates = kinds absent from the image whose co-occurrence count with C is the least (ideally 0);
3. the inserted kind N = the candidate whose mask, drawn in T's box, best fits T's (highest IoU; ties by name);
4. T is redrawn as N in place (same box, colour and depth) and the scene re-rendered, so every pixel T covered
   and N does not shows what lies beneath (background or a lower shape) — no inpainting model, no artefacts.

The questions each pair gets (the `type` / `tag` of the authors' records):
- `target`:  "Is there a T?" on the original (yes) and on the counterfactual (no);
- `inpaint`: "Is there an N?" on the original (no) and on the counterfactual (yes);
- `absent`:  "Is there an A?" on both (no), A the kind absent from both with the highest co-occurrence with T
  (None when every kind is taken) — what T's presence may have made the model see.
The counterfactuals of image `A` are `A_001`, `A_002`, … in object order; all draws come from the `rng` given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from workbench.tasks.shapes.raster import rasterize
from workbench.tasks.shapes.scene import Scene


@dataclass(frozen=True)
class Counterfactual:
    """One counterfactual of `original_id`: its `id` (`<original_id>_NNN`), the `target_index` (into
    `scene.shapes` of the original), the kinds `target` (T), `context` (C), `inserted` (N), `absent` (A or
    None) and the edited `scene`."""

    id: str
    original_id: str
    target_index: int
    target: str
    context: str
    inserted: str
    absent: str | None
    scene: Scene

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inverse: `Counterfactual.from_dict`)."""
        return {"id": self.id, "original_id": self.original_id, "target_index": self.target_index,
                "target": self.target, "context": self.context, "inserted": self.inserted, "absent": self.absent,
                "scene": self.scene.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Counterfactual":
        """Rebuild from `to_dict` output; a missing key is a ValueError."""
        try:
            return cls(id=str(d["id"]), original_id=str(d["original_id"]), target_index=int(d["target_index"]),
                       target=d["target"], context=d["context"], inserted=d["inserted"], absent=d["absent"],
                       scene=Scene.from_dict(d["scene"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a counterfactual dict ({e}): {str(d)[:120]}") from None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∧ b| / |a ∨ b| of two bool masks (0.0 when both are empty)."""
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def best_fit(scene: Scene, index: int, candidates: Sequence[str]) -> str:
    """The candidate kind whose full mask in shape `index`'s box has the highest IoU with that shape's own
    (ties broken by name), i.e. the replacement that changes the fewest pixels."""
    s = scene.shapes[index]
    own = rasterize(s.kind, s.x, s.y, s.size, scene.width, scene.height)
    scored = [(-mask_iou(own, rasterize(k, s.x, s.y, s.size, scene.width, scene.height)), k) for k in candidates]
    return min(scored)[1]


def build_counterfactuals(scene: Scene, original_id: str, counts: np.ndarray, kinds: Sequence[str],
                          rng: np.random.Generator) -> list[Counterfactual]:
    """Every counterfactual of `scene` (see the module docstring).

    Args:
        scene: the original; images with < 2 objects give none.
        original_id: its name; counterfactual j (from 1) is `f"{original_id}_{j:03d}"`.
        counts: [K, K] co-occurrence counts over `kinds` (`cooccurrence.cooccurrence_counts` of the dataset).
        kinds: the kind vocabulary of `counts`; every object's kind must be in it.
        rng: draws the context objects (advanced in place).
    """
    kinds = list(kinds)
    if counts.shape != (len(kinds), len(kinds)):
        raise ValueError(f"counts must be [{len(kinds)}, {len(kinds)}] for kinds {kinds}, got {list(counts.shape)}")
    objects = scene.objects
    present = [scene.shapes[i].kind for i in objects]
    bad = sorted(set(present) - set(kinds))
    if bad:
        raise ValueError(f"object kinds {bad} are not among the counted kinds {kinds}")
    out: list[Counterfactual] = []
    if len(objects) < 2:
        return out
    at = {k: i for i, k in enumerate(kinds)}
    for index in objects:
        target = scene.shapes[index].kind
        context_pool = sorted({k for k in present if k != target})
        if present.count(target) != 1 or not context_pool:
            continue
        weights = np.array([counts[at[target], at[c]] for c in context_pool], dtype=np.float64)
        p = weights / weights.sum() if weights.sum() > 0 else np.full(len(context_pool), 1 / len(context_pool))
        context = context_pool[int(rng.choice(len(context_pool), p=p))]
        absent_now = [k for k in kinds if k not in present]
        if not absent_now:
            continue
        least = min(counts[at[context], at[k]] for k in absent_now)
        inserted = best_fit(scene, index, [k for k in absent_now if counts[at[context], at[k]] == least])
        others = [k for k in absent_now if k != inserted]
        absent = max(sorted(others), key=lambda k: counts[at[target], at[k]]) if others else None  # ties: by name
        new = replace(scene.shapes[index], kind=inserted)
        edited = replace(scene, shapes=scene.shapes[:index] + (new,) + scene.shapes[index + 1:])
        out.append(Counterfactual(f"{original_id}_{len(out) + 1:03d}", original_id, index, target, context, inserted,
                                  absent, edited))
    return out
