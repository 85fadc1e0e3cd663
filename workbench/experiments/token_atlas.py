"""Token atlas, notebook 11: which tokens each paper's method singles out, on the same rollouts, and what
composing the methods does.

    papermill notebooks/11_token_atlas.ipynb out.ipynb -p preset cpu        # or smoke | gpu with checkpoints

Two base/RL pairs, text (`tiny-arith` and its GRPO model `tiny-arith-grpo`) and vision (`tiny-shapes-vl-rl` and
a GRPO run of it trained here, `recipes.shapes_rl.SHAPES_RL_CPU`). Each base answers held-out questions greedily;
on those responses `workbench.rl.atlas.token_signals` computes every paper's per-token signal with the paper's
own registered piece (its docstring lists them). Then:

1. the long table `seq_id, pos, token, token_class, signal, value` (`SignalTable.frame`);
2. agreement (`workbench.analysis.agreement`): Spearman ρ between signals, Jaccard of their top-q % sets, where
   each signal's top tokens fall by class;
3. intervention (text pair; the lockstep decoder has no image inputs): notebook 01's replacement machinery
   (`analysis.replacement`) with every token-level signal as the selector — the base decodes greedily and takes
   the RL model's token at the top-q % positions by that signal; the signal whose curve reaches the RL accuracy
   with the fewest replacements (largest area under the curve) ranks first;
4. composition (vision pair): DAPO, DAPO + ToR, DAPO + FIPO (the `fipo` method) and DAPO + ToR + FIPO (weights
   composed by product), paired seeds (`experiments.compare.compare_methods`).

Claims and verdicts: `workbench.experiments.token_atlas_claims`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.analysis import agreement as agr
from workbench.analysis.delta_logp import reach_budgets, replacement_experiment
from workbench.experiments.compare import compare_methods
from workbench.experiments.presets import Params, Presets
from workbench.models.scoring import completion_logprobs
from workbench.models.tokenizer import token_strings
from workbench.models.zoo import load_model
from workbench.notebook import ParameterError
from workbench.recipes.rl_arith import ARITH_RL_CPU
from workbench.recipes.shapes_rl import SHAPES_RL_CPU
from workbench.rl import RLConfig, train
from workbench.rl.atlas import SEQUENCE_SIGNALS, SignalTable, token_signals
from workbench.rl.sources import generate_group
from workbench.rl.tasks import arithmetic_task, shapes_task
from workbench.utils import seed_everything, seeded_generator
from workbench.viz.distributions import rank_correlation

_RL = dict(max_sampling_rounds=2, micro_batch_size=32)
#: `text_rl_steps`: None = load `text_rl_model`, an int trains a GRPO copy of the base for that many steps (smoke);
#: `vision_rl`: overrides of SHAPES_RL_CPU for the vision GRPO model trained here when `vision_rl_model` is None;
#: `update_lr`: learning rate of the one FIPO update that gives π_θ (None: the pair's RL preset's). `budgets`: replacement fractions;
#: `comp`: RLConfig fields of the composition runs.
PRESETS = Presets(
    {"smoke": dict(text_model="tiny-arith", text_rl_model=None, text_rl_steps=2, vision_model="tiny-shapes-vl-smoke",
                   vision_rl=dict(steps=1, num_prompts=2, num_generations=2), update_lr=None, n_rollouts=16, n_vision_rollouts=6, n_replace=8, replace_seeds=2,
                   budgets=[0.0, 0.25, 1.0], n_seeds=1, comp_steps=1, comp_num_prompts=2, comp_num_generations=2,
                   comp_lr=1e-4, eval_n=6, q=0.2, **_RL),
     "cpu": dict(text_model="tiny-arith", text_rl_model="tiny-arith-grpo", text_rl_steps=None,
                 vision_model="tiny-shapes-vl-rl", vision_rl={}, update_lr=None, n_rollouts=256, n_vision_rollouts=64,
                 n_replace=192, replace_seeds=3, budgets=[0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0], n_seeds=3,
                 comp_steps=20, comp_num_prompts=16, comp_num_generations=8, comp_lr=1e-4, eval_n=200, q=0.2, **_RL),
     "gpu": dict(text_rl_steps=None, vision_rl=dict(steps=200, num_prompts=64, lr=1e-6), update_lr=1e-6, n_rollouts=512, n_vision_rollouts=256, n_replace=500,
                 replace_seeds=5, budgets=[0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0], n_seeds=3, comp_steps=200,
                 comp_num_prompts=64, comp_num_generations=8, comp_lr=1e-6, eval_n=500, q=0.2, **_RL)},
    choices={"rollouts": ("greedy", "sampled")},
    ranges={"n_rollouts": (4, None), "n_vision_rollouts": (4, None), "n_replace": (2, None), "replace_seeds": (1, 16),
            "n_seeds": (1, 16), "comp_steps": (1, None), "comp_num_prompts": (1, None), "comp_num_generations": (2, 256),
            "comp_lr": (0.0, 1.0), "eval_n": (1, None), "q": (0.0, 1.0), "max_new_tokens": (8, 4096),
            "show_rollout": (0, None)})


def check(P: Params) -> None:
    """The checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    for name in ("text_model", "vision_model"):
        if getattr(P, name) is None:
            raise ParameterError(f"parameter {name!r} must be a zoo name or a local checkpoint path for preset {P.preset!r}, got None")
    if P.text_rl_model is None and P.text_rl_steps is None:
        raise ParameterError("parameter 'text_rl_model' must name the RL model of the text pair (or set text_rl_steps), got None")
    if P.n_replace < P.replace_seeds:
        raise ParameterError(f"parameter 'n_replace' must be at least replace_seeds={P.replace_seeds}, got {P.n_replace}")


