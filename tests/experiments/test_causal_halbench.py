"""Notebook 07's claim logic on constructed sweeps (the notebook itself runs at smoke in test_notebooks)."""

import numpy as np
import pandas as pd
import pytest

from workbench.experiments import causal_halbench as exp
from workbench.experiments.causal_halbench_claims import claims, negatives_accuracy, perceives
from workbench.notebook import ParameterError


def _sweep(cac_hi: float, unbiased_acc: float, seeds=(0, 1, 2), n_pairs=60, n_q=80, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    runs = [exp.ModelRun(f"rho={r:g}", r, s, f"m-{r}") for r in (0.0, 0.9) for s in seeds]
    pairs, pope, unbiased = [], [], []
    for r in runs:
        p_cac = cac_hi if r.rho == 0.9 else 0.1
        for i in range(n_pairs):
            to = 1.0
            ti = float(rng.random() > p_cac)
            pairs.append({"pair": f"h{i}_001", "run": r.label, "rho": r.rho, "seed": r.seed, "cac": to - ti,
                          "nac": float(rng.integers(-1, 2)), "chr": float(rng.random() < 0.3), "cpr": ti})
        for i in range(n_q):
            unbiased.append({"question": i, "label": "yes", "correct": bool(rng.random() < unbiased_acc),
                             "run": r.label, "rho": r.rho, "seed": r.seed})
        for i in range(n_pairs):
            for split, p in (("random", 0.9), ("adversarial", 0.6 if r.rho == 0.9 else 0.8)):
                pope.append({"split": split, "image": f"h{i}", "kind": "moon", "label": "no", "answer": "",
                             "correct": bool(rng.random() < p), "run": r.label, "rho": r.rho, "seed": r.seed})
    empty = pd.DataFrame()
    return exp.Sweep(pd.DataFrame(pairs), pd.DataFrame(pope), empty, pd.DataFrame(unbiased), empty, runs)


def _by_id(sweep, margin=0.05):
    return {c["id"]: c for c in claims(sweep, margin)}


def test_growing_susceptibility_holds_and_flat_is_refuted():
    got = _by_id(_sweep(cac_hi=0.6, unbiased_acc=0.8))
    assert got["cac_grows_with_rho"]["verdict"].verdict == "holds"
    assert got["pope_adversarial_harder"]["verdict"].verdict == "holds"
    assert got["pope_gap_grows"]["verdict"].verdict == "holds"
    flat = _by_id(_sweep(cac_hi=0.1, unbiased_acc=0.8, n_pairs=400))
    assert flat["cac_grows_with_rho"]["verdict"].verdict == "refuted"


def test_nothing_is_decided_when_the_models_do_not_perceive():
    got = _by_id(_sweep(cac_hi=0.6, unbiased_acc=0.5))
    assert all(c["verdict"].verdict == "inconclusive" for c in got.values()), {k: c["verdict"].verdict for k, c in got.items()}
    ok, acc, se = perceives(_sweep(0.6, 0.5).unbiased, 0.0)
    assert not ok and abs(acc - 0.5) < 0.1 and se > 0


def test_unbiased_stability_is_an_equivalence_test():
    same = _by_id(_sweep(cac_hi=0.6, unbiased_acc=0.8, n_q=400), margin=0.2)
    assert same["unbiased_accuracy_stable"]["verdict"].verdict == "holds"
    tight = _by_id(_sweep(cac_hi=0.6, unbiased_acc=0.8, n_q=40), margin=0.01)
    assert tight["unbiased_accuracy_stable"]["verdict"].verdict == "inconclusive"


def test_negatives_accuracy_pairs_the_splits_per_image():
    s = _sweep(0.6, 0.8)
    neg = negatives_accuracy(s.pope)
    assert set(neg.columns) == {"random", "adversarial"}
    assert len(neg) == len(s.runs) * 60


def test_one_model_alone_gets_the_pope_claim_only():
    s = _sweep(0.6, 0.8)
    s.runs = [exp.ModelRun("m", None, 0, "m")]
    out = claims(s, 0.05)
    assert [c["id"] for c in out] == ["pope_adversarial_harder"]
    assert out[0]["measured"]["unbiased_accuracy"] is not None  # its baseline: that model's own perception


def test_parameter_checks():
    P = exp.PRESETS.values("smoke", model=None, seed=0, rhos=[0.0, 0.3], device="cpu")
    with pytest.raises(ParameterError, match="'rhos' must list values among"):
        exp.check(P)
    P = exp.PRESETS.values("smoke", model=None, seed=0, caption_n=50, device="cpu")
    with pytest.raises(ParameterError, match="'caption_n' must be at most n_images"):
        exp.check(P)
    P = exp.PRESETS.values("gpu", model=None, seed=0, device="cpu")
    with pytest.raises(ParameterError, match="'model' must be a local checkpoint"):
        exp.check(P)
    runs = exp.model_runs(exp.PRESETS.values("cpu", model=None, seed=2, device="cpu"))
    assert [(r.rho, r.seed) for r in runs][:3] == [(0.0, 2), (0.0, 3), (0.0, 4)]
    assert runs[-1].name == "tiny-shapes-vl-cooc-r90"


def test_mean_ci_uses_t():
    mean, half = exp.mean_ci([0.0, 1.0, 2.0])
    assert mean == 1.0 and half == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3), rel=1e-6)


def test_any_local_checkpoint_is_scored(tmp_path):
    """`model` = a local folder: the benchmark scores it through load_model like a real Qwen2.5-VL checkpoint."""
    from workbench.models.zoo import load_model, save_pretrained_atomic

    model, proc = load_model("tiny-shapes-vl-cooc-smoke-r0")
    path = save_pretrained_atomic(model, proc, str(tmp_path / "ckpt"))
    P = exp.PRESETS.values("smoke", model=path, seed=0, n_images=3, unbiased_n=4, caption_n=2, device="cpu")
    exp.check(P)
    runs = exp.model_runs(P)
    assert [(r.name, r.rho) for r in runs] == [(path, None)]
    sweep = exp.run_sweep(P, exp.benchmark(P))
    row = sweep.summary.iloc[0]
    assert row["model"] == path and 0.0 <= row["unbiased_accuracy"] <= 1.0
    assert {"cac", "pope_adversarial_accuracy", "chair_i"} <= set(sweep.summary.columns)
    # no rho sweep: only the POPE claim, inconclusive here (3 images: too few, or a model that does not perceive)
    assert [(c["id"], c["verdict"].verdict) for c in claims(sweep, 0.05)] == [("pope_adversarial_harder", "inconclusive")]
    assert len(sweep.captions) == 2 and len(sweep.unbiased) == 4
