"""The Δlog p experiment glue (workbench/analysis/delta_logp.py): pure helpers against hand / naive
references, and the four experiments on tiny random Qwen2 models with the workbench tokenizer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from workbench.analysis import delta_logp as dlp
from workbench.models.generation import sample
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.tasks import arithmetic

MAX_NEW = 6


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def char_lm(tok, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      initializer_range=0.3, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def models(tok):
    return char_lm(tok, 0), char_lm(tok, 1)  # (base, rl)


PROBLEMS = arithmetic.generate(5, seed=3)


def text_score(problem, text: str) -> float:
    """A score that depends on the whole text, so equal scores mean (almost surely) equal decodes."""
    return float(sum(map(ord, text)) % 97)


def test_arithmetic_token_kinds():
    tokens = list("7+3=10\n10*2=20\n20-4=-16\nanswer: -16") + ["<|endoftext|>"]
    kinds = dlp.arithmetic_token_kinds(tokens)
    expect = (["operand", "operator", "operand", "equals", "result", "result", "newline"]
              + ["operand", "operand", "operator", "operand", "equals", "result", "result", "newline"]
              + ["operand", "operand", "operator", "operand", "equals", "result", "result", "result", "newline"]
              + ["answer text"] * 8 + ["answer"] * 3 + ["end"])
    assert kinds == expect
    assert dlp.arithmetic_token_kinds(list("-3+1=-2")) == ["operand", "operand", "operator", "operand", "equals",
                                                           "result", "result"]


def test_concentration_matches_naive():
    v = np.random.default_rng(0).laplace(size=101)
    for frac in (0.01, 0.05, 0.5, 1.0):
        k = math.ceil(frac * v.size)
        ref = sum(sorted(abs(x) for x in v)[::-1][:k]) / sum(abs(x) for x in v)
        assert dlp.concentration(v, frac) == pytest.approx(ref, abs=1e-12)
    assert math.isnan(dlp.concentration(np.zeros(4)))


def test_reach_budgets_interpolates_the_seed_mean():
    rows = []
    curves = {"a": [(0.0, 0.2, 0.2), (0.1, 0.4, 0.6), (0.5, 0.8, 0.8), (1.0, 0.8, 0.8)],  # mean 0.2, 0.5, 0.8, 0.8
              "b": [(0.0, 0.9, 0.7), (0.1, 0.9, 0.9), (0.5, 0.9, 0.9), (1.0, 0.8, 0.8)],  # reaches at budget 0
              "c": [(0.0, 0.2, 0.2), (0.1, 0.3, 0.3), (0.5, 0.4, 0.4), (1.0, 0.5, 0.5)]}  # never reaches
    for name, pts in curves.items():
        for b, a0, a1 in pts:
            rows += [{"selector": name, "budget": b, "seed": 0, "accuracy": a0},
                     {"selector": name, "budget": b, "seed": 1, "accuracy": a1}]
    reach = dlp.reach_budgets(pd.DataFrame(rows), target=0.8)
    assert reach["a"] == pytest.approx(0.1 + (0.8 - 0.5) / (0.8 - 0.5) * 0.4)
    assert reach["b"] == 0.0
    assert math.isnan(reach["c"])
    assert dlp.reach_budgets(pd.DataFrame(rows), target=0.65)["a"] == pytest.approx(0.1 + 0.15 / 0.3 * 0.4)


def test_best_lambda_gain_paired_se_matches_naive():
    rng = np.random.default_rng(1)
    n = 40
    scores = {0.0: rng.integers(0, 2, n), 0.5: rng.integers(0, 2, n), 1.0: rng.integers(0, 2, n)}
    frame = pd.DataFrame([{"lam": lam, "problem_index": i, "score": float(s[i])} for lam, s in scores.items()
                          for i in range(n)])
    out = dlp.best_lambda_gain(frame)
    best = max((0.5, 1.0), key=lambda lam: scores[lam].mean())
    diffs = [float(scores[best][i] - scores[0.0][i]) for i in range(n)]
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) / math.sqrt(n)
    assert out["best_lam"] == best and out["gain"] == pytest.approx(mean) and out["paired_se"] == pytest.approx(se)
    with pytest.raises(ValueError, match="λ = 0"):
        dlp.best_lambda_gain(frame[frame["lam"] == 0.5])


def test_rollout_token_stats_scores_only_response_tokens(tok, models):
    base, rl = models
    out = dlp.rollout_token_stats(rl, base, tok, PROBLEMS[:3], num_samples=2, max_new_tokens=MAX_NEW, seed=0)
    assert len(out.texts) == 6 and out.problems[0] is out.problems[1]
    f = out.frame
    gen = sample(rl, tok, [format_prompt(p.question) for p in PROBLEMS[:3]], num_samples=2, max_new_tokens=MAX_NEW,
                 generator=torch.Generator().manual_seed(0))
    assert f.groupby("seq_id").size().tolist() == gen.completion_mask.sum(1).tolist()
    assert gen.texts == out.texts
    np.testing.assert_allclose(f["delta_logp"], f["logp_rl"] - f["logp_base"], atol=1e-6)
    assert (f["abs_delta_logp"] == f["delta_logp"].abs()).all() and (f["kl"] >= -1e-6).all()
    assert f["step"].tolist() == [s for n in gen.completion_mask.sum(1).tolist() for s in range(n)]
    same = dlp.rollout_token_stats(rl, rl, tok, PROBLEMS[:2], max_new_tokens=MAX_NEW).frame
    assert (same["delta_logp"] == 0).all()


def test_replacement_budget_0_is_base_and_1_is_rl_on_every_shard(tok, models):
    base, rl = models
    curve = dlp.replacement_experiment(base, rl, tok, PROBLEMS, budgets=[0.0, 0.5, 1.0], selectors=["delta_logp", "random"],
                                       seeds=[4, 5], max_new_tokens=MAX_NEW, score_fn=text_score)
    prompts = [format_prompt(p.question) for p in PROBLEMS]
    want = {0.0: sample(base, tok, prompts, greedy=True, max_new_tokens=MAX_NEW).texts,
            1.0: sample(rl, tok, prompts, greedy=True, max_new_tokens=MAX_NEW).texts}
    pp = curve.per_prompt
    for budget, texts in want.items():
        for name in ("delta_logp", "random"):
            got = pp[(pp.budget == budget) & (pp.selector == name)].sort_values("prompt_index")
            assert got["prompt_index"].tolist() == list(range(len(PROBLEMS)))  # each problem in exactly one shard
            assert got["score"].tolist() == [text_score(None, t) for t in texts]
    assert sorted(pp.groupby("seed")["prompt_index"].nunique().tolist()) == [2, 3]
    with pytest.raises(ValueError, match="one problem per seed"):
        dlp.replacement_experiment(base, rl, tok, PROBLEMS[:1], budgets=[0.0], seeds=[0, 1], max_new_tokens=MAX_NEW)


def test_extrapolation_sweep_lambda_0_is_the_rl_model(tok, models):
    base, rl = models
    sweep = dlp.extrapolation_sweep(rl, base, tok, PROBLEMS, [0.0, 1.0], max_new_tokens=MAX_NEW, batch_size=2,
                                    score_fn=text_score)
    texts = sample(rl, tok, [format_prompt(p.question) for p in PROBLEMS], greedy=True, max_new_tokens=MAX_NEW).texts
    at0 = sweep[sweep.lam == 0.0].sort_values("problem_index")
    assert at0["score"].tolist() == [text_score(None, t) for t in texts]
    assert len(sweep) == 2 * len(PROBLEMS)


def test_reweighting_comparison_pairs_variants_by_seed(tok, models):
    from workbench.experiments.delta_logp import reweighting_comparison
    from workbench.rl.tasks import arithmetic_task

    base, _ = models
    out = reweighting_comparison(base, tok, arithmetic_task(), seeds=[0, 1], alpha=0.2, start_accuracy=0.5, steps=1,
                                     num_prompts=2, num_generations=2, max_new_tokens=12, eval_n=2)
    assert sorted(map(tuple, out.runs[["variant", "seed"]].values.tolist())) == [
        ("dapo", 0), ("dapo", 1), ("dapo + low_prob", 0), ("dapo + low_prob", 1)]
    assert out.runs["final_accuracy"].between(0, 1).all()
    assert set(out.curves["step"]) == {0, 1} and (out.curves[out.curves.step == 0]["eval_accuracy"] == 0.5).all()
    with pytest.raises(ValueError, match="at least one seed"):
        reweighting_comparison(base, tok, arithmetic_task(), seeds=[], steps=1)