# --------------------------------------------------------------------------------------------- the two pairs
@dataclass
class Pair:
    """One base/RL pair: `base` (π_old of the rollouts), `rl`, `updated` (the base after one FIPO update, π_θ of
    FIPO's weight), their `processor` (tokenizer for text), the `task`, and `name` (text | vision)."""

    name: str
    base: torch.nn.Module
    rl: torch.nn.Module
    updated: torch.nn.Module
    processor: object
    task: object
    rl_name: str

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def describe(self) -> str:
        n = sum(p.numel() for p in self.base.parameters()) / 1e6
        return f"{self.name}: base {n:.2f}M parameters; RL = {self.rl_name}; π_θ of FIPO = base + 1 FIPO update"


def _trained(base, processor, task, config: dict, method: str, steps: int, seed: int):
    cfg = RLConfig.for_method(method, **{**config, "steps": steps, "seed": seed, "eval_every": 0, "progress": False})
    return train(copy.deepcopy(base), processor, task, cfg).model.eval()


def _one_fipo_update(base, processor, task, config: dict, P: Params):
    """π_θ of FIPO's weight: a copy of `base` after one FIPO update on at most 8 prompts, at the full learning rate
    (no warm-up; `P.update_lr`, else the pair's RL preset's)."""
    one = {**config, "num_prompts": min(8, config["num_prompts"]), "warmup_steps": 0, **({"lr": P.update_lr} if P.update_lr else {})}
    return _trained(base, processor, task, one, "fipo", 1, P.seed)


def text_pair(P: Params) -> Pair:
    """`P.text_model` and `P.text_rl_model` (or a GRPO copy trained for `text_rl_steps`), arithmetic task."""
    seed_everything(P.seed)
    base, tok = load_model(P.text_model, device=P.device)
    task = arithmetic_task(tokenizer=tok)
    config = {**ARITH_RL_CPU, "max_new_tokens": P.max_new_tokens}
    if P.text_rl_steps is None:
        rl, _ = load_model(P.text_rl_model, device=P.device)
        name = P.text_rl_model
    else:
        small = {**config, "num_prompts": 4, "num_generations": 4}
        rl, name = _trained(base, tok, task, small, "grpo", P.text_rl_steps, P.seed), f"{P.text_model} + {P.text_rl_steps} GRPO steps"
    return Pair("text", base.eval(), rl.eval(), _one_fipo_update(base, tok, task, config, P), tok, task, name)


def vision_pair(P: Params) -> Pair:
    """`P.vision_model` with ToR's visual dependency and Durian's visual entropy on; its RL model `P.vision_rl_model`,
    or GRPO trained here at `SHAPES_RL_CPU` with the preset's `vision_rl` overrides."""
    seed_everything(P.seed)
    base, proc = load_model(P.vision_model, device=P.device)
    task = shapes_task(proc, families=("arithmetic",), visual_dependency="removed", visual_entropy=True)
    config = {**SHAPES_RL_CPU, "max_new_tokens": P.max_new_tokens, **P.vision_rl}
    if P.vision_rl_model is None:
        rl, name = _trained(base, proc, task, config, "grpo", config["steps"], P.seed), f"{P.vision_model} + {config['steps']} GRPO steps"
    else:
        rl, name = load_model(P.vision_rl_model, device=P.device)[0].eval(), P.vision_rl_model
    return Pair("vision", base.eval(), rl, _one_fipo_update(base, proc, task, config, P), proc, task, name)


