"""Preference pairs from the scene graph (AdaViP, arXiv 2504.15619): language pairs and vision pairs.

    pairs = build_pairs(policy, processor, scenes, counts, kinds, seed=0)   # cached per dataset, model and seed

- **language pair** (I_w, y_w ≻ y_l): y_w = the faithful caption (`caption_text`), y_l = the same caption with
  one hallucinated object inserted at a random place — the absent kind that co-occurs most with the kinds
  present (Σ_present counts[s, k]; ties by name), in a random colour: the error a co-occurrence-biased model makes.
- **vision pair** (I_w ≻ I_l | y_w): candidates C = {I_w with object i filled with background, exact mask}
  (`shapes.fill_with_background`), I_l = argmin_{c ∈ C} log π(y_w | c, Q) under the policy itself: the removal
  that most hurts its agreement with the chosen caption.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from workbench.preference.scoring import vl_sequence_logps
from workbench.tasks.shapes.cooccurrence import CAPTION_PROMPT, caption_text, kinds_present
from workbench.tasks.shapes.edits import fill_with_background
from workbench.tasks.shapes.graph import SceneGraph
from workbench.tasks.shapes.render import render, scene_graph
from workbench.tasks.shapes.scene import Scene


@dataclass(frozen=True)
class PreferencePair:
    """One pair: the chosen image `scene` (I_w; None for a text-only pair, whose `prompt` is then already in the
    chat format), `prompt`, `chosen` (y_w), `rejected` (y_l) with its `hallucinated` kind, and the vision
    negative: `removed` (the object index filled) and its `rejected_image` (I_l, [H, W, 3] uint8) — None
    without a vision pair."""

    id: str
    scene: Scene | None
    prompt: str
    chosen: str
    rejected: str
    hallucinated: str = ""
    removed: int | None = None
    rejected_image: np.ndarray | None = None

    @property
    def image(self) -> np.ndarray | None:
        """I_w, [H, W, 3] uint8 (re-rendered; None for a text-only pair)."""
        return render(self.scene).image if self.scene is not None else None


def hallucinated_caption(graph: SceneGraph, counts: np.ndarray, kinds: Sequence[str], colours: Sequence[str],
                         rng: np.random.Generator) -> tuple[str, str] | None:
    """(y_l, kind): the caption of `graph` with one co-occurring absent object inserted (None if no kind is absent)."""
    at = {k: i for i, k in enumerate(kinds)}
    present = kinds_present(graph)
    absent = [k for k in kinds if k not in present]
    if not absent:
        return None
    kind = max(sorted(absent), key=lambda k: sum(counts[at[s], at[k]] for s in present if s in at))
    items = sorted(graph.items(), key=lambda o: (o.center[0], o.center[1], o.index))
    phrases = [f"a {o.colour} {o.kind}" for o in items]
    phrases.insert(int(rng.integers(len(phrases) + 1)), f"a {colours[int(rng.integers(len(colours)))]} {kind}")
    return ", ".join(phrases[:-1]) + " and " + phrases[-1] + ".", kind


def vision_negative(policy, processor, scene: Scene, prompt: str, chosen: str) -> tuple[int, np.ndarray] | None:
    """(index, I_l image): the background-filled removal of one object that minimises log π(y_w | I_c, Q)
    (None for a scene of fewer than two objects: removing its only object leaves nothing to describe)."""
    objects = scene.objects
    if len(objects) < 2:
        return None
    images = [fill_with_background(scene, i).image for i in objects]
    logps, _ = vl_sequence_logps(policy, processor, [prompt] * len(images), [chosen] * len(images), images)
    best = int(torch.argmin(logps))
    return objects[best], images[best]


def _cache_key(scenes: Sequence[Scene], model_name: str, seed: int, vision: bool) -> str:
    h = hashlib.sha256(json.dumps([s.to_dict() for s in scenes], sort_keys=True).encode())
    h.update(f"{model_name}|{seed}|{vision}".encode())
    return h.hexdigest()[:16]


def build_pairs(policy, processor, scenes: Sequence[Scene], counts: np.ndarray, kinds: Sequence[str], *,
                seed: int = 0, vision: bool = True, colours: Sequence[str] = ("red", "green", "blue", "yellow"),
                cache_dir: str | None = None, model_name: str = "") -> list[PreferencePair]:
    """Language pairs (and, with `vision`, vision negatives chosen by `policy`) for every scene that has an
    absent kind; rng `default_rng([seed, i])` per scene. With `cache_dir`, the chosen removals are read from /
    written to `<cache_dir>/pairs-<key>.json` (key: the scenes, `model_name`, seed, vision): JSON, no pickle."""
    path = os.path.join(cache_dir, f"pairs-{_cache_key(scenes, model_name, seed, vision)}.json") if cache_dir else None
    cached = json.load(open(path)) if path and os.path.exists(path) else None
    out, removals = [], []
    was_training = policy.training
    policy.eval()
    try:
        for i, scene in enumerate(scenes):
            graph = scene_graph(scene)
            made = hallucinated_caption(graph, counts, kinds, colours, np.random.default_rng([seed, i]))
            if made is None:
                continue
            chosen = caption_text(graph)
            removed, image = None, None
            if vision:
                if cached is not None:
                    removed = cached[len(out)]
                    image = fill_with_background(scene, removed).image if removed is not None else None
                else:
                    with torch.no_grad():
                        neg = vision_negative(policy, processor, scene, CAPTION_PROMPT, chosen)
                    removed, image = (neg if neg is not None else (None, None))
            removals.append(removed)
            out.append(PreferencePair(f"p{i}", scene, CAPTION_PROMPT, chosen, made[0], made[1], removed, image))
    finally:
        policy.train(was_training)
    if path and cached is None:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(removals, f)
        os.replace(tmp, path)
    return out
