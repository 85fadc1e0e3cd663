"""MAC counting against analytic counts; mIoU and pixel distance against naive float64 references."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.diffusion.macs import conv2d_macs, linear_macs, macs_of
from workbench.diffusion.sampling import sample
from workbench.evaluation.fidelity import miou, pixel_distance, pooled_miou


def test_conv_and_linear_match_analytic_counts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=2),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        macs, _ = macs_of(net, x)
    expected = conv2d_macs(5, 3, 8, 3, 16, 16) + conv2d_macs(5, 8, 4, 3, 8, 8, groups=2) + linear_macs(5, 256, 10)
    assert macs == expected


def test_one_unet_resnet_block_matches_its_analytic_count():
    from diffusers.models.resnet import ResnetBlock2D

    block = ResnetBlock2D(in_channels=8, out_channels=16, temb_channels=32, groups=8).eval()
    x, temb = torch.randn(2, 8, 16, 16), torch.randn(2, 32)
    with torch.no_grad():
        macs, _ = macs_of(block, x, temb)
    expected = (conv2d_macs(2, 8, 16, 3, 16, 16) + linear_macs(2, 32, 16) + conv2d_macs(2, 16, 16, 3, 16, 16)
                + conv2d_macs(2, 8, 16, 1, 16, 16))
    assert macs == expected


def test_sampling_macs_per_step_and_cached_steps_cost_less(tiny_model, batch):
    full = sample(tiny_model, batch.maps, batch.prompts, steps=4, seeds=[1, 2, 3], count_macs=True)
    with torch.no_grad():
        emb = tiny_model.prompt_encoder(torch.cat([batch.prompts, batch.prompts]))
        from workbench.tasks.shapes.segmentation import one_hot_maps
        x = torch.randn(6, 3, 32, 32)
        one, _ = macs_of(tiny_model.predict_noise, x, torch.tensor(500), emb, one_hot_maps(torch.cat([batch.maps] * 2)))
    assert len(full.macs) == 4 and all(m == one for m in full.macs)  # a step = the CFG batch once through both nets
    cached = sample(tiny_model, batch.maps, batch.prompts, steps=4, seeds=[1, 2, 3], count_macs=True,
                    cache="deepcache", interval=2)
    assert cached.macs[0] == one and cached.macs[2] == one and cached.macs[1] < 0.8 * one


def _naive_miou(p, m, k):
    ious = []
    for c in range(k):
        inter = np.logical_and(p == c, m == c).sum()
        union = np.logical_or(p == c, m == c).sum()
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_miou_against_a_naive_reference():
    rng = np.random.default_rng(0)
    pred, target = rng.integers(0, 5, (4, 8, 8)), rng.integers(0, 4, (4, 8, 8))
    target[0] = 0
    got = miou(torch.from_numpy(pred), torch.from_numpy(target), 5)
    assert got.dtype == torch.float64
    assert np.allclose(got.numpy(), [_naive_miou(pred[i], target[i], 5) for i in range(4)], atol=1e-15)
    pooled = pooled_miou(torch.from_numpy(pred), torch.from_numpy(target), 5)
    assert pooled == pytest.approx(_naive_miou(pred.reshape(-1), target.reshape(-1), 5), abs=1e-15)
    same = torch.from_numpy(target)
    assert torch.equal(miou(same, same, 5), torch.ones(4, dtype=torch.float64))


def test_pixel_distance_and_bad_shapes():
    a, b = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    b[1] = 0
    assert pixel_distance(b, a).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="one shape"):
        pixel_distance(a, a[:1])
    with pytest.raises(ValueError, match="class maps"):
        miou(torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long), 3)
