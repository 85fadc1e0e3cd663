"""Padding-free packed scoring (`models.packing`, issue 27 item 1): the same logits and gradients as the padded
one-pass forward, in float64 to 1e-10, and the same RL update.

The model runs with `float64_rms_norm` (tests/conftest.py): transformers' RMSNorm computes in float32, which
makes any two summation orders differ at ~1e-7."""

import random

import pytest
import torch

from workbench.models.packing import packed_layout, packed_prompt_logits
from workbench.models.scoring import completion_logits, completion_logprobs
from workbench.models.tiny import tiny_causal_lm
from workbench.models.tokenizer import build_tokenizer


@pytest.fixture
def lm(float64_rms_norm):
    return tiny_causal_lm(build_tokenizer(), seed=0, hidden=32, layers=2, heads=2, kv_heads=1).double().train()


def batch(seed=0, groups=((4, [5, 2]), (6, [7, 0, 3]), (3, [1, 6])), P=6):
    """Left-padded prompts (one per group, repeated per row) and right-padded completions; a 0-length one too."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(10, 100, (p,), generator=g) for p, _ in groups]
    rows = [(prompt, n) for prompt, (_, ns) in zip(prompts, groups) for n in ns]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)  # a group's rows need not be adjacent
    rows = [rows[i] for i in order]
    T = max(n for _, n in rows)
    pid, pm = torch.zeros(len(rows), P, dtype=torch.long), torch.zeros(len(rows), P, dtype=torch.long)
    cid, cm = torch.zeros(len(rows), T, dtype=torch.long), torch.zeros(len(rows), T, dtype=torch.long)
    for i, (p, n) in enumerate(rows):
        pid[i, P - len(p):], pm[i, P - len(p):] = p, 1
        cid[i, :n], cm[i, :n] = torch.randint(10, 100, (n,), generator=g), 1
    return pid, pm, cid, cm


def test_layout_has_no_padding_inside_and_runs_each_prompt_once():
    pid, pm, cid, cm = batch()
    lay = packed_layout(pid, pm, cid, cm)
    assert lay["input_ids"].shape[0] == 3  # one row per distinct prompt
    real = lay["attention_mask"][:, 0].diagonal(dim1=-2, dim2=-1)  # a real token reads itself
    assert int(real.sum()) == 4 + 6 + 3 + int(cm.sum())
    assert bool((real.cumsum(1) == torch.arange(1, real.size(1) + 1)).logical_or(~real).all())  # padding only at the end
    with pytest.raises(ValueError, match="a prompt has no real token"):
        packed_layout(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), cid[:1], cm[:1])


@pytest.mark.parametrize("seed", [0, 1])
def test_packed_logits_and_gradients_equal_the_padded_forward(lm, seed):
    pid, pm, cid, cm = batch(seed)
    a = completion_logits(lm, pid, pm, cid, cm)
    b = packed_prompt_logits(lm, pid, pm, cid, cm)
    real = cm.bool()
    torch.testing.assert_close(b[real], a[real], atol=1e-10, rtol=0)
    w = torch.randn(a.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * real[..., None]
    ga = torch.autograd.grad((a * w).sum(), list(lm.parameters()))
    gb = torch.autograd.grad((b * w).sum(), list(lm.parameters()))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(y, x, atol=1e-10, rtol=0)


def test_completion_logprobs_packed_matches_and_ignores_vision_inputs(lm):
    pid, pm, cid, cm = batch()
    ref, ref_ent = completion_logprobs(lm, pid, pm, cid, cm, with_entropy=True)
    for chunk in (None, 4):
        lp, ent = completion_logprobs(lm, pid, pm, cid, cm, with_entropy=True, packed=True, chunk=chunk)
        torch.testing.assert_close(lp, ref, atol=1e-10, rtol=0)
        torch.testing.assert_close(ent, ref_ent, atol=1e-10, rtol=0)


def test_packed_update_gives_the_same_step(lm):
    """One GRPO update on a rollout, `pack` on and off, SGD: the same parameters after it."""
    import copy

    from accelerate import Accelerator

    from workbench.rl import RLConfig, compute_advantages
    from workbench.rl.rollout import Rollout
    from workbench.rl.update import update_policy

    pid, pm, cid, cm = batch()
    n = len(pid)
    groups = torch.unique(torch.cat([pid, pm], 1), dim=0, return_inverse=True)[1]
    rewards = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ro = Rollout(prompt_ids=pid, prompt_mask=pm, completion_ids=cid, completion_mask=cm,
                 truncated=torch.zeros(n, dtype=torch.bool), rewards=rewards, reward_parts={"correct": rewards},
                 group_ids=groups, texts=[""] * n, problems=[None] * n)
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask).double()
    after = []
    for pack in (False, True):
        model = copy.deepcopy(lm)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        cfg = RLConfig(lr=0.5, micro_batch_size=n, pack=pack, share_prompts=False)
        update_policy(model, opt, sched, Accelerator(cpu=True), copy.deepcopy(ro), adv, cfg, torch.Generator().manual_seed(0))
        after.append([p.detach().clone() for p in model.parameters()])
    moved = max((x - y).abs().max().item() for x, y in zip(after[0], lm.parameters()))
    assert moved > 1e-4
    for x, y in zip(*after):
        torch.testing.assert_close(y, x, atol=1e-10, rtol=0)
