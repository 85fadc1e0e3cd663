"""MAC counting for diffusion sampling: `torch.utils.flop_counter.FlopCounterMode`, MACs = FLOPs / 2.

FlopCounterMode counts the matrix products of every op that runs (convolutions, linear layers, batched
matmuls, scaled-dot-product attention) at 2 FLOPs per multiply-add; element-wise ops (norms, activations,
additions) count 0, as MAC counts in the caching papers leave them out. A module whose cached output is
reused does not run, so it counts 0 with no bookkeeping. Per denoising step (the CFG batch through ControlNet
and UNet):

    counter = StepMacs()
    with counter.step():
        ...one denoising step...
    counter.macs        # [MACs of step 0, step 1, …]

`macs_of(fn, *args)` counts one call. `conv2d_macs` / `linear_macs` are the analytic counts the tests hold
FlopCounterMode to: H_out·W_out·C_out·(C_in / groups)·k_h·k_w per image, and in·out per row.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils.flop_counter import FlopCounterMode


class StepMacs:
    """Collects the MACs of each `with counter.step():` block in `macs`."""

    def __init__(self):
        self.macs: list[float] = []

    @contextlib.contextmanager
    def step(self):
        mode = FlopCounterMode(display=False)
        with mode:
            yield
        self.macs.append(mode.get_total_flops() / 2)


def macs_of(fn, *args, **kwargs) -> tuple[float, object]:
    """(MACs of `fn(*args, **kwargs)`, its output)."""
    mode = FlopCounterMode(display=False)
    with mode:
        out = fn(*args, **kwargs)
    return mode.get_total_flops() / 2, out


def conv2d_macs(batch: int, c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, groups: int = 1) -> int:
    """Multiply-adds of a Conv2d (bias adds not counted)."""
    return batch * h_out * w_out * c_out * (c_in // groups) * kernel * kernel


def linear_macs(rows: int, d_in: int, d_out: int) -> int:
    """Multiply-adds of a Linear over `rows` rows (bias adds not counted)."""
    return rows * d_in * d_out
