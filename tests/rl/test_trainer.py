"""Integration tests of the RL loop on a tiny random LM: rollouts, DAPO filtering, resume, LoRA, rewards,
selective rollouts."""

import json
import math
import os
import random

import pytest
import torch
from transformers import Qwen2ForCausalLM

from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.rl import RLConfig, RLTask, RewardSpec, train
from workbench.rl.rewards import as_reward_specs, overlong_penalty, score_completions
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.rollout import cat_rollouts
from workbench.rl.selective import PromptHistory
from workbench.utils import seeded_generator


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval()
    return model, tok


def digit_task(targets="0123456789"):
    """Reward = fraction of the completion's characters that are digits (graded, so groups differ)."""

    def sample(n, rng):
        return [str(rng.randint(0, 9)) for _ in range(n)]

    def reward(c, p):
        return sum(ch in targets for ch in c) / max(len(c), 1)

    return RLTask("digits", sample, lambda p: format_prompt(p), [RewardSpec("digits", reward)],
                  eval_problems=lambda n: [str(i % 10) for i in range(n)], correct=lambda c, p: c[:1] in targets)


CFG = dict(num_prompts=4, num_generations=4, max_new_tokens=6, micro_batch_size=8, lr=1e-2, progress=False)


def test_rollout_record_shapes_groups_and_rewards():
    model, tok = tiny_lm()
    ro, stats = collect_rollout(model, tok, digit_task(), CollectConfig(num_prompts=3, num_generations=4, max_new_tokens=5), generator=seeded_generator(0, 0), rng=random.Random(0))
    assert len(ro) == 12 and ro.group_ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ro.completion_ids.shape == ro.completion_mask.shape and ro.completion_ids.size(1) <= 5
    assert ro.rewards.shape == (12,) and set(ro.reward_parts) == {"digits"}
    assert all(ro.problems[i] == ro.problems[4 * (i // 4)] for i in range(12))
    assert stats.rounds == 1 and stats.groups_sampled == 3
    both = cat_rollouts([ro.select([0, 1]), ro.select([4, 5, 6])], tok.pad_token_id)
    assert len(both) == 5 and both.texts == [ro.texts[i] for i in (0, 1, 4, 5, 6)]


def test_dynamic_sampling_drops_all_equal_groups_and_caps_rounds():
    model, tok = tiny_lm()
    constant = RLTask("const", digit_task().sample, format_prompt, [RewardSpec("one", lambda c, p: 1.0)])
    ro, stats = collect_rollout(model, tok, constant, CollectConfig(num_prompts=2, num_generations=3, max_new_tokens=4, filters=["dapo_dynamic"], max_sampling_rounds=3), generator=seeded_generator(0, 0), rng=random.Random(0))
    # refills sample missing / keep-rate × 1.5 prompts, at most 2 × num_prompts = 4: 2 + 4 + 4 dropped
    assert len(ro) == 0 and stats.rounds == 3 and stats.groups_dropped == 10 and stats.frac_zero_std_groups == 1.0
    # a reward that alternates per call gives mixed groups: none dropped, one round
    flip = iter(range(10**6))
    mixed = RLTask("mixed", digit_task().sample, format_prompt, [RewardSpec("alt", lambda c, p: float(next(flip) % 2))])
    ro, stats = collect_rollout(model, tok, mixed, CollectConfig(num_prompts=2, num_generations=4, max_new_tokens=4, filters=["dapo_dynamic"]), generator=seeded_generator(0, 0), rng=random.Random(0))
    assert len(ro) == 8 and stats.rounds == 1 and stats.groups_dropped == 0


def test_first_round_is_sized_by_the_previous_keep_rate():
    model, tok = tiny_lm()
    flip = iter(range(10**6))
    mixed = RLTask("mixed", digit_task().sample, format_prompt, [RewardSpec("alt", lambda c, p: float(next(flip) % 2))])
    kw = dict(num_prompts=3, num_generations=2, max_new_tokens=4, filters=["dapo_dynamic"])
    # previous step kept 4 of 10 groups: q̂ = 5 / 12, first round ⌈3 / q̂⌉ = 8 groups, at most 2 × 3 = 6
    ro, stats = collect_rollout(model, tok, mixed, CollectConfig(**kw), generator=seeded_generator(0, 0), rng=random.Random(0), prior_keep=(4, 10))
    assert stats.rounds == 1 and stats.groups_sampled == 6 and len(ro) == 3 * 2 and ro.group_ids.unique().numel() == 3
    ro, stats = collect_rollout(model, tok, mixed, CollectConfig(**kw), generator=seeded_generator(0, 0), rng=random.Random(0), prior_keep=(10, 10))  # q̂ = 11 / 12: ⌈3.27⌉ = 4
    assert stats.groups_sampled == 4
    # without dynamic sampling the prior is ignored: exactly num_prompts
    ro, stats = collect_rollout(model, tok, mixed, CollectConfig(**{**kw, "filters": []}), generator=seeded_generator(0, 0), rng=random.Random(0), prior_keep=(1, 10))
    assert stats.groups_sampled == 3 and len(ro) == 6


def test_trainer_carries_the_keep_rate_to_the_next_step():
    model, tok = tiny_lm()
    constant = RLTask("const", digit_task().sample, format_prompt, [RewardSpec("one", lambda c, p: 1.0)])
    res = train(model, tok, constant, RLConfig(steps=2, dynamic_sampling=True, max_sampling_rounds=1, **CFG))
    first, second = res.history
    # step 1 samples num_prompts and keeps none (q̂ = 1 / (n + 2)); step 2 starts at the cap 2 × num_prompts
    assert first["groups_sampled"] == CFG["num_prompts"] and first["groups_dropped"] == CFG["num_prompts"]
    assert second["groups_sampled"] == 2 * CFG["num_prompts"]


def test_refill_size_divides_by_the_keep_rate_and_is_clipped():
    from workbench.rl.collect import refill_size

    assert refill_size(9, 23, 32, 1.0, 64) == 13  # 9 / (24 / 34) = 12.75
    assert refill_size(9, 23, 32, 1.5, 64) == 20
    assert refill_size(9, 0, 32, 1.5, 64) == 64  # nothing kept yet: capped
    assert refill_size(9, 40, 40, 1.0, 64) == 10  # smoothed rate 41/42 < 1
    assert refill_size(70, 0, 32, 1.0, 64) == 70  # never below what is missing


def test_overlong_penalty_matches_dapo_formula():
    lengths = torch.tensor([0, 10, 12, 13, 15, 16, 17])
    got = overlong_penalty(lengths, max_len=16, buffer=4)
    expect = []
    for L in lengths.tolist():  # eq. 13 of arXiv 2503.14476, written out
        expect.append(0.0 if L <= 12 else (12 - L) / 4 if L <= 16 else -1.0)
    assert got.tolist() == pytest.approx(expect)
    with pytest.raises(ValueError, match="buffer"):
        overlong_penalty(lengths, 16, 0)


def test_rewards_combine_with_weights_and_a_raising_one_is_named():
    specs = as_reward_specs([("a", lambda c, p: 1.0, 0.5), RewardSpec("b", lambda c, p: len(c), 2.0)])
    total, parts = score_completions(specs, ["xy", ""], [None, None])
    assert total.tolist() == [4.5, 0.5] and parts["b"].tolist() == [2.0, 0.0]

    def broken(c, p):
        raise KeyError("boom")

    with pytest.raises(RuntimeError, match="reward function 'broken' raised KeyError"):
        score_completions(as_reward_specs([broken]), ["x"], [None])
    with pytest.raises(ValueError, match="'nan' returned nan"):
        score_completions(as_reward_specs({"nan": lambda c, p: float("nan")}), ["x"], [None])


def test_training_raises_reward_on_a_learnable_task():
    model, tok = tiny_lm()
    res = train(model, tok, digit_task(), RLConfig(steps=25, **CFG))
    first = sum(h["reward_mean"] for h in res.history[:3]) / 3
    last = sum(h["reward_mean"] for h in res.history[-3:]) / 3
    assert last > first + 0.2, (first, last)
    for key in ("reward_std", "frac_zero_std_groups", "entropy", "clip_frac_low", "clip_frac_high", "response_length",
                "kl", "tokens_per_s", "loss", "grad_norm"):
        assert key in res.history[-1]


@pytest.mark.parametrize("method", ["grpo", "dr_grpo", "dapo", "fipo"])
def test_every_method_preset_runs_two_steps(method, tmp_path):
    model, tok = tiny_lm()
    cfg = RLConfig.for_method(method, steps=2, output_dir=str(tmp_path), **CFG)
    if method in ("dapo", "fipo"):
        cfg.overlong_buffer = 2
    res = train(model, tok, digit_task(), cfg)
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [x["step"] for x in lines] == [1, 2] and len(res.history) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_several_minibatches_move_the_ratio_away_from_one():
    model, tok = tiny_lm()
    res = train(model, tok, digit_task(), RLConfig(steps=1, num_minibatches=4, num_epochs=2, **CFG))
    assert abs(res.history[0]["ratio_mean"] - 1.0) > 1e-6  # later mini-batches see an updated policy


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("mode", ["grpo", "dynamic-sampling", "selective"])
def test_resume_ends_with_the_same_numbers(tmp_path, mode):
    # with dynamic sampling a step's first round is sized from the previous step's keep rate, and with
    # selective rollouts the prompts drawn depend on the prompt history: the resumed run must read both
    # back from the checkpoint
    cfg = dict(CFG, num_minibatches=2, token_weights=["low_prob"], dynamic_sampling=mode == "dynamic-sampling",
               explore=0.3 if mode == "selective" else 1.0)
    task = settled_task if mode == "selective" else digit_task
    full_model, tok = tiny_lm()
    full = train(full_model, tok, task(), RLConfig(steps=4, output_dir=str(tmp_path / "a"), **cfg))
    part_model, _ = tiny_lm()
    train(part_model, tok, task(), RLConfig(steps=2, output_dir=str(tmp_path / "b"), **cfg))
    assert os.path.exists(tmp_path / "b" / "checkpoint" / "model.safetensors")
    if mode == "selective":  # the history the resumed run must continue from is not empty
        state = json.load(open(tmp_path / "b" / "checkpoint" / "state.json"))
        assert any(v > 0 for v in state["extra"]["prompt_history"]["streak"].values())
    fresh, _ = tiny_lm(seed=123)  # different init: everything must come from the checkpoint
    resumed = train(fresh, tok, task(), RLConfig(steps=4, output_dir=str(tmp_path / "b"), resume=True, **cfg))
    assert torch.equal(_params(full.model), _params(resumed.model))
    strip = lambda h: {k: v for k, v in h.items() if k not in ("tokens_per_s", "gen_seconds", "step_seconds")}  # noqa: E731
    assert [strip(h) for h in full.history] == [strip(h) for h in resumed.history]
    lines = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert not any(f.endswith((".pt", ".bin", ".pkl")) for f in os.listdir(tmp_path / "b" / "checkpoint"))


def test_lora_with_kl_uses_the_disabled_adapter_as_reference():
    model, tok = tiny_lm()
    base = _params(model).clone()
    res = train(model, tok, digit_task(), RLConfig(steps=2, lora=True, lora_r=4, lora_alpha=8, kl_coef=0.1, **CFG))
    assert res.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # adapter starts at zero: policy == reference
    with res.model.disable_adapter():
        restored = torch.cat([p.detach().flatten() for n, p in res.model.named_parameters() if "lora_" not in n])
    assert torch.equal(restored, base)  # the base weights never moved


def test_bad_config_is_one_sentence():
    model, tok = tiny_lm()
    with pytest.raises(ValueError, match="num_generations must be >= 2"):
        train(model, tok, digit_task(), RLConfig(num_generations=1, **{k: v for k, v in CFG.items() if k != "num_generations"}))
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        RLConfig.for_method("ppo")
    with pytest.raises(KeyError, match="unknown advantage estimator 'gpro'"):
        train(model, tok, digit_task(), RLConfig(advantage="gpro", steps=1, **CFG))


@pytest.fixture
def float64_rmsnorm(monkeypatch):
    """HF's Qwen2RMSNorm rounds through float32 even in a float64 model, so a float64 comparison of two
    batchings would differ at float32 precision (~1e-8) wherever a value lands near a float32 rounding
    boundary; computing the norm in the input dtype makes the float64 model float64 end to end."""
    from transformers.models.qwen2 import modeling_qwen2

    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(modeling_qwen2.Qwen2RMSNorm, "forward", forward)


@pytest.mark.parametrize("loss,weights", [("grpo", []), ("dapo", ["low_prob"]), ("dr_grpo", [("future_kl", {"decay_rate": 4})])])
def test_leaving_zero_advantage_rows_out_gives_the_same_update(loss, weights, float64_rmsnorm):
    """Rows with A = 0 everywhere (all-equal groups, masked truncated rows) are not run; the update is unchanged."""
    from accelerate import Accelerator

    from workbench.rl.advantages import compute_advantages
    from workbench.rl.update import gradient_rows, skips_zero_advantage, update_policy

    base, tok = tiny_lm()
    base = base.double()
    ro, _ = collect_rollout(base, tok, digit_task(), CollectConfig(num_prompts=4, num_generations=4, max_new_tokens=6), generator=seeded_generator(0, 0), rng=random.Random(0))
    ro.rewards[:4] = 1.0  # group 0: all equal -> zero advantage
    ro.rewards[4:8] = 0.0  # group 1: all equal
    ro.completion_mask[9] = 0  # a DAPO-masked truncated row: no tokens
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)
    carries = gradient_rows(adv, ro.completion_mask)
    assert carries.tolist() == [False] * 8 + [True, False] + [True] * 6
    updated = []
    for skip in (True, False):
        model = __import__("copy").deepcopy(base).train()
        cfg = RLConfig(loss=loss, advantage="grpo", token_weights=weights, micro_batch_size=3, grad_clip=1e9,
                       skip_zero_advantage=skip, num_minibatches=2 if weights else 1, progress=False)
        assert skips_zero_advantage(cfg) == skip
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        r = ro.select(torch.arange(len(ro)))
        if weights:  # two optimizer steps need log π_old up front
            from workbench.rl.update import score_rollout

            r.old_logp, r.entropy = score_rollout(base, r, 8, 1.0)
        metrics = update_policy(model, opt, sched, Accelerator(cpu=True), r, adv, cfg, torch.Generator().manual_seed(0))
        assert all((m["rows_run_frac"] < 1) == skip for m in metrics)
        updated.append(_params(model))
    assert (updated[0] - _params(base)).abs().max() > 1e-6  # the update moved the weights
    torch.testing.assert_close(updated[0], updated[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("epochs,minibatches", [(1, 2), (2, 3)])
def test_log_pi_old_scored_inside_the_update_gives_the_update_of_a_prescored_rollout(epochs, minibatches, float64_rmsnorm, monkeypatch):
    """With `rollout.old_logp` None the update takes log π_old of its first mini-batch from that
    mini-batch's forward and scores only the rows later optimizer steps run, once, before the first step:
    the weights it ends with equal those of a rollout scored in full beforehand."""
    from accelerate import Accelerator

    import workbench.rl.update as trainer
    from workbench.rl.advantages import compute_advantages

    base, tok = tiny_lm()
    base = base.double()
    ro, _ = collect_rollout(base, tok, digit_task(), CollectConfig(num_prompts=6, num_generations=4, max_new_tokens=6), generator=seeded_generator(0, 0), rng=random.Random(0))
    ro.rewards[:8] = 1.0  # groups 0 and 1 all equal: zero advantage, never run, never scored
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)
    carries = trainer.gradient_rows(adv, ro.completion_mask)
    scored = []
    real = trainer.score_rollout
    monkeypatch.setattr(trainer, "score_rollout", lambda m, r, *a, **k: (scored.append(len(r)), real(m, r, *a, **k))[1])
    updated, metrics = [], []
    for prescore in (True, False):
        model = __import__("copy").deepcopy(base).train()
        cfg = RLConfig(loss="dapo", advantage="grpo", token_weights=["low_prob"], micro_batch_size=5, grad_clip=1e9,
                       num_epochs=epochs, num_minibatches=minibatches, progress=False)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        r = ro.select(torch.arange(len(ro)))
        if prescore:
            r.old_logp, r.entropy = real(base, r, 8, 1.0)
        scored.clear()
        metrics.append(trainer.update_policy(model, opt, sched, Accelerator(cpu=True), r, adv, cfg, torch.Generator().manual_seed(0)))
        updated.append(_params(model))
    first = torch.randperm(len(ro), generator=torch.Generator().manual_seed(0)).chunk(minibatches)[0]
    assert scored == [int(carries.sum()) - int(carries[first].sum())]  # one call, the rows steps 2… run
    assert len(metrics[1]) == epochs * minibatches and all(abs(m["ratio_mean"] - 1) > 1e-6 for m in metrics[1][1:])
    assert (updated[1] - _params(base)).abs().max() > 1e-3
    torch.testing.assert_close(updated[1], updated[0], rtol=0, atol=1e-10)
    for a, b in zip(*metrics):
        assert a.keys() == b.keys()
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-9)


def test_zero_advantage_rows_are_kept_with_kl_or_a_batch_coupled_weight():
    from workbench.rl.update import skips_zero_advantage

    assert skips_zero_advantage(RLConfig(token_weights=["low_prob"]))
    assert not skips_zero_advantage(RLConfig(kl_coef=0.1))  # the k3 term has a gradient whatever A is
    assert not skips_zero_advantage(RLConfig(token_weights=["tor"]))  # top-30 % threshold over the batch


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_mixed_precision_runs_matmuls_in_bf16_and_keeps_float32_weights(precision):
    """With `mixed_precision='bf16'` the policy's logits come out bfloat16 in sampling and in the update's
    forward (autocast is on where the model runs), while the weights, the log-probs fed to the loss and
    the optimizer state stay float32 and the run still learns; with 'no' nothing is bfloat16."""
    model, tok = tiny_lm()
    seen = []
    model.lm_head.register_forward_hook(lambda m, i, o: seen.append((torch.is_grad_enabled(), o.dtype)))
    res = train(model, tok, digit_task(), RLConfig(steps=25, mixed_precision=precision, **CFG))
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    sampling = {d for g, d in seen if not g}
    update = {d for g, d in seen if g}
    # held-out evaluation is off here, so every no-grad forward is sampling
    assert sampling == {want} and update == {want}, (sampling, update)
    assert all(p.dtype == torch.float32 for p in res.model.parameters())
    first = sum(h["reward_mean"] for h in res.history[:3]) / 3
    last = sum(h["reward_mean"] for h in res.history[-3:]) / 3
    assert last > first + 0.2, (first, last)
    assert all(map(math.isfinite, (h["loss"] for h in res.history)))


def test_mixed_precision_other_than_bf16_is_refused():
    model, tok = tiny_lm()
    with pytest.raises(ValueError, match="mixed_precision must be 'no' or 'bf16', got 'fp16'"):
        train(model, tok, digit_task(), RLConfig(mixed_precision="fp16", **CFG))


# ---------------------------------------------------------------- GRESO-style selective rollouts


def settled_task():
    """Prompts '0'..'9': '0'–'4' always get reward 1 (every group all-equal), '5'–'9' a graded reward."""

    def sample(n, rng):
        return [str(rng.randint(0, 9)) for _ in range(n)]

    def reward(c, p):
        return 1.0 if int(p) < 5 else sum(ch.isdigit() for ch in c) / max(len(c), 1)

    return RLTask("settled", sample, lambda p: format_prompt(p), [RewardSpec("r", reward)])


def letters_task():
    return RLTask("letters", lambda n, rng: [rng.choice("ab") for _ in range(n)], lambda p: p, [])


def test_streak_counts_consecutive_all_equal_groups_and_round_trips():
    h = PromptHistory()
    h.record([("x", True), ("y", False), ("x", True), ("y", True), ("x", False), ("z", True)])
    assert h.streak == {"x": 0, "y": 1, "z": 1}
    h.record([("z", True)])
    assert PromptHistory.from_state_dict(json.loads(json.dumps(h.state_dict()))).streak == {"x": 0, "y": 1, "z": 2}


@pytest.mark.parametrize("z,explore", [(1, 0.5), (2, 0.5), (3, 0.8)])
def test_a_settled_prompt_is_kept_with_probability_explore_to_the_streak(z, explore):
    """'a' (streak z) and 'b' (never seen) are offered equally often; 'a' is kept w.p. q = explore^z, so
    its share of the draws is q / (1 + q). 40k draws: within 5 binomial standard errors."""
    h = PromptHistory({"a": z})
    drawn = h.draw(letters_task(), 40_000, random.Random(0), explore)
    q = explore**z
    share, expected = drawn.count("a") / len(drawn), q / (1 + q)
    assert len(drawn) == 40_000
    assert abs(share - expected) <= 5 * (expected * (1 - expected) / len(drawn)) ** 0.5


def test_a_fully_settled_history_does_not_stall_and_bad_explore_is_one_sentence():
    h = PromptHistory({"a": 5, "b": 5})
    assert len(h.draw(letters_task(), 10, random.Random(0), 0.0)) == 10  # taken after 8 × 10 refused candidates
    with pytest.raises(ValueError, match="explore must be in"):
        h.draw(letters_task(), 1, random.Random(0), 1.5)
    with pytest.raises(ValueError, match="RLConfig.explore must be in"):
        RLConfig(explore=-0.1).validate()


def test_the_trainer_stops_sampling_prompts_that_keep_giving_equal_rewards():
    """With explore = 0, prompts '0'–'4' (all-equal groups) are sampled until first seen and then never
    again, so later steps have almost no zero-variance groups; with explore = 1 about half stay."""
    fracs = {}
    for explore in (1.0, 0.0):
        model, tok = tiny_lm()
        res = train(model, tok, settled_task(), RLConfig(steps=6, explore=explore, **{**CFG, "num_prompts": 8}))
        fracs[explore] = sum(h["frac_zero_std_groups"] for h in res.history[3:]) / 3
    assert fracs[1.0] > 0.3
    assert fracs[0.0] < 0.1
