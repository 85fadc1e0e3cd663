"""Toy plug-ins for spine v2's extension points: an advantage estimator that reads the AdvantageContext,
a rollout source that puts an off-policy completion into each group plus a filter that drops it, and a
group reward that compares a group's completions with each other."""

import random

import pytest
import torch

from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.rl import (ADVANTAGES, ROLLOUT_FILTERS, ROLLOUT_SOURCES, AdvantageContext, GroupRewardSpec, RLConfig, RewardSpec,
                          compute_advantages, train)
from workbench.rl.advantages import needs_sequence_logp
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.rewards import score_completions
from workbench.rl.sources import generate_group
from workbench.tasks.base import Task
from workbench.utils import seeded_generator


def tiny_lm(seed=0):
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    tok = build_tokenizer()
    return Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval(), tok


def digit_task(rewards=None):
    def reward(c, p):
        return sum(ch.isdigit() for ch in c) / max(len(c), 1)

    return Task("digits", lambda n, rng: [str(rng.randint(0, 9)) for _ in range(n)], format_prompt,
                rewards or [RewardSpec("digits", reward)], eval_problems=lambda n: [str(i % 10) for i in range(n)])


# ------------------------------------------------------------------ 1. advantage estimators see a context
SEEN = {}


@ADVANTAGES.register("toy_difficulty")
@needs_sequence_logp
def toy_difficulty(rewards, group_ids, mask, *, ctx: AdvantageContext):
    """Group-centred reward scaled by a per-completion feature and divided by −mean log-likelihood."""
    SEEN["ctx"] = ctx
    feature = ctx.require("feature", "toy_difficulty")
    seq = ctx.require("sequence_logp", "toy_difficulty")
    centred = rewards - torch.stack([rewards[group_ids == g].mean() for g in group_ids])
    return centred * feature / (-seq).clamp(min=1.0)


def test_estimator_reads_extras_and_sequence_logp_against_a_loop():
    g = torch.Generator().manual_seed(0)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 1.0], dtype=torch.float64)
    group_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    mask = torch.ones(6, 4)
    feature = torch.rand(6, generator=g, dtype=torch.float64)
    seq = -torch.rand(6, generator=g, dtype=torch.float64) * 5
    adv = compute_advantages("toy_difficulty", rewards, group_ids, mask,
                             ctx=AdvantageContext(extras={"feature": feature}, sequence_logp=seq))
    for i in range(6):
        members = [j for j in range(6) if group_ids[j] == group_ids[i]]
        want = (rewards[i] - sum(rewards[j] for j in members) / len(members)) * feature[i] / max(-seq[i], 1.0)
        assert torch.allclose(adv[i], want.expand(4).to(adv.dtype), atol=1e-12)
    with pytest.raises(ValueError, match=r"advantage estimator 'toy_difficulty' needs AdvantageContext.extras\['feature'\]"):
        compute_advantages("toy_difficulty", rewards, group_ids, mask, ctx=AdvantageContext(sequence_logp=seq))
    # a context-free estimator ignores the context
    plain = compute_advantages("grpo", rewards.float(), group_ids, mask, ctx=AdvantageContext(extras={"feature": feature}))
    assert torch.equal(plain, compute_advantages("grpo", rewards.float(), group_ids, mask))


def test_trainer_fills_the_context_with_the_hook_extras_and_sequence_logp():
    model, tok = tiny_lm()
    task = digit_task()
    task.annotate = lambda policy, proc, ro: {"feature": torch.full((len(ro),), 0.5)}  # a per-completion feature [N]
    SEEN.clear()
    train(model, tok, task, RLConfig(advantage="toy_difficulty", num_prompts=2, num_generations=3, max_new_tokens=5,
                                     steps=1, progress=False, micro_batch_size=8))
    ctx = SEEN["ctx"]
    assert torch.equal(ctx.extras["feature"], torch.full((6,), 0.5))
    assert ctx.sequence_logp.shape == (6,) and (ctx.sequence_logp < 0).all()
    assert len(ctx.problems) == 6 and ctx.config.advantage == "toy_difficulty"


# ------------------------------------------------------------ 2. rollout sources and filters
EXPERT = "answer: 7"


@ROLLOUT_SOURCES.register("toy_expert")
def toy_expert(ctx, problems, first_group_id, per_group: int = 1):
    """The policy's G − per_group samples per prompt plus `per_group` fixed expert completions, their tokens
    marked off-policy in extras["off_policy"]."""
    from workbench.rl.rollout import cat_rollouts, pad_token_id

    own = generate_group(ctx.model, ctx.tokenizer, ctx.task, problems, num_generations=ctx.num_generations - per_group,
                         max_new_tokens=ctx.max_new_tokens, temperature=ctx.temperature, top_p=ctx.top_p,
                         generator=ctx.generator, first_group_id=first_group_id)
    ids = ctx.tokenizer(EXPERT + ctx.tokenizer.eos_token, add_special_tokens=False, return_tensors="pt")["input_ids"]
    parts = []
    for i, p in enumerate(problems):
        rows = own.select((own.group_ids == first_group_id + i).nonzero().squeeze(-1))
        rows.extras["off_policy"] = torch.zeros_like(rows.completion_mask, dtype=torch.float32)
        exp = rows.select([0] * per_group)
        exp.completion_ids, exp.completion_mask = ids.repeat(per_group, 1), torch.ones(per_group, ids.size(1), dtype=torch.long)
        exp.truncated, exp.texts = torch.zeros(per_group, dtype=torch.bool), [EXPERT] * per_group
        exp.rewards, exp.reward_parts = score_completions(ctx.task.rewards, exp.texts, [p] * per_group)
        exp.extras = {"off_policy": torch.ones(per_group, ids.size(1))}
        parts += [rows, exp]
    return cat_rollouts(parts, pad_token_id(ctx.tokenizer))


