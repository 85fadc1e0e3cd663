"""Quickstart, notebook 00: the tiny base model `tiny-arith`, its held-out greedy accuracy and pass@k, a few
sampled responses with their per-token log-probs, and one RL run — does RLVR raise greedy accuracy, and
does it narrow pass@k at large k, i.e. *sharpen* rather than widen the base (Yue et al., arXiv 2504.13837)?

    papermill notebooks/00_quickstart.ipynb out.ipynb -p preset smoke        # CI, seconds
    papermill notebooks/00_quickstart.ipynb out.ipynb -p preset gpu -p model /path/to/Qwen2.5-Math-1.5B

pass@k is the unbiased estimator of Chen et al. (arXiv 2107.03374) from n = max(k) samples per problem,
pass@k = 1 − C(n − c, k) / C(n, k) with c correct samples (`workbench.evaluation.pass_at_k`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import torch

from workbench.evaluation import EvalResult, evaluate, pass_at_k
from workbench.evaluation.verdicts import decide_paired, decide_range, decide_threshold
from workbench.experiments.presets import Params, Presets
from workbench.models.generation import Generation, sample
from workbench.models.scoring import completion_logprobs
from workbench.models.tokenizer import format_prompt
from workbench.models.zoo import describe_info, load_model
from workbench.notebook import ParameterError
from workbench.recipes.rl_arith import arith_rl_preset
from workbench.rl import RLConfig, train
from workbench.rl.tasks import arithmetic_task
from workbench.tasks import arithmetic
from workbench.utils import seed_everything

#: the notebook's presets. `rl_steps` None at cpu = load the zoo's cached run `tiny-arith-<rl_method>`;
#: `rl_overrides` shrink the smoke RL run (applied after the method's cpu preset).
PRESETS = Presets(
    {
        "smoke": dict(n_eval=64, pass_k=4, pass_k_max=4, rl_steps=2,
                      rl_overrides=dict(num_prompts=4, num_generations=4, eval_n=16)),
        "cpu": dict(n_eval=500, pass_k=8, pass_k_max=32, rl_steps=None, rl_overrides={}),
        "gpu": dict(n_eval=500, pass_k=8, pass_k_max=32, rl_steps=100, rl_overrides={}),
    },
    choices={"rl_method": ["grpo", "dapo", "dr_grpo"]},
    ranges={"rl_steps": (1, None), "n_eval": (1, None), "n_show": (0, 64), "temperature": (0.0, 10.0),
            "pass_k": (1, 64), "pass_k_max": (1, 256), "max_new_tokens": (1, 4096)},
)


#: zoo models the notebook loads beyond `model` (for the runner's plan): the cpu preset's cached RL run
ZOO_MODELS_USED = {"cpu": ["tiny-arith-grpo"]}


class Loaded(NamedTuple):
    """The base policy, its tokenizer and a one-paragraph description (parameters, device, zoo info)."""

    policy: torch.nn.Module
    tokenizer: object
    summary: str


def load(P: Params) -> Loaded:
    """Seed python / numpy / torch with `P.seed` and load `P.model` (zoo name or local checkpoint)."""
    seed_everything(P.seed)
    policy, tokenizer = load_model(P.model, device=P.device)
    summary = (f"{P.model}: {sum(p.numel() for p in policy.parameters()) / 1e6:.2f}M parameters on {policy.device}\n"
               f"zoo info: {describe_info(policy)}")
    return Loaded(policy, tokenizer, summary)


def pass_ks(P: Params) -> list[int]:
    """The k of the pass@k curve: powers of two up to `pass_k_max`, plus 1 and `pass_k` (sorted)."""
    return sorted({2**i for i in range(9) if 2**i <= P.pass_k_max} | {1, P.pass_k})


def eval_problems(P: Params) -> list:
    """The first `P.n_eval` problems of the frozen held-out split (`data/arithmetic/eval.jsonl`)."""
    return arithmetic.load_eval_set(P.n_eval)


def heldout(policy, tokenizer, P: Params) -> EvalResult:
    """Greedy accuracy and pass@k (k = `pass_ks(P)`, max(k) samples per problem at `P.temperature`, from a
    generator seeded with `P.seed`) on `eval_problems(P)`, completions capped at `P.max_new_tokens`."""
    return evaluate(policy, tokenizer, arithmetic_task(tokenizer=tokenizer), eval_problems(P), k=pass_ks(P), temperature=P.temperature,
                    max_new_tokens=P.max_new_tokens, generator=torch.Generator().manual_seed(P.seed))


@dataclass
class Samples:
    """`P.n_show` sampled responses to the first held-out problems: `gen` (the `Generation`, rows = problems),
    `correct` [n] (exact match), `report` (question, response, verdict per problem, as text)."""

    problems: list
    gen: Generation
    correct: list[bool]
    report: str


def sample_responses(policy, tokenizer, P: Params) -> Samples:
    """One response per problem at `P.temperature` (generator seeded with `P.seed`)."""
    shown = eval_problems(P)[:P.n_show]
    gen = sample(policy, tokenizer, [format_prompt(p.question, tokenizer) for p in shown], temperature=P.temperature,
                 max_new_tokens=P.max_new_tokens, generator=torch.Generator().manual_seed(P.seed))
    correct = [arithmetic.reward(text, p.answer) >= 1 for p, text in zip(shown, gen.texts)]
    report = "\n".join(f"Q: {p.question}\n{text}\n  -> {'correct' if ok else f'wrong (expected {p.answer})'}\n"
                       for p, text, ok in zip(shown, gen.texts, correct))
    return Samples(shown, gen, correct, report)


@dataclass
class TokenLogprobs:
    """One response's tokens [T] and log π(y_t | context) [T] (nats); `mean` = Σ log π / T."""

    question: str
    tokens: list[str]
    values: list[float]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


