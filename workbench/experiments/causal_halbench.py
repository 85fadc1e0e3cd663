"""Causal-HalBench (arXiv 2511.10268), notebook 07: co-occurrence bias and counterfactual images.

    papermill notebooks/07_causal_halbench.ipynb out.ipynb -p preset cpu     # or smoke | gpu -p model <Qwen2.5-VL path>

Tiny VLMs SFT'd on a ShapeWorld whose (star, moon) and (triangle, square) pairs co-occur with probability ρ
(`recipes/shapes_vl_cooc.py`, ρ ∈ {0, 0.5, 0.9}, several training seeds each) answer the frozen benchmark
(`tasks/halbench.py`): existence questions on originals and on exact counterfactuals that break a
co-occurrence, POPE's three negative splits, captions for CHAIR, and unbiased originals. This module holds
the presets and checks, the scoring of any model (`score_model`), the sweep over the biased models, and
the claims; `experiments/causal_halbench_claims.py` decides them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.evaluation import evaluate
from workbench.evaluation.verdicts import t_quantile
from workbench.evaluation.hallucination import HalRecord, chair, pair_table, pope_answer, pope_metrics
from workbench.experiments.presets import Params, Presets
from workbench.models.zoo import load_model
from workbench.notebook import ParameterError
from workbench.rl.tasks.vqa import ImageQuestion, image_question_task
from workbench.tasks.halbench import POPE_SPLITS, HalBench, load_halbench
from workbench.tasks.shapes.cooccurrence import CAPTION_PROMPT, HALBENCH_PAIRS, conditional, kinds_present
from workbench.utils import seed_everything

ZOO_RHOS = {0.0: "r0", 0.5: "r50", 0.9: "r90"}
#: the metrics drawn against ρ (with seed bands): the counterfactual four, CHAIR_i, unbiased accuracy, POPE per split
BAND_METRICS = ["cac", "nac", "chr", "cpr", "chair_i", "unbiased_accuracy"] + [
    f"pope_{s}_{k}" for s in ("random", "popular", "adversarial") for k in ("accuracy", "yes_ratio")]
PRESETS = Presets(
    {"smoke": dict(family="tiny-shapes-vl-cooc-smoke", rhos=[0.0, 0.5, 0.9], n_seeds=1, n_images=6, unbiased_n=8,
                   caption_n=4, caption_tokens=48, batch_size=64, margin=0.05),
     "cpu": dict(family="tiny-shapes-vl-cooc", rhos=[0.0, 0.5, 0.9], n_seeds=3, n_images=160, unbiased_n=200,
                 caption_n=80, caption_tokens=64, batch_size=128, margin=0.05),
     "gpu": dict(family="tiny-shapes-vl-cooc", rhos=[0.0, 0.5, 0.9], n_seeds=3, n_images=160, unbiased_n=200,
                 caption_n=160, caption_tokens=128, batch_size=64, margin=0.05)},
    ranges={"n_seeds": (1, 16), "n_images": (2, 160), "unbiased_n": (2, 200), "caption_n": (1, 160),
            "caption_tokens": (8, 4096), "batch_size": (1, 4096), "margin": (0.0, 1.0)})

#: zoo models the notebook loads at the default seed (for the runner's plan): every (ρ, seed) of the preset's family
ZOO_MODELS_USED = {preset: [(f"{row['family']}-{ZOO_RHOS[float(r)]}", s) for r in row["rhos"] for s in range(row["n_seeds"])]
                   for preset, row in PRESETS.table.items() if preset != "gpu"}


def check(P: Params) -> None:
    """Checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    if P.model is None and P.preset == "gpu":
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    bad = [r for r in P.rhos if float(r) not in ZOO_RHOS]
    if P.model is None and (not P.rhos or bad):
        raise ParameterError(f"parameter 'rhos' must list values among {', '.join(map(str, ZOO_RHOS))} (the zoo's "
                             f"biased models), got {P.rhos}")
    if P.caption_n > P.n_images:
        raise ParameterError(f"parameter 'caption_n' must be at most n_images = {P.n_images}, got {P.caption_n}")


@dataclass(frozen=True)
class ModelRun:
    """One model to score: a `label`, its `rho` (None for a model outside the sweep), training `seed`, `name`."""

    label: str
    rho: float | None
    seed: int
    name: str


