"""ToR (arXiv 2603.25077), notebook 03: reweighting perception and reasoning tokens of a VLM's responses.

    papermill notebooks/03_tor.ipynb out.ipynb -p preset cpu          # or smoke | gpu -p model <Qwen2.5-VL path>

A response o of a vision-language policy is scored twice by the sampling policy, with the image I and
with the image perturbed (I', "removed" = no image), giving per token (`workbench.analysis.perturbation`)

    Δ_t = log π_old(o_t | I, q, o_<t) − log π_old(o_t | I', q, o_<t),   visual dependency |Δ_t|,
    T_r = top `reasoning_frac` of the batch's tokens by entropy H_t,
    T_p = top `perception_frac` by |Δ_t|,
    w_t = γ_r · 1[t ∈ T_r] + γ_p · 1[t ∈ T_p \\ T_r]        (γ_r = 1, γ_p = `gamma_p`; weight `tor`),

and w_t multiplies the per-token policy-gradient term of GRPO / DAPO. The weights are
`workbench.rl.weights.tor*`, the ShapeWorld task `workbench.rl.tasks.shapes_task`; the multi-seed
ablation is the one loop `workbench.experiments.compare.compare_methods`. This module holds the
notebook's presets, its parameter checks and one function per section.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.analysis.perturbation import (ImageAttention, TokenTypes, classify_tokens, image_attention,
                                             visual_dependency)
from workbench.evaluation.verdicts import learned
from workbench.experiments.claims import SESOI_ACCURACY, by_seed, paired
from workbench.experiments.compare import compare_methods
from workbench.experiments.presets import Params, Presets
from workbench.experiments.vl_setup import VLSetup, load_vl_setup
from workbench.models.tokenizer import token_strings
from workbench.models.zoo import describe_info
from workbench.notebook import ParameterError
from workbench.rl.sources import generate_group
from workbench.rl.tasks import shapes_task
from workbench.tasks import shapes
from workbench.utils import seeded_generator

_RL = dict(max_sampling_rounds=2, micro_batch_size=32)  # RLConfig fields every run shares (derived settings)
PRESETS = Presets(
    {"smoke": dict(model="tiny-shapes-vl-smoke", methods=["grpo", "dapo"], n_seeds=1, steps=1, num_prompts=2,
                   num_generations=2, lr=1e-4, eval_n=6, **_RL),
     "cpu": dict(model="tiny-shapes-vl-rl", methods=["grpo"], n_seeds=5, steps=20, num_prompts=16,
                 num_generations=8, lr=1e-4, eval_n=200, **_RL),
     "gpu": dict(model=None, methods=["grpo", "dapo"], n_seeds=3, steps=200, num_prompts=64, num_generations=8,
                 lr=1e-6, eval_n=500, **_RL)},
    choices={"perturbation": ("removed", "blank", "noise")},
    ranges={"n_seeds": (1, 16), "steps": (1, None), "num_prompts": (1, None), "num_generations": (2, 256),
            "lr": (0.0, 1.0), "gamma_p": (0.0, 10.0), "grounding_weight": (0.0, 10.0), "reasoning_frac": (0.0, 1.0),
            "perception_frac": (0.0, 1.0), "max_new_tokens": (8, 32768), "eval_n": (1, None)})
BASE_METHODS = ("grpo", "dapo", "dr_grpo")
PROBE_ROWS = 16  # held-out questions of the token-type probe


def check(P: Params) -> None:
    """The checks across parameters that `PRESETS.resolve` cannot make. Raises `ParameterError`."""
    __tracebackhide__ = True
    if P.model is None:
        raise ParameterError("parameter 'model' must be a local checkpoint path for preset 'gpu', got None")
    bad = [m for m in P.methods if m not in BASE_METHODS]
    if bad or not P.methods:
        raise ParameterError(f"parameter 'methods' must list grpo, dapo or dr_grpo, got {P.methods}")


class Setup(VLSetup):
    """The base policy, its processor, the task and the held-out questions shared by every section."""

    def describe(self, P: Params) -> str:
        return (f"{self.headline()}\nzoo info: {describe_info(self.policy)}\n"
                f"task: {self.task.name}; {len(self.held_out)} held-out questions; seeds {self.seeds}; "
                f"{P.steps} steps × {P.num_prompts} prompts × {P.num_generations} samples per run")


def setup(P: Params) -> Setup:
    """Seed everything, load the policy (zoo name or checkpoint) and build ShapeWorld visual arithmetic
    with ToR's visual-dependency hook (`P.perturbation`) and the optional grounding reward."""
    return load_vl_setup(P, lambda processor: shapes_task(processor, families=("arithmetic",), visual_dependency=P.perturbation,
                                                          grounding_weight=P.grounding_weight), Setup)


