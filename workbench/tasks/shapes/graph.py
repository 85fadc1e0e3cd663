"""Scene graph: every shape with its attributes, boxes and visibility, plus pairwise relations.

Relations are between non-clutter objects and use bounding-square centres (cx, cy):
`(a, "left_of", b)` iff cx_a < cx_b and `(a, "above", b)` iff cy_a < cy_b (image y grows down);
`right_of` / `below` are their converses. Counting helpers count non-clutter objects only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workbench.tasks.shapes.scene import Scene

RELATIONS = ("left_of", "right_of", "above", "below")


@dataclass(frozen=True)
class ObjectNode:
    """One shape in the graph. `index` is its position in `scene.shapes` (drawing order);
    `bbox` = (x0, y0, x1, y1), half-open, of the amodal (full) mask, `visible_bbox` of the visible
    mask (None when fully hidden); `area` / `visible_area` are pixel counts."""

    index: int
    kind: str
    colour: str
    size: int
    center: tuple[float, float]
    bbox: tuple[int, int, int, int] | None
    visible_bbox: tuple[int, int, int, int] | None
    area: int
    visible_area: int
    clutter: bool

    @property
    def visible_fraction(self) -> float:
        """visible_area / area (0.0 for an empty shape)."""
        return self.visible_area / self.area if self.area else 0.0


@dataclass(frozen=True)
class SceneGraph:
    """Objects (all shapes, clutter flagged) and relations `(subject, predicate, object)` between the
    non-clutter ones, with predicate in {"left_of", "above"}."""

    width: int
    height: int
    objects: tuple[ObjectNode, ...]
    relations: tuple[tuple[int, str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"width": self.width, "height": self.height,
                "objects": [asdict(o) for o in self.objects], "relations": [list(r) for r in self.relations]}

    def items(self) -> list[ObjectNode]:
        """The non-clutter objects (the ones questions are about)."""
        return [o for o in self.objects if not o.clutter]

    def count(self, colour: str | None = None, kind: str | None = None) -> int:
        """Number of non-clutter objects matching `colour` and `kind` (None = any)."""
        return sum(1 for o in self.items() if (colour is None or o.colour == colour) and (kind is None or o.kind == kind))

    def find(self, colour: str | None = None, kind: str | None = None) -> list[ObjectNode]:
        """The non-clutter objects matching `colour` and `kind` (None = any)."""
        return [o for o in self.items() if (colour is None or o.colour == colour) and (kind is None or o.kind == kind)]

    def relation(self, a: int, predicate: str, b: int) -> bool:
        """Whether `predicate(a, b)` holds for scene indices a, b (predicate in `RELATIONS`)."""
        if predicate not in RELATIONS:
            raise ValueError(f"relation {predicate!r} is not one of {', '.join(RELATIONS)}")
        base, (s, o) = {"left_of": ("left_of", (a, b)), "right_of": ("left_of", (b, a)),
                        "above": ("above", (a, b)), "below": ("above", (b, a))}[predicate]
        return (s, base, o) in set(self.relations)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def build_graph(scene: Scene, full: np.ndarray, visible: np.ndarray) -> SceneGraph:
    """Scene graph from a scene and its masks.

    Args:
        scene: the scene.
        full: [N, H, W] bool amodal masks (N = len(scene.shapes)).
        visible: [N, H, W] bool visible masks.
    """
    objects = []
    for i, s in enumerate(scene.shapes):
        objects.append(ObjectNode(index=i, kind=s.kind, colour=s.colour, size=s.size, center=s.center,
                                  bbox=_bbox(full[i]), visible_bbox=_bbox(visible[i]), area=int(full[i].sum()),
                                  visible_area=int(visible[i].sum()), clutter=s.clutter))
    items = [o for o in objects if not o.clutter]
    relations = []
    for a in items:
        for b in items:
            if a.center[0] < b.center[0]:
                relations.append((a.index, "left_of", b.index))
            if a.center[1] < b.center[1]:
                relations.append((a.index, "above", b.index))
    return SceneGraph(width=scene.width, height=scene.height, objects=tuple(objects), relations=tuple(relations))
