"""Held-out evaluation: the one evaluator every trainer, recipe and notebook calls, pass@k, and the
verdicts of claims (holds / refuted / inconclusive from paired comparisons, `verdicts.py`).

    ev = evaluate(model, tokenizer, task, task.eval_problems(500))            # greedy accuracy
    ev = evaluate(model, tokenizer, task, problems, k=(1, 8, 32))             # + pass@k from 32 samples
    ev = evaluate(model, tokenizer, task, problems, greedy=False, samples=8)  # mean@8 (FIPO's avg@k)
"""

from workbench.evaluation.heldout import EvalResult, evaluate
from workbench.evaluation.passk import pass_at_k
from workbench.evaluation.verdicts import Verdict, decide, decide_paired, learned

__all__ = ["EvalResult", "Verdict", "decide", "decide_paired", "evaluate", "learned", "pass_at_k"]
