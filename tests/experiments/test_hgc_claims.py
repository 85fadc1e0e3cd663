"""Notebook 10's claims decided from hand-made sweeps: each verdict can come out holds, refuted or inconclusive."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.experiments.hgc import PRESETS, Sweep, check, pareto_front, sweep_settings
from workbench.experiments.hgc_claims import background_floor, claims
from workbench.notebook import ParameterError

N = 40
MAPS = torch.zeros(N, 8, 8, dtype=torch.long)
MAPS[:, 2:5, 2:5] = 1  # one object per image: all-background scores IoU_bg / 2


def _sweep(settings: dict[str, tuple[str, float, np.ndarray]]) -> Sweep:
    """settings: label -> (cache, macs per image, per-image mIoU); the first is the uncached reference."""
    rows, imgs = [], []
    for label, (cache, macs, m) in settings.items():
        rows.append({"label": label, "cache": cache, "settings": {}, "macs_per_image": macs, "seconds_per_image": macs / 1e8,
                     "miou": float(np.mean(m)), "pixel_distance": 0.0})
        imgs += [{"label": label, "cache": cache, "image": i, "miou": float(v), "pixel_distance": 0.0} for i, v in enumerate(m)]
    t = pd.DataFrame(rows)
    base = t.iloc[0]
    t["mac_cut_pct"] = 100 * (1 - t["macs_per_image"] / base["macs_per_image"])
    t["speedup"] = base["seconds_per_image"] / t["seconds_per_image"]
    t["fidelity_loss_pct"] = 100 * (base["miou"] - t["miou"]) / base["miou"]
    return Sweep(t, pd.DataFrame(imgs), {}, {}, {})


RNG = np.random.default_rng(0)
BASE = np.clip(0.9 + 0.03 * RNG.standard_normal(N), 0, 1)


def _standard(hgc_loss=0.0, hgc_macs=30.0, late=0.0, early=-0.05, block=-0.002):
    noise = lambda: 0.002 * RNG.standard_normal(N)  # noqa: E731
    return _sweep({"none": ("none", 100.0, BASE), "hgc (headline)": ("hgc", hgc_macs, BASE - hgc_loss + noise()),
                   "block": ("block", 40.0, BASE + block + noise()), "prompt": ("prompt", 95.0, BASE + noise()),
                   "controlnet early": ("controlnet", 80.0, BASE + early + noise()),
                   "controlnet late": ("controlnet", 80.0, BASE + late + noise())})


def _verdicts(sweep):
    return {c["id"]: c["verdict"].verdict for c in claims(sweep, MAPS, "hgc (headline)", "controlnet early", "controlnet late")}


def test_all_hold_when_hgc_is_cheap_and_faithful():
    assert _verdicts(_standard()) == {"hgc_mac_cut_within_fidelity": "holds", "hgc_dominates_single_grained": "holds",
                                      "controlnet_reuse_late_cheaper": "holds"}


def test_a_refuted_by_the_counted_cut_or_by_lost_fidelity():
    assert _verdicts(_standard(hgc_macs=50.0))["hgc_mac_cut_within_fidelity"] == "refuted"  # a 50 % cut < 63.2 %
    assert _verdicts(_standard(hgc_loss=0.05))["hgc_mac_cut_within_fidelity"] == "refuted"  # 5.6 % loss
    v = _verdicts(_standard(hgc_loss=0.05))
    assert v["hgc_dominates_single_grained"] == "refuted"  # block (40 MACs) is far better than HGC at 30


def test_b_not_covered_is_inconclusive_and_c_refuted_when_early_is_cheaper():
    s = _standard(hgc_macs=60.0)  # block at 40 MACs is cheaper than every HGC setting
    v = _verdicts(s)
    assert v["hgc_dominates_single_grained"] == "inconclusive"
    assert _verdicts(_standard(late=-0.05, early=0.0))["controlnet_reuse_late_cheaper"] == "refuted"


def test_nothing_is_decided_when_the_uncached_model_draws_nothing():
    floor = background_floor(MAPS).numpy()
    s = _sweep({"none": ("none", 100.0, floor), "hgc (headline)": ("hgc", 30.0, floor),
                "block": ("block", 40.0, floor), "controlnet early": ("controlnet", 80.0, floor - 0.01 * RNG.random(N)),
                "controlnet late": ("controlnet", 80.0, floor)})
    assert set(_verdicts(s).values()) == {"inconclusive"}


def test_pareto_front_and_floor():
    t = pd.DataFrame({"label": list("abcde"), "macs_per_image": [100, 30, 40, 95, 30], "miou": [0.9, 0.85, 0.8, 0.88, 0.7]})
    assert list(pareto_front(t)["label"]) == ["b", "d", "a"]  # c is beaten by b (cheaper, better), e by b (same MACs)
    assert background_floor(MAPS).tolist() == pytest.approx([(64 - 9) / 64 / 2] * N)


def test_presets_and_checks():
    P = PRESETS.values("cpu", guidance=3.0, hgc_tau=0.3, hgc_lam_inter=0.1, hgc_gate_frac=0.5, device="cpu", seed=0)
    labels = [s.label for s in sweep_settings(P)]
    assert labels[0] == "none" and labels[1] == "hgc (headline)" and len(labels) == len(set(labels))
    assert {"controlnet early", "controlnet late"} <= set(labels)
    with pytest.raises(ParameterError, match="batch_size"):
        check(PRESETS.values("cpu", batch_size=128, hgc_gate_frac=0.5))
    with pytest.raises(ParameterError, match="'grid' must be one of small, full; got 'huge'"):
        check(PRESETS.values("cpu", grid="huge", hgc_gate_frac=0.5))
    with pytest.raises(ParameterError, match="gate at step 0"):
        check(PRESETS.values("smoke", hgc_gate_frac=0.05))
