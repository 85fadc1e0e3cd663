"""Parity with TRL: our advantages and policy losses against TRL's own trainer code on identical inputs.

TRL keeps these formulas inside trainer methods, so we call the unbound methods with a stub ``self``
that carries only the attributes the code path reads:

- advantages: ``GRPOTrainer._generate_and_score_completions`` (``scale_rewards="group"`` -> our
  ``grpo``, ``"none"`` -> our ``dr_grpo``) and ``RLOOTrainer._generate_and_score_completions`` (our
  ``rloo``), with generation and reward functions stubbed to return fixed completions and our rewards;
- losses: ``GRPOTrainer._compute_loss`` with ``_get_per_token_logps_and_entropies`` stubbed to return
  our log-probs, for ``loss_type`` grpo / bnpo / dr_grpo / dapo, with and without the k3 KL term;
  loss values, gradients w.r.t. the log-probs and clip fractions are compared.

If a TRL upgrade renames an attribute these stubs provide, the tests fail with an AttributeError
naming it: update the stub, do not loosen the comparison.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer", reason="trl is not importable: TRL parity needs the peer installed (pip install -e .[peers])")
trl_rloo = pytest.importorskip("trl.trainer.rloo_trainer", reason="trl is not importable")

from workbench.rl.advantages import compute_advantages  # noqa: E402
from workbench.rl.losses import policy_loss  # noqa: E402
from workbench.rl.methods import loss_preset  # noqa: E402


class _Accelerator:
    device = torch.device("cpu")
    num_processes = 1
    process_index = 0
    is_main_process = True

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x

    def gather_for_metrics(self, x):
        return x

    def pad_across_processes(self, x, **kwargs):
        return x


def _scoring_stub(rewards: torch.Tensor, num_generations: int, scale_rewards: str, generate_arity: int):
    n = rewards.numel()

    def _generate(prompts):
        prompt_ids, completion_ids = [[1, 2] for _ in prompts], [[5, 6, 2] for _ in prompts]
        if generate_arity == 3:
            return prompt_ids, completion_ids, ["c"] * len(prompts)
        return prompt_ids, completion_ids, None, ["c"] * len(prompts), None, {}, None, None

    args = SimpleNamespace(per_device_train_batch_size=n, steps_per_generation=1, gradient_accumulation_steps=1,
                           gradient_checkpointing_kwargs=None, report_to=[])
    return SimpleNamespace(
        accelerator=_Accelerator(), model=SimpleNamespace(training=True, is_gradient_checkpointing=False), args=args,
        environment_factories=None, tools=None, environments=None, _generate=_generate,
        _tokenizer=SimpleNamespace(pad_token_id=0), pad_to_multiple_of=None, mask_truncated_completions=False,
        num_iterations=1, use_vllm=False, vllm_importance_sampling_correction=False, beta=0.0, ref_model=None,
        _get_per_token_logps_and_entropies=lambda model, ids, *a, **k: (torch.zeros(ids.shape[0], 3), None, None),
        _calculate_rewards=lambda *a: rewards[:, None].clone(), num_generations=num_generations,
        multi_objective_aggregation="sum_then_normalize", scale_rewards=scale_rewards, reward_weights=torch.ones(1),
        reward_func_names=["r"], reward_clip_range=None, normalize_advantages=False,
        _metrics={"train": defaultdict(list)}, _pending_extra_logs={}, _pending_metrics={}, log_multimodal=False,
        _logs={"prompt": [], "completion": [], "rewards": defaultdict(list), "advantages": [], "extra": defaultdict(list)},
    )


def _rewards(seed: int, n_prompts: int = 5, g: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 2, (n_prompts, g), generator=gen).float() + 0.25 * torch.rand(n_prompts, g, generator=gen)
    r[1] = 0.7  # an all-equal group
    r[2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # a single success
    return r.reshape(-1)


@pytest.mark.parametrize("ours,trainer,scale", [("grpo", "grpo", "group"), ("dr_grpo", "grpo", "none"), ("rloo", "rloo", None)])
@pytest.mark.parametrize("seed", [0, 1])
def test_advantages_match_trl(ours, trainer, scale, seed):
    g = 4
    rewards = _rewards(seed, g=g)
    n = rewards.numel()
    if trainer == "grpo":
        stub = _scoring_stub(rewards, g, scale, generate_arity=8)
        out = trl_grpo.GRPOTrainer._generate_and_score_completions(stub, [{"prompt": "p"}] * n)
    else:
        stub = _scoring_stub(rewards, g, "group", generate_arity=3)
        out = trl_rloo.RLOOTrainer._generate_and_score_completions(stub, [{"prompt": "p"}] * n)
    theirs = out["advantages"]
    group_ids = torch.arange(n) // g
    adv = compute_advantages(ours, rewards, group_ids, torch.ones(n, 3))
    torch.testing.assert_close(adv[:, 0], theirs, atol=1e-5, rtol=1e-5)
    assert (adv[4:8] == 0).all()  # the all-equal group: exactly 0 here


def _loss_stub(loss_type: str, logp: torch.Tensor, eps_low: float, eps_high: float, beta: float, max_len: int):
    args = SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1)
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta,
        loss_type=loss_type, epsilon_low=eps_low, epsilon_high=eps_high, args=args, use_vllm=False,
        vllm_importance_sampling_correction=False, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, accelerator=_Accelerator(), max_completion_length=max_len,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, _metrics={"train": defaultdict(list)},
    )


def _loss_batch(seed: int, b: int = 6, t: int = 9):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=gen) * 2
    logp = old + 0.4 * torch.randn(b, t, generator=gen)
    ref = old + 0.2 * torch.randn(b, t, generator=gen)
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    lengths[2] = 0  # an empty completion
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    adv = torch.randn(b, generator=gen)
    return logp, old, ref, mask, adv


# (our preset, TRL loss_type, extra): TRL's bnpo and dapo are both token-mean; dapo divides by the
# generation batch's token count `num_items_in_batch`, which we pass as our global num_tokens.
LOSS_CASES = [("grpo", "grpo", {}), ("dr_grpo", "dr_grpo", {}), ("dapo", "bnpo", {}), ("dapo", "dapo", {"num_items": 77})]


@pytest.mark.parametrize("preset,loss_type,extra", LOSS_CASES)
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_policy_loss_matches_trl(preset, loss_type, extra, beta):
    logp0, old, ref, mask, adv = _loss_batch(seed=len(loss_type) + int(beta * 100))
    cfg = loss_preset(preset, kl_coef=beta)
    max_len = 12

    theirs_logp = logp0.clone().requires_grad_(True)
    stub = _loss_stub(loss_type, theirs_logp, cfg.epsilon_low, cfg.epsilon_high, beta, max_len)
    inputs = {"prompt_ids": torch.ones(mask.shape[0], 2, dtype=torch.long), "prompt_mask": torch.ones(mask.shape[0], 2, dtype=torch.long),
              "completion_ids": torch.ones_like(mask), "completion_mask": mask, "advantages": adv,
              "old_per_token_logps": old, "ref_per_token_logps": ref,
              "num_items_in_batch": torch.tensor(float(extra.get("num_items", mask.sum())))}
    theirs = trl_grpo.GRPOTrainer._compute_loss(stub, None, inputs)
    theirs.backward()

    ours_logp = logp0.clone().requires_grad_(True)
    num_tokens = float(extra["num_items"]) if "num_items" in extra else None
    loss, metrics = policy_loss(ours_logp, old, adv[:, None].expand_as(mask) * mask, mask, **cfg.as_kwargs(),
                                ref_logp=ref if beta else None, num_tokens=num_tokens, max_len=max_len)
    loss.backward()

    torch.testing.assert_close(loss, theirs.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours_logp.grad, theirs_logp.grad, atol=1e-6, rtol=1e-5)
    m = stub._metrics["train"]
    assert metrics["clip_frac_low"].item() == pytest.approx(m["clip_ratio/low_mean"][0], abs=1e-6)
    assert metrics["clip_frac_high"].item() == pytest.approx(m["clip_ratio/high_mean"][0], abs=1e-6)
    assert metrics["clip_frac_low"] + metrics["clip_frac_high"] > 0  # the inputs exercise clipping
    if beta:
        assert metrics["kl"].item() == pytest.approx(m["kl"][0], abs=1e-6)
