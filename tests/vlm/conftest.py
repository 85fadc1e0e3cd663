"""Fixtures for the VLM tests: the offline processor, a tiny random Qwen2.5-VL and a few ShapeWorld examples."""

import pytest

from workbench.models.vlm import build_processor, build_tiny_vlm
from workbench.tasks import shapes


@pytest.fixture(scope="session")
def processor():
    return build_processor()


@pytest.fixture(scope="session")
def vlm(processor):
    """A tiny random Qwen2.5-VL (text hidden 64, 1 layer; vision hidden 32, depth 2), eval mode, on CPU."""
    return build_tiny_vlm(processor, seed=0, text_hidden=64, text_layers=2, text_heads=2, text_kv_heads=1,
                          vision_hidden=32, vision_heads=2)


@pytest.fixture(scope="session")
def examples():
    """Three arithmetic examples (112 × 112 px images)."""
    return shapes.generate(3, seed=11, families=("arithmetic",))
