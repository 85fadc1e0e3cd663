"""Multi-seed comparison glue: tidy curves, seed bands, the final comparison, held-out eval, f_t view."""

import dataclasses
import math

import pandas as pd
import pytest
import torch
from transformers import Qwen2ForCausalLM

from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer
from workbench.experiments.compare import compare_final, compare_methods, evaluate_heldout, seed_bands
from workbench.experiments.fipo import future_kl_view
from workbench.rl.rewards import RewardSpec
from workbench.rl.tasks import long_arithmetic_task


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval()
    model.config.pad_token_id, model.config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model, tok


def test_seed_bands_match_a_loop():
    rows = [{"run": r, "seed": s, "step": t, "acc": (s + 1) * t + (r == "B")} for r in "AB" for s in range(3) for t in range(3)]
    rows.append({"run": "A", "seed": 0, "step": 5, "acc": float("nan")})
    bands = seed_bands(pd.DataFrame(rows), "acc")
    for r in "AB":
        for t in range(3):
            vals = [(s + 1) * t + (r == "B") for s in range(3)]
            got = bands[(bands["run"] == r) & (bands["step"] == t)].iloc[0]
            mean = sum(vals) / 3
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)
            assert got["mean"] == pytest.approx(mean) and got["std"] == pytest.approx(std)
            assert (got["lo"], got["hi"], got["n"]) == (min(vals), max(vals), 3)
    assert 5 not in set(bands["step"])  # rows without the metric are left out
    with pytest.raises(ValueError, match="metric 'nope' is not a column"):
        seed_bands(pd.DataFrame(rows), "nope")


def test_compare_final_difference_and_standard_error():
    final = pd.DataFrame({"run": ["F"] * 3 + ["D"] * 3, "acc": [0.5, 0.6, 0.7, 0.3, 0.3, 0.6]})
    out = compare_final(final, "acc", "F", "D")
    se = math.sqrt(0.01 / 3 + 0.03 / 3)
    assert out["diff"] == pytest.approx(0.2, abs=1e-4) and out["se"] == pytest.approx(se, abs=1e-4)
    assert out["clear"] is True and out["per_seed"]["D"] == [0.3, 0.3, 0.6]
    assert compare_final(final, "acc", "D", "F")["clear"] is False  # negative difference
    one = compare_final(pd.DataFrame({"run": ["F", "D"], "acc": [0.5, 0.5]}), "acc", "F", "D")
    assert one["se"] == 0.0 and one["clear"] is False  # a tie is not a win
    with pytest.raises(ValueError, match="run 'X' has no final rows"):
        compare_final(final, "acc", "X", "D")


def test_evaluate_heldout_counts_tokens_and_samples():
    model, tok = tiny_lm()
    task = long_arithmetic_task()
    problems = task.eval_problems(5)
    greedy = evaluate_heldout(model, tok, task, problems, max_new_tokens=6)
    again = evaluate_heldout(model, tok, task, problems, max_new_tokens=6)
    assert greedy == again and len(greedy["texts"]) == 5 and 1 <= greedy["length"] <= 6
    sampled = evaluate_heldout(model, tok, task, problems, samples=3, max_new_tokens=6, batch_size=4)
    assert len(sampled["texts"]) == 15 and 0.0 <= sampled["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="empty list of problems"):
        evaluate_heldout(model, tok, task, [])


def test_future_kl_view_is_one_between_identical_policies_and_moves_otherwise():
    model, tok = tiny_lm()
    task = long_arithmetic_task()
    same = future_kl_view(model, model, tok, task, num_prompts=2, num_generations=3, max_new_tokens=6, decay_rates=(4.0, 32.0))
    for w in same.weights.values():
        assert torch.equal(w, torch.ones_like(w))
    assert torch.equal(same.delta, torch.zeros_like(same.delta))
    moved, _ = tiny_lm()
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * torch.randn_like(p))
    view = future_kl_view(model, moved, tok, task, num_prompts=2, num_generations=3, max_new_tokens=6)
    f, valid = view.weights[32.0], view.mask.bool()
    assert (f[valid] != 1).any() and f[valid].min() >= 0.8 - 1e-6 and f[valid].max() <= 1.2 + 1e-6
    assert [len(t) for t in view.tokens] == view.mask.sum(-1).tolist()


def test_compare_methods_tidy_rows_and_snapshots():
    model, tok = tiny_lm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # a graded reward (share of digits), so a random policy's groups have reward variance and the update moves
    # the weights whichever tokens the sampler draws (exact match alone would give all-zero groups)
    digits = RewardSpec("digits", lambda c, p: sum(ch.isdigit() for ch in c) / max(len(c), 1))
    task = dataclasses.replace(long_arithmetic_task(), rewards=[digits])
    runs = {"DAPO": {"method": "dapo"}, "FIPO": {"method": "fipo"}}
    common = dict(steps=2, num_prompts=2, num_generations=2, max_new_tokens=12, num_minibatches=2, lr=1e-3,
                  dynamic_sampling=False, overlong_buffer=4)
    cmp = compare_methods(model, tok, task, runs, [0, 1], common=common, eval_every=1, eval_n=3,
                          snapshot_step=2, snapshot_runs=["FIPO"], log=None)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the base is untouched
    assert len(cmp.curves) == 2 * 2 * 3 and set(cmp.curves["step"]) == {0, 1, 2}
    assert cmp.curves["eval_accuracy"].notna().all() and len(cmp.final) == 4
    old, new = cmp.snapshots[("FIPO", 0)]
    assert set(cmp.snapshots) == {("FIPO", 0)} and any(not torch.equal(old[k], new[k]) for k in old)
    assert cmp.configs["DAPO"]["num_minibatches"] == 2 and cmp.configs["FIPO"]["loss"] == "fipo"
    with pytest.raises(ValueError, match="must name a 'method'"):
        compare_methods(model, tok, task, {"X": {}}, [0], common=common, eval_n=3, log=None)
