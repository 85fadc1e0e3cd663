"""Advantage estimators against naive float64 Python loops; degenerate groups; bad input."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.rl.advantages import ADVANTAGES, GRPO_STD_EPS, compute_advantages, group_stats


def naive_group_advantage(name: str, rewards: list[float], ids: list[int]) -> list[float]:
    out = []
    for i, (r, g) in enumerate(zip(rewards, ids)):
        members = [rewards[j] for j in range(len(rewards)) if ids[j] == g]
        n = len(members)
        mean = sum(members) / n
        if n == 1 or max(members) == min(members):
            out.append(0.0)
            continue
        if name == "grpo":
            std = math.sqrt(sum((x - mean) ** 2 for x in members) / (n - 1))
            out.append((r - mean) / (std + GRPO_STD_EPS))
        elif name == "dr_grpo":
            out.append(r - mean)
        elif name == "rloo":
            others = [rewards[j] for j in range(len(rewards)) if ids[j] == g and j != i]
            out.append(r - sum(others) / len(others))
    return out


def random_batch(seed: int, n: int = 23, t: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.tensor([7, 3, 100, 3, 7, 42, 3, 7, 100, 5, 42, 3, 7, 7, 100, 11, 11, 11, 11, 42, 3, 5, 9])[:n]
    ids = ids[torch.randperm(n, generator=g)]  # unequal, non-contiguous, shuffled groups; 9 is a singleton
    rewards = torch.randint(0, 3, (n,), generator=g).double() * 0.5 + torch.rand(n, generator=g, dtype=torch.float64) * (
        torch.rand(n, generator=g) < 0.5
    )
    rewards[ids == 11] = 0.1  # an all-equal group (0.1 is not exactly representable: mean != 0.1 in float)
    lengths = torch.randint(0, t + 1, (n,), generator=g)
    lengths[0] = 0  # an empty completion
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return rewards, ids, mask


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimator_matches_naive_loop(name, seed):
    rewards, ids, mask = random_batch(seed)
    adv = compute_advantages(name, rewards, ids, mask)
    ref = naive_group_advantage(name, rewards.tolist(), ids.tolist())
    assert adv.shape == mask.shape and adv.dtype == torch.float64
    for i in range(mask.shape[0]):
        for t in range(mask.shape[1]):
            expected = ref[i] if mask[i, t] else 0.0
            assert adv[i, t].item() == pytest.approx(expected, abs=1e-12, rel=1e-12)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_all_equal_and_singleton_groups_give_exact_zero(name):
    rewards = torch.tensor([0.1, 0.1, 0.1, 1.0, 0.0, 0.7], dtype=torch.float32)
    ids = torch.tensor([4, 4, 4, 8, 8, 2])
    mask = torch.ones(6, 3)
    adv = compute_advantages(name, rewards, ids, mask)
    assert torch.isfinite(adv).all()
    assert (adv[:3] == 0).all() and (adv[5] == 0).all()
    assert (adv[3] > 0).all() and (adv[4] < 0).all()


def test_grpo_tiny_spread_is_bounded():
    rewards = torch.tensor([0.0, 1e-6, 0.0, 1e-6])
    adv = compute_advantages("grpo", rewards, torch.zeros(4, dtype=torch.long), torch.ones(4, 2))
    assert adv.abs().max() < 1e-2  # std 5.8e-7 is floored by eps = 1e-4, not blown up


def test_group_stats_matches_naive():
    rewards, ids, _ = random_batch(5)
    st = group_stats(rewards, ids)
    r, g = rewards.tolist(), ids.tolist()
    assert st.group_ids.tolist() == sorted(set(g))
    zero_groups = 0
    for k, gid in enumerate(st.group_ids.tolist()):
        members = [r[j] for j in range(len(r)) if g[j] == gid]
        n = len(members)
        mean = sum(members) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in members) / (n - 1)) if n > 1 else 0.0
        assert st.count[k].item() == n
        assert st.mean[k].item() == pytest.approx(mean, abs=1e-12)
        assert st.std[k].item() == pytest.approx(std, abs=1e-12)
        zero_groups += max(members) == min(members)
    for i in range(len(r)):
        members = [r[j] for j in range(len(r)) if g[j] == g[i]]
        assert st.zero_std_mask[i].item() == (max(members) == min(members))
        assert st.group_ids[st.index[i]].item() == g[i]
    assert st.frac_zero_std_groups == pytest.approx(zero_groups / len(set(g)))


def test_dense_estimator_output_is_masked():
    @ADVANTAGES.register("_test_dense")
    def dense(rewards, group_ids, mask):
        return torch.full(mask.shape, 2.0, dtype=rewards.dtype)

    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    adv = compute_advantages("_test_dense", torch.tensor([1.0, 0.0]), torch.tensor([0, 0]), mask)
    assert adv.tolist() == [[2.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    ADVANTAGES._items.pop("_test_dense")


def test_bad_input_is_one_clear_error():
    mask = torch.ones(3, 2)
    with pytest.raises(ValueError, match="finite.*index 1"):
        compute_advantages("grpo", torch.tensor([0.0, float("nan"), 1.0]), torch.tensor([0, 0, 0]), mask)
    with pytest.raises(ValueError, match="group_ids"):
        compute_advantages("grpo", torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 0]), mask)
    with pytest.raises(ValueError, match="mask"):
        compute_advantages("grpo", torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 0, 1]), torch.ones(2, 2))
    with pytest.raises(ValueError, match="integer"):
        compute_advantages("grpo", torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), mask)
    with pytest.raises(KeyError, match="unknown advantage estimator 'gpro'; known: .*grpo"):
        compute_advantages("gpro", torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 0, 1]), mask)
