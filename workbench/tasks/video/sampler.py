"""Seeded clip and pair sampling: every clip is a pure function of (stream, index), so the frozen split and
the training streams never depend on call order.

    spec = make_clip(stream=1, index=7)                       # a distorted clip (or clean with p_clean)
    pair = make_pair(stream=1, index=7)                       # (better, worse) of one scene: a ≻ b
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from workbench.tasks.shapes.scene import COLOURS
from workbench.tasks.video.clip import ClipSpec, Distortion, Mover
from workbench.tasks.video.distortions import DISTORTIONS, KIND_CYCLE


@dataclass(frozen=True)
class VideoConfig:
    """Sampler knobs: frame size (px), frames per clip, movers per clip, object size range (px), speed range
    (px per frame), distortion lengths, and the distortion kinds drawn (default: all registered)."""

    size: int = 112
    n_frames: int = 16
    movers: tuple[int, int] = (2, 2)
    object_size: tuple[int, int] = (24, 32)
    speed: tuple[int, int] = (2, 5)
    lengths: tuple[int, int] = (1, 4)
    kinds: tuple[str, ...] | None = None
    background: str = "black"

    def __post_init__(self):
        for name in ("movers", "object_size", "speed", "lengths"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"VideoConfig.{name} must be a range 1 <= lo <= hi, got {(lo, hi)}")
        if self.lengths[1] > self.n_frames:
            raise ValueError(f"VideoConfig.lengths {self.lengths} exceed n_frames={self.n_frames}")
        if self.object_size[1] * 2 > self.size:
            raise ValueError(f"objects of {self.object_size[1]} px do not fit twice into {self.size} px frames")
        for k in self.kinds or ():
            DISTORTIONS.get(k)
        if self.kinds is not None and "merging" in self.kinds and self.movers[1] < 2:
            raise ValueError("merging needs clips with at least two movers, VideoConfig.movers allows one")

    @property
    def kind_names(self) -> tuple[str, ...]:
        return tuple(self.kinds) if self.kinds is not None else tuple(DISTORTIONS.names())


def _rng(stream: int, index: int, what: str) -> random.Random:
    return random.Random(f"video-{stream}-{index}-{what}")


def make_scene(stream: int, index: int, config: VideoConfig | None = None) -> ClipSpec:
    """The clean clip of scene (stream, index): distinct colours, kinds from `KIND_CYCLE`, random start
    corners and non-zero velocities."""
    c = config or VideoConfig()
    rng = _rng(stream, index, "scene")
    n = rng.randint(*c.movers)
    colours = rng.sample(sorted(COLOURS), n)
    movers = []
    for colour in colours:
        size = rng.randint(*c.object_size)
        speed = [rng.randint(*c.speed) * rng.choice((-1, 1)) for _ in range(2)]
        movers.append(Mover(rng.choice(KIND_CYCLE), colour, size, rng.randrange(c.size - size + 1),
                            rng.randrange(c.size - size + 1), *speed))
    return ClipSpec(f"{stream}-{index}", c.size, c.size, c.background, c.n_frames, tuple(movers))


def random_distortion(spec: ClipSpec, rng: random.Random, config: VideoConfig, kind: str | None = None,
                      length: int | None = None) -> Distortion:
    """A distortion for `spec`: kind (merging only where there are two movers), object, length, start."""
    kinds = [k for k in config.kind_names if k != "merging" or len(spec.movers) > 1]
    kind = kind or rng.choice(kinds)
    length = length or rng.randint(*config.lengths)
    return Distortion(kind, rng.randrange(len(spec.movers)), rng.randrange(spec.n_frames - length + 1), length)


def make_clip(stream: int, index: int, config: VideoConfig | None = None, p_clean: float = 0.25) -> ClipSpec:
    """Scene (stream, index), clean with probability `p_clean`, else with one random distortion."""
    c = config or VideoConfig()
    rng = _rng(stream, index, "distortion")
    spec = make_scene(stream, index, c)
    return spec if rng.random() < p_clean else replace(spec, distortion=random_distortion(spec, rng, c))


@dataclass(frozen=True)
class ClipPair:
    """Two clips of one scene, `better` ≻ `worse` (a strictly higher true score)."""

    pair_id: str
    better: ClipSpec
    worse: ClipSpec

    def __post_init__(self):
        if self.better.score <= self.worse.score:
            raise ValueError(f"pair {self.pair_id}: better clip scores {self.better.score}, not above {self.worse.score}")


def make_pair(stream: int, index: int, config: VideoConfig | None = None, p_clean_vs: float = 0.5) -> ClipPair:
    """A ≻ pair of scene (stream, index): with probability `p_clean_vs` (clean, distorted), else two
    distortions of the same kind, object and start where the worse one lasts longer."""
    c = config or VideoConfig()
    rng = _rng(stream, index, "pair")
    scene = make_scene(stream, index, c)
    lo, hi = c.lengths
    if rng.random() < p_clean_vs or lo == min(hi, 4):
        worse = random_distortion(scene, rng, c)
        return ClipPair(f"{stream}-{index}", scene, replace(scene, distortion=worse))
    short = rng.randint(lo, min(hi, 4) - 1)
    long = rng.randint(short + 1, min(hi, 4))
    d = random_distortion(scene, rng, c, length=long)
    better = replace(d, length=short)
    return ClipPair(f"{stream}-{index}", replace(scene, distortion=better), replace(scene, distortion=d))
