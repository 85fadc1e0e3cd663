"""Frame sampling at inference for a point-wise video reward model: uniform against REACT's dynamic sampling
(arXiv 2601.04033; reconstructed from the abstract).

    uniform = uniform_sampling(model, processor, task, specs, budget=8)
    dynamic = dynamic_sampling(model, processor, task, specs, probes=4, window=2, top_m=1, budget=8)
    clip_metrics(dynamic.ratings, dynamic.views)          # evaluation.reward_model

Dynamic sampling, for a clip of T frames:
1. **probe**: K windows of `window` consecutive frames at uniform starts ⌊k·T / K⌋; the model rates each window and
   its per-frame distortion score is d_k = 5 − s_k on the window's frames (an unparsable rating scores d = 0);
2. **focus**: the top-m windows by d (earliest first on ties); `budget` frames are resampled densely around them,
   budget / m consecutive frames centred on each (topped up with uniform frames where windows overlap);
3. **rate**: the final score comes from the model's rating of those `budget` frames.
When no probe finds anything (every d = 0) the focus step has no evidence and the final frames are the uniform
ones; `SamplingResult.unfocused` counts those clips.

Cost: frames rated per clip (K·window + budget against budget for uniform), video tokens and forward seconds;
`SamplingResult.cost()` reports them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from workbench.evaluation.heldout import evaluate
from workbench.tasks.video import CLEAN_SCORE, ClipView, parse_rating, uniform_frames, window_frames


@dataclass
class SamplingResult:
    """Final `views` and their `ratings` (one per clip), the frames rated per clip, forward `seconds`, the probes'
    per-frame distortion scores [n_clips, T] (dynamic only) and how many clips fell back to uniform frames."""

    method: str
    views: list
    ratings: list
    frames_rated: list[int]
    seconds: float
    frame_scores: np.ndarray | None = None
    unfocused: int = 0
    tokens_per_frame: int = 0

    def cost(self) -> dict:
        """{"frames_per_clip", "video_tokens_per_clip", "seconds_per_clip"}."""
        n = max(1, len(self.views))
        frames = float(np.mean(self.frames_rated)) if self.frames_rated else 0.0
        return {"frames_per_clip": frames, "video_tokens_per_clip": frames * self.tokens_per_frame,
                "seconds_per_clip": self.seconds / n}


def rate_views(model, processor, task, views: Sequence[ClipView], *, max_new_tokens: int = 128,
               batch_size: int = 64) -> tuple[list, float]:
    """Greedy ratings of `views` (parsed `Rating`s) and the seconds it took."""
    t0 = time.perf_counter()
    ev = evaluate(model, processor, task, list(views), max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [parse_rating(t) for t in ev.completions], time.perf_counter() - t0


def _with_frames(view_like, frames) -> ClipView:
    return ClipView(view_like.spec, tuple(frames), view_like.pair_id, view_like.side)


def uniform_sampling(model, processor, task, views: Sequence, *, budget: int = 8, tokens_per_frame: int = 0,
                     **kw) -> SamplingResult:
    """Rate every clip of `views` (their spec, pair id and side; their frames are ignored) at `budget` uniform frames."""
    final = [_with_frames(v, uniform_frames(v.spec.n_frames, budget)) for v in views]
    ratings, seconds = rate_views(model, processor, task, final, **kw)
    return SamplingResult(f"uniform-{budget}", final, ratings, [budget] * len(final), seconds,
                          tokens_per_frame=tokens_per_frame)


def focus_frames(n_frames: int, scores: np.ndarray, starts: Sequence[int], window: int, top_m: int,
                 budget: int) -> tuple[tuple[int, ...], bool]:
    """The `budget` frames dense around the `top_m` best probe windows (see the module docstring) and whether
    any probe found a distortion. scores: [K] distortion score per probe window starting at `starts`."""
    scores = np.asarray(scores, dtype=float)
    if not scores.max(initial=0.0) > 0:
        return uniform_frames(n_frames, budget), False
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))[:top_m]
    chosen: set[int] = set()
    per = max(1, budget // len(order))
    for k in order:
        chosen.update(window_frames(n_frames, starts[k] + (window - 1) / 2, per))
    for f in uniform_frames(n_frames, min(budget, n_frames)):  # top up where windows overlap
        if len(chosen) >= budget:
            break
        chosen.add(f)
    return tuple(sorted(chosen)[:budget]), True


def dynamic_sampling(model, processor, task, views: Sequence, *, probes: int = 4, window: int = 2, top_m: int = 1,
                     budget: int = 8, tokens_per_frame: int = 0, **kw) -> SamplingResult:
    """REACT's dynamic frame sampling for every clip of `views` (see the module docstring).

    Raises ValueError when the probes do not fit in the clip or `top_m` exceeds `probes`."""
    if not 1 <= top_m <= probes:
        raise ValueError(f"top_m must be in [1, probes={probes}], got {top_m}")
    T = views[0].spec.n_frames if views else 0
    if views and (probes < 1 or window < 1 or window > T or probes > T):
        raise ValueError(f"{probes} probe windows of {window} frames do not fit in {T}-frame clips")
    starts = [min(T - window, s) for s in uniform_frames(T, probes)] if views else []
    probe_views = [_with_frames(v, range(s, s + window)) for v in views for s in starts]
    probe_ratings, s1 = rate_views(model, processor, task, probe_views, **kw) if probe_views else ([], 0.0)
    d = np.array([0.0 if r.score is None else CLEAN_SCORE - r.score for r in probe_ratings]).reshape(len(views), probes)
    frame_scores = np.zeros((len(views), T))
    final, unfocused = [], 0
    for i, v in enumerate(views):
        for k, s in enumerate(starts):
            frame_scores[i, s : s + window] = np.maximum(frame_scores[i, s : s + window], d[i, k])
        frames, found = focus_frames(T, d[i], starts, window, top_m, budget)
        unfocused += not found
        final.append(_with_frames(v, frames))
    ratings, s2 = rate_views(model, processor, task, final, **kw)
    return SamplingResult(f"dynamic-{probes}x{window}+{budget}", final, ratings,
                          [probes * window + len(f.frames) for f in final], s1 + s2, frame_scores, unfocused,
                          tokens_per_frame)