@ROLLOUT_FILTERS.register("toy_drop_off_policy")
def toy_drop_off_policy(rollout, num_generations):
    return rollout.extras["off_policy"].sum(-1) == 0


def test_source_mixes_off_policy_rows_into_groups_and_a_filter_drops_them():
    model, tok = tiny_lm()
    cfg = CollectConfig(num_prompts=3, num_generations=4, max_new_tokens=5, source=("toy_expert", {"per_group": 1}))
    ro, stats = collect_rollout(model, tok, digit_task(), cfg, generator=seeded_generator(0, 0), rng=random.Random(0))
    assert len(ro) == 12 and sorted(ro.group_ids.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    off = ro.extras["off_policy"].sum(-1) > 0
    assert off.sum() == 3 and all(ro.texts[i] == EXPERT for i in off.nonzero().squeeze(-1).tolist())
    assert torch.equal(ro.extras["off_policy"].bool(), ro.extras["off_policy"].bool() & ro.completion_mask.bool())
    cfg.filters = ["toy_drop_off_policy"]
    kept, stats = collect_rollout(model, tok, digit_task(), cfg, generator=seeded_generator(0, 0), rng=random.Random(0))
    assert len(kept) == 9 and kept.extras["off_policy"].sum() == 0 and stats.groups_dropped == 0
    assert kept.texts == [t for t, o in zip(ro.texts, off.tolist()) if not o]  # same draws, expert rows gone


def test_unknown_source_or_filter_is_one_sentence():
    with pytest.raises(KeyError, match="unknown rollout source 'nope'"):
        CollectConfig(num_prompts=1, num_generations=2, max_new_tokens=2, source="nope")
    model, tok = tiny_lm()
    cfg = CollectConfig(num_prompts=1, num_generations=2, max_new_tokens=2, filters=["nope"])
    with pytest.raises(KeyError, match="unknown rollout filter 'nope'"):
        collect_rollout(model, tok, digit_task(), cfg, generator=seeded_generator(0, 0), rng=random.Random(0))


def test_rl_config_routes_source_and_filters_to_the_collector():
    cfg = CollectConfig.from_rl(RLConfig.for_method("dapo", rollout_source="toy_expert", rollout_filters=["toy_drop_off_policy"]))
    assert cfg.source == "toy_expert" and cfg.filters == ["toy_drop_off_policy", "dapo_dynamic"]
    assert CollectConfig.from_rl(RLConfig()).filters == []
    with pytest.raises(ValueError, match="unknown RLConfig field 'rollout_sorce'"):
        RLConfig.for_method("grpo", rollout_sorce="policy")
    with pytest.raises(KeyError, match="unknown rollout filter 'dapo_dynamc'"):
        RLConfig(rollout_filters=["dapo_dynamc"]).validate()  # caught before any sampling
    with pytest.raises(KeyError, match="unknown rollout source 'polcy'"):
        RLConfig(rollout_source="polcy").validate()


# ------------------------------------------------------------------ 3. group rewards
def rank_in_group(completions, problem):
    """Pairwise: the fraction of the group's other completions this one is longer than."""
    n = len(completions)
    return [sum(len(a) > len(b) for b in completions) / max(n - 1, 1) for a in completions]


def test_group_reward_scores_each_group_at_once_against_a_loop():
    texts = ["a", "abc", "ab", "abcd", "x", "xy"]
    problems = ["p0", "p0", "p0", "p1", "p1", "p1"]
    group_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    specs = [GroupRewardSpec("longer", rank_in_group, 2.0), RewardSpec("one", lambda c, p: 1.0, 0.5)]
    total, parts = score_completions(specs, texts, problems, group_ids)
    want = [0.0, 1.0, 0.5, 1.0, 0.0, 0.5]
    assert parts["longer"].tolist() == want and torch.allclose(total, 2.0 * torch.tensor(want) + 0.5)
    # interleaved rows of a group are gathered by id, scored in row order
    perm = [0, 3, 1, 4, 2, 5]
    _, p2 = score_completions(specs, [texts[i] for i in perm], [problems[i] for i in perm], group_ids[perm])
    assert p2["longer"].tolist() == [want[i] for i in perm]


def test_group_reward_errors_name_the_reward():
    gid = torch.tensor([0, 0])
    with pytest.raises(ValueError, match="group reward 'short' returned 1 values for a group of 2 completions"):
        score_completions([GroupRewardSpec("short", lambda cs, p: [1.0])], ["a", "b"], ["p", "p"], gid)
    with pytest.raises(RuntimeError, match="group reward 'boom' raised ZeroDivisionError"):
        score_completions([GroupRewardSpec("boom", lambda cs, p: [1 / 0])], ["a", "b"], ["p", "p"], gid)
    with pytest.raises(ValueError, match="group reward 'nan' returned nan"):
        score_completions([GroupRewardSpec("nan", lambda cs, p: [float("nan")] * len(cs))], ["a", "b"], ["p", "p"], gid)
    with pytest.raises(ValueError, match="group reward 'g' needs the rows' group_ids"):
        score_completions([GroupRewardSpec("g", rank_in_group)], ["a", "b"], ["p", "p"])


def test_a_run_trains_on_a_group_reward():
    model, tok = tiny_lm()
    res = train(model, tok, digit_task([GroupRewardSpec("longer", rank_in_group)]),
                RLConfig(num_prompts=2, num_generations=4, max_new_tokens=6, steps=2, progress=False, lr=1e-2))
    assert len(res.history) == 2 and "reward/longer" in res.history[0]
