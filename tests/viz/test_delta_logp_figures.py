"""The replacement figure's title says only what its numbers show."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.viz.delta_logp import plot_replacement_curves  # noqa: E402


def summary(rl: float) -> pd.DataFrame:
    rows = [{"selector": s, "budget": b, "seed": 0, "accuracy": 0.6 + (rl - 0.6) * b, "changed_frac": b}
            for s in ("delta_logp", "entropy", "kl") for b in (0.0, 0.5, 1.0)]
    return pd.DataFrame(rows)


def test_no_gap_is_said_not_a_budget():
    reach = pd.Series({"delta_logp": np.nan, "entropy": np.nan, "kl": np.nan})
    fig = plot_replacement_curves(summary(0.5), reach, base_acc=0.6, rl_acc=0.5, n_seeds=1)
    assert fig.axes[0].get_title() == "RL model (50%) not above the base (60%): no gap to close"
    assert "nan" not in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_a_selector_that_never_reaches_reads_never():
    reach = pd.Series({"delta_logp": 0.5, "entropy": np.nan, "kl": 1.0})
    fig = plot_replacement_curves(summary(0.8), reach, base_acc=0.6, rl_acc=0.8, n_seeds=1)
    assert fig.axes[0].get_title() == "Δlog p reaches RL accuracy at budget 0.50 (entropy never, KL 1.00)"
