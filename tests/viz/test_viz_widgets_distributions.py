import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from workbench.viz.distributions import (classify_token, plot_rank_correlation, plot_stat_histogram,
                                         plot_token_kinds, rank_correlation, token_kind_summary)
from workbench.viz.tokens import TokenTable
from workbench.viz.widgets import TokenExplorer, token_explorer


def token_frame():
    rng = np.random.default_rng(0)
    tokens = list("12+3=15\nanswer: 15") * 2
    n = len(tokens)
    return pd.DataFrame({"seq_id": [0] * (n // 2) + [1] * (n // 2), "position": list(range(n // 2)) * 2,
                         "token_id": range(n), "token": tokens,
                         "delta_logp": rng.laplace(scale=0.1, size=n), "entropy_a": rng.gamma(1.0, size=n),
                         "kl": rng.gamma(0.5, size=n)})


def test_explorer_static_fallback_and_live_widgets():
    frame = token_frame()
    static = token_explorer(frame, static=True)
    assert isinstance(static, TokenTable) and len(static.panels) == 3
    live = token_explorer(frame, static=False)
    assert isinstance(live, TokenExplorer)
    first = live.output.value
    live.rollout.value = 1
    assert live.output.value != first
    live.statistic.value = "kl"
    assert "kl =" in live.output.value
    live.auto.value = False
    top = 10 ** live.limit.max
    live.limit.value = top / 1000  # the log slider zooms below max / 100
    assert live.limit.value == pytest.approx(top / 1000, rel=0.05)
    assert f"{live.limit.value:.3g}" in live.output.value
    live.statistic.value = "(all side by side)"
    assert live.output.value.count("linear-gradient") == 3
    assert not token_explorer(frame).__class__ is TokenExplorer  # no kernel here -> static
    with pytest.raises(ValueError, match="no 'token' column"):
        token_explorer(frame.drop(columns="token"))
    with pytest.raises(ValueError, match="not among"):
        token_explorer(frame, statistics=["nope"])


def test_rank_correlation_matches_loop_reference():
    frame = token_frame()
    frame.loc[3, "kl"] = np.nan  # dropped row
    got = rank_correlation(frame, ["delta_logp", "entropy_a", "kl"])
    data = frame[["delta_logp", "entropy_a", "kl"]].dropna()

    def ranks(x):  # average ranks, explicit loop
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r

    def pearson(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
        return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5

    ref = pearson(ranks(data["delta_logp"].tolist()), ranks(data["kl"].tolist()))
    assert got.loc["delta_logp", "kl"] == pytest.approx(ref, abs=1e-12)


def test_token_kinds():
    assert [classify_token(t) for t in ["7", "+", " ", "\n", "a", ":", "<|endoftext|>", "a1"]] == \
        ["digit", "operator", "space", "newline", "letter", "punctuation", "special", "other"]
    frame = token_frame()
    summary = token_kind_summary(frame, "delta_logp")
    assert summary["count"].sum() == len(frame)
    assert summary["mass_share"].sum() == pytest.approx(1.0)
    digit = frame[frame.token.str.isdigit()]["delta_logp"]
    assert summary.loc["digit", "mean"] == pytest.approx(digit.mean())
    zero = frame.assign(delta_logp=0.0)
    assert not token_kind_summary(zero, "delta_logp")["mass_share"].isna().any()


def test_plots_build():
    frame = token_frame()
    fig = plot_stat_histogram(frame, "delta_logp", by="seq_id")
    assert fig.axes[0].get_yscale() == "log"
    assert plot_stat_histogram(frame.assign(delta_logp=0.0), "delta_logp") is not None  # constant column
    assert len(plot_rank_correlation(frame).axes) == 2
    assert plot_token_kinds(frame, "delta_logp").axes[0].get_ylabel().startswith("share")
    with pytest.raises(ValueError, match="no column"):
        plot_stat_histogram(frame, "nope")
    with pytest.raises(ValueError, match="finite"):
        plot_stat_histogram(frame.assign(delta_logp=np.nan), "delta_logp")
    plt.close("all")
