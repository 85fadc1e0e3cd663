"""REACT's structural-distortion taxonomy for ShapeWorld clips (arXiv 2601.04033; the taxonomy is ours, for shapes).

A distortion is one registered function ``fn(spec, t, shapes) -> shapes`` that rewrites frame t's shape list
(movers in order, index `spec.distortion.obj` affected) on each affected frame; every other frame is untouched,
so the labels — kind, object, frames, severity — are exact by construction::

    @DISTORTIONS.register("flicker")
    def flicker(spec, t, shapes): ...

| kind            | what the viewer sees on the affected frames                                   |
|-----------------|-------------------------------------------------------------------------------|
| `deformation`   | the object turns into another kind (a circle becomes a square, …)             |
| `disappearance` | the object is gone                                                             |
| `duplication`   | a second copy of the object sits beside it                                     |
| `merging`       | the object jumps into another object and the two interpenetrate               |
| `teleport`      | the object is displaced by half the frame, then snaps back                    |
"""

from __future__ import annotations

from dataclasses import replace

from workbench.registry import Registry
from workbench.tasks.shapes.scene import Shape

DISTORTIONS: Registry = Registry("distortion kind")
KIND_CYCLE = ("circle", "square", "triangle", "star")


@DISTORTIONS.register("deformation")
def deformation(spec, t: int, shapes: list[Shape]) -> list[Shape]:
    """The affected object's kind becomes the next one of `KIND_CYCLE` (circle → square → triangle → star)."""
    i = spec.distortion.obj
    s = shapes[i]
    j = KIND_CYCLE.index(s.kind) if s.kind in KIND_CYCLE else -1
    return [*shapes[:i], replace(s, kind=KIND_CYCLE[(j + 1) % len(KIND_CYCLE)]), *shapes[i + 1:]]


@DISTORTIONS.register("disappearance")
def disappearance(spec, t: int, shapes: list[Shape]) -> list[Shape]:
    """The affected object is not drawn."""
    i = spec.distortion.obj
    return [*shapes[:i], *shapes[i + 1:]]


@DISTORTIONS.register("duplication")
def duplication(spec, t: int, shapes: list[Shape]) -> list[Shape]:
    """A copy of the affected object, one size plus 4 px to its right (to its left where the frame ends)."""
    s = shapes[spec.distortion.obj]
    dx = s.size + 4
    x = s.x + dx if s.x + dx + s.size <= spec.width else s.x - dx
    return [*shapes, replace(s, x=x)]


@DISTORTIONS.register("merging")
def merging(spec, t: int, shapes: list[Shape]) -> list[Shape]:
    """The affected object moves onto the next mover (offset by a third of its size) and is drawn over it.

    Raises ValueError for a clip with a single mover (nothing to merge into)."""
    i = spec.distortion.obj
    if len(spec.movers) < 2:
        raise ValueError("a merging distortion needs at least two movers, the clip has one")
    other = shapes[(i + 1) % len(spec.movers)]
    s = shapes[i]
    moved = replace(s, x=other.x + other.size // 3, y=other.y + other.size // 3)
    return [*shapes[:i], *shapes[i + 1:], moved]


@DISTORTIONS.register("teleport")
def teleport(spec, t: int, shapes: list[Shape]) -> list[Shape]:
    """The affected object is displaced by half the frame in x and y (wrapping inside the frame)."""
    i = spec.distortion.obj
    s = shapes[i]
    span_x, span_y = max(1, spec.width - s.size), max(1, spec.height - s.size)
    moved = replace(s, x=(s.x + spec.width // 2) % span_x, y=(s.y + spec.height // 2) % span_y)
    return [*shapes[:i], moved, *shapes[i + 1:]]
