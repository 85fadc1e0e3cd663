"""Visual entropy (Durian, arXiv 2602.21743) against a naive numpy eigendecomposition, and its degenerate cases."""

import numpy as np
import pytest
import torch

from workbench.analysis.visual_entropy import feature_entropy, image_visual_entropy, visual_entropy


def naive_entropy(f: np.ndarray) -> float:
    f = f.astype(np.float64)
    P = f.shape[0]
    c = (f - f.mean(0)).T @ (f - f.mean(0)) / (P - 1)  # d x d, always the covariance itself
    lam = np.clip(np.linalg.eigvalsh(c), 0, None)
    p = lam / lam.sum()
    return float(-sum(x * np.log(x) for x in p if x > 0))


@pytest.mark.parametrize("P,d", [(16, 128), (40, 8), (2, 5), (7, 7)])
def test_matches_numpy_covariance_spectrum(P, d):
    rng = np.random.default_rng(P * 100 + d)
    f = rng.normal(size=(P, d)) * rng.uniform(0.1, 3.0, size=d)
    assert feature_entropy(torch.tensor(f, dtype=torch.float32)).item() == pytest.approx(naive_entropy(f.astype(np.float32)), rel=1e-6, abs=1e-9)


def test_batched_ragged_and_bounds():
    rng = np.random.default_rng(0)
    feats = [torch.tensor(rng.normal(size=(p, 6))) for p in (3, 10, 50)]
    h = visual_entropy(feats)
    assert h.dtype == torch.float64 and h.shape == (3,)
    for f, v in zip(feats, h):
        assert v.item() == pytest.approx(naive_entropy(f.numpy()), rel=1e-9)
        assert 0 <= v.item() <= np.log(min(f.shape[0] - 1, f.shape[1])) + 1e-9
    assert visual_entropy([]).shape == (0,)


def test_spread_features_score_higher_than_one_direction():
    rng = np.random.default_rng(1)
    isotropic = torch.tensor(rng.normal(size=(64, 8)))
    one_dir = torch.tensor(rng.normal(size=(64, 1)) * np.eye(8)[0] + 1e-3 * rng.normal(size=(64, 8)))
    assert feature_entropy(isotropic) > 1.9 > 0.1 > feature_entropy(one_dir)  # log 8 = 2.08 at most


def test_degenerate_inputs_are_zero_not_nan():
    assert feature_entropy(torch.ones(1, 4)).item() == 0.0          # P = 1: no covariance
    assert feature_entropy(torch.full((9, 4), 3.0)).item() == 0.0   # all patches equal: every λ = 0
    assert feature_entropy(torch.zeros(5, 0)).item() == 0.0
    with pytest.raises(ValueError, match="finite"):
        feature_entropy(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\[P, d\]"):
        feature_entropy(torch.zeros(3))


def test_from_a_tiny_vlm_encoder():
    from workbench.models.vlm import build_processor, build_tiny_vlm, encode_vl_prompts, format_vl_prompt
    from workbench.tasks import shapes

    proc = build_processor()
    model = build_tiny_vlm(proc, seed=0)
    exs = shapes.generate(3, seed=5, config=shapes.complexity_config(0)) + shapes.generate(3, seed=5, config=shapes.complexity_config(3))
    enc = encode_vl_prompts(proc, [format_vl_prompt(e.prompt, proc) for e in exs], [e.image for e in exs])
    h = image_visual_entropy(model, enc["pixel_values"], enc["image_grid_thw"])
    assert h.shape == (6,) and torch.isfinite(h).all() and (h > 0).all()
