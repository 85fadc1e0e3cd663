"""GRPO on the ShapeWorld RL base: the smoke-size run in the suite, the ≥ 8-point target under `make test-slow`."""

import math

import pytest

from workbench.recipes.shapes_rl import gains_report, shapes_rl_gains


def test_gain_check_runs_at_smoke_size():
    gains = shapes_rl_gains("tiny-shapes-vl-smoke", seeds=(0, 1), eval_n=4, k=(1, 2), steps=1, num_prompts=2,
                            num_generations=2)
    assert [g.seed for g in gains] == [0, 1]
    for g in gains:
        assert g.before == gains[0].before  # one base evaluation shared by every seed
        assert math.isclose(g.gain, g.after - g.before) and g.se >= 0
        assert set(g.pass_before) == set(g.pass_after) == {1, 2}
    assert "mean gain" in gains_report(gains)


@pytest.mark.slow
def test_grpo_raises_the_rl_base_by_eight_points():
    """Issue 18's target at the cpu preset: mean of 3 seeds ≥ 8 points, each seed's gain above 2 paired SE."""
    gains = shapes_rl_gains("tiny-shapes-vl-rl", seeds=(0, 1, 2))
    print(gains_report(gains))
    assert sum(g.gain for g in gains) / 3 >= 0.08
    assert all(g.gain > 2 * g.se for g in gains)
