"""Fixtures for the analysis tests: two tiny random Qwen2 models (seeds 0 and 1) and a left-padded batch."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `analysis_tiny_lm` importable in any import mode

from analysis_tiny_lm import PAD, VOCAB, tiny_qwen2


@pytest.fixture(scope="session")
def model_a():
    return tiny_qwen2(0)


@pytest.fixture(scope="session")
def model_b():
    return tiny_qwen2(1)


@pytest.fixture(scope="session")
def batch():
    """Three prompts of lengths 7, 4, 1, left-padded: (input_ids [3, 7], attention_mask [3, 7])."""
    g = torch.Generator().manual_seed(0)
    lengths = [7, 4, 1]
    ids = torch.full((3, 7), PAD, dtype=torch.long)
    mask = torch.zeros((3, 7), dtype=torch.long)
    for r, n in enumerate(lengths):
        ids[r, 7 - n:] = torch.randint(3, VOCAB, (n,), generator=g)
        mask[r, 7 - n:] = 1
    return ids, mask
