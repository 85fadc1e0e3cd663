"""Video: seeded clips of moving ShapeWorld objects with injected structural distortions (REACT, arXiv 2601.04033).

    spec = make_clip(stream=1, index=0)          # ClipSpec: movers + at most one Distortion (exact labels)
    frames = render_clip(spec)                   # [T, H, W, 3] uint8, deterministic
    pairs = load_bench(50)                       # the frozen REACT-Bench-like split (data/video/react_bench.jsonl)
    view = ClipView(spec, uniform_frames(16, 8)) # what a reward model is shown; view.target is its SFT response
    parse_rating(completion)                     # Rating(score, label, frames, missing) — never raises
"""

from workbench.tasks.video.answer import LABELS, Rating, frames_prompt, parse_rating, target
from workbench.tasks.video.bench import BENCH_STREAM, load_bench, write_bench
from workbench.tasks.video.clip import CLEAN_SCORE, ClipSpec, Distortion, Mover, frame_scene, render_clip
from workbench.tasks.video.distortions import DISTORTIONS
from workbench.tasks.video.sampler import ClipPair, VideoConfig, make_clip, make_pair, make_scene
from workbench.tasks.video.views import ClipView, pair_views, random_frames, uniform_frames, window_frames

__all__ = ["BENCH_STREAM", "CLEAN_SCORE", "ClipPair", "ClipSpec", "ClipView", "DISTORTIONS", "Distortion", "LABELS",
           "Mover", "Rating", "VideoConfig", "frame_scene", "frames_prompt", "load_bench", "make_clip", "make_pair",
           "make_scene", "pair_views", "parse_rating", "random_frames", "render_clip", "target", "uniform_frames",
           "window_frames", "write_bench"]
