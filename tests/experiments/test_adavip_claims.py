"""Notebook 06's claim logic on constructed caption frames."""

import numpy as np
import pandas as pd

from workbench.experiments.adavip import Runs, claims


def _runs(rates: dict, recall: dict, n=200, seeds=(0, 1, 2), seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"method": "base", "seed": -1, "image": i, "any_hallucination": float(rng.random() < rates["base"]),
             "hallucinated": 0, "mentions": 2, "recall": float(rng.random() < recall["base"])} for i in range(n)]
    for m in ("DPO", "AdaViP", "AdaViP vision only"):
        for s in seeds:
            rows += [{"method": m, "seed": s, "image": i, "any_hallucination": float(rng.random() < rates[m]),
                      "hallucinated": 0, "mentions": 2, "recall": float(rng.random() < recall.get(m, recall["base"]))}
                     for i in range(n)]
    return Runs(pd.DataFrame(rows), pd.DataFrame(), ["DPO", "AdaViP", "AdaViP vision only"])


def test_adavip_beats_dpo_when_there_is_room():
    got = {c["id"]: c["verdict"] for c in claims(_runs({"base": 0.5, "DPO": 0.3, "AdaViP": 0.1,
                                                        "AdaViP vision only": 0.3}, {"base": 0.8}), 0.2)}
    assert got["adavip_cuts_hallucination_more_than_dpo"].verdict == "holds"
    assert got["adavip_keeps_recall"].verdict == "holds"
    assert got["vision_pairs_alone_help"].verdict == "holds"


def test_a_floor_below_the_sesoi_decides_nothing():
    got = {c["id"]: c["verdict"] for c in claims(_runs({"base": 0.3, "DPO": 0.01, "AdaViP": 0.01,
                                                        "AdaViP vision only": 0.3}, {"base": 0.8}), 0.05)}
    v = got["adavip_cuts_hallucination_more_than_dpo"]
    assert v.verdict == "inconclusive" and v.reason.startswith("floor")


def test_recall_collapse_is_refuted():
    got = {c["id"]: c["verdict"] for c in claims(_runs({"base": 0.5, "DPO": 0.3, "AdaViP": 0.1, "AdaViP vision only": 0.3},
                                                       {"base": 0.8, "AdaViP": 0.4}), 0.05)}
    assert got["adavip_keeps_recall"].verdict == "refuted"
