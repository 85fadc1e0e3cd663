"""What a reward model is shown: a `ClipView` (a clip spec and the frame indices shown), and frame choices.

    views = pair_views(pair, uniform_frames(16, 8))   # [better view, worse view] of a ≻ pair
    frames = view.render()                             # [F, H, W, 3] uint8, cached per view
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from workbench.tasks.video.answer import frames_prompt, target
from workbench.tasks.video.clip import ClipSpec, render_clip
from workbench.tasks.video.sampler import ClipPair


@dataclass(frozen=True)
class ClipView:
    """A clip shown at `frames` (clip frame indices, increasing); `pair_id` and `side` ("better" | "worse")
    when the view is one half of a ≻ pair."""

    spec: ClipSpec
    frames: tuple[int, ...]
    pair_id: str | None = None
    side: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))
        if not self.frames:
            raise ValueError("a clip view needs at least one frame")
        if any(not 0 <= f < self.spec.n_frames for f in self.frames):
            raise ValueError(f"frames {self.frames} are outside the clip's {self.spec.n_frames} frames")
        if self.side not in (None, "better", "worse"):
            raise ValueError(f"side must be 'better', 'worse' or None, got {self.side!r}")

    @property
    def prompt(self) -> str:
        """The question after the video: which frames are shown."""
        return frames_prompt(self.frames)

    @property
    def target(self) -> str:
        """The exact-label response for what these frames show (`answer.target`)."""
        return target(self.spec, self.frames)

    def render(self) -> np.ndarray:
        """[F, H, W, 3] uint8 (cached)."""
        return _render(self.spec, self.frames)


@functools.lru_cache(maxsize=2048)
def _render(spec: ClipSpec, frames: tuple[int, ...]) -> np.ndarray:
    out = render_clip(spec, frames)
    out.setflags(write=False)
    return out


def uniform_frames(n_frames: int, k: int, offset: int = 0) -> tuple[int, ...]:
    """k frames at stride n_frames / k: ⌊i·n_frames / k⌋ + offset (offset < stride). Raises ValueError when
    k is not in [1, n_frames]."""
    if not 1 <= k <= n_frames:
        raise ValueError(f"cannot show {k} of {n_frames} frames")
    return tuple(min(n_frames - 1, i * n_frames // k + offset) for i in range(k))


def window_frames(n_frames: int, centre: float, k: int) -> tuple[int, ...]:
    """k consecutive frames centred on `centre`, shifted to lie inside [0, n_frames)."""
    if not 1 <= k <= n_frames:
        raise ValueError(f"cannot show {k} of {n_frames} frames")
    start = int(round(centre - (k - 1) / 2))
    start = max(0, min(n_frames - k, start))
    return tuple(range(start, start + k))


def random_frames(n_frames: int, rng: random.Random, sizes: tuple[int, ...] = (2, 4, 8)) -> tuple[int, ...]:
    """A training view's frames: k from `sizes`, laid out uniformly (random offset) or as one window (random
    start), half each — so a model learns both the uniform views and the dense windows of dynamic sampling."""
    k = rng.choice([s for s in sizes if s <= n_frames])
    if rng.random() < 0.5:
        stride = n_frames // k
        return uniform_frames(n_frames, k, rng.randrange(max(1, stride)))
    start = rng.randrange(n_frames - k + 1)
    return tuple(range(start, start + k))


def pair_views(pair: ClipPair, frames: tuple[int, ...]) -> list[ClipView]:
    """[better, worse] views of a pair at the same frames."""
    return [ClipView(pair.better, frames, pair.pair_id, "better"), ClipView(pair.worse, frames, pair.pair_id, "worse")]
