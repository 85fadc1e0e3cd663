"""REACT's output format, the reasoning targets written from exact labels, and a parser that never raises.

    <think>rcyq/rcyq/yq/yq; red circle vanishes at 5,6</think><answer>{"score":3,"label":"disappearance","frames":[5,6]}</answer>

`score` is the human-like 1–5 score (5 = no distortion), `label` a distortion kind or `"none"`, `frames` the
distorted frame indices (clip frame numbers, as the prompt lists them). `target(spec, frames)` writes what a
viewer of `frames` can justify; `parse_rating(text)` reads a completion back into a `Rating` and says what was
missing or malformed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from workbench.tasks.video.clip import ClipSpec

VERBS = {"deformation": "changes shape", "disappearance": "vanishes", "duplication": "doubles",
         "merging": "merges into {other}", "teleport": "jumps"}
LABELS = ("none", *VERBS)


def frames_prompt(frames: Sequence[int]) -> str:
    """The question after the video: `Frames 0,2,4,6. Rate the motion.`"""
    return f"Frames {','.join(str(f) for f in frames)}. Rate the motion."


KIND_INITIALS = {"circle": "c", "square": "q", "triangle": "t", "star": "s", "diamond": "d", "moon": "m", "cross": "x"}
MIN_VISIBLE_PIXELS = 20  # an object shows in a frame's inventory when at least this many of its pixels are visible


def inventory(spec: ClipSpec, frames: Sequence[int]) -> str:
    """What each shown frame contains, frame by frame: colour initial + kind initial of every visible object,
    sorted, frames joined by "/" (`yc` = yellow circle, `pq` = purple square): `ycpq/ycpq/pq/ycpq`.

    The reasoning's first step: a vanished, doubled or reshaped object changes its frame's inventory."""
    from workbench.tasks.shapes.render import render
    from workbench.tasks.video.clip import frame_scene

    out = []
    for t in frames:
        scene = frame_scene(spec, t)
        visible = render(scene).masks.sum((1, 2))
        out.append("".join(sorted(s.colour[0] + KIND_INITIALS.get(s.kind, s.kind[0])
                                  for s, n in zip(scene.shapes, visible) if n >= MIN_VISIBLE_PIXELS)))
    return "/".join(out)


def reasoning(spec: ClipSpec, frames: Sequence[int]) -> str:
    """The think text for a viewer of `frames`: the frame-by-frame `inventory`, then which object did what in
    which frames (or that nothing went wrong)."""
    seen = spec.visible_frames(frames)
    if not seen:
        return f"{inventory(spec, frames)}; smooth motion"
    d = spec.distortion
    other = spec.movers[(d.obj + 1) % len(spec.movers)].name
    verb = VERBS[d.kind].format(other=other)
    return f"{inventory(spec, frames)}; {spec.movers[d.obj].name} {verb} at {','.join(str(f) for f in seen)}"


def answer_json(score: int, label: str, frames: Sequence[int]) -> str:
    """`{"score":s,"label":"k","frames":[...]}`: fixed key order, no spaces (a character-level model writes every one)."""
    return json.dumps({"score": int(score), "label": label, "frames": [int(f) for f in frames]}, separators=(",", ":"))


def target(spec: ClipSpec, frames: Sequence[int]) -> str:
    """The SFT target for `spec` shown at `frames`: labels restricted to the distorted frames among them."""
    seen = spec.visible_frames(frames)
    label = spec.label if seen else "none"
    return f"<think>{reasoning(spec, frames)}</think><answer>{answer_json(spec.score_from_frames(frames), label, seen)}</answer>"


@dataclass(frozen=True)
class Rating:
    """A parsed completion: `score` (1–5), `label`, `frames` — None where missing — and `missing`, the
    parts that were absent or malformed (empty for a well-formed answer)."""

    score: int | None
    label: str | None
    frames: tuple[int, ...] | None
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every part present and well formed."""
        return not self.missing


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_SCORE = re.compile(r'"score"\s*:\s*(-?\d+)')
_LABEL = re.compile(r'"label"\s*:\s*"([^"]*)"')
_FRAMES = re.compile(r'"frames"\s*:\s*\[([^\]]*)\]')


def parse_rating(text: str) -> Rating:
    """Read `text` in REACT's format. Never raises: what cannot be read is None and named in `missing`
    (`think`, `answer`, `json`, `score`, `label`, `frames`). A score outside 1–5, a label outside `LABELS`
    or a non-integer frame counts as malformed."""
    missing = []
    if not isinstance(text, str):
        return Rating(None, None, None, ("think", "answer", "score", "label", "frames"))
    if not re.search(r"<think>.*?</think>", text, re.S):
        missing.append("think")
    m = _ANSWER.search(text)
    if m is None:
        missing.append("answer")
    body = m.group(1) if m else text  # without tags, still read what is there
    fields: dict = {}
    try:
        parsed = json.loads(body)
        fields = parsed if isinstance(parsed, dict) else {}
        if not fields:
            missing.append("json")
    except (ValueError, TypeError):
        missing.append("json")
        for key, rx in (("score", _SCORE), ("label", _LABEL), ("frames", _FRAMES)):
            hit = rx.search(body)
            if hit:
                fields[key] = hit.group(1)
    score = _as_int(fields.get("score"))
    if score is None or not 1 <= score <= 5:
        missing.append("score")
        score = None
    label = fields.get("label")
    if not isinstance(label, str) or label not in LABELS:
        missing.append("label")
        label = None
    frames = _as_frames(fields.get("frames"))
    if frames is None:
        missing.append("frames")
    return Rating(score, label, frames, tuple(missing))


def _as_int(v) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    return None


def _as_frames(v) -> tuple[int, ...] | None:
    if isinstance(v, str):  # regex fallback: the inside of [...]
        parts = [p.strip() for p in v.split(",") if p.strip()]
        vals = [_as_int(p) for p in parts]
        return tuple(vals) if all(x is not None and x >= 0 for x in vals) else None
    if isinstance(v, list):
        vals = [_as_int(x) for x in v]
        return tuple(vals) if all(x is not None and x >= 0 for x in vals) else None
    return None
