"""Figures of notebooks 06 and 07 draw from constructed frames without error and label what they show."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.preference.pairs import PreferencePair  # noqa: E402
from workbench.tasks import halbench  # noqa: E402
from workbench.viz.adavip import plot_hallucination, plot_vision_pair, plot_vision_share  # noqa: E402
from workbench.viz.causal_halbench import plot_metrics_vs_rho, plot_pairs, plot_pope  # noqa: E402


def test_causal_halbench_figures():
    bench = halbench.load_halbench()
    cf = bench.counterfactuals()[0]
    scenes = {im.id: im.scene for im in bench.images}
    fig = plot_pairs([{"cf": cf, "original": scenes[cf.original_id],
                       "answers": {"rho=0": {"target_origin": 1.0, "target_inpainted": float("nan")}}}])
    assert "is there a" in fig.axes[0].get_title()
    rows = [{"metric": m, "rho": r, "mean": 0.1 * r, "half": 0.02, "n": 3} for m in ("cac", "nac", "pope_random_accuracy",
            "pope_adversarial_accuracy", "pope_random_yes_ratio") for r in (0.0, 0.5, 0.9)]
    summary = pd.DataFrame({"rho": [0.0, 0.5, 0.9], "cac": [0.0, 0.05, 0.09], "nac": [0.0, 0.0, 0.1]})
    fig = plot_metrics_vs_rho(pd.DataFrame(rows), summary)
    assert [a.get_title() for a in fig.axes if a.axison][:2] == ["CAC: target still 'seen'", "NAC: absent object made seen"]
    fig = plot_pope(pd.DataFrame(rows))
    assert fig.axes[0].get_title() == "POPE accuracy"


def test_adavip_figures():
    bench = halbench.load_halbench()
    scene = bench.images[0].scene
    pair = PreferencePair("p", scene, "Describe the image.", "a red star.", "a red star and a blue moon.", "moon", 0,
                          np.zeros((112, 112, 3), np.uint8))
    fig = plot_vision_pair(pair, {"base": "a red star and a blue moon.", "AdaViP": "a red star."})
    assert "I_l" in fig.axes[1].get_title()
    caps = pd.DataFrame({"method": ["base", "DPO", "DPO"], "seed": [-1, 0, 1], "image": [0, 0, 0],
                         "any_hallucination": [1.0, 0.0, 1.0], "hallucinated": [1, 0, 1], "mentions": [2, 1, 2],
                         "recall": [1.0, 0.5, 1.0]})
    fig = plot_hallucination(caps, ["DPO"])
    assert len(fig.axes) == 3
    hist = pd.DataFrame({"method": "AdaViP", "seed": 0, "step": [1, 2], "vision_share": [0.4, 0.6],
                         "rewards/margins": [0.1, 0.2], "rewards/vision_margins": [0.2, 0.1]})
    fig = plot_vision_share(hist)
    assert fig.axes[0].get_ylim() == (0.0, 1.0)