@dataclass
class TokenProbe:
    """ToR's token split on sampled responses (temperature 1) of the base policy (B rows, T tokens).

    Attributes:
        examples: the B probed held-out examples; tokens: per row its response tokens (str).
        completion_ids, completion_mask: [B, T]; delta: [B, T] signed Δ_t; dependency: [B, T] |Δ_t|;
        entropy: [B, T] H_t; types: `TokenTypes`.
        share: DataFrame indexed by "stated visual fact" / "other tokens": mean perception, reasoning,
            dependency and entropy of the tokens that are / are not the value of a stated fact.
        fact_share, other_share: share of perception tokens among fact values / other tokens (NaN if none).
        pick: the row drawn in the notebook (longest response among the first 8).
    """

    examples: list
    tokens: list[list[str]]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    delta: torch.Tensor
    dependency: torch.Tensor
    entropy: torch.Tensor
    types: TokenTypes
    share: pd.DataFrame
    fact_share: float
    other_share: float
    pick: int

    def share_sentence(self) -> str:
        """`perception tokens: 62% of stated fact values vs 8% of the other tokens`, saying so when the completions
        state no fact value (or nothing else) instead of printing nan %."""
        if math.isnan(self.fact_share):
            return "perception tokens: the probe's completions state no fact value, so there is no share to compare"
        other = "no other tokens" if math.isnan(self.other_share) else f"{self.other_share:.0%} of the other tokens"
        return f"perception tokens: {self.fact_share:.0%} of stated fact values vs {other}"

    def labels(self, row: int) -> torch.Tensor:
        """Token-type labels of `row`'s response tokens ([n], 0..3 as `TOKEN_TYPES`)."""
        return self.types.labels[row, : len(self.tokens[row])]

    def signed(self, row: int) -> np.ndarray:
        """Signed Δ_t of `row`'s response tokens ([n]; > 0: the image made the token more likely)."""
        return self.delta[row, : len(self.tokens[row])].numpy()


def token_type_probe(run: Setup, P: Params) -> TokenProbe:
    """Sample one response per held-out question (temperature 1, generator (seed, 3)), score it with and
    without the image and split its tokens as ToR does; tabulate how often stated fact values
    ("red shapes: **2**") are perception tokens against the other tokens."""
    probe = generate_group(run.policy, run.processor, run.task, run.held_out[: min(PROBE_ROWS, len(run.held_out))],
                           num_generations=1, max_new_tokens=P.max_new_tokens, temperature=1.0, top_p=1.0,
                           generator=seeded_generator(P.seed, 3))
    exs = probe.problems
    vd = visual_dependency(run.policy, run.processor, [e.prompt for e in exs], [e.image for e in exs],
                           probe.completion_ids, probe.completion_mask, variants=(P.perturbation,),
                           scenes=[e.scene for e in exs], seed=P.seed)
    dep = vd.dependency(P.perturbation)
    types = classify_tokens(dep, vd.entropy, probe.completion_mask, perception_frac=P.perception_frac,
                            reasoning_frac=P.reasoning_frac)
    tok = run.processor.tokenizer
    tokens = [token_strings(tok, probe.completion_ids[r, : int(probe.completion_mask[r].sum())]) for r in range(len(probe))]
    rows = [{"row": r, "fact_value": bool(is_fact), "perception": bool(types.perception[r, t]),
             "reasoning": bool(types.reasoning[r, t]), "dependency": float(dep[r, t]), "entropy": float(vd.entropy[r, t])}
            for r, toks in enumerate(tokens) for t, is_fact in enumerate(shapes.fact_value_mask(toks))]
    share = pd.DataFrame(rows).groupby("fact_value")[["perception", "reasoning", "dependency", "entropy"]].mean()
    fact_share = float(share.loc[True, "perception"]) if True in share.index else float("nan")
    other_share = float(share.loc[False, "perception"]) if False in share.index else float("nan")
    share = share.rename(index={True: "stated visual fact", False: "other tokens"})
    pick = int(np.argmax([len(t) for t in tokens][:8]))
    return TokenProbe(exs, tokens, probe.completion_ids, probe.completion_mask, vd.delta(P.perturbation), dep,
                      vd.entropy, types, share, fact_share, other_share, pick)


