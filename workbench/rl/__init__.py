"""RLVR engine: rollout sources and filters, rewards, advantage estimators, token weights, policy losses,
the update and the trainer loop. Each paper's piece is one registry entry (the README's paper table says
which); a method is a config that names pieces:

    cfg = RLConfig.for_method("dapo", token_weights=["tor", "future_kl"])    # ToR + FIPO weights on DAPO
    train(model, tokenizer, arithmetic_task(), cfg)

Registries: `METHODS` (presets), `ADVANTAGES`, `TOKEN_WEIGHTS`, `AGGREGATIONS`, `ROLLOUT_SOURCES`,
`ROLLOUT_FILTERS`.
"""

from workbench.rl import durian, tgrl  # noqa: F401  (register Durian's estimator; TGRL's source, filter, estimator)
from workbench.rl.advantages import ADVANTAGES, AdvantageContext, compute_advantages, group_stats
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.config import RLConfig
from workbench.rl.filters import ROLLOUT_FILTERS
from workbench.rl.losses import AGGREGATIONS, LossConfig, aggregate, policy_loss
from workbench.rl.methods import METHODS, loss_preset
from workbench.rl.rewards import GroupRewardSpec, RewardSpec
from workbench.rl.rollout import Rollout, RLTask
from workbench.rl.sources import ROLLOUT_SOURCES
from workbench.rl.trainer import TrainResult, train
from workbench.rl.weights import TOKEN_WEIGHTS, WeightContext, compose_token_weights

__all__ = [
    "ADVANTAGES", "AGGREGATIONS", "METHODS", "ROLLOUT_FILTERS", "ROLLOUT_SOURCES", "TOKEN_WEIGHTS", "AdvantageContext",
    "CollectConfig", "GroupRewardSpec", "LossConfig", "RLConfig", "RLTask", "RewardSpec", "Rollout", "TrainResult",
    "WeightContext", "aggregate", "collect_rollout", "compose_token_weights", "compute_advantages", "group_stats",
    "loss_preset", "policy_loss", "train",
]
