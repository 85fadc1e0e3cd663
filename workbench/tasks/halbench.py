"""The frozen Causal-HalBench split of ShapeWorld (arXiv 2511.10268): images of the co-occurrence world at
ρ = 0.9 with their exact counterfactuals, POPE questions and, apart, unbiased originals.

    bench = load_halbench()                 # data/causal_halbench/*.jsonl, checked against manifest.json
    bench.questions()                       # HalQuestion per (pair, type, tag): target / absent / inpaint
    bench.pope("adversarial")               # POPE questions: every present kind + as many negatives
    bench.unbiased                          # ShapesExample "Is there a <kind> in the image?" from the unbiased world

Files store scenes, never pixels (images re-render deterministically). Regenerate with
`python -m workbench.tasks.halbench`; a file that does not match the manifest's sha256 is refused.

POPE negatives for an image with present kinds S and absent kinds U (k = min(|S|, |U|) of them):
random = k drawn uniformly from U; popular = the k most frequent kinds of the split in U; adversarial = the
k kinds of U with the largest total co-occurrence Σ_{s∈S} counts[s, u] (ties by name).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from workbench.tasks.shapes.cooccurrence import (HALBENCH_KINDS, cooccurrence_counts, halbench_config, kinds_present,
                                                 object_question_for)
from workbench.tasks.shapes.counterfactual import Counterfactual, build_counterfactuals
from workbench.tasks.shapes.dataset import ShapesExample, generate
from workbench.tasks.shapes.sampler import sample_scene
from workbench.tasks.shapes.scene import Scene

BENCH_DIR = os.path.join("data", "causal_halbench")
BENCH_SPEC = dict(n=160, seed=71_000, rho=0.9, unbiased_n=200, unbiased_seed=72_000)
POPE_SPLITS = ("random", "popular", "adversarial")
FILES = ("bench.jsonl", "unbiased.jsonl")


@dataclass(frozen=True)
class HalQuestion:
    """One existence question: the `image_name` asked about, its `scene`, the counterfactual `pair`, the
    `type` (target | absent | inpaint), `tag` (origin | inpainted), the `kind` asked and the gold `label`."""

    image_name: str
    scene: Scene
    pair: str
    type: str
    tag: str
    kind: str
    label: str

    @property
    def prompt(self) -> str:
        return object_question_for(self.kind, self.label == "yes").text


@dataclass(frozen=True)
class HalImage:
    """An original image of the split: `id`, `scene`, its `counterfactuals` and POPE negatives per split."""

    id: str
    scene: Scene
    counterfactuals: tuple[Counterfactual, ...]
    pope_negatives: dict[str, tuple[str, ...]]

    def to_dict(self) -> dict:
        return {"id": self.id, "scene": self.scene.to_dict(), "counterfactuals": [c.to_dict() for c in self.counterfactuals],
                "pope": {k: list(v) for k, v in self.pope_negatives.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "HalImage":
        try:
            return cls(id=str(d["id"]), scene=Scene.from_dict(d["scene"]),
                       counterfactuals=tuple(Counterfactual.from_dict(c) for c in d["counterfactuals"]),
                       pope_negatives={k: tuple(d["pope"][k]) for k in POPE_SPLITS})
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a benchmark image ({e!r})") from None


@dataclass
class HalBench:
    """The split: `images` (originals with counterfactuals), `unbiased` examples, the co-occurrence `counts`
    [K, K] over `kinds` measured on the originals, and the `spec` it was built from."""

    images: list[HalImage]
    unbiased: list[ShapesExample]
    kinds: tuple[str, ...] = HALBENCH_KINDS
    spec: dict = field(default_factory=lambda: dict(BENCH_SPEC))

    @property
    def counts(self) -> np.ndarray:
        return cooccurrence_counts([im.scene for im in self.images], self.kinds)

    def counterfactuals(self) -> list[Counterfactual]:
        return [c for im in self.images for c in im.counterfactuals]

    def questions(self) -> list[HalQuestion]:
        """Per counterfactual pair, in pair order: target, inpaint and (when defined) absent questions on the
        original and on the counterfactual."""
        scenes = {im.id: im.scene for im in self.images}
        out = []
        for c in self.counterfactuals():
            asks = [("target", c.target, True, False), ("inpaint", c.inserted, False, True)]
            if c.absent is not None:
                asks.append(("absent", c.absent, False, False))
            for qtype, kind, on_origin, on_cf in asks:
                out.append(HalQuestion(c.original_id, scenes[c.original_id], c.id, qtype, "origin", kind,
                                       "yes" if on_origin else "no"))
                out.append(HalQuestion(c.id, c.scene, c.id, qtype, "inpainted", kind, "yes" if on_cf else "no"))
        return out

    def pope(self, split: str) -> list[HalQuestion]:
        """POPE questions of `split` (random | popular | adversarial) over the originals: each present kind
        (yes) then the split's negatives (no); `pair` is the image id, `type` the split."""
        if split not in POPE_SPLITS:
            raise ValueError(f"POPE split must be one of {', '.join(POPE_SPLITS)}, got {split!r}")
        out = []
        for im in self.images:
            for kind in sorted(kinds_present(im.scene)):
                out.append(HalQuestion(im.id, im.scene, im.id, split, "origin", kind, "yes"))
            for kind in im.pope_negatives[split]:
                out.append(HalQuestion(im.id, im.scene, im.id, split, "origin", kind, "no"))
        return out


