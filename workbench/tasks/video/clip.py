"""Clips of moving ShapeWorld objects: the records (`Mover`, `Distortion`, `ClipSpec`) and their rendering.

A clip is a `ClipSpec`: a frame size, a background, `n_frames`, objects that move in straight lines
(`Mover`, position x + vx·t, y + vy·t, bouncing off the frame's edges) and at most one injected structural
distortion (REACT's taxonomy, arXiv 2601.04033, in `workbench.tasks.video.distortions`). Frame t is an
ordinary `shapes.Scene`, so rendering is the exact, platform-independent ShapeWorld raster and a frozen split
stores specs, never pixels.

Severity and score (the human-like 1–5 scale, 5 = no distortion): a distortion lasts `length` consecutive
frames; severity = min(length, 4) and score = 5 − severity. A viewer that sees only some frames sees the
distortion on those of its frames only (`visible_frames`), so the score a model can justify from a subset is
`score_from_frames`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import numpy as np

from workbench.tasks.shapes.render import render
from workbench.tasks.shapes.scene import Scene, Shape

CLEAN_SCORE = 5  # the top of the 1-5 scale: no distortion


@dataclass(frozen=True)
class Mover:
    """One object: `kind`, `colour`, bounding-square `size` (px), start corner (`x`, `y`) and velocity
    (`vx`, `vy`, px per frame)."""

    kind: str
    colour: str
    size: int
    x: int
    y: int
    vx: int
    vy: int

    def position(self, t: int, width: int, height: int) -> tuple[int, int]:
        """Top-left corner at frame t: straight-line motion reflected at the frame's edges (a triangle wave
        on [0, W − size] and [0, H − size])."""
        return _bounce(self.x + self.vx * t, width - self.size), _bounce(self.y + self.vy * t, height - self.size)

    @property
    def name(self) -> str:
        """`"red circle"`: how reasoning text names the object."""
        return f"{self.colour} {self.kind}"


def _bounce(p: int, span: int) -> int:
    if span <= 0:
        return 0
    p %= 2 * span
    return p if p <= span else 2 * span - p


@dataclass(frozen=True)
class Distortion:
    """A structural distortion: `kind` (a `DISTORTIONS` name), the affected object (`obj`, index into the
    movers), the first affected frame `start` and the number of affected frames `length` (≥ 1)."""

    kind: str
    obj: int
    start: int
    length: int

    @property
    def frames(self) -> tuple[int, ...]:
        """The affected frame indices, in order."""
        return tuple(range(self.start, self.start + self.length))

    @property
    def severity(self) -> int:
        """1 (one frame) … 4 (four frames or more)."""
        return min(self.length, 4)


@dataclass(frozen=True)
class ClipSpec:
    """Everything about one clip: `width`×`height` frames on `background`, `n_frames`, the `movers`, and the
    injected `distortion` (None for a clean clip). `scene_id` names the underlying scene: a clean clip and its
    distorted versions share it."""

    scene_id: str
    width: int
    height: int
    background: str
    n_frames: int
    movers: tuple[Mover, ...]
    distortion: Distortion | None = None

    def __post_init__(self):
        from workbench.tasks.video.distortions import DISTORTIONS

        object.__setattr__(self, "movers", tuple(self.movers))
        if self.n_frames < 2:
            raise ValueError(f"a clip needs at least 2 frames, got n_frames={self.n_frames}")
        if not self.movers:
            raise ValueError("a clip needs at least one moving object, got none")
        d = self.distortion
        if d is not None:
            DISTORTIONS.get(d.kind)  # an unknown kind: one-sentence KeyError
            if not 0 <= d.obj < len(self.movers):
                raise ValueError(f"distortion object {d.obj} is not one of the clip's {len(self.movers)} movers")
            if d.length < 1 or d.start < 0 or d.start + d.length > self.n_frames:
                raise ValueError(f"distortion frames {d.start}..{d.start + d.length - 1} do not fit in "
                                 f"{self.n_frames} frames")

    @property
    def score(self) -> int:
        """The true human-like score of the whole clip: 5 − severity (5 when clean)."""
        return CLEAN_SCORE if self.distortion is None else CLEAN_SCORE - self.distortion.severity

    @property
    def label(self) -> str:
        """The distortion kind, `"none"` when clean."""
        return "none" if self.distortion is None else self.distortion.kind

    def visible_frames(self, frames: Sequence[int]) -> tuple[int, ...]:
        """The distorted frames among `frames` (the ones a viewer of those frames can see)."""
        hit = set(self.distortion.frames) if self.distortion is not None else set()
        return tuple(f for f in frames if f in hit)

    def score_from_frames(self, frames: Sequence[int]) -> int:
        """The score a viewer of `frames` only can justify: 5 − min(#visible distorted frames, 4)."""
        return CLEAN_SCORE - min(len(self.visible_frames(frames)), 4)

    def clean(self) -> "ClipSpec":
        """The same scene without its distortion."""
        return replace(self, distortion=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inverse: `ClipSpec.from_dict`)."""
        d = asdict(self)
        d["movers"] = [asdict(m) for m in self.movers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClipSpec":
        """Rebuild a spec from `to_dict` output; a missing or unknown key is one ValueError."""
        try:
            dist = d.get("distortion")
            return cls(scene_id=d["scene_id"], width=d["width"], height=d["height"], background=d["background"],
                       n_frames=d["n_frames"], movers=tuple(Mover(**m) for m in d["movers"]),
                       distortion=Distortion(**dist) if dist else None)
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a clip spec dict ({e}): {str(d)[:120]}") from None


def frame_scene(spec: ClipSpec, t: int) -> Scene:
    """Frame t of the clip as a ShapeWorld `Scene` (movers in order, then the distortion applied)."""
    from workbench.tasks.video.distortions import DISTORTIONS

    if not 0 <= t < spec.n_frames:
        raise ValueError(f"frame {t} is outside the clip's {spec.n_frames} frames")
    shapes = [Shape(m.kind, m.colour, m.size, *m.position(t, spec.width, spec.height)) for m in spec.movers]
    d = spec.distortion
    if d is not None and t in d.frames:
        shapes = DISTORTIONS.get(d.kind)(spec, t, shapes)
    return Scene(spec.width, spec.height, spec.background, tuple(shapes))


def render_clip(spec: ClipSpec, frames: Sequence[int] | None = None) -> np.ndarray:
    """The frames (all, or the given indices in the given order): [F, H, W, 3] uint8."""
    idx = range(spec.n_frames) if frames is None else frames
    return np.stack([render(frame_scene(spec, t)).image for t in idx])
