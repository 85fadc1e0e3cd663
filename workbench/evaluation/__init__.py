"""Held-out evaluation: the one evaluator every trainer, recipe and notebook calls, and pass@k.

    ev = evaluate(model, tokenizer, task, task.eval_problems(500))            # greedy accuracy
    ev = evaluate(model, tokenizer, task, problems, k=(1, 8, 32))             # + pass@k from 32 samples
    ev = evaluate(model, tokenizer, task, problems, greedy=False, samples=8)  # mean@8 (FIPO's avg@k)
"""

from workbench.evaluation.heldout import EvalResult, evaluate
from workbench.evaluation.passk import pass_at_k

__all__ = ["EvalResult", "evaluate", "pass_at_k"]
