import pytest
import torch

from workbench.diffusion.model import ControlledDiffusion, DiffusionConfig
from workbench.tasks.shapes.segmentation import seg_batch


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained (randomly initialised) tiny controllable model; zero-convs perturbed so ControlNet matters."""
    torch.manual_seed(0)
    model = ControlledDiffusion(DiffusionConfig(channels=(8, 16, 32), head_dim=8, prompt_dim=32)).eval()
    with torch.no_grad():
        for name, p in model.controlnet.named_parameters():
            if "controlnet_" in name and p.abs().sum() == 0:
                p.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def batch():
    return seg_batch(3, seed=5)
