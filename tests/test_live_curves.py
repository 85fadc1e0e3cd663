"""Live training curves: drawn in place in a live kernel, throttled, nothing headless or outside a kernel."""

import math
import types

import pytest

import workbench.live as live


def test_curve_records_finite_points_and_throttles():
    shown = []
    curve = live.LiveCurve("SFT demo", ("loss", "eval_accuracy"), shown.append, min_seconds=1e9)
    for s in range(1, 6):
        curve({"step": s, "loss": 1.0 / s, "eval_accuracy": 0.5 if s == 5 else None})
    curve({"step": 6, "loss": math.nan})
    assert len(shown) == 1  # the first step draws, the rest wait for `min_seconds`
    curve.close()
    assert len(shown) == 2 and all(png.startswith(b"\x89PNG") for png in shown)
    assert curve.points["loss"] == [(float(s), 1.0 / s) for s in range(1, 6)]
    assert curve.points["eval_accuracy"] == [(5.0, 0.5)]
    with pytest.raises(ValueError, match="at least one metric key"):
        live.LiveCurve("x", (), shown.append)


def test_no_curve_headless_or_outside_a_kernel(monkeypatch):
    monkeypatch.delenv("WORKBENCH_HEADLESS", raising=False)
    assert live.live_curve("SFT x", ("loss",)) is None  # plain Python: no kernel
    monkeypatch.setattr("IPython.get_ipython", lambda: types.SimpleNamespace(kernel=object(), execution_count=3))
    assert live.live_frontend()
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    assert not live.live_frontend() and live.live_curve("SFT x", ("loss",)) is None
    monkeypatch.setenv("WORKBENCH_HEADLESS", "0")
    monkeypatch.setenv("WORKBENCH_LIVE_CURVES", "0")
    assert not live.live_frontend()


def test_runs_of_one_trainer_share_one_output_area_per_cell(monkeypatch):
    calls = []

    class Handle:
        def __init__(self):
            self.id = len({id(c[0]) for c in calls})

        def display(self, obj):
            calls.append((self, "display"))

        def update(self, obj):
            calls.append((self, "update"))

    shell = types.SimpleNamespace(kernel=object(), execution_count=7)
    monkeypatch.delenv("WORKBENCH_HEADLESS", raising=False)
    monkeypatch.delenv("WORKBENCH_LIVE_CURVES", raising=False)
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    monkeypatch.setattr("IPython.display.DisplayHandle", Handle)
    monkeypatch.setattr(live, "_AREAS", {})
    for seed in range(2):
        c = live.live_curve(f"RL grpo seed {seed}", ("reward_mean",), kind="rl")
        c({"step": 1, "reward_mean": 0.5})
        c.close()
    assert [k for _, k in calls] == ["display", "update", "update", "update"]
    assert len({id(h) for h, _ in calls}) == 1  # one area for both runs of this cell
    shell.execution_count = 8
    live.live_curve("RL grpo seed 0", ("reward_mean",), kind="rl").close()
    assert calls[-1][1] == "display" and calls[-1][0] is not calls[0][0]  # a new cell gets its own area