@dataclass
class AttentionView:
    """Attention of the probe's picked response on the image: `attention` (`ImageAttention`, one row),
    `token` the index of its most image-dependent token, `heatmap` [rows, cols] that token's attention
    over the patch grid and `image_mass` its share of attention on the image."""

    attention: ImageAttention
    token: int
    heatmap: np.ndarray
    image_mass: float
    image: np.ndarray
    token_text: str


def attention_on_image(run: Setup, probe: TokenProbe) -> AttentionView:
    """Where the base model looks when it writes the picked response's most image-dependent token
    (argmax_t |Δ_t|): attention weights of that token's query over the image patches, mean over layers
    and heads (`analysis.perturbation.image_attention`)."""
    r, ex = probe.pick, probe.examples[probe.pick]
    att = image_attention(run.policy, run.processor, [ex.prompt], [ex.image], probe.completion_ids[r : r + 1],
                          probe.completion_mask[r : r + 1])
    t_star = int(probe.dependency[r, : len(probe.tokens[r])].argmax())
    return AttentionView(att, t_star, att.heatmap(0, t_star), float(att.image_mass[0, t_star]), ex.image,
                         probe.tokens[r][t_star])


def variants(P: Params) -> dict[str, list]:
    """The four token-weight variants of the ablation: {name: `token_weights` specs}."""
    return {
        "full": [],
        "perception-only": [("tor_perception_only", {"perception_frac": P.perception_frac})],
        "reasoning-only": [("tor_reasoning_only", {"reasoning_frac": P.reasoning_frac})],
        "ToR": [("tor", {"gamma_p": P.gamma_p, "perception_frac": P.perception_frac, "reasoning_frac": P.reasoning_frac})],
    }


@dataclass
class Ablation:
    """What `ablation` returns.

    Attributes:
        final: one row per (run, seed) from `compare_methods`, plus a `variant` column.
        table: mean / sd over seeds per (method, variant): accuracy, perception, top_answer_share, seconds.
        methods, variants, seeds: the grid. base_*: the base model's held-out numbers.
        ablation: {"<method> <variant>": {"accuracy", "perception_accuracy", "top_answer_share"}} (results.json).
    """

    final: pd.DataFrame
    table: pd.DataFrame
    methods: list[str]
    variants: list[str]
    seeds: list[int]
    base_accuracy: float
    base_perception_accuracy: float
    base_top_answer_share: float
    mean_top_answer_share_after_rl: float
    ablation: dict
    seconds_per_run: float


def ablation(run: Setup, P: Params) -> Ablation:
    """full vs perception-only vs reasoning-only vs ToR on every base method in `P.methods`: one
    `compare_methods` call over runs "<METHOD> <variant>" and `run.seeds`, final greedy accuracy and
    perception accuracy on the held-out questions."""
    var = variants(P)
    runs = {f"{m.upper()} {v}": {"method": m, "token_weights": w} for m in P.methods for v, w in var.items()}
    common = dict(steps=P.steps, num_prompts=P.num_prompts, num_generations=P.num_generations, lr=P.lr,
                  max_new_tokens=P.max_new_tokens, max_sampling_rounds=P.max_sampling_rounds,
                  micro_batch_size=P.micro_batch_size)
    cmp = compare_methods(run.policy, run.processor, run.task, runs, run.seeds, common=common, eval_every=0,
                          eval_n=P.eval_n, eval_max_new_tokens=P.max_new_tokens)
    final = cmp.final.copy()
    final["variant"] = final["run"].str.split(" ", n=1).str[1]
    table = final.groupby(["method", "variant"]).agg(
        accuracy=("eval_accuracy", "mean"), accuracy_sd=("eval_accuracy", "std"),
        perception=("eval_perception_accuracy", "mean"), perception_sd=("eval_perception_accuracy", "std"),
        top_answer_share=("eval_top_answer_share", "mean"), seconds=("seconds", "mean")).reindex(list(var), level="variant")
    summary = {f"{m} {v}": {"accuracy": float(r.accuracy), "perception_accuracy": float(r.perception),
                            "top_answer_share": float(r.top_answer_share)} for (m, v), r in table.iterrows()}
    return Ablation(final, table, list(P.methods), list(var), list(run.seeds), float(final["base_accuracy"].iloc[0]),
                    float(final["base_perception_accuracy"].iloc[0]), float(final["base_top_answer_share"].iloc[0]),
                    float(final["eval_top_answer_share"].mean()), summary, float(final["seconds"].mean()))