def model_runs(P: Params) -> list[ModelRun]:
    """`P.model` alone, else every (ρ, seed) of the biased family: seeds `P.seed`, …, `P.seed + n_seeds − 1`."""
    if P.model is not None:
        return [ModelRun(P.model, None, 0, P.model)]
    seeds = range(P.seed, P.seed + P.n_seeds)
    return [ModelRun(f"rho={float(r):g}", float(r), s, f"{P.family}-{ZOO_RHOS[float(r)]}") for r in P.rhos for s in seeds]


def benchmark(P: Params) -> HalBench:
    """The frozen split, cut to `P.n_images` originals and `P.unbiased_n` unbiased questions."""
    full = load_halbench()
    return HalBench(full.images[:P.n_images], full.unbiased[:P.unbiased_n], full.kinds, full.spec)


def describe(bench: HalBench, runs: list[ModelRun]) -> str:
    """What the benchmark holds and which models answer it."""
    counts = bench.counts
    rates = ", ".join(f"P({p} | {t}) = {conditional(counts, bench.kinds, t, p):.2f}" for t, p in HALBENCH_PAIRS)
    return (f"{len(bench.images)} originals (the rho = {bench.spec['rho']:g} world: {rates}), "
            f"{len(bench.counterfactuals())} counterfactuals, {len(bench.questions())} counterfactual questions, "
            f"{sum(len(bench.pope(s)) for s in POPE_SPLITS)} POPE questions, {len(bench.unbiased)} unbiased questions; "
            f"{len(runs)} models: {', '.join(sorted({r.name for r in runs}))}")


@dataclass
class Scores:
    """One model's answers: `records` (the counterfactual benchmark), `pope` (split, image, kind, label,
    answer, correct), `captions` (image, caption, kinds, hallucinated), `unbiased` (question, correct)."""

    records: list[HalRecord]
    pope: pd.DataFrame
    captions: pd.DataFrame
    unbiased: pd.DataFrame


def _answer(model, processor, asks: list[ImageQuestion], P: Params, max_new_tokens: int, desc: str) -> list[str]:
    if not asks:
        return []
    task = image_question_task(processor, name=desc)
    return evaluate(model, processor, task, asks, max_new_tokens=max_new_tokens, batch_size=P.batch_size,
                    progress=True).completions


def score_model(model, processor, bench: HalBench, P: Params) -> Scores:
    """Greedy answers of any VLM `load_model` gives to every question of `bench`, batched (`P.batch_size`
    prompts per generation call) with a progress bar; each distinct (image, kind) question is asked once."""
    questions = bench.questions()
    pope = {s: bench.pope(s) for s in POPE_SPLITS}
    unique: dict[tuple[str, str], ImageQuestion] = {}
    for q in questions + [q for qs in pope.values() for q in qs]:
        unique.setdefault((q.image_name, q.kind), ImageQuestion(q.scene, q.prompt, q.label))
    keys = list(unique)
    texts = dict(zip(keys, _answer(model, processor, [unique[k] for k in keys], P, 4, "benchmark questions")))
    records = [HalRecord(q.image_name, q.pair, q.type, q.tag, q.label, texts[(q.image_name, q.kind)]) for q in questions]
    pope_rows = [{"split": s, "image": q.image_name, "kind": q.kind, "label": q.label,
                  "answer": texts[(q.image_name, q.kind)]} for s, qs in pope.items() for q in qs]
    pope_frame = pd.DataFrame(pope_rows)
    pope_frame["correct"] = [pope_answer(a) == y for a, y in zip(pope_frame["answer"], pope_frame["label"])]
    images = bench.images[:P.caption_n]
    caps = _answer(model, processor, [ImageQuestion(im.scene, CAPTION_PROMPT, "caption") for im in images], P, P.caption_tokens,
                   "captions")
    truth = [kinds_present(im.scene) for im in images]
    ch = chair(caps, truth)
    captions = pd.DataFrame({"image": [im.id for im in images], "caption": caps, "kinds": [sorted(t) for t in truth],
                             "hallucinated": [list(h) for h in ch.hallucinated]})
    ub = bench.unbiased
    ub_texts = _answer(model, processor, [ImageQuestion(e.scene, e.prompt, e.answer) for e in ub], P, 4, "unbiased questions")
    unbiased = pd.DataFrame({"question": range(len(ub)), "label": [e.answer for e in ub],
                             "correct": [pope_answer(t) == e.answer for t, e in zip(ub_texts, ub)]})
    return Scores(records, pope_frame, captions, unbiased)


