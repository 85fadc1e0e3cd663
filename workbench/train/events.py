"""TensorBoard scalars beside a run's `metrics.jsonl`, so `tensorboard --logdir outputs/` shows every trainer's curves.

    events = ScalarEvents(output_dir, purge_step=start + 1)   # the first step this run writes (start = steps done)
    events.write({"step": 3, "loss": 0.41, "rewards": {"chosen": 0.1}})   # scalars loss, rewards/chosen at step 3
    events.close()

Every finite real number of a metrics dict becomes a scalar at `metrics["step"]` (nested dicts are flattened with
"/"; booleans, strings, lists and non-finite values are left out — they stay in `metrics.jsonl`). A run passes
`purge_step` = the first step it writes, so TensorBoard drops the events at that step and later that a killed run
wrote after its last checkpoint (the steps `metrics.jsonl` is truncated to), and those of an earlier run in the same
folder when a run starts afresh. Without the `tensorboard` package (part of `pip install -e '.[all]'`) the
writer says so once, in one sentence, and `metrics.jsonl` is the only record.
"""

from __future__ import annotations

import math
import numbers
import warnings


def flat_scalars(metrics: dict, prefix: str = "") -> dict[str, float]:
    """{tag: value} of the finite real numbers in `metrics` (nested dicts joined by "/"), `step` itself left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_scalars(value, tag + "/"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and tag != "step":
            out[tag] = float(value)
    return out


class ScalarEvents:
    """A TensorBoard event writer in `log_dir` (see the module docstring)."""

    def __init__(self, log_dir: str, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn(f"tensorboard is not installed: {log_dir}/metrics.jsonl is the only record of this run "
                          "(pip install tensorboard)", stacklevel=2)
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=log_dir, purge_step=purge_step or None)

    def write(self, metrics: dict, step: int | None = None) -> None:
        """Every scalar of `metrics` at `step` (default `metrics["step"]`)."""
        if self.writer is None:
            return
        step = metrics.get("step") if step is None else step
        if step is None:
            raise ValueError(f"a metrics record needs a step to be written as events, got keys {sorted(metrics)}")
        for tag, value in flat_scalars(metrics).items():
            self.writer.add_scalar(tag, value, int(step))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
