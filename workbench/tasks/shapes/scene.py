"""ShapeWorld records: the palette, `Shape`, `Scene`, and the sampler's knobs (`SceneConfig`).

A `Scene` is the whole truth about an image: rendering it (`render.render`) is deterministic, so
frozen splits store scenes, never pixels. `shapes` is in drawing order (bottom to top): a later
shape occludes an earlier one where they overlap. Clutter shapes (`clutter=True`, small grey
distractors) are drawn but never asked about.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from workbench.tasks.shapes.raster import SHAPE_KINDS

# Flat RGB colours, far apart so a 112 px image leaves no doubt; clutter has its own grey.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 30),
    "purple": (150, 50, 200),
    "orange": (250, 140, 20),
    "cyan": (30, 210, 220),
    "white": (250, 250, 250),
}
CLUTTER_COLOUR = "grey"
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), "navy": (15, 20, 60), "beige": (200, 185, 150)}
ALL_COLOURS: dict[str, tuple[int, int, int]] = {**COLOURS, CLUTTER_COLOUR: (128, 128, 128)}

PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles",
                           "diamond": "diamonds", "star": "stars", "moon": "moons", "cross": "crosses"}
OCCLUSION_MODES = ("none", "allowed", "required")


def plural(kind: str) -> str:
    """English plural of a kind name (`cross` -> `crosses`)."""
    return PLURALS.get(kind, kind + "s")


@dataclass(frozen=True)
class Shape:
    """One shape: `kind` (a `SHAPE_KINDS` name), `colour` (a `COLOURS` name or `grey` for clutter),
    `size` (side of its bounding square, px), `x`, `y` (top-left corner of that square, px)."""

    kind: str
    colour: str
    size: int
    x: int
    y: int
    clutter: bool = False

    @property
    def center(self) -> tuple[float, float]:
        """(cx, cy) in pixels: the centre of the bounding square."""
        return (self.x + self.size / 2, self.y + self.size / 2)


@dataclass(frozen=True)
class Scene:
    """A full scene: image `width`×`height`, `background` name, `noise` amplitude (integer, ±noise per
    channel, uniform) with its `noise_seed`, and `shapes` bottom to top."""

    width: int
    height: int
    background: str
    shapes: tuple[Shape, ...]
    noise: int = 0
    noise_seed: int = 0

    def __post_init__(self):
        if self.width < 1 or self.height < 1:
            raise ValueError(f"scene size must be positive, got {self.width}x{self.height}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background {self.background!r} is not one of {', '.join(BACKGROUNDS)}")
        if not 0 <= self.noise <= 255:
            raise ValueError(f"noise must be in [0, 255], got {self.noise}")
        for s in self.shapes:
            if s.kind not in SHAPE_KINDS:
                raise ValueError(f"shape kind {s.kind!r} is not one of {', '.join(SHAPE_KINDS.names())}")
            if s.colour not in ALL_COLOURS:
                raise ValueError(f"shape colour {s.colour!r} is not one of {', '.join(ALL_COLOURS)}")
            if s.size < 1:
                raise ValueError(f"shape size must be >= 1 pixel, got {s.size}")
        object.__setattr__(self, "shapes", tuple(self.shapes))

    @property
    def objects(self) -> list[int]:
        """Indices (into `shapes`) of the non-clutter shapes, the ones questions are about."""
        return [i for i, s in enumerate(self.shapes) if not s.clutter]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (inverse: `Scene.from_dict`)."""
        d = asdict(self)
        d["shapes"] = [asdict(s) for s in self.shapes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Scene":
        """Rebuild a scene from `to_dict` output; a missing or unknown key is a ValueError."""
        try:
            shapes = tuple(Shape(**s) for s in d["shapes"])
            return cls(width=d["width"], height=d["height"], background=d["background"], shapes=shapes,
                       noise=d.get("noise", 0), noise_seed=d.get("noise_seed", 0))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a scene dict ({e}): {str(d)[:120]}") from None

    def without(self, index: int) -> "Scene":
        """The scene with `shapes[index]` removed."""
        return replace(self, shapes=self.shapes[:index] + self.shapes[index + 1:])


@dataclass(frozen=True)
class CooccurrenceBias:
    """Co-occurrence knob: among scenes with ≥ 2 objects that contain a `trigger`, exactly a fraction
    `strength` also contain a `partner` (P(partner | trigger) = strength), e.g. star -> moon, 0.9:
    the spurious correlation Causal-HalBench (arXiv 2511.10268) probes."""

    trigger: str
    partner: str
    strength: float

    def __post_init__(self):
        if self.trigger == self.partner:
            raise ValueError(f"co-occurrence trigger and partner must differ, both are {self.trigger!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"co-occurrence strength must be in [0, 1], got {self.strength}")


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene sampler (`sampler.sample_scene`); ranges are inclusive (lo, hi)."""

    width: int = field(default=112, metadata={"help": "image width, px"})
    height: int = field(default=112, metadata={"help": "image height, px"})
    n_objects: tuple[int, int] = field(default=(1, 5), metadata={"help": "number of (non-clutter) shapes"})
    kinds: tuple[str, ...] = field(default=("circle", "square", "triangle", "star"), metadata={"help": "kinds drawn"})
    colours: tuple[str, ...] = field(default=("red", "green", "blue", "yellow"), metadata={"help": "colours drawn"})
    sizes: tuple[int, int] = field(default=(14, 28), metadata={"help": "side of a shape, px (>= 14 to be seen at 112 px)"})
    background: str = field(default="black", metadata={"help": "background colour name"})
    occlusion: str = field(default="none", metadata={"help": "none: no overlap; allowed; required: objects 0 and 1 overlap"})
    min_visible: float = field(default=0.5, metadata={"help": "with occlusion, each object keeps this fraction visible"})
    n_clutter: tuple[int, int] = field(default=(0, 0), metadata={"help": "number of small grey distractors"})
    clutter_sizes: tuple[int, int] = field(default=(3, 6), metadata={"help": "side of a distractor, px"})
    noise: int = field(default=0, metadata={"help": "background noise texture amplitude (0-255)"})
    cooccurrence: tuple[CooccurrenceBias, ...] = field(default=(), metadata={"help": "co-occurrence biases"})
    max_tries: int = field(default=200, metadata={"help": "placement attempts per shape before resampling"})

    def __post_init__(self):
        for name in ("n_objects", "sizes", "n_clutter", "clutter_sizes"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if self.sizes[0] < 1 or self.sizes[1] > min(self.width, self.height):
            raise ValueError(f"sizes {self.sizes} must lie in [1, {min(self.width, self.height)}] for a "
                             f"{self.width}x{self.height} image")
        if self.n_clutter[1] > 0 and self.clutter_sizes[1] >= self.sizes[0]:
            raise ValueError(f"clutter_sizes {self.clutter_sizes} must stay below the smallest shape size {self.sizes[0]}")
        if self.n_clutter[1] > 0 and self.clutter_sizes[0] < 1:
            raise ValueError(f"clutter_sizes {self.clutter_sizes} must be >= 1 pixel")
        bad = [k for k in self.kinds if k not in SHAPE_KINDS]
        if not self.kinds or bad:
            raise ValueError(f"kinds {bad or '()'} invalid; choose from {', '.join(SHAPE_KINDS.names())}")
        bad = [c for c in self.colours if c not in COLOURS]
        if not self.colours or bad:
            raise ValueError(f"colours {bad or '()'} invalid; choose from {', '.join(COLOURS)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background {self.background!r} is not one of {', '.join(BACKGROUNDS)}")
        if self.occlusion not in OCCLUSION_MODES:
            raise ValueError(f"occlusion {self.occlusion!r} is not one of {', '.join(OCCLUSION_MODES)}")
        if self.occlusion == "required" and self.n_objects[0] < 2:
            raise ValueError(f"occlusion='required' needs n_objects >= 2, got {self.n_objects}")
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")
        if not 0 <= self.noise <= 255:
            raise ValueError(f"noise must be in [0, 255], got {self.noise}")
        for b in self.cooccurrence:
            for k in (b.trigger, b.partner):
                if k not in self.kinds:
                    raise ValueError(f"co-occurrence kind {k!r} is not among kinds {self.kinds}")


# Visual complexity ladder (Durian, arXiv 2602.21743): more, smaller, overlapping shapes on noisier ground.
_COMPLEXITY = {
    0: dict(),
    1: dict(n_objects=(2, 6), n_clutter=(2, 4), noise=8),
    2: dict(n_objects=(3, 7), sizes=(14, 24), occlusion="allowed", n_clutter=(4, 8), noise=16),
    3: dict(n_objects=(4, 8), sizes=(14, 20), occlusion="required", min_visible=0.4, n_clutter=(8, 12), noise=32),
}


def complexity_config(level: int, **overrides: Any) -> SceneConfig:
    """A `SceneConfig` at visual complexity `level` ∈ {0, 1, 2, 3} (0 = clean, 3 = crowded, occluded,
    cluttered, noisy); keyword `overrides` replace single knobs."""
    if level not in _COMPLEXITY:
        raise ValueError(f"complexity level must be one of {sorted(_COMPLEXITY)}, got {level!r}")
    return SceneConfig(**{**_COMPLEXITY[level], **overrides})