@dataclass
class Sweep:
    """Every model's scores, long format with `run` (the model's label), `rho`, `seed`: `pairs` (per counterfactual pair: the
    (type, tag) cells and cac / nac / chr / cpr), `pope`, `captions`, `unbiased`, and `summary` (one row per
    model: the metrics)."""

    pairs: pd.DataFrame
    pope: pd.DataFrame
    captions: pd.DataFrame
    unbiased: pd.DataFrame
    summary: pd.DataFrame
    runs: list[ModelRun]

    def by_rho(self) -> pd.DataFrame:
        """Mean and sd over seeds of each summary metric, one row per ρ (or model label)."""
        key = "rho" if self.summary["rho"].notna().all() else "run"
        cols = [c for c in self.summary.columns if c not in ("run", "rho", "seed", "model")]
        return self.summary.groupby(key)[cols].agg(["mean", "std"])

    def bands(self, metrics) -> pd.DataFrame:
        """Long frame (metric, rho, mean, half, n): mean over seeds and its t-based 95 % CI half-width."""
        rows = []
        for m in metrics:
            if m not in self.summary:
                continue
            for rho, g in self.summary.dropna(subset=["rho"]).groupby("rho"):
                mean, half = mean_ci(g[m].dropna())
                rows.append({"metric": m, "rho": float(rho), "mean": mean, "half": half, "n": int(g[m].notna().sum())})
        return pd.DataFrame(rows, columns=["metric", "rho", "mean", "half", "n"])


def summarise(scores: Scores) -> dict:
    """One model's metrics: CAC, NAC, CHR, CPR, POPE per split, CHAIR, unbiased accuracy."""
    table = pair_table(scores.records)
    out = {m: float(table[m].dropna().mean()) for m in ("cac", "nac", "chr", "cpr") if table[m].notna().any()}
    for split, g in scores.pope.groupby("split"):
        m = pope_metrics(g["label"].tolist(), g["answer"].tolist())
        out.update({f"pope_{split}_{k}": m[k] for k in ("accuracy", "f1", "yes_ratio")})
    caps = scores.captions
    truth = caps["kinds"].tolist()
    ch = chair(caps["caption"].tolist(), truth)
    out.update({"chair_s": ch.chair_s, "chair_i": ch.chair_i, "caption_recall": ch.recall,
                "unbiased_accuracy": float(scores.unbiased["correct"].mean())})
    return out


def run_sweep(P: Params, bench: HalBench) -> Sweep:
    """Load and score every model of `model_runs(P)` on `bench` (the zoo builds a missing biased model once)."""
    runs = model_runs(P)
    parts: dict[str, list[pd.DataFrame]] = {"pairs": [], "pope": [], "captions": [], "unbiased": []}
    rows = []
    for r in runs:
        seed_everything(r.seed)
        model, processor = load_model(r.name, seed=r.seed, device=P.device)
        s = score_model(model, processor, bench, P)
        tag = {"run": r.label, "rho": r.rho, "seed": r.seed}
        parts["pairs"].append(pair_table(s.records).reset_index().assign(**tag))
        for name in ("pope", "captions", "unbiased"):
            parts[name].append(getattr(s, name).assign(**tag))
        rows.append({**tag, "model": r.name, **summarise(s)})
        del model
    return Sweep(*(pd.concat(parts[k], ignore_index=True) for k in ("pairs", "pope", "captions", "unbiased")),
                 pd.DataFrame(rows), runs)


def example_pairs(bench: HalBench, sweep: Sweep, n: int = 4) -> list[dict]:
    """The first `n` counterfactual pairs whose target is a bias pair's kind, each with its questions and the
    answers of the first seed's model at each ρ: what the figure of pairs shows."""
    pair_kinds = {k for p in HALBENCH_PAIRS for k in p}
    chosen = [c for c in bench.counterfactuals() if c.target in pair_kinds][:n]
    scenes = {im.id: im.scene for im in bench.images}
    first = sweep.pairs[sweep.pairs["seed"] == sweep.pairs["seed"].min()]
    out = []
    for c in chosen:
        rows = first[first["pair"] == c.id].set_index("run")
        out.append({"cf": c, "original": scenes[c.original_id],
                    "answers": {lab: {"target_origin": row["target_origin"], "target_inpainted": row["target_inpainted"]}
                                for lab, row in rows.iterrows()}})
    return out


def mean_ci(values) -> tuple[float, float]:
    """(mean, half-width of the t-based 95 % CI over the values, e.g. seeds; half-width 0 for fewer than two)."""
    v = np.asarray(list(values), dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(t_quantile(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
