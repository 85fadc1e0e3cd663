"""What `python -m workbench.run` (`make reproduce`) is about to do and how long it should take, said before it
starts: per notebook, the zoo models it loads (cached, or trained on first use) and how long its last run at
the same preset took here.

    print(describe(plan(resolve_notebooks(["01", "09"]), "cpu", "outputs")))

A notebook's zoo models are its `model` parameter (the notebook's default), every value of its preset's row
in the experiment module's `PRESETS` that names a zoo recipe (`model`, `text_model`, …), and any the module
lists in `ZOO_MODELS_USED[preset]`: a recipe name, or `(name, seed)` for a recipe trained at another seed (e.g.
the quickstart's cached RL run; Causal-HalBench's nine biased models). A model trained on first use has no
recorded time (the plan says so rather than guess); a cached one records its `build_seconds`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field

_MODULE = re.compile(r"workbench\.experiments(?:\.| import )(\w+)")


@dataclass
class ZooNeed:
    """A zoo model a notebook loads: `cached` on disk or not; `build_seconds` when a build of it was timed."""

    name: str
    cached: bool
    build_seconds: float | None = None
    seed: int = 0

    @property
    def label(self) -> str:
        return self.name if not self.seed else f"{self.name} seed {self.seed}"


@dataclass
class Step:
    """One notebook of the run: its zoo models and the seconds its last run at this preset took (None: never)."""

    notebook: str
    zoo: list[ZooNeed] = field(default_factory=list)
    last_seconds: float | None = None


def experiment_module(path: str) -> str | None:
    """The `workbench.experiments` module a notebook imports (`quickstart`, `tor`, ...), or None."""
    with open(path, encoding="utf-8") as f:
        text = "".join("".join(c.get("source", "")) for c in json.load(f).get("cells", []))
    hit = _MODULE.search(text)
    return hit.group(1) if hit else None


def _default_model(path: str) -> str | None:
    import papermill as pm

    raw = pm.inspect_notebook(path).get("model", {}).get("default")
    value = raw.strip().strip("'\"") if isinstance(raw, str) else None
    return None if value in (None, "None") else value


def zoo_models(path: str, preset: str) -> list[tuple[str, int]]:
    """(recipe name, seed) of every zoo model notebook `path` loads at `preset` (see the module docstring), in the
    order named; local paths are left out."""
    from workbench.models.zoo import RECIPES, discover_recipes

    discover_recipes()
    name = experiment_module(path)
    module = importlib.import_module(f"workbench.experiments.{name}") if name else None
    presets = getattr(module, "PRESETS", None)
    row = presets.table.get(preset, {}) if presets is not None else {}
    wanted = [_default_model(path), *row.values(), *getattr(module, "ZOO_MODELS_USED", {}).get(preset, [])]
    pairs = [(w, 0) if isinstance(w, str) else (w[0], int(w[1])) for w in wanted
             if isinstance(w, str) or (isinstance(w, tuple) and len(w) == 2 and isinstance(w[0], str))]
    return [p for p in dict.fromkeys(pairs) if p[0] in RECIPES]


def _need(name: str, seed: int = 0) -> ZooNeed:
    from workbench.models.zoo import checkpoint_dir

    folder = checkpoint_dir(name, seed)
    cached = os.path.isfile(os.path.join(folder, "config.json"))
    seconds = None
    info = os.path.join(folder, "info.json")
    if os.path.isfile(info):
        with open(info, encoding="utf-8") as f:
            recorded = json.load(f)
        seconds = recorded.get("build_seconds", recorded.get("train_seconds"))
    return ZooNeed(name, cached, seconds, seed)


def _last_seconds(outputs_root: str, notebook: str, preset: str) -> float | None:
    path = os.path.join(outputs_root, notebook, "results.json")
    try:
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return res.get("runtime_s") if res.get("preset") == preset else None


def plan(notebooks: list[str], preset: str, outputs_root: str) -> list[Step]:
    """One `Step` per notebook path, in order."""
    steps = []
    for path in notebooks:
        name = os.path.splitext(os.path.basename(path))[0]
        steps.append(Step(name, [_need(m, s) for m, s in zoo_models(path, preset)], _last_seconds(outputs_root, name, preset)))
    return steps


def describe(steps: list[Step]) -> str:
    """The plan as lines: per notebook its last run time and zoo models, then the expected total (known parts)
    and how many models train on first use with no recorded time."""
    lines, known, unknown, to_train = [], 0.0, [], set()
    for s in steps:
        zoo = ", ".join(f"{z.label} ({'cached' if z.cached else 'trains on first use'})" for z in s.zoo) or "no zoo model"
        last = f"last run {s.last_seconds / 60:.1f} min" if s.last_seconds is not None else "no earlier run here"
        lines.append(f"  {s.notebook}: {last}; {zoo}")
        if s.last_seconds is not None:
            known += s.last_seconds
        else:
            unknown.append(s.notebook)
        to_train |= {z.label for z in s.zoo if not z.cached}
    parts = [f"expected about {known / 60:.0f} min for the {len(steps) - len(unknown)} notebook(s) run here before"] \
        if len(unknown) < len(steps) else []
    if unknown:
        parts.append(f"{len(unknown)} never run here, so not timed ({', '.join(unknown)})")
    total = "; ".join(parts)
    if to_train:
        total += f"; {len(to_train)} zoo model(s) train first ({', '.join(sorted(to_train))}), minutes each, then cached"
    return "\n".join([f"[workbench] plan ({len(steps)} notebooks):", *lines, f"[workbench] {total}"])
