"""Notebook 00's RL figures: titles computed from the numbers they sit on, one evaluation set per curve."""

from types import SimpleNamespace

import matplotlib
import pytest

matplotlib.use("Agg")

from workbench.viz.rl_runs import plot_sharpening, plot_training_run, sharpening_title  # noqa: E402


def _ev(greedy, passk):
    return SimpleNamespace(accuracy=greedy, n=100, pass_at_k=passk)


@pytest.mark.parametrize("greedy_after, top_after, word", [
    (0.5, 0.8, "sharpened"), (0.5, 0.95, "widened"), (0.3, 0.8, "greedy fell"), (0.4, 0.95, "greedy unchanged")])
def test_sharpening_title_says_what_the_numbers_say(greedy_after, top_after, word):
    base = _ev(0.4, {1: 0.3, 4: 0.7, 32: 0.9})
    rl = _ev(greedy_after, {1: 0.45, 4: 0.75, 32: top_after})
    title = sharpening_title(base, rl, "grpo")
    assert title.startswith(f"grpo {word}:")
    assert f"greedy {100 * (greedy_after - 0.4):+.1f} pts" in title and "pass@32" in title
    fig = plot_sharpening(base, rl, method="grpo", pass_k=4, temperature=1.0)
    assert fig.axes[0].get_title() == title


def test_training_curve_starts_from_the_base_on_its_own_problems():
    history = [{"step": s, "reward_mean": 0.1 * s} for s in range(1, 11)]
    history[4]["eval_accuracy"], history[9]["eval_accuracy"] = 0.45, 0.55
    fig = plot_training_run(history, 0.385, 200, "grpo", before=0.384, after=0.52, n=500)
    ax = fig.axes[1]
    curve, marks = ax.lines[0], ax.lines[1]
    assert list(curve.get_xdata()) == [0, 5, 10] and list(curve.get_ydata()) == [0.385, 0.45, 0.55]
    assert list(marks.get_ydata()) == [0.384, 0.52] and curve.get_label() == "200 problems"
    assert ax.get_title() == "grpo: 38.4% → 52.0% on 500 held-out (+13.6 pts)"