# --------------------------------------------------------------------------------------------- 1. the table
@dataclass
class Atlas:
    """One pair's signal table on its base's greedy held-out responses.

    Attributes:
        frame: long format (`SignalTable.frame`); wide: tokens × signals (`agreement.wide`); classes: token class
        per row of `wide`; table: the `SignalTable`; texts / correct: the responses and whether each is right.
    """

    pair: str
    table: SignalTable
    frame: pd.DataFrame
    wide: pd.DataFrame
    classes: pd.Series
    tokens: list[list[str]]
    texts: list[str]
    correct: list[bool]

    def rollout(self, seq_id: int | None = None) -> tuple[int, list[str], dict[str, np.ndarray]]:
        """(seq_id, tokens, {signal: [T] values}) of one response (None: the longest of the first eight)."""
        __tracebackhide__ = True
        if seq_id is None:
            seq_id = int(np.argmax([len(t) for t in self.tokens[:8]]))
        if not 0 <= seq_id < len(self.tokens):
            raise ParameterError(f"parameter 'show_rollout' must be a response id in 0..{len(self.tokens) - 1}, got {seq_id}")
        n = len(self.tokens[seq_id])
        return seq_id, self.tokens[seq_id], {s: v[seq_id, :n].numpy() for s, v in self.table.values.items()}


def build_atlas(pair: Pair, n: int, max_new_tokens: int, rollouts: str = "greedy", seed: int = 0) -> Atlas:
    """Responses of `pair.base` to the first `n` held-out problems — greedy, or with `rollouts="sampled"` one sample
    at temperature 1 (generator seeded by `seed`) — and every signal of `token_signals` on them (ToR's visual
    dependency and Durian's visual entropy from the task's annotate hook, under the base)."""
    if rollouts not in ("greedy", "sampled"):
        raise ValueError(f"rollouts must be 'greedy' or 'sampled', got {rollouts!r}")
    problems = pair.task.eval_problems(n)
    ro = generate_group(pair.base, pair.processor, pair.task, problems, num_generations=1, max_new_tokens=max_new_tokens,
                        temperature=1.0, top_p=1.0, generator=seeded_generator(seed, 11), greedy=rollouts == "greedy")
    extras = {}
    if pair.task.annotate:  # the hook reads log π_old of the responses, scored with the real images
        device = next(pair.base.parameters()).device
        with torch.no_grad():
            ro.old_logp, _ = completion_logprobs(pair.base, ro.prompt_ids.to(device), ro.prompt_mask.to(device),
                                                 ro.completion_ids.to(device), ro.completion_mask.to(device),
                                                 **{k: v.to(device) for k, v in ro.model_inputs().items()})
        extras = pair.task.annotate(pair.base, pair.processor, ro)
    vd = extras.get("visual_dependency")
    table = token_signals(pair.base, pair.rl, pair.updated, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
                          ro.completion_mask, model_inputs=ro.model_inputs(),
                          extras={} if vd is None else {"visual_dependency": vd}, visual_entropy=extras.get("visual_entropy"))
    tokens = [token_strings(pair.tokenizer, ro.completion_ids[i, : int(ro.completion_mask[i].sum())].tolist()) for i in range(len(ro))]
    classes = [agr.token_classes(t) for t in tokens]
    frame = table.frame(tokens, classes)
    wide = agr.wide(frame)
    cls = frame.drop_duplicates(["seq_id", "pos"]).set_index(["seq_id", "pos"])["token_class"]
    correct = [pair.task.is_correct(t, p) for p, t in zip(ro.problems, ro.texts)]
    return Atlas(pair.name, table, frame, wide, cls, tokens, ro.texts, correct)


# --------------------------------------------------------------------------------------------- 2. agreement
@dataclass
class Agreement:
    """`rho`: [S, S] Spearman ρ; `jaccard`: [S, S] J_q at the notebook's q; `curves`: J over q per pair;
    `classes`: [S + 1, classes] share of each top-q set per token class (+ all tokens); `sizes`: |S_q| / n."""

    rho: pd.DataFrame
    jaccard: pd.DataFrame
    curves: pd.DataFrame
    classes: pd.DataFrame
    sizes: pd.Series
    q: float


