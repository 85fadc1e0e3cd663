"""Video clips as a `Task` for a point-wise reward model (REACT, notebook 08): training problems are ≻ pairs of
views for the `pairwise` source (`workbench.rl.react`), held-out problems are the frozen bench's views.

    task = react_task(processor, n_shown=8)
    cfg = RLConfig.for_method("grpo", rollout_source="pairwise")

Videos travel with the rollout as per-row model inputs (`pixel_values_videos` [patches, D], `video_grid_thw`
[1, 3]), as images do for the ShapeWorld task.
"""

from __future__ import annotations

import random
from typing import Sequence

import torch

from workbench.evaluation.reward_model import clip_metrics
from workbench.rl.react import pairwise_reward
from workbench.tasks.base import GroupRewardSpec, RewardSpec, Task
from workbench.tasks.video import ClipView, VideoConfig, load_bench, make_pair, pair_views, parse_rating, uniform_frames

RL_STREAM = 60_000  # SFT draws from stream 1 + seed, the bench is stream 90 000
#: one frame per temporal patch: a from-scratch tiny tower given two frames per patch learns nothing of the
#: distortions in 900 SFT steps (it answers "smooth motion" to every clip, measured)
REPEAT_FRAMES = 2


def encode_with_videos(processor, prompts: Sequence[str], videos: Sequence, repeat_frames: int = REPEAT_FRAMES):
    """`Task.encode` for video prompts: (prompt_ids [B, P], prompt_mask [B, P], per-prompt inputs), prompt b's
    inputs being its own `pixel_values_videos` [patches_b, D] and `video_grid_thw` [1, 3]."""
    from workbench.models.video import encode_video_prompts

    enc = encode_video_prompts(processor, list(prompts), list(videos), repeat_frames=repeat_frames)
    grid = enc["video_grid_thw"]
    patches = torch.split(enc["pixel_values_videos"], grid.prod(-1).tolist())
    per_prompt = [{"pixel_values_videos": p, "video_grid_thw": grid[i : i + 1]} for i, p in enumerate(patches)]
    return enc["input_ids"], enc["attention_mask"], per_prompt


def visible_label(view: ClipView) -> str:
    """The distortion kind a viewer of `view.frames` can see ("none" when no distorted frame is shown)."""
    return view.spec.label if view.spec.visible_frames(view.frames) else "none"


def bench_views(n: int, n_shown: int = 8) -> list[ClipView]:
    """Views of the first ⌈n / 2⌉ bench pairs at `n_shown` uniform frames, [better, worse] per pair, cut to n."""
    pairs = load_bench(-(-n // 2))
    frames = uniform_frames(pairs[0].better.n_frames, n_shown) if pairs else ()
    return [v for p in pairs for v in pair_views(p, frames)][:n]


def react_task(processor, *, config: VideoConfig | None = None, n_shown: int = 8, pairwise_weight: float = 1.0,
               format_weight: float = 1.0, label_weight: float = 1.0, repeat_frames: int = REPEAT_FRAMES) -> Task:
    """The REACT reward-model task.

    Args:
        processor: the VL processor (`workbench.models.vlm.build_processor` or a real checkpoint's).
        config: the clip sampler's knobs (default `VideoConfig()`, that of the frozen bench).
        n_shown: frames shown per clip (uniform, random offset in training, offset 0 held out).
        pairwise_weight, format_weight, label_weight: weights of r_pair, r_format, r_label.
        repeat_frames: frames per temporal patch repeat (`models.video.patchify_frames`; 1 for a real checkpoint's
            own layout).

    Returns:
        a `Task`: training problems are (better, worse) view pairs from stream `RL_STREAM` (train with
        `rollout_source="pairwise"`); held-out problems `bench_views(n)`; `correct` = the parsed score equals the
        score the shown frames justify; held-out metrics from `evaluation.reward_model.clip_metrics`.
    """
    from workbench.models.video import format_video_prompt

    c = config or VideoConfig()
    if not 1 <= n_shown <= c.n_frames:
        raise ValueError(f"n_shown must be in [1, {c.n_frames}], got {n_shown}")

    def sample(n: int, rng: random.Random) -> list:
        out = []
        for _ in range(n):
            pair = make_pair(RL_STREAM, rng.randrange(2**31), c)
            stride = c.n_frames // n_shown
            out.append(tuple(pair_views(pair, uniform_frames(c.n_frames, n_shown, rng.randrange(max(1, stride))))))
        return out

    def prompt(view) -> str:
        if not isinstance(view, ClipView):
            raise ValueError(f"REACT prompts are clip views; got {type(view).__name__} (training problems are pairs: "
                             "train with rollout_source='pairwise')")
        return format_video_prompt(view.prompt, processor)

    def encode(proc, views: list, prompts: list[str]):
        return encode_with_videos(proc, prompts, [v.render() for v in views], repeat_frames)

    rewards = [GroupRewardSpec("pairwise", pairwise_reward, pairwise_weight, per_row=True),
               RewardSpec("format", lambda t, v: float(parse_rating(t).ok), format_weight),
               RewardSpec("label", lambda t, v: float(parse_rating(t).label == visible_label(v)), label_weight)]

    def heldout_metrics(texts: list[str], views: list) -> dict[str, float]:
        return clip_metrics([parse_rating(t) for t in texts], views)

    return Task(name=f"react(video, {n_shown} of {c.n_frames} frames)", sample=sample, prompt=prompt, rewards=rewards,
                encode=encode, eval_problems=lambda n: bench_views(n, n_shown),
                correct=lambda t, v: parse_rating(t).score == v.spec.score_from_frames(v.frames),
                heldout_metrics=heldout_metrics)
