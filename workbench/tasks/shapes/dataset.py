"""Seeded ShapeWorld examples (scene + question) and the frozen held-out split `data/shapes/eval.jsonl`.

Example i of `generate(n, seed, ...)` depends only on (seed, i) — it is drawn from
`numpy.random.default_rng([seed, i])` — so a longer list extends a shorter one. Families cycle in
the given order (balanced). The split stores scenes and questions, not pixels: images are
re-rendered deterministically from the scene. Regenerate it with::

    python -m workbench.tasks.shapes.dataset
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from workbench.tasks.shapes.questions import FAMILIES, QUESTION_FAMILIES, Question
from workbench.tasks.shapes.render import Rendering, render, scene_graph
from workbench.tasks.shapes.sampler import sample_scene
from workbench.tasks.shapes.scene import Scene, SceneConfig

_SCENES_PER_EXAMPLE = 100  # scenes tried before a family is declared impossible under a config


@dataclass(frozen=True)
class ShapesExample:
    """One example: `id`, the `scene` (truth) and the `question` (prompt, CoT target, answer, facts)."""

    id: str
    scene: Scene
    question: Question

    @property
    def prompt(self) -> str:
        """The question text."""
        return self.question.text

    @property
    def target(self) -> str:
        """The chain-of-thought target response, ending in `answer: X`."""
        return self.question.cot

    @property
    def answer(self) -> str:
        """The reference answer string."""
        return self.question.answer

    def render(self) -> Rendering:
        """Render the scene: image [H, W, 3] uint8, masks, background, graph (recomputed each call)."""
        return render(self.scene)

    @property
    def image(self) -> np.ndarray:
        """[H, W, 3] uint8 rendering of the scene (recomputed each call)."""
        return render(self.scene).image

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inverse: `ShapesExample.from_dict`)."""
        return {"id": self.id, "question": self.question.to_dict(), "scene": self.scene.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShapesExample":
        """Rebuild from `to_dict` output; a malformed dict is a ValueError."""
        if not isinstance(d, dict) or not {"id", "question", "scene"} <= set(d):
            raise ValueError(f"not a shapes example dict (needs id, question, scene): {str(d)[:120]}")
        return cls(id=str(d["id"]), scene=Scene.from_dict(d["scene"]), question=Question.from_dict(d["question"]))


def make_example(seed: int, index: int, family: str, config: SceneConfig | None = None) -> ShapesExample:
    """Example `index` of stream `seed`: sample scenes from `default_rng([seed, index])` until one
    supports `family`. Raises ValueError if none of 100 scenes does (the config cannot support it)."""
    config = config or SceneConfig()
    ask = QUESTION_FAMILIES.get(family)
    rng = np.random.default_rng([seed, index])
    for _ in range(_SCENES_PER_EXAMPLE):
        scene = sample_scene(config, rng)
        question = ask(scene_graph(scene), rng, config)
        if question is not None:
            return ShapesExample(id=f"{seed}-{index}", scene=scene, question=question)
    raise ValueError(f"question family {family!r} found no suitable scene in {_SCENES_PER_EXAMPLE} tries "
                     f"under {config}; widen n_objects, kinds or colours")


def generate(n: int, seed: int = 0, config: SceneConfig | None = None,
             families: Sequence[str] = FAMILIES) -> list[ShapesExample]:
    """`n` examples, family i cycling through `families`; the same arguments give the same list.

    Args:
        n: number of examples (≥ 0).
        seed: stream seed (non-negative int).
        config: scene knobs (default `SceneConfig()`: 112×112, 1–5 shapes, no occlusion/clutter).
        families: `QUESTION_FAMILIES` names, e.g. `("arithmetic",)` for ToR's visual arithmetic.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(families, str) or not families:
        raise ValueError(f"families must be a non-empty sequence of names, got {families!r}")
    for f in families:
        QUESTION_FAMILIES.get(f)  # unknown name -> one-sentence KeyError
    return [make_example(int(seed), i, families[i % len(families)], config) for i in range(n)]


# ---------------------------------------------------------------------------- frozen evaluation split
EVAL_PATH = os.path.join("data", "shapes", "eval.jsonl")
EVAL_SPEC = dict(n=200, seed=70_000)  # default SceneConfig, all families; seed disjoint from training streams


def eval_examples() -> list[ShapesExample]:
    """The frozen split as the generator makes it now (what `write_eval_set` writes)."""
    return generate(**EVAL_SPEC)


def dumps(example: ShapesExample) -> str:
    """One compact JSON line (sorted keys) for `example`."""
    return json.dumps(example.to_dict(), sort_keys=True, separators=(",", ":"))


def write_eval_set(root: str | None = None) -> str:
    """(Re)write `data/shapes/eval.jsonl` under `root` (default: the repo root); returns its path."""
    from workbench.utils import repo_root

    path = os.path.join(root or repo_root(), EVAL_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for ex in eval_examples():
            f.write(dumps(ex) + "\n")
    return path


def load_eval_set(n: int | None = None, root: str | None = None) -> list[ShapesExample]:
    """The frozen held-out examples (first `n` if given), read from `data/shapes/eval.jsonl`."""
    from workbench.utils import repo_root

    path = os.path.join(root or repo_root(), EVAL_PATH)
    if not os.path.exists(path):
        raise FileNotFoundError(f"frozen eval set {path} is missing; run python -m workbench.tasks.shapes.dataset")
    with open(path) as f:
        items = [ShapesExample.from_dict(json.loads(line)) for line in f if line.strip()]
    return items[:n] if n is not None else items


if __name__ == "__main__":
    print(write_eval_set())
