"""RLVR engine: rollouts, advantage estimators, token weights, policy losses and the trainer.

Where each paper lives:
- GRPO / Dr.GRPO / RLOO advantages ............ `advantages.py`  (ADVANTAGES registry)
- DAPO clip-higher, dual clip, aggregations .... `losses.py`      (LOSSES / AGGREGATIONS)
- DAPO dynamic sampling, overlong shaping ...... `rollout.py`, `rewards.py`
- Δlog p low-prob reweighting (2603.22117) ..... `weights.py: low_prob`
- FIPO future-KL (2603.19835) .................. `weights.py: future_kl`
- ToR perception/reasoning (2603.25077) ........ `weights.py: tor`
- the loop ..................................... `trainer.py`
"""

from workbench.rl.advantages import ADVANTAGES, compute_advantages, group_stats
from workbench.rl.losses import AGGREGATIONS, LOSSES, LossConfig, aggregate, policy_loss
from workbench.rl.rewards import RewardSpec
from workbench.rl.rollout import Rollout, RLTask, collect_rollout
from workbench.rl.trainer import RLConfig, TrainResult, evaluate_task, train
from workbench.rl.weights import TOKEN_WEIGHTS, WeightContext, compose_token_weights

__all__ = [
    "ADVANTAGES", "AGGREGATIONS", "LOSSES", "TOKEN_WEIGHTS", "LossConfig", "RLConfig", "RLTask", "RewardSpec",
    "Rollout", "TrainResult", "WeightContext", "aggregate", "collect_rollout", "compose_token_weights",
    "compute_advantages", "evaluate_task", "group_stats", "policy_loss", "train",
]