def pope_negatives(present: set[str], counts: np.ndarray, kinds: tuple[str, ...], rng: np.random.Generator) -> dict:
    """The three splits' negatives for one image (see the module docstring)."""
    absent = [k for k in kinds if k not in present]
    k = min(len(present), len(absent))
    at = {x: i for i, x in enumerate(kinds)}
    random = [absent[i] for i in sorted(rng.choice(len(absent), size=k, replace=False))] if k else []
    popular = sorted(absent, key=lambda u: (-counts[at[u], at[u]], u))[:k]
    adversarial = sorted(absent, key=lambda u: (-sum(counts[at[s], at[u]] for s in present), u))[:k]
    return {"random": tuple(random), "popular": tuple(popular), "adversarial": tuple(adversarial)}


def unbiased_examples(n: int = BENCH_SPEC["unbiased_n"], seed: int = BENCH_SPEC["unbiased_seed"]) -> list[ShapesExample]:
    """`n` "Is there a <kind> in the image?" examples of the unbiased world (the co-occurrence kinds and scene
    knobs, no bias) from stream `seed`: the split's unbiased questions (the first n of them at the default seed)."""
    return generate(n, seed, halbench_config(0.0, cooccurrence=()), ("object",))


def build_halbench(n: int = BENCH_SPEC["n"], seed: int = BENCH_SPEC["seed"], rho: float = BENCH_SPEC["rho"],
                   unbiased_n: int = BENCH_SPEC["unbiased_n"], unbiased_seed: int = BENCH_SPEC["unbiased_seed"]) -> HalBench:
    """The split from its spec: `n` scenes of `halbench_config(rho)` (scene i from `default_rng([seed, i])`),
    co-occurrence counts over them, counterfactuals and POPE negatives from `default_rng([seed, i, 1])`, and
    `unbiased_n` object questions of the unbiased world (no co-occurrence bias) from stream `unbiased_seed`."""
    config = halbench_config(rho)
    scenes = [sample_scene(config, np.random.default_rng([seed, i])) for i in range(n)]
    counts = cooccurrence_counts(scenes, config.kinds)
    images = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, i, 1])
        cfs = build_counterfactuals(scene, f"h{i}", counts, config.kinds, rng)
        images.append(HalImage(f"h{i}", scene, tuple(cfs), pope_negatives(kinds_present(scene), counts, config.kinds, rng)))
    unbiased = unbiased_examples(unbiased_n, unbiased_seed)
    spec = dict(n=n, seed=seed, rho=rho, unbiased_n=unbiased_n, unbiased_seed=unbiased_seed)
    return HalBench(images, unbiased, config.kinds, spec)


def _dumps(d: dict) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_halbench(root: str | None = None, bench: HalBench | None = None) -> str:
    """(Re)write `data/causal_halbench/` under `root` (default: the repo root): bench.jsonl, unbiased.jsonl and
    manifest.json (spec + sha256 of each file). Returns the folder."""
    from workbench.utils import repo_root

    bench = bench or build_halbench()
    folder = os.path.join(root or repo_root(), BENCH_DIR)
    os.makedirs(folder, exist_ok=True)
    lines = {"bench.jsonl": [_dumps(im.to_dict()) for im in bench.images],
             "unbiased.jsonl": [_dumps(e.to_dict()) for e in bench.unbiased]}
    for name, rows in lines.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write("".join(r + "\n" for r in rows))
    manifest = {"spec": bench.spec, "sha256": {name: _sha256(os.path.join(folder, name)) for name in FILES}}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return folder


def _read_lines(path: str, parse) -> list:
    out = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(parse(json.loads(line)))
            except (ValueError, json.JSONDecodeError) as e:
                raise ValueError(f"{path} line {lineno} is not a valid record: {e}") from None
    return out


def load_halbench(root: str | None = None) -> HalBench:
    """The frozen split from `data/causal_halbench/` under `root` (default: the repo root).

    Raises:
        FileNotFoundError: a file is missing (the message says how to regenerate it).
        ValueError: a file does not match the manifest's sha256, or a line is not a valid record.
    """
    from workbench.utils import repo_root

    folder = os.path.join(root or repo_root(), BENCH_DIR)
    regen = "regenerate it with python -m workbench.tasks.halbench"
    manifest_path = os.path.join(folder, "manifest.json")
    for name in ("manifest.json", *FILES):
        if not os.path.exists(os.path.join(folder, name)):
            raise FileNotFoundError(f"Causal-HalBench file {os.path.join(folder, name)} is missing; {regen}")
    try:
        manifest = json.load(open(manifest_path))
        sums, spec = manifest["sha256"], manifest["spec"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{manifest_path} is not a valid manifest; {regen}") from None
    for name in FILES:
        if _sha256(os.path.join(folder, name)) != sums.get(name):
            raise ValueError(f"{os.path.join(folder, name)} does not match its sha256 in manifest.json (edited or "
                             f"corrupted); {regen}")
    images = _read_lines(os.path.join(folder, "bench.jsonl"), HalImage.from_dict)
    unbiased = _read_lines(os.path.join(folder, "unbiased.jsonl"), ShapesExample.from_dict)
    return HalBench(images, unbiased, HALBENCH_KINDS, spec)


if __name__ == "__main__":
    print(write_halbench())
