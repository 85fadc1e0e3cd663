"""Fixtures shared across test folders."""

import pytest
import torch


@pytest.fixture
def float64_rms_norm(monkeypatch):
    """transformers' Qwen2RMSNorm computes in float32 whatever the input dtype, so two summation orders of a float64
    model differ at ~1e-7; this swaps in a norm that keeps the dtype, for comparisons at float64 rounding."""
    from transformers.models.qwen2 import modeling_qwen2

    def rms_norm(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(modeling_qwen2.Qwen2RMSNorm, "forward", rms_norm)
