"""RL'd zoo models: `tiny-arith-grpo` and `tiny-arith-dapo` — the `cpu` preset of each method run on
the `tiny-arith` base, cached like any zoo model (with the training curve in `info.json`).

    python -m workbench.recipes grpo     # run the cpu preset, print the held-out accuracy curve

`arith_rl_preset(method)` is the preset; notebooks that need an RL model (Δlog p, the quickstart)
load these names, so the model is trained once and reused.
"""

from __future__ import annotations

import copy
import time

from workbench.evaluation import evaluate
from workbench.models.zoo import load_model, register_recipe
from workbench.rl import RLConfig, train
from workbench.rl.tasks import arithmetic_task

#: settings shared by every method's `cpu` preset on tiny-arith
ARITH_RL_CPU = dict(steps=300, num_prompts=32, num_generations=8, max_new_tokens=48, lr=5e-5, warmup_steps=10,
                    eval_every=25, eval_n=200)
#: each method's preset is sized to about ten minutes on 2 cores. GRPO runs only the ~45 % of groups
#: with mixed rewards through the update, so it affords 64 prompts a step (250 steps, ~500 s); DAPO's
#: dynamic sampling draws ~2.2 groups per group it keeps and updates on all of them, so it gets 240
#: steps of 32 (~560 s). Other methods use the shared settings.
ARITH_RL_CPU_METHOD = {"grpo": dict(num_prompts=64, steps=250), "dapo": dict(steps=240)}


def arith_rl_preset(method: str) -> dict:
    """The `cpu` preset of `method` on tiny-arith: `ARITH_RL_CPU` updated by `ARITH_RL_CPU_METHOD[method]`."""
    return {**ARITH_RL_CPU, **ARITH_RL_CPU_METHOD.get(method, {})}


def rl_arith(method: str, seed: int = 0, **overrides):
    """Train `tiny-arith` with `method` (grpo | dapo | ...) at its cpu preset (`arith_rl_preset`); returns
    (model, tokenizer, info)."""
    base, tok = load_model("tiny-arith", device="cpu")
    task = arithmetic_task()
    held_out = task.eval_problems(500)
    base_acc = evaluate(base, tok, task, held_out).accuracy
    cfg = RLConfig.for_method(method, seed=seed, **{**arith_rl_preset(method), **overrides})
    t0 = time.time()
    result = train(copy.deepcopy(base), tok, task, cfg)
    seconds = time.time() - t0
    final_acc = evaluate(result.model, tok, task, held_out).accuracy
    curve = [(h["step"], h["eval_accuracy"]) for h in result.history if "eval_accuracy" in h]
    info = {"method": method, "base": "tiny-arith", "base_accuracy_500": base_acc, "final_accuracy_500": final_acc,
            "train_seconds": round(seconds, 1), "eval_curve_200": curve, "config": {k: v for k, v in vars(cfg).items() if k != "token_weights"},
            "history": result.history}
    return result.model, tok, info


@register_recipe("tiny-arith-grpo", version="5")  # v5: inverse-CDF sampler (other tokens for the same seed)
def tiny_arith_grpo(seed: int = 0):
    """`tiny-arith` after the cpu preset of GRPO (arXiv 2402.03300)."""
    return rl_arith("grpo", seed)


@register_recipe("tiny-arith-dapo", version="5")
def tiny_arith_dapo(seed: int = 0):
    """`tiny-arith` after the cpu preset of DAPO (arXiv 2503.14476)."""
    return rl_arith("dapo", seed)
