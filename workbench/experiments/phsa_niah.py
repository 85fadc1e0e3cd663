"""PHSA (arXiv 2601.02819), notebook 09, section 3: sparse fine-tuning at the inference sparsity, then
needle-in-a-haystack accuracy (presets and section 1: `workbench.experiments.phsa`).

    papermill notebooks/09_phsa.ipynb out.ipynb -p preset cpu

Each attention type gets its own copy of the dense-trained model, switched to that attention at the
inference configuration (top-K = `ft_top_k`) and fine-tuned `ft_steps` SFT steps on fresh haystack
documents (`workbench.train.sparse.sparse_finetune`; loss on the needle, the question and the answer).
Accuracy is greedy exact match through the one evaluator (`workbench.evaluation.evaluate` on
`tasks.haystack.niah_task`), on held-out documents (seeds 10 000 + 1000 · seed upward), before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from workbench.attention import disable_sparse_attention, enable_sparse_attention
from workbench.attention.information_loss import config_sparsity
from workbench.evaluation import evaluate
from workbench.experiments.presets import Params
from workbench.recipes.haystack import haystack_batches
from workbench.tasks import haystack
from workbench.train.sft import SFTConfig
from workbench.train.sparse import sparse_finetune

if TYPE_CHECKING:
    from workbench.experiments.phsa import Setup

EVAL_BATCH = 4  # documents per greedy `sample` call (the old `niah_accuracy` batch)


@dataclass
class NIAH:
    """What `sparse_niah` returns.

    Attributes:
        per_selector: {name: {"before", "after", "sparsity", "final_loss"}} (dense runs at sparsity 0).
        histories: {name: SFT history, one dict per logged step with "step" and "loss"}.
        predictions: {name: greedy completions after fine-tuning}, aligned with `examples`.
        correct: {name: per-example greedy correctness after fine-tuning (`EvalResult.correct`)}, aligned
            with `examples` (the same held-out documents for every name: the unit of the paired NIAH claim).
        examples: the held-out `HaystackExample`s; sparsity: the shared sparsity at `top_k`, `block_size` and `length`.
    """

    per_selector: dict
    histories: dict
    predictions: dict
    examples: list
    sparsity: float
    length: int
    top_k: int
    kind: str
    steps: int
    correct: dict = field(default_factory=dict)
    block_size: int = 16

    def as_dict(self) -> dict:
        """The NIAH results as results.json records them."""
        return {"length": self.length, "top_k": self.top_k, "kind": self.kind, "n_eval": len(self.examples),
                "steps": self.steps, "per_selector": self.per_selector}

    def after(self, name: str) -> float:
        """Accuracy of `name` after fine-tuning (NaN when it did not run)."""
        return self.per_selector.get(name, {}).get("after", float("nan"))


def niah_accuracy(model, tokenizer, task, examples: list):
    """Greedy exact match of `model` (with whatever attention it has enabled) on haystack `examples`:
    `evaluate` in batches of `EVAL_BATCH` prompts, decoding the longest answer's tokens + 1."""
    return evaluate(model, tokenizer, task, examples, batch_size=EVAL_BATCH,
                    max_new_tokens=haystack.answer_token_budget(tokenizer, examples))


def sparse_niah(run: Setup, P: Params, log=print) -> NIAH:
    """For each attention type of `P.ft_selectors`: NIAH accuracy of the dense-trained model with that
    attention switched on, then `P.ft_steps` sparse SFT steps (batches of `P.ft_batch` documents of
    `P.ft_length` characters, seed `P.seed + 1`, lr `P.ft_lr`), then NIAH accuracy of the tuned copy."""
    tok = run.tokenizer
    examples = haystack.generate(P.n_eval, P.niah_kind, P.ft_length, seed=10_000 + 1000 * P.seed)
    geometry = dict(top_k=P.ft_top_k, block_size=P.ft_block_size)
    sparsity = config_sparsity(run.cfg.replace(**geometry),
                               len(tok(examples[0].prompt, add_special_tokens=False)["input_ids"]))
    task = haystack.niah_task(P.niah_kind, P.ft_length)
    if log:
        log(f"NIAH at {P.ft_length} characters, top-K {P.ft_top_k} of {P.ft_block_size}-token blocks: sparsity {sparsity:.2%}")
    per, histories, predictions, correct = {}, {}, {}, {}
    for name in P.ft_selectors:
        cfg = run.cfg.replace(selector=name, **geometry)
        enable_sparse_attention(run.lm, cfg)
        before = niah_accuracy(run.lm, tok, task, examples).accuracy
        disable_sparse_attention(run.lm)
        batches = haystack_batches(tok, P.ft_batch, [P.ft_length], seed=P.seed + 1, kinds=(P.niah_kind,), label="needles")
        sft_cfg = SFTConfig(steps=P.ft_steps, lr=P.ft_lr, warmup_steps=min(5, P.ft_steps), log_every=1)
        tuned, histories[name] = sparse_finetune(run.lm, cfg, batches, sft_cfg, desc=f"sparse SFT {name}")
        after = niah_accuracy(tuned, tok, task, examples)
        predictions[name], correct[name] = after.completions, [bool(c) for c in after.correct]
        per[name] = {"before": before, "after": after.accuracy, "sparsity": 0.0 if name == "dense" else sparsity,
                     "final_loss": histories[name][-1]["loss"] if histories[name] else None}
        if log:
            log(f"{name:>10}: NIAH {before:.0%} -> {after.accuracy:.0%} after {P.ft_steps} steps "
                f"(e.g. {after.completions[0]!r} for {examples[0].answer!r})")
        del tuned
    return NIAH(per, histories, predictions, examples, sparsity, P.ft_length, P.ft_top_k, P.niah_kind, P.ft_steps,
                correct, P.ft_block_size)