def agreement(atlas: Atlas, q: float) -> Agreement:
    """Agreement of every pair of signals of `atlas` (constant signals give NaN ρ)."""
    w = atlas.wide
    return Agreement(rank_correlation(w.reset_index(drop=True), list(w.columns)), agr.jaccard(w, q), agr.jaccard_curves(w),
                     agr.class_shares(w, atlas.classes, q), agr.set_sizes(w, q), q)


# --------------------------------------------------------------------------------------------- 3. intervention
def intervention_signals(atlas: Atlas) -> list[str]:
    """The signals that rank positions within a response: every token-level signal that is not constant
    over the table (per-sequence Durian buckets would pick positions at random, like `random`)."""
    w = atlas.wide
    return [s for s in w.columns if s not in SEQUENCE_SIGNALS and w[s].nunique() > 1]


def atlas_selectors(pair: Pair, names: list[str]) -> list[tuple]:
    """(name, fn) selectors for `analysis.replacement`: fn(record, generator) = signal `name` of `token_signals`
    on the base's recorded greedy decode (computed once per record, shared by every name)."""
    memo: dict = {}

    def signals(record) -> SignalTable:
        if memo.get("record") is not record:
            P = record.prompt_mask.size(1)
            memo["record"], memo["table"] = record, token_signals(
                pair.base, pair.rl, pair.updated, record.decode.sequences[:, :P], record.prompt_mask,
                record.decode.new_tokens, record.valid.long())
        return memo["table"]

    return [(name, lambda record, generator, name=name: signals(record).values[name]) for name in names]


@dataclass
class Intervention:
    """`summary`: one row per (selector, budget, seed) (`ReplacementCurve.summary`); `per_prompt`: per (selector,
    prompt) the area under its score-vs-budget curve `auc` (trapezoid, budgets 0..1); `ranking`: mean AUC per
    selector, best first, with its SE over prompts and the (interpolated) budget at which its mean curve closes
    90 % of the base → RL gap (NaN: never); `base_acc` / `rl_acc`: budget 0 / 1 accuracy; `scores`: per (selector,
    prompt) the score at every budget."""

    summary: pd.DataFrame
    per_prompt: pd.DataFrame
    ranking: pd.DataFrame
    base_acc: float
    rl_acc: float
    scores: pd.DataFrame


def intervention(pair: Pair, atlas: Atlas, P: Params) -> Intervention:
    """Replacement curves of every `intervention_signals` selector and `random` on `n_replace` held-out problems
    split into `replace_seeds` shards (`analysis.delta_logp.replacement_experiment`)."""
    names = intervention_signals(atlas)
    curve = replacement_experiment(pair.base, pair.rl, pair.tokenizer, pair.task.eval_problems(P.n_replace),
                                   budgets=P.budgets, selectors=atlas_selectors(pair, names) + ["random"],
                                   seeds=[P.seed + i for i in range(P.replace_seeds)], max_new_tokens=P.max_new_tokens)
    scores = curve.per_prompt.pivot_table(index=["selector", "prompt_index"], columns="budget", values="score").sort_index(axis=1)
    b = np.asarray(scores.columns, dtype=np.float64)
    y = scores.to_numpy()
    auc = pd.Series(((y[:, 1:] + y[:, :-1]) / 2 * np.diff(b)).sum(1) / (b[-1] - b[0] if b[-1] > b[0] else 1.0),
                    index=scores.index, name="auc")
    per_prompt = auc.reset_index()
    g = per_prompt.groupby("selector")["auc"]
    acc = curve.summary.groupby("budget")["accuracy"].mean()
    base_acc, rl_acc = float(acc.iloc[0]), float(acc.iloc[-1])
    reach90 = reach_budgets(curve.summary, base_acc + 0.9 * (rl_acc - base_acc))  # descriptive: not the claim's metric
    ranking = pd.DataFrame({"auc": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()),
                            "budget_to_90pct_of_gap": reach90}).sort_values("auc", ascending=False)
    return Intervention(curve.summary, per_prompt, ranking, base_acc, rl_acc, scores.reset_index())


# --------------------------------------------------------------------------------------------- 4. composition
COMPOSITION_RUNS = ("DAPO", "DAPO + ToR", "DAPO + FIPO", "DAPO + ToR + FIPO")


