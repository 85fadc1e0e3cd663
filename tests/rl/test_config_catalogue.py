"""Bad RLConfig values, each with the one sentence that names it (a row per input; validated before any rollout)."""

import math

import pytest

from workbench.rl import RLConfig

CATALOGUE = [
    ({"grad_clip": -1.0}, "grad_clip must be > 0"),
    ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"temperature": math.inf}, "temperature must be a finite number"),
    ({"temperature": math.nan}, "temperature must be a finite number"),
    ({"lr": math.nan}, "lr must be a finite number"),
    ({"lr": -1e-4}, "lr and weight_decay must be >= 0"),
    ({"overlong_buffer": -1}, "overlong_buffer must be an integer >= 0"),
    ({"max_sampling_rounds": 0}, "max_sampling_rounds must be an integer >= 1"),
    ({"eval_every": -5}, "eval_every must be an integer >= 0"),
    ({"logits_chunk": -1}, "logits_chunk must be an integer >= 0"),
    ({"steps": 2.5}, "steps must be an integer >= 1"),
    ({"steps": True}, "steps must be an integer >= 1"),
    ({"lora_r": 0}, "lora_r must be an integer >= 1"),
    ({"resume": True}, "resume=True needs output_dir"),
    ({"off_policy_gamma": 0.0}, "off_policy_gamma must be > 0"),
    ({"advantage": "grpoo"}, "grpoo"),
    ({"advantage": ("durian", {"alpha": 1})}, "no option 'alpha'"),
    ({"rollout_source": ("expert_mix", {"kk": 1})}, "no option 'kk'"),
    ({"rollout_filters": ["dapo_dynamik"]}, "dapo_dynamik"),
]


@pytest.mark.parametrize("overrides,message", CATALOGUE, ids=[next(iter(o)) + "=" + repr(next(iter(o.values()))) for o, _ in CATALOGUE])
def test_bad_value_is_one_sentence(overrides, message):
    with pytest.raises((ValueError, KeyError), match=message):
        RLConfig(**overrides).validate()


def test_every_method_preset_validates():
    from workbench.rl import METHODS

    for name in METHODS.names():
        RLConfig.for_method(name).validate()
