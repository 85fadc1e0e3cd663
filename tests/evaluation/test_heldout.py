"""The one held-out evaluator: greedy accuracy, mean@k and pass@k against naive references."""

import itertools
import math

import pytest
import torch

from workbench.evaluation import evaluate, pass_at_k
from workbench.models.generation import sample
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.tasks.base import RewardSpec, Task


@pytest.fixture(scope="module")
def lm():
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(3)
    tok = build_tokenizer()
    return Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval(), tok


def has_digit_task(metrics=False):
    return Task("digits", lambda n, rng: [], format_prompt, [RewardSpec("d", lambda c, p: float(any(ch.isdigit() for ch in c)))],
                heldout_metrics=(lambda texts, probs: {"n_texts": float(len(texts))}) if metrics else None)


def test_pass_at_k_matches_subset_enumeration():
    for n in range(1, 7):
        for c in range(n + 1):
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                naive = sum(any(i < c for i in s) for s in subsets) / len(subsets)
                assert math.isclose(pass_at_k(n, c, k), naive, rel_tol=0, abs_tol=1e-12)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(2, 1, 3)


def test_greedy_accuracy_equals_one_prompt_at_a_time(lm):
    model, tok = lm
    task = has_digit_task(metrics=True)
    problems = [str(i) for i in range(7)]
    ev = evaluate(model, tok, task, problems, max_new_tokens=6, batch_size=3)
    naive = [sample(model, tok, [format_prompt(p)], greedy=True, max_new_tokens=6).texts[0] for p in problems]
    assert ev.completions == naive
    assert ev.correct == [any(ch.isdigit() for ch in t) for t in naive]
    assert ev.accuracy == sum(ev.correct) / 7 and ev.n == 7 and ev.metrics == {"n_texts": 7.0}
    assert 0 < ev.length <= 6 and 0 <= ev.truncated <= 1


def test_samples_give_mean_at_k_and_pass_at_k_from_the_same_draws(lm):
    model, tok = lm
    task = has_digit_task()
    problems = [str(i) for i in range(5)]
    ev = evaluate(model, tok, task, problems, greedy=False, k=(1, 2, 4), max_new_tokens=5,
                  generator=torch.Generator().manual_seed(0))
    assert len(ev.completions) == 20 and len(ev.sampled_correct) == 5
    assert ev.accuracy == pytest.approx(sum(ev.sampled_correct) / 20)  # mean@4
    assert ev.pass_at_k[1] == pytest.approx(ev.accuracy)  # pass@1 from n samples is the mean accuracy
    assert ev.pass_at_k[4] == pytest.approx(sum(c > 0 for c in ev.sampled_correct) / 5)
    again = evaluate(model, tok, task, problems, greedy=False, k=(1, 2, 4), max_new_tokens=5,
                     generator=torch.Generator().manual_seed(0))
    assert again.completions == ev.completions  # seeded: same draws


def test_bad_input_is_one_sentence(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="empty list of problems"):
        evaluate(model, tok, has_digit_task(), [])
    with pytest.raises(ValueError, match="pass@k needs k <= samples, got k=8 with 4 samples"):
        evaluate(model, tok, has_digit_task(), ["1"], samples=4, k=(8,))
    with pytest.raises(ValueError, match="greedy=True or samples > 0"):
        evaluate(model, tok, has_digit_task(), ["1"], greedy=False)
