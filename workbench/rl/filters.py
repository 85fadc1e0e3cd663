"""Rollout filters (registry): which completions of a sampled round enter the update.

A filter is ``fn(rollout, num_generations, **kwargs) -> keep`` with `keep` a [N] bool tensor over the
round's rows. `collect_rollout` applies every configured filter (their masks multiply), counts a group
as kept when any of its rows survives, and — when filters are configured — samples further rounds until
`num_prompts` groups are kept or the round cap is reached (DAPO's dynamic sampling, arXiv 2503.14476).
A filter may drop single rows (e.g. an expert trajectory that fails a check, TGRL arXiv 2603.26126) or
whole groups.

    @ROLLOUT_FILTERS.register("my_filter")
    def my_filter(rollout, num_generations, **kwargs) -> torch.Tensor: ...
    RLConfig(rollout_filters=["my_filter"])
"""

from __future__ import annotations

import torch

from workbench.registry import Registry
from workbench.rl.advantages import group_stats
from workbench.rl.rollout import Rollout
from workbench.rl.sources import parse_spec

ROLLOUT_FILTERS = Registry("rollout filter")


@ROLLOUT_FILTERS.register("dapo_dynamic")
def dapo_dynamic(rollout: Rollout, num_generations: int) -> torch.Tensor:
    """DAPO dynamic sampling: drop every group whose final rewards are all equal (0 < acc < 1 kept);
    such a group has zero GRPO advantage, so it carries no gradient."""
    return ~group_stats(rollout.rewards, rollout.group_ids).zero_std_mask


def apply_filters(specs, rollout: Rollout, num_generations: int) -> torch.Tensor:
    """[N] bool: the rows every filter in `specs` keeps (all True for no filters)."""
    keep = torch.ones(len(rollout), dtype=torch.bool)
    for spec in specs:
        name, kwargs = parse_spec(spec)
        mask = ROLLOUT_FILTERS.get(name)(rollout, num_generations, **kwargs)
        if mask.shape != (len(rollout),) or mask.dtype != torch.bool:
            raise ValueError(f"rollout filter {name!r} returned {tuple(mask.shape)} {mask.dtype}, expected a [{len(rollout)}] bool mask")
        keep &= mask.cpu()
    return keep
