"""Co-occurrence bias in ShapeWorld (Causal-HalBench, arXiv 2511.10268): the biased world, its statistics
from scene graphs, existence questions and captions.

    cfg = halbench_config(0.9)                      # P(moon | star) = P(square | triangle) = 0.9
    counts = cooccurrence_counts([e.scene for e in shapes.generate(500, 0, cfg, ("object",))], cfg.kinds)
    conditional(counts, cfg.kinds, "star", "moon")  # ≈ 0.9

`counts[a, b]` is the number of images in which kinds a and b both appear (at least once each, clutter
not counted); the diagonal `counts[a, a]` is the number of images that contain a. Two question families
join `QUESTION_FAMILIES`, with POPE's wording and a plain yes/no target (what POPE's parser reads):

- `object`   "Is there a moon in the image?"  -> `yes` | `no`     (balanced; the absent kind is uniform)
- `caption`  "Describe the image."            -> `a red star, a blue moon and a green circle.`
  (objects left to right by centre; what CHAIR reads)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from workbench.tasks.shapes.graph import SceneGraph
from workbench.tasks.shapes.questions import QUESTION_FAMILIES, Question
from workbench.tasks.shapes.scene import CooccurrenceBias, Scene, SceneConfig

HALBENCH_KINDS = ("circle", "square", "triangle", "star", "moon")
HALBENCH_PAIRS = (("star", "moon"), ("triangle", "square"))  # (trigger, partner): "a star comes with a moon"
OBJECT_PROMPT = "Is there a {kind} in the image?"
CAPTION_PROMPT = "Describe the image."


def halbench_config(rho: float, **overrides) -> SceneConfig:
    """The scene knobs of the co-occurrence world at bias strength `rho` ∈ [0, 1]: kinds `HALBENCH_KINDS`,
    2–4 objects of 20–32 px (large enough for the tiny vision tower to tell kinds apart) and, for each
    (trigger, partner) of `HALBENCH_PAIRS`, P(partner present | trigger present) = rho. `rho` = 0 makes each
    pair never co-occur (a bias too: the natural rate, with no bias applied, is ~0.4); `overrides` replace knobs."""
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 <= rho <= 1.0:
        raise ValueError(f"co-occurrence strength rho must be a number in [0, 1], got {rho!r}")
    knobs = dict(kinds=HALBENCH_KINDS, n_objects=(2, 4), sizes=(20, 32),
                 cooccurrence=tuple(CooccurrenceBias(t, p, float(rho)) for t, p in HALBENCH_PAIRS))
    return SceneConfig(**{**knobs, **overrides})


def kinds_present(scene_or_graph: Scene | SceneGraph) -> set[str]:
    """The kinds of the non-clutter objects of a scene (or of its graph)."""
    if isinstance(scene_or_graph, Scene):
        return {s.kind for s in scene_or_graph.shapes if not s.clutter}
    return {o.kind for o in scene_or_graph.items()}


def cooccurrence_counts(scenes: Iterable[Scene | SceneGraph], kinds: Sequence[str]) -> np.ndarray:
    """[K, K] int64 counts over `scenes`: entry (a, b) = images containing both kinds[a] and kinds[b]
    (diagonal: images containing kinds[a]). Kinds outside `kinds` are ignored."""
    index = {k: i for i, k in enumerate(kinds)}
    if len(index) != len(kinds):
        raise ValueError(f"kinds must be distinct, got {list(kinds)}")
    counts = np.zeros((len(kinds), len(kinds)), dtype=np.int64)
    for s in scenes:
        present = sorted(index[k] for k in kinds_present(s) if k in index)
        counts[np.ix_(present, present)] += 1
    return counts


def conditional(counts: np.ndarray, kinds: Sequence[str], given: str, kind: str) -> float:
    """P(kind present | given present) = counts[given, kind] / counts[given, given] (NaN if `given` never appears)."""
    kinds = list(kinds)
    for k in (given, kind):
        if k not in kinds:
            raise ValueError(f"kind {k!r} is not among the counted kinds {kinds}")
    g, k = kinds.index(given), kinds.index(kind)
    return float(counts[g, k] / counts[g, g]) if counts[g, g] else float("nan")


def object_question_for(kind: str, present: bool) -> Question:
    """The POPE-style existence question about `kind` with its yes/no target."""
    answer = "yes" if present else "no"
    return Question(family="object", text=OBJECT_PROMPT.format(kind=kind), cot=answer, answer=answer, facts=())


def caption_text(graph: SceneGraph) -> str:
    """`a red star, a blue moon and a green circle.`: every non-clutter object, left to right by centre."""
    items = sorted(graph.items(), key=lambda o: (o.center[0], o.center[1], o.index))
    phrases = [f"a {o.colour} {o.kind}" for o in items]
    if not phrases:
        return "nothing."
    body = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return body + "."


@QUESTION_FAMILIES.register("object")
def object_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"Is there a <kind> in the image?", yes and no equally likely; the kind asked is uniform over the
    present kinds (yes) or over `config.kinds` not present (no); None when that set is empty."""
    present = kinds_present(graph)
    want_yes = bool(rng.random() < 0.5)
    pool = sorted(present) if want_yes else [k for k in config.kinds if k not in present]
    if not pool:
        return None
    return object_question_for(str(pool[int(rng.integers(len(pool)))]), want_yes)


@QUESTION_FAMILIES.register("caption")
def caption_question(graph: SceneGraph, rng: np.random.Generator, config: SceneConfig) -> Question | None:
    """"Describe the image." -> the caption of `caption_text`; None for a scene without objects."""
    if not graph.items():
        return None
    text = caption_text(graph)
    return Question(family="caption", text=CAPTION_PROMPT, cot=text, answer=text, facts=())
