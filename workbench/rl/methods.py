"""RL methods (registry): the one table of paper presets — each method's policy loss and its sampling.

    RLConfig.for_method("dapo", steps=200)         # a method's preset, then your overrides
    loss_preset("fipo")                            # its LossConfig (clip range, dual clip, aggregation)

A method registers a `Method`: the `LossConfig` the paper fixes and the `RLConfig` fields it sets
(advantage estimator, dynamic sampling, overlong shaping, token weights, mini-batches). Adding a method
is one decorated function here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from workbench.registry import Registry
from workbench.rl.losses import LossConfig

METHODS = Registry("RL method")


@dataclass(frozen=True)
class Method:
    """A paper's preset: `loss` (its policy-loss knobs) and `config` (the `RLConfig` fields it sets)."""

    loss: LossConfig
    config: dict = field(default_factory=dict)


def loss_preset(name: str, **overrides) -> LossConfig:
    """The `LossConfig` of method `name` with `overrides` applied (an unknown field is a ValueError)."""
    base = METHODS.get(name).loss
    known = {f.name for f in dataclasses.fields(LossConfig)}
    for key in overrides:
        if key not in known:
            raise ValueError(f"unknown LossConfig field {key!r}; known: {', '.join(sorted(known))}")
    return dataclasses.replace(base, **overrides)


def _register(name: str, doc: str, loss: LossConfig, **config) -> None:
    METHODS.register(name)(Method(loss, {"loss": name, **config}))
    METHODS_DOC[name] = doc


METHODS_DOC: dict[str, str] = {}

_register("grpo", "GRPO as TRL's loss_type='grpo' (arXiv 2402.03300): ε 0.2/0.2, seq-mean-token-mean, group z-score",
          LossConfig(epsilon_low=0.2, epsilon_high=0.2, agg="seq-mean-token-mean"), advantage="grpo")
_register("dr_grpo", "Dr. GRPO (arXiv 2503.20783): ε 0.2/0.2, seq-mean-token-sum-norm (L_max = max_new_tokens), advantage without std",
          LossConfig(epsilon_low=0.2, epsilon_high=0.2, agg="seq-mean-token-sum-norm"), advantage="dr_grpo")
_register("dapo", "DAPO (arXiv 2503.14476): clip-higher ε 0.2/0.28, token-mean, dynamic sampling, overlong shaping + filtering",
          LossConfig(epsilon_low=0.2, epsilon_high=0.28, agg="token-mean"), advantage="grpo", dynamic_sampling=True,
          overlong_buffer=8, mask_truncated=True)
_register("fipo", "FIPO (arXiv 2603.19835): DAPO + future-KL token weights (τ = 32), dual clip c = 10 dropping responses with "
          "> 1 dual-clipped token, 4 mini-batches so the weights act",
          LossConfig(epsilon_low=0.2, epsilon_high=0.28, dual_clip_c=10.0, agg="token-mean", drop_dual_clipped=True),
          advantage="grpo", dynamic_sampling=True, overlong_buffer=8, mask_truncated=True,
          token_weights=[("future_kl", {"decay_rate": 32})], num_minibatches=4)