def token_logprobs(policy, tokenizer, samples: Samples, row: int = 0) -> TokenLogprobs:
    """Score every sampled response under `policy` and return row `row`'s per-token log-probs."""
    gen = samples.gen
    logp, _ = completion_logprobs(policy, gen.prompt_ids, gen.prompt_mask, gen.completion_ids, gen.completion_mask,
                                  with_entropy=True)
    n_tok = int(gen.completion_mask[row].sum())
    tokens = tokenizer.convert_ids_to_tokens(gen.completion_ids[row, :n_tok].tolist())
    return TokenLogprobs(samples.problems[row].question, tokens, logp[row, :n_tok].tolist())


@dataclass
class RLRun:
    """An RL run from the base: the trained `policy`, the trainer's `history` (one dict per step; `eval_accuracy`
    on evaluation steps, measured on the first `curve_n` held-out problems), `curve_base` (the base's greedy
    accuracy on those same problems: the curve's step 0), greedy accuracy `before` / `after` on the notebook's
    `eval_problems(P)` (`before` is the notebook's one base number) and a line on where the run came from."""

    policy: torch.nn.Module
    history: list[dict]
    curve_base: float
    curve_n: int
    before: float
    after: float
    note: str


def rl_run(policy, tokenizer, P: Params, base: EvalResult) -> RLRun:
    """GRPO / DAPO / Dr.GRPO (`P.rl_method`) on the arithmetic task with the exact-match reward.

    With `rl_steps` None and the zoo base `tiny-arith` (the cpu preset) the run is the zoo's
    `tiny-arith-<method>` (trained once, cached with its curve); otherwise `P.rl_steps` steps of the
    method's cpu preset (`arith_rl_preset`, then `P.rl_overrides`) run here on a copy of `policy`.
    `base` is the base's evaluation on `eval_problems(P)` (from `heldout`): its greedy accuracy is the notebook's
    one base number, and its per-problem correctness gives the curve's step 0 without a second evaluation;
    `after` is measured on the same problems.
    """
    task, problems = arithmetic_task(tokenizer=tokenizer), eval_problems(P)
    if P.rl_steps is None:
        if P.model != "tiny-arith":
            raise ParameterError(f"parameter 'rl_steps' must be set for model {P.model!r} (only tiny-arith has a cached RL run)")
        rl_policy, _ = load_model(f"tiny-arith-{P.rl_method}", device=P.device)
        info = rl_policy.workbench_info
        history, curve_n = info["history"], int(info["config"]["eval_n"])
        note = f"cached run: {info['train_seconds']:.0f} s of training"
    else:
        cfg = RLConfig.for_method(P.rl_method, **{**arith_rl_preset(P.rl_method), "steps": P.rl_steps, "seed": P.seed,
                                                  "eval_every": max(1, P.rl_steps // 4), "eval_n": min(200, P.n_eval),
                                                  **P.rl_overrides})
        run = train(copy.deepcopy(policy), tokenizer, task, cfg)
        rl_policy, history, curve_n = run.model, run.history, cfg.eval_n
        note = f"trained here: {P.rl_steps} steps"
    # the curve's problems are the first `curve_n` of the frozen split, a prefix of `problems` when curve_n ≤ n_eval
    curve_base = (sum(base.correct[:curve_n]) / curve_n if curve_n <= len(base.correct)
                  else evaluate(policy, tokenizer, task, task.eval_problems(curve_n)).accuracy)
    after = evaluate(rl_policy, tokenizer, task, problems).accuracy
    return RLRun(rl_policy, history, curve_base, curve_n, base.accuracy, after, note)


#: the claims' smallest effect of interest: 2 points of pass@k
SESOI_PASS_K = 0.02


def record_claims(results, ev: EvalResult, ev_rl: EvalResult, rl: RLRun, P: Params) -> None:
    """The quickstart's three claims with their verdicts, from the base's and the RL model's evaluations on the
    same held-out problems (greedy correctness and per-problem pass@k paired by problem; one RL seed, so the
    CIs cover evaluation noise, not run-to-run variance):

    - `partial_accuracy`: the base's greedy accuracy lies in [20 %, 50 %] (`decide_range`);
    - `rl_improves`: RL raises greedy accuracy by ≥ 15 points (`decide_threshold` on per-problem differences);
    - `rl_narrows_coverage`: pass@k_max of the base ≥ the RL model's, SESOI 2 points (`decide_paired`).
    """
    kmax = max(ev.pass_at_k)
    v = decide_range([float(c) for c in ev.correct], 0.2, 0.5)
    results.claim("partial_accuracy", "the tiny base model has partial held-out accuracy (20–50%), so RL has signal",
                  paper="20–50%", measured=round(ev.accuracy, 3), verdict=v)
    v = decide_threshold([float(a) - float(b) for a, b in zip(ev_rl.correct, ev.correct)], 0.15)
    results.claim("rl_improves", f"{P.rl_method} raises held-out greedy accuracy of the base by at least 15 points",
                  paper="+15 points", measured=round(100 * v.effect, 1), verdict=v)
    n = kmax  # `heldout` draws max(k) samples per problem
    base_k = [pass_at_k(n, c, kmax) for c in ev.sampled_correct]
    rl_k = [pass_at_k(n, c, kmax) for c in ev_rl.sampled_correct]
    v = decide_paired(base_k, rl_k, SESOI_PASS_K)
    results.claim("rl_narrows_coverage", f"after RL, pass@{kmax} is no higher than the base model's (RL sharpens, arXiv "
                  f"2504.13837; SESOI {100 * SESOI_PASS_K:g} points)", paper="pass@k at large k: base ≥ RL",
                  measured=f"{ev_rl.pass_at_k[kmax]:.3f} vs base {ev.pass_at_k[kmax]:.3f}", verdict=v)