def composition_runs() -> dict[str, dict]:
    """The four runs: DAPO, DAPO with ToR's weight, FIPO (DAPO + future-KL weights and FIPO's dual clip), and
    FIPO with ToR's weight multiplied in (`compose_token_weights` takes the product)."""
    tor, fkl = ("tor", {}), ("future_kl", {"decay_rate": 32})
    return {"DAPO": {"method": "dapo"}, "DAPO + ToR": {"method": "dapo", "token_weights": [tor]},
            "DAPO + FIPO": {"method": "fipo"}, "DAPO + ToR + FIPO": {"method": "fipo", "token_weights": [fkl, tor]}}


def composition(pair: Pair, P: Params):
    """`compare_methods` of `composition_runs` from the vision base, seeds seed … seed + n_seeds − 1, final greedy
    held-out accuracy on `eval_n` questions. Returns the `Comparison`."""
    common = dict(steps=P.comp_steps, num_prompts=P.comp_num_prompts, num_generations=P.comp_num_generations,
                  lr=P.comp_lr, max_new_tokens=P.max_new_tokens, max_sampling_rounds=P.max_sampling_rounds,
                  micro_batch_size=P.micro_batch_size)
    return compare_methods(pair.base, pair.processor, pair.task, composition_runs(), list(range(P.seed, P.seed + P.n_seeds)),
                           common=common, eval_every=0, eval_n=P.eval_n, eval_max_new_tokens=P.max_new_tokens)


# --------------------------------------------------------------------------------------------- summaries
def table_sentence(atlas: Atlas) -> str:
    """`text: 4,096 tokens of 256 responses (62 % correct), 15 signals; skipped: tor (needs ...)`."""
    n_tok = len(atlas.wide)
    skipped = "; ".join(f"{k} ({v})" for k, v in atlas.table.skipped.items()) or "none"
    return (f"{atlas.pair}: {n_tok:,} tokens of {len(atlas.tokens)} responses ({np.mean(atlas.correct):.0%} correct), "
            f"{len(atlas.wide.columns)} signals; skipped: {skipped}")


def table_metrics(atlas: Atlas) -> dict:
    """The table's size, the base's accuracy on its responses, and each signal's mean and sd over tokens."""
    w = atlas.wide
    return {"tokens": len(w), "responses": len(atlas.tokens), "base_accuracy": float(np.mean(atlas.correct)),
            "signals": list(w.columns), "skipped": sorted(atlas.table.skipped),
            "mean": w.mean().round(4).to_dict(), "sd": w.std().round(4).to_dict()}


def agreement_metrics(ag: Agreement) -> dict:
    """ρ and J_q (rounded, NaN → None), the class shares of every signal's top-q set and J over q per pair."""
    clean = lambda m: {a: {b: (None if pd.isna(v) else round(float(v), 3)) for b, v in row.items()}  # noqa: E731
                       for a, row in m.to_dict(orient="index").items()}
    return {"q": ag.q, "spearman": clean(ag.rho), "jaccard": clean(ag.jaccard), "class_shares": clean(ag.classes),
            "top_set_size": ag.sizes.round(4).to_dict(),
            "jaccard_over_q": ag.curves.round(4).astype(object).where(ag.curves.notna(), None).to_dict(orient="records")}


def intervention_metrics(iv: Intervention) -> dict:
    """Base / RL accuracy, each selector's AUC ± SE, and the mean curve per selector."""
    curve = iv.summary.groupby(["selector", "budget"])["accuracy"].mean().round(4)
    return {"base_accuracy": iv.base_acc, "rl_accuracy": iv.rl_acc,
            "ranking": {s: {"auc": round(float(r.auc), 4), "se": round(float(r.se), 4),
                            "budget_to_90pct_of_gap": None if pd.isna(r.budget_to_90pct_of_gap) else round(float(r.budget_to_90pct_of_gap), 4)}
                        for s, r in iv.ranking.iterrows()},
            "curve": {s: {float(b): float(a) for b, a in g.droplevel(0).items()} for s, g in curve.groupby(level=0)}}


def composition_table(comp) -> pd.DataFrame:
    """Per composition run: mean, sd, min and max over seeds of the final accuracy, its gain over the base, seconds."""
    f = comp.final.assign(gain=comp.final["eval_accuracy"] - comp.final["base_accuracy"])
    t = f.groupby("run").agg(accuracy=("eval_accuracy", "mean"), sd=("eval_accuracy", "std"), min=("eval_accuracy", "min"),
                             max=("eval_accuracy", "max"), gain=("gain", "mean"), seconds=("seconds", "mean"))
    return t.reindex([r for r in COMPOSITION_RUNS if r in t.index])