def claims(abl: Ablation) -> list[dict]:
    """The paper's claims per base method M, each a paired comparison of final held-out greedy accuracy
    over the seeds both runs share (same seed = same prompts, same base, same held-out questions), signed
    in the paper's direction, SESOI 2 points (`claims.SESOI_ACCURACY`), decided by `verdicts.decide`:

    - `<m>_perception_only_below_full`: M full − M perception-only > 0;
    - `<m>_reasoning_only_below_full`: M full − M reasoning-only > 0;
    - `<m>_tor_beats_full`: M ToR − M full > 0.

    Every comparison involves M full, so none decides anything unless M full learned: its per-seed gain
    over the base model's accuracy must be above 2 SE (`verdicts.learned`); otherwise the claim is
    inconclusive (RL that ends below the base compared nothing). One seed is always inconclusive.

    Returns:
        [{"id", "claim", "paper", "measured", "verdict"}], the arguments of `Results.claim`; `measured`
        holds both runs' seed means and per-seed values, the paired effect and M full's gain, in points.
    """
    out = []
    for m in abl.methods:
        M = m.upper()
        full = abl.final.loc[abl.final["run"] == f"{M} full"].sort_values("seed")
        gains = (full["eval_accuracy"] - full["base_accuracy"]).astype(float).tolist()  # M full's gain over the base, per seed
        full_learned = learned(gains)
        tests = [(f"{m}_{v.replace('-', '_')}_below_full", f"{M} full", f"{M} {v}",
                  f"on {M}, optimising only {v.split('-')[0]} tokens underperforms full optimisation",
                  "holds (single-type variants below full)") for v in ("perception-only", "reasoning-only")]
        tests.append((f"{m}_tor_beats_full", f"{M} ToR", f"{M} full", f"on {M}, ToR reweighting beats full optimisation",
                      "holds (ToR above GRPO/DAPO baselines)"))
        for cid, treat, ctrl, text, paper in tests:
            pair = by_seed(abl.final, "eval_accuracy", treat, ctrl)
            v = paired(pair[treat].tolist(), pair[ctrl].tolist(), SESOI_ACCURACY, baseline_learned=full_learned,
                       max_diff=1.0)  # accuracies: n tied seeds are judged by the binomial tie bound
            seeds = [int(s) for s in pair.index]
            measured = {treat: round(float(pair[treat].mean()), 4) if seeds else float("nan"),
                        ctrl: round(float(pair[ctrl].mean()), 4) if seeds else float("nan"), "seeds": seeds,
                        "per_seed": {treat: [round(float(x), 4) for x in pair[treat]], ctrl: [round(float(x), 4) for x in pair[ctrl]]},
                        "effect_points": round(100 * v.effect, 2),
                        "full_gain_over_base_points": round(100 * sum(gains) / len(gains), 2) if gains else float("nan")}
            out.append({"id": cid, "claim": f"{text} (paired by seed, SESOI {100 * SESOI_ACCURACY:g} points of accuracy)",
                        "paper": paper, "measured": measured, "verdict": v})
    return out


def record_claims(results, abl: Ablation) -> None:
    """Record every claim of `claims(abl)`, with its verdict, in `results` (a `workbench.notebook.Results`)."""
    for c in claims(abl):
        results.claim(**c)
